"""Checking a send_join answer's events against their own auth events (protocol/auth_chain.py)."""

from __future__ import annotations

import random
from typing import Any

from homeserver.protocol.auth_chain import auth_order, check_auth_chain, find_create, state_map
from homeserver.protocol.events import compute_event_id, hash_and_sign_event
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.protocol.signing import generate_signing_key

RV = KNOWN_ROOM_VERSIONS["10"]
KEY = generate_signing_key("k1")
ROOM = "!room:hs.example"
ALICE = "@alice:hs.example"
EVE = "@eve:evil.example"


def _ev(events: dict[str, dict[str, Any]], etype: str, state_key: str | None, content: dict[str, Any],
        auth: list[str], sender: str = ALICE) -> str:
    pdu: dict[str, Any] = {"room_id": ROOM, "type": etype, "sender": sender, "content": content,
                           "origin_server_ts": 1, "depth": len(events) + 1, "auth_events": auth,
                           "prev_events": [list(events)[-1]] if events else []}
    if state_key is not None:
        pdu["state_key"] = state_key
    pdu = hash_and_sign_event(pdu, "hs.example", KEY, RV)
    eid = compute_event_id(pdu, RV)
    events[eid] = pdu
    return eid


def _room() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    events: dict[str, dict[str, Any]] = {}
    ids: dict[str, str] = {}
    ids["create"] = _ev(events, "m.room.create", "", {"creator": ALICE, "room_version": "10"}, [])
    ids["alice"] = _ev(events, "m.room.member", ALICE, {"membership": "join"}, [ids["create"]])
    ids["pl"] = _ev(events, "m.room.power_levels", "", {"users": {ALICE: 100}}, [ids["create"], ids["alice"]])
    ids["jr"] = _ev(events, "m.room.join_rules", "", {"join_rule": "invite"},
                    [ids["create"], ids["alice"], ids["pl"]])
    ids["name"] = _ev(events, "m.room.name", "", {"name": "ok"}, [ids["create"], ids["alice"], ids["pl"]])
    return events, ids


def test_a_valid_chain_passes_and_auth_events_come_first() -> None:
    events, ids = _room()
    shuffled = dict(random.Random(4).sample(sorted(events.items()), len(events)))
    order = auth_order(shuffled)
    for eid in order:
        for a in events[eid]["auth_events"]:
            assert order.index(a) < order.index(eid)
    assert check_auth_chain(RV, ROOM, shuffled) == {}
    assert find_create(RV, ROOM, events) == ids["create"]
    assert state_map(events, list(events), {})[("m.room.name", "")] == ids["name"]


def test_rejections_cascade_and_leave_the_state() -> None:
    events, ids = _room()
    # Eve joins an invite-only room: rejected; her name change citing that join is rejected too.
    eve = _ev(events, "m.room.member", EVE, {"membership": "join"}, [ids["create"], ids["pl"], ids["jr"]], EVE)
    forged = _ev(events, "m.room.name", "", {"name": "pwned"}, [ids["create"], ids["pl"], eve], EVE)
    orphan = _ev(events, "m.room.topic", "", {"topic": "t"}, [ids["create"], ids["alice"], "$missing"])
    rejected = check_auth_chain(RV, ROOM, events)
    assert set(rejected) == {eve, forged, orphan}
    assert "missing" in rejected[orphan]
    state = state_map(events, list(events), rejected)
    assert state[("m.room.name", "")] == ids["name"] and ("m.room.member", EVE) not in state
    without_create = {k: v for k, v in events.items() if k != ids["create"]}
    assert find_create(RV, ROOM, without_create) is None
    assert ids["alice"] in check_auth_chain(RV, ROOM, without_create)
