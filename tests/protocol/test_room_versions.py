"""Room versions 1-12: the flags table, event IDs and references, redaction and auth-rule
differences between versions (rooms/v1.md ... v12.md)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from homeserver.protocol.auth_rules import auth_types_for_event, check_auth
from homeserver.protocol.errors import AuthError, MatrixError
from homeserver.protocol.events import (
    check_event_size_and_format,
    compute_event_id,
    compute_reference_hash,
    event_refs,
    hash_and_sign_event,
    make_event_refs,
)
from homeserver.protocol.power_levels import parse_level
from homeserver.protocol.redaction import redact
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.protocol.state_res import auth_chain, resolve_state
from tests.protocol.test_auth_rules import ALICE, BOB, CAROL, MALLORY, Room
from tests.protocol.test_state_res import BASE, base
from tests.protocol.test_vectors import KEY, VECTORS

RV = {int(k): v for k, v in KNOWN_ROOM_VERSIONS.items()}
ALL = list(range(1, 13))


def _ids(n: int) -> str:
    return f"v{n}"


# ---------------------------------------------------------------------------- the table

# version: (event ID format, redaction rules, auth rules, state resolution) as in the spec's
# room version pages (rooms/v1.md ... v12.md).
TABLE = {
    1: ("legacy", "v1", "v1", "v1"), 2: ("legacy", "v1", "v1", "v2"),
    3: ("standard", "v1", "v3", "v2"), 4: ("urlsafe", "v1", "v3", "v2"), 5: ("urlsafe", "v1", "v3", "v2"),
    6: ("urlsafe", "v6", "v6", "v2"), 7: ("urlsafe", "v6", "v7", "v2"), 8: ("urlsafe", "v8", "v8", "v2"),
    9: ("urlsafe", "v9", "v8", "v2"), 10: ("urlsafe", "v9", "v10", "v2"), 11: ("urlsafe", "v11", "v11", "v2"),
    12: ("urlsafe", "v11", "v12", "v2.1"),
}


@pytest.mark.parametrize("n", ALL, ids=_ids)
def test_flags_table(n: int) -> None:
    rv = RV[n]
    fmt, redaction, auth, state_res = TABLE[n]
    assert rv.identifier == str(n)
    assert rv.event_id_in_pdu == (fmt == "legacy")
    assert rv.event_id_urlsafe == (fmt == "urlsafe")
    assert (rv.redaction_rules, rv.auth_rules, rv.state_res) == (redaction, auth, state_res)
    assert rv.special_case_redaction_auth == (n <= 2)
    assert rv.special_case_aliases_auth == rv.redaction_keeps_aliases == (n <= 5)
    assert rv.enforce_key_validity == (n >= 5)
    assert rv.strict_canonical_json == rv.limit_notifications_power_levels == (n >= 6)
    assert rv.knock_join_rule == (n >= 7)
    assert rv.restricted_join_rule == rv.redaction_keeps_join_rules_allow == (n >= 8)
    assert rv.redaction_keeps_authorising_user == (n >= 9)
    assert rv.integer_power_levels == rv.knock_restricted_supported == (n >= 10)
    assert rv.create_has_creator == (n <= 10)
    assert rv.updated_redaction_rules == rv.redacts_in_content == (n >= 11)
    assert rv.room_id_from_create == rv.creators_infinite_pl == (n == 12)


# ---------------------------------------------------------------------------- event IDs


@pytest.mark.parametrize("n", [1, 2], ids=_ids)
def test_v1_event_signing_official_vector(n: int) -> None:
    """The spec's second event-signing vector is a v1-format event (its `event_id` is part of the
    event): hash_and_sign_event reproduces it exactly and keeps the ID."""
    case = VECTORS["event_signing"]["cases"][1]
    full = hash_and_sign_event(case["input"], "domain", KEY, RV[n])
    expected = case["expected_signed"]
    assert full["event_id"] == "$0:domain"
    assert full["hashes"] == expected["hashes"] and full["signatures"] == expected["signatures"]
    assert compute_event_id(full, RV[n]) == "$0:domain"


@pytest.mark.parametrize("n", range(3, 11), ids=_ids)
def test_reference_hash_event_ids_v3_to_v10(n: int) -> None:
    """The derived reference hashes of the first vector (pre-v11 redaction): standard base64 in v3,
    URL-safe from v4 (rooms/v3.md §Event IDs, fragments/v4-event-ids.md)."""
    case = VECTORS["event_signing"]["cases"][0]
    derived = VECTORS["derived_values"]["cases"][0]["room_versions_1_to_10"]
    full = hash_and_sign_event(case["input"], "domain", KEY, RV[n])
    key = "reference_hash_unpadded_base64" if n == 3 else "reference_hash_urlsafe_unpadded_base64"
    assert compute_event_id(full, RV[n]) == "$" + derived[key]


def test_reference_hash_recomputed_by_hand() -> None:
    """sha256 over the canonical redacted event without signatures/unsigned, computed here with
    json + hashlib; v3 and v4 differ only in the alphabet."""
    pdu = {"type": "m.room.message", "room_id": "!r:x", "sender": "@a:x", "content": {"body": "é" * 40},
           "origin_server_ts": 5, "depth": 2, "prev_events": ["$p"], "auth_events": ["$a"],
           "hashes": {"sha256": "h"}, "signatures": {"x": {"ed25519:1": "s"}}, "unsigned": {"age": 1}}
    redacted = {k: v for k, v in pdu.items() if k not in ("signatures", "unsigned")} | {"content": {}}
    digest = hashlib.sha256(json.dumps(redacted, sort_keys=True, separators=(",", ":"),
                                       ensure_ascii=False).encode()).digest()
    assert compute_reference_hash(pdu, RV[3]) == digest
    assert compute_event_id(pdu, RV[3]) == "$" + base64.b64encode(digest).decode().rstrip("=")
    assert compute_event_id(pdu, RV[4]) == "$" + base64.urlsafe_b64encode(digest).decode().rstrip("=")
    # an informational event_id is no part of a v3+ event ...
    assert compute_event_id(dict(pdu, event_id="$x:y"), RV[4]) == compute_event_id(pdu, RV[4])
    # ... but is part of a v1 event, and so of its reference hash
    v1 = dict(pdu, event_id="$one:x")
    assert compute_reference_hash(v1, RV[1]) != compute_reference_hash(dict(v1, event_id="$two:x"), RV[1])


def test_v1_event_needs_its_event_id() -> None:
    pdu = {"type": "m.room.message", "room_id": "!r:x", "sender": "@a:x", "content": {}}
    with pytest.raises(MatrixError) as e:
        compute_event_id(pdu, RV[1])
    assert e.value.errcode == "M_BAD_JSON"
    with pytest.raises(MatrixError):
        compute_event_id(dict(pdu, event_id="no-sigil"), RV[2])
    assert compute_event_id(dict(pdu, event_id="$abc:x"), RV[2]) == "$abc:x"


def test_event_references_per_format() -> None:
    parent = {"type": "m.room.create", "room_id": "!r:x", "sender": "@a:x", "content": {"creator": "@a:x"},
              "event_id": "$c:x", "hashes": {"sha256": "h"}, "signatures": {}, "depth": 1,
              "prev_events": [], "auth_events": [], "origin_server_ts": 1}
    v1_refs = make_event_refs(RV[1], [("$c:x", parent)])
    ref_hash = base64.b64encode(compute_reference_hash(parent, RV[1])).decode().rstrip("=")
    assert v1_refs == [["$c:x", {"sha256": ref_hash}]]
    assert make_event_refs(RV[3], [("$c", parent)]) == ["$c"]
    assert event_refs(v1_refs) == ["$c:x"] and event_refs(["$a", "$b"]) == ["$a", "$b"]
    assert event_refs("junk") == [] and event_refs([5, [], ["$ok:x", {}]]) == ["$ok:x"]


def _pdu(rv: RoomVersion, refs: list[Any]) -> dict[str, Any]:
    pdu: dict[str, Any] = {"type": "m.room.message", "room_id": "!r:x", "sender": "@a:x", "content": {},
                           "origin_server_ts": 1, "depth": 2, "prev_events": refs, "auth_events": refs,
                           "hashes": {"sha256": "h"}, "signatures": {}}
    if rv.event_id_in_pdu:
        pdu["event_id"] = "$e:x"
    return pdu


@pytest.mark.parametrize("n", [1, 2, 3, 6, 11], ids=_ids)
def test_format_check_knows_each_reference_format(n: int) -> None:
    rv = RV[n]
    pairs = [["$p:x", {"sha256": "abc"}]]
    good, bad = (pairs, ["$p:x"]) if rv.event_id_in_pdu else (["$p"], pairs)
    check_event_size_and_format(_pdu(rv, good), rv)
    with pytest.raises(MatrixError):
        check_event_size_and_format(_pdu(rv, bad), rv)
    if rv.event_id_in_pdu:
        no_id = _pdu(rv, good)
        del no_id["event_id"]
        with pytest.raises(MatrixError):
            check_event_size_and_format(no_id, rv)


@pytest.mark.parametrize("n", [5, 6], ids=_ids)
def test_strict_canonical_json_from_v6(n: int) -> None:
    pdu = _pdu(RV[n], ["$p"])
    pdu["content"] = {"n": 2.0}
    if RV[n].strict_canonical_json:
        with pytest.raises(MatrixError):
            check_event_size_and_format(pdu, RV[n])
    else:
        check_event_size_and_format(pdu, RV[n])  # v1-v5 tolerate such values from peers


# ---------------------------------------------------------------------------- redaction

EVENTS: dict[str, dict[str, Any]] = {
    "aliases": {"type": "m.room.aliases", "state_key": "x", "content": {"aliases": ["#a:x"], "other": 1}},
    "join_rules": {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "restricted",
                                                                              "allow": [], "other": 1}},
    "member": {"type": "m.room.member", "state_key": "@a:x", "content": {
        "membership": "join", "join_authorised_via_users_server": "@b:x", "displayname": "A",
        "third_party_invite": {"signed": {"mxid": "@a:x"}, "display_name": "a"}}},
    "create": {"type": "m.room.create", "state_key": "", "content": {"creator": "@a:x", "room_version": "1"}},
    "power_levels": {"type": "m.room.power_levels", "state_key": "", "content": {"ban": 50, "invite": 0,
                                                                                  "notifications": {"room": 50}}},
    "redaction": {"type": "m.room.redaction", "redacts": "$t", "content": {"redacts": "$t", "reason": "r"}},
}


def _expected_member(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"membership": "join"}
    if n >= 9:
        out["join_authorised_via_users_server"] = "@b:x"
    if n >= 11:
        out["third_party_invite"] = {"signed": {"mxid": "@a:x"}}
    return out


def _expected_content(kind: str, n: int) -> dict[str, Any]:
    return {
        "aliases": {"aliases": ["#a:x"]} if n <= 5 else {},
        "join_rules": {"join_rule": "restricted", "allow": []} if n >= 8 else {"join_rule": "restricted"},
        "member": _expected_member(n),
        "create": {"creator": "@a:x"} if n <= 10 else {"creator": "@a:x", "room_version": "1"},
        "power_levels": {"ban": 50} if n <= 10 else {"ban": 50, "invite": 0},
        "redaction": {} if n <= 10 else {"redacts": "$t"},
    }[kind]


@pytest.mark.parametrize("n", ALL, ids=_ids)
@pytest.mark.parametrize("kind", list(EVENTS))
def test_redaction_per_version(n: int, kind: str) -> None:
    ev = dict(EVENTS[kind], room_id="!r:x", sender="@a:x", origin="x", membership="join", prev_state=[],
              event_id="$e:x", unsigned={"age": 1})
    out = redact(ev, RV[n])
    assert out["content"] == _expected_content(kind, n)
    assert "unsigned" not in out and out["event_id"] == "$e:x"
    # v11 dropped the legacy top-level keys (and top-level redacts was never kept)
    for key in ("origin", "membership", "prev_state"):
        assert (key in out) == (n <= 10)
    assert "redacts" not in out


# ---------------------------------------------------------------------------- auth rules


def test_stringy_power_level_grammar() -> None:
    """rooms/fragments/v1-stringy-power-levels.md and v1-floaty-power-levels.md."""
    for raw, value in (("100", 100), ("000100", 100), ("+100", 100), ("-100", -100), (" 100 ", 100),
                       (" 00100 ", 100), (" +100 ", 100), (" -100 ", -100), (50.57, 50), (-1.5, -1),
                       (5.114698e4, 51146), (7, 7)):
        assert parse_level(raw) == value, raw
    for raw in ("", " ", "1_0", "5.0", "1e3", "++1", "0x10", "\u0663", "ten", True, None, [], {},
                float("inf"), float("nan")):
        assert parse_level(raw) is None, raw


@pytest.mark.parametrize("n", ALL, ids=_ids)
def test_string_and_float_levels(n: int) -> None:
    rv = RV[n]
    room = Room(rv)
    room.apply(room.member(BOB, BOB, "join"))
    pl = room.pl()
    stringy = {**pl, "users": {**pl["users"], BOB: " +050 "}, "state_default": "50", "events": {"m.x": "10"}}
    assert room.allowed(room.ev("m.room.power_levels", ALICE, stringy, "")) == (n <= 9)
    # an unparseable string is never a level
    assert not room.allowed(room.ev("m.room.power_levels", ALICE, {**pl, "users": {**pl["users"], BOB: "5a"}}, ""))
    if n <= 9:
        room.apply(room.ev("m.room.power_levels", ALICE, stringy, ""))
        # bob's " +050 " is 50: enough for state_default "50", not for raising himself
        assert room.allowed(room.ev("m.room.topic", BOB, {"topic": "t"}, ""))
        assert not room.allowed(room.ev("m.room.power_levels", BOB, {**stringy, "ban": 51}, ""))
        # "50" -> 50 is no change, so bob may rewrite the string as an integer
        assert room.allowed(room.ev("m.room.power_levels", BOB, {**stringy, "state_default": 50}, ""))
    if n <= 5:  # floats (v1-v5 only; v6+ canonical JSON has none): truncated
        floaty = {**pl, "users": {**pl["users"], BOB: 50.57}}
        room.apply(room.ev("m.room.power_levels", ALICE, floaty, ""))
        assert room.allowed(room.ev("m.room.topic", BOB, {"topic": "t2"}, ""))


@pytest.mark.parametrize("n", [5, 6], ids=_ids)
def test_notifications_levels_checked_from_v6(n: int) -> None:
    room = Room(RV[n], notifications={"room": 50})
    room.apply(room.member(BOB, BOB, "join"))
    pl = room.pl()
    room.apply(room.ev("m.room.power_levels", ALICE, {**pl, "users": {**pl["users"], BOB: 60},
                                                      "events": {"m.room.power_levels": 60}}, ""))
    pl = room.pl()
    raise_it = room.ev("m.room.power_levels", BOB, {**pl, "notifications": {"room": 100}}, "")
    assert room.allowed(raise_it) == (n <= 5)


@pytest.mark.parametrize("n", [6, 7], ids=_ids)
def test_knock_only_from_v7(n: int) -> None:
    room = Room(RV[n])
    room.apply(room.ev("m.room.join_rules", ALICE, {"join_rule": "knock"}, ""))
    assert room.allowed(room.member(BOB, BOB, "knock")) == (n >= 7)
    # before v7 "knock" is no invite rule: an invited user cannot join through it
    room.apply(room.member(ALICE, BOB, "invite"))
    assert room.allowed(room.member(BOB, BOB, "join")) == (n >= 7)


@pytest.mark.parametrize("n", [7, 8], ids=_ids)
def test_restricted_only_from_v8(n: int) -> None:
    room = Room(RV[n])
    room.apply(room.ev("m.room.join_rules", ALICE, {"join_rule": "restricted", "allow": []}, ""))
    join = room.member(BOB, BOB, "join", join_authorised_via_users_server=ALICE)
    assert room.allowed(join) == (n >= 8)
    assert (("m.room.member", ALICE) in auth_types_for_event(RV[n], join)) == (n >= 8)


@pytest.mark.parametrize("n", [9, 10], ids=_ids)
def test_knock_restricted_only_from_v10(n: int) -> None:
    room = Room(RV[n])
    room.apply(room.ev("m.room.join_rules", ALICE, {"join_rule": "knock_restricted", "allow": []}, ""))
    assert room.allowed(room.member(BOB, BOB, "knock")) == (n >= 10)
    assert room.allowed(room.member(BOB, BOB, "join", join_authorised_via_users_server=ALICE)) == (n >= 10)


@pytest.mark.parametrize("n", [5, 6], ids=_ids)
def test_aliases_special_case_until_v5(n: int) -> None:
    """v1-v5 rule 4: m.room.aliases is allowed iff its state_key is the sender's domain, even from
    a non-member; from v6 it is an ordinary state event."""
    room = Room(RV[n])
    own = room.ev("m.room.aliases", MALLORY, {"aliases": ["#m:y"]}, "y")
    other = room.ev("m.room.aliases", MALLORY, {"aliases": ["#m:x"]}, "x")
    assert room.allowed(own) == (n <= 5)
    assert not room.allowed(other)
    member_own = room.ev("m.room.aliases", ALICE, {"aliases": []}, "x")
    assert room.allowed(member_own)  # alice is joined with PL 100 and x is her domain


@pytest.mark.parametrize("n", [1, 2, 3], ids=_ids)
def test_redaction_auth_v1_v2(n: int) -> None:
    """v1/v2 rule 11: without the redact level, only events whose ID shares the redaction's ID
    domain may be redacted. From v3 the redact level is not an auth rule."""
    room = Room(RV[n])
    room.apply(room.member(BOB, BOB, "join"))

    def redaction(target: str, own_id: str) -> dict[str, Any]:
        e = room.ev("m.room.redaction", BOB, {"redacts": target})
        e["redacts"], e["event_id"] = target, own_id
        return e

    assert room.allowed(redaction("$t:x", "$r:x"))
    assert room.allowed(redaction("$t:y", "$r:y"))
    assert room.allowed(redaction("$t:y", "$r:x")) == (n >= 3)
    pl = room.pl()
    room.apply(room.ev("m.room.power_levels", ALICE, {**pl, "users": {**pl["users"], BOB: 50}}, ""))
    assert room.allowed(redaction("$t:y", "$r:x"))  # redact level 50


@pytest.mark.parametrize("n", [1, 2], ids=_ids)
def test_creator_first_join_with_v1_reference_pairs(n: int) -> None:
    room = Room(RV[n])
    join = room.member(ALICE, ALICE, "join")
    join["prev_events"] = [[room.create["event_id"], {"sha256": "x"}]]
    fresh = {("m.room.create", ""): room.create}
    check_auth(RV[n], join, fresh, create_event=room.create)  # the creator's first join
    other = room.member(CAROL, CAROL, "join")
    other["prev_events"] = join["prev_events"]
    with pytest.raises(AuthError):  # anyone else: no join rules yet, so invite-only
        check_auth(RV[n], other, fresh, create_event=room.create)


# ---------------------------------------------------------------------------- state resolution


def _as_pairs(events: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for eid, e in events.items():
        out[eid] = dict(e, auth_events=[[a, {"sha256": "x"}] for a in e["auth_events"]],
                        prev_events=[[p, {"sha256": "x"}] for p in e["prev_events"]], event_id=eid)
    return out


def test_state_res_reads_v2_reference_pairs() -> None:
    """Room v2 events reference their auth events as [id, hashes] pairs; auth chains and state
    resolution v2 see the same graph as with plain IDs."""
    rv = RV[2]
    d = base(rv)
    d.add("BAN", "m.room.member", ALICE, {"membership": "ban"}, BOB, ["PL", "JA", "JB"], 7)
    d.add("T1", "m.room.topic", BOB, {"topic": "bob"}, "", ["PL", "JB"], 8)
    paired = _as_pairs(d.events)
    assert auth_chain(["$T1"], paired) == auth_chain(["$T1"], d.events) == {"$C", "$PL", "$JB", "$JA", "$JR"}
    sets = [d.state(*BASE, "BAN"), d.state(*BASE, "T1")]
    out = resolve_state(rv, sets, paired)
    assert out == resolve_state(rv, sets, d.events)
    assert out[("m.room.member", BOB)] == "$BAN" and out[("m.room.topic", "")] == "$T0"


def test_state_res_v1_normal_events_by_depth_then_sha1() -> None:
    """rooms/v1.md §State resolution: the highest depth that passes auth, then the lowest sha1."""
    rv = RV[1]
    d = base(rv)
    d.add("T1", "m.room.topic", ALICE, {"topic": "one"}, "", ["PL", "JA"], 20)
    d.add("T2", "m.room.topic", BOB, {"topic": "two"}, "", ["PL", "JB"], 9)
    d.events["$T1"]["depth"], d.events["$T2"]["depth"] = 7, 8
    sets = [d.state(*BASE[:-1], "T1"), d.state(*BASE[:-1], "T2")]
    assert resolve_state(rv, sets, d.events)[("m.room.topic", "")] == "$T2"  # depth, not timestamp
    assert resolve_state(RV[2], sets, d.events)[("m.room.topic", "")] == "$T1"  # v2: mainline, then ts
    # the deeper event loses if the auth rules refuse it: carol is no member
    d.add("T3", "m.room.topic", CAROL, {"topic": "three"}, "", ["PL"], 30)
    sets = [d.state(*BASE[:-1], "T1"), d.state(*BASE[:-1], "T3")]
    assert resolve_state(rv, sets, d.events)[("m.room.topic", "")] == "$T1"
    # equal depths: the lower sha1(event_id) wins
    d.events["$T2"]["depth"] = 7
    sets = [d.state(*BASE[:-1], "T1"), d.state(*BASE[:-1], "T2")]
    lowest = min(("$T1", "$T2"), key=lambda e: hashlib.sha1(e.encode()).hexdigest())
    assert resolve_state(rv, sets, d.events)[("m.room.topic", "")] == lowest


def test_state_res_v1_power_levels_in_depth_order() -> None:
    rv = RV[1]
    d = base(rv)
    pl = d.events["$PL"]["content"]
    # alice demotes bob (depth 7); bob (50) then lowers state_default (depth 8): refused after
    # the demotion, so the pass stops at alice's event
    d.add("PLA", "m.room.power_levels", ALICE, {"users": {ALICE: 100, BOB: 0}}, "", ["PL", "JA"], 7)
    d.add("PLB", "m.room.power_levels", BOB, {**pl, "state_default": 10}, "", ["PL", "JB"], 8)
    sets = [d.state(*BASE, "PLA"), d.state(*BASE, "PLB")]
    assert resolve_state(rv, sets, d.events)[("m.room.power_levels", "")] == "$PLA"
    # with bob's event first (lower depth) alice's is still allowed after it: the later one wins
    d.events["$PLB"]["depth"], d.events["$PLA"]["depth"] = 6, 9
    assert resolve_state(rv, sets, d.events)[("m.room.power_levels", "")] == "$PLA"
    # both by alice: each allowed in turn, the deepest ends in R
    d.add("PLC", "m.room.power_levels", ALICE, {**pl, "kick": 60}, "", ["PL", "JA"], 12)
    sets = [d.state(*BASE, "PLA"), d.state(*BASE, "PLC")]
    assert resolve_state(rv, sets, d.events)[("m.room.power_levels", "")] == "$PLC"
    assert resolve_state(rv, [], d.events) == {}
    assert resolve_state(rv, [d.state(*BASE)], d.events) == d.state(*BASE)
