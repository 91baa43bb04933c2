"""Redaction algorithm (v9 rules for room 10, v11 rules for 11/12), event IDs, v12 room IDs."""

from __future__ import annotations

import pytest

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.events import (
    check_event_size_and_format,
    client_event,
    compute_event_id,
    hash_and_sign_event,
    room_id_for_create_event,
    verify_content_hash,
)
from homeserver.protocol.redaction import redact
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.protocol.signing import generate_signing_key

V10, V11, V12 = (KNOWN_ROOM_VERSIONS[v] for v in ("10", "11", "12"))


def ev(etype: str, content: dict, **extra: object) -> dict:
    base = {"type": etype, "content": content, "sender": "@a:x", "room_id": "!r:x", "origin": "x",
            "origin_server_ts": 1, "depth": 2, "prev_events": [], "auth_events": [], "hashes": {"sha256": "h"},
            "signatures": {}, "unsigned": {"age": 1}, "membership": "join", "prev_state": []}
    base.update(extra)
    return base


def test_top_level_keys() -> None:
    e = ev("m.room.message", {"body": "hi"}, extra_key=1)
    r10, r11 = redact(e, V10), redact(e, V11)
    assert "origin" in r10 and "membership" in r10 and "prev_state" in r10
    assert "origin" not in r11 and "membership" not in r11 and "prev_state" not in r11
    for r in (r10, r11):
        assert r["content"] == {} and "unsigned" not in r and "extra_key" not in r
        assert r["hashes"] == {"sha256": "h"}


@pytest.mark.parametrize("etype,content,kept10,kept11", [
    ("m.room.member", {"membership": "join", "displayname": "A", "join_authorised_via_users_server": "@b:x",
                       "third_party_invite": {"signed": {"s": 1}, "display_name": "x"}},
     {"membership": "join", "join_authorised_via_users_server": "@b:x"},
     {"membership": "join", "join_authorised_via_users_server": "@b:x", "third_party_invite": {"signed": {"s": 1}}}),
    ("m.room.create", {"creator": "@a:x", "room_version": "10", "m.federate": False},
     {"creator": "@a:x"}, {"creator": "@a:x", "room_version": "10", "m.federate": False}),
    ("m.room.join_rules", {"join_rule": "restricted", "allow": [], "other": 1},
     {"join_rule": "restricted", "allow": []}, {"join_rule": "restricted", "allow": []}),
    ("m.room.power_levels", {"ban": 1, "invite": 2, "notifications": {"room": 3}, "users": {}, "events": {}},
     {"ban": 1, "users": {}, "events": {}}, {"ban": 1, "invite": 2, "users": {}, "events": {}}),
    ("m.room.history_visibility", {"history_visibility": "shared", "x": 1},
     {"history_visibility": "shared"}, {"history_visibility": "shared"}),
    ("m.room.redaction", {"redacts": "$e", "reason": "r"}, {}, {"redacts": "$e"}),
    ("m.room.name", {"name": "n"}, {}, {}),
])
def test_content_rules(etype: str, content: dict, kept10: dict, kept11: dict) -> None:
    assert redact(ev(etype, content), V10)["content"] == kept10
    assert redact(ev(etype, content), V11)["content"] == kept11
    assert redact(ev(etype, content), V12)["content"] == kept11


def test_event_id_ignores_redactable_content_and_signatures() -> None:
    key = generate_signing_key("k")
    a = hash_and_sign_event(ev("m.room.message", {"body": "one"}), "x", key, V11)
    b = dict(a, signatures={"y": {"ed25519:z": "sig"}}, unsigned={"other": 2})
    assert compute_event_id(a, V11) == compute_event_id(b, V11)
    c = hash_and_sign_event(ev("m.room.message", {"body": "two"}), "x", key, V11)
    assert compute_event_id(a, V11) != compute_event_id(c, V11)  # hashes differ
    assert compute_event_id(a, V11).startswith("$") and "+" not in compute_event_id(a, V11)
    assert verify_content_hash(a) and not verify_content_hash(dict(a, content={"body": "x"}))


def test_v12_room_id_derives_from_create() -> None:
    key = generate_signing_key("k")
    create = {"type": "m.room.create", "state_key": "", "sender": "@a:x", "content": {"room_version": "12"},
              "origin_server_ts": 5, "depth": 1, "prev_events": [], "auth_events": []}
    signed = hash_and_sign_event(create, "x", key, V12)
    room_id = room_id_for_create_event(signed, V12)
    assert room_id == "!" + compute_event_id(signed, V12)[1:]
    assert len(room_id) == 44 and ":" not in room_id
    check_event_size_and_format(signed, V12)  # no room_id needed on a v12 create


def test_size_limits() -> None:
    big = ev("m.room.message", {"body": "x" * 70000})
    with pytest.raises(MatrixError) as e:
        check_event_size_and_format(big, V11)
    assert e.value.errcode == "M_TOO_LARGE" and e.value.status == 413
    with pytest.raises(MatrixError) as e:
        check_event_size_and_format(ev("t" * 256, {}), V11)
    assert e.value.errcode == "M_TOO_LARGE"
    with pytest.raises(MatrixError) as e:
        check_event_size_and_format(ev("m.x", {}, depth="2"), V11)
    assert e.value.errcode == "M_BAD_JSON"


def test_client_event_serves_redacts_both_ways() -> None:
    v10 = client_event(ev("m.room.redaction", {"reason": "r"}, redacts="$t"), "$e")
    v11 = client_event(ev("m.room.redaction", {"redacts": "$t"}), "$e")
    for c in (v10, v11):
        assert c["redacts"] == "$t" and c["content"]["redacts"] == "$t"
        assert "auth_events" not in c and "hashes" not in c and "signatures" not in c
