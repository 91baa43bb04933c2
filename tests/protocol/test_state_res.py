"""State resolution v2 (rooms v2-v11) and v2.1 (room v12) over small hand-built DAGs."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.protocol.state_res import (
    auth_chain,
    conflicted_state_subgraph,
    is_power_event,
    mainline_order,
    resolve_state,
    reverse_topological_power_order,
)

ALICE, BOB, CAROL = "@alice:x", "@bob:x", "@carol:y"
VERSIONS = [rv for rv in KNOWN_ROOM_VERSIONS.values() if rv.state_res != "v1"]  # v1: test_room_versions.py


class Dag:
    """Events keyed by synthetic IDs; auth_events chosen by hand like a server would."""

    def __init__(self, rv: RoomVersion) -> None:
        self.rv = rv
        self.events: dict[str, dict[str, Any]] = {}
        self.room_id = "!C" if rv.room_id_from_create else "!r:x"
        content: dict[str, Any] = {"room_version": rv.identifier}
        if rv.create_has_creator:
            content["creator"] = ALICE
        self.add("C", "m.room.create", ALICE, content, "", [], ts=1)

    def add(self, eid: str, etype: str, sender: str, content: dict[str, Any], state_key: str | None,
            auth: list[str], ts: int) -> str:
        eid = "$" + eid
        if not self.rv.room_id_from_create and eid != "$C":
            auth = ["C"] + auth
        e: dict[str, Any] = {"type": etype, "sender": sender, "content": content, "origin_server_ts": ts,
                             "auth_events": ["$" + a for a in auth], "prev_events": [], "depth": ts}
        if not (self.rv.room_id_from_create and etype == "m.room.create"):
            e["room_id"] = self.room_id
        if state_key is not None:
            e["state_key"] = state_key
        self.events[eid] = e
        return eid

    def state(self, *ids: str) -> dict[tuple[str, str], str]:
        out = {}
        for i in ids:
            e = self.events["$" + i]
            out[(e["type"], e["state_key"])] = "$" + i
        return out


def base(rv: RoomVersion) -> Dag:
    d = Dag(rv)
    d.add("JA", "m.room.member", ALICE, {"membership": "join"}, ALICE, [], 2)
    users = {BOB: 50} if rv.creators_infinite_pl else {ALICE: 100, BOB: 50}
    d.add("PL", "m.room.power_levels", ALICE, {"users": users}, "", ["JA"], 3)
    d.add("JR", "m.room.join_rules", ALICE, {"join_rule": "public"}, "", ["JA", "PL"], 4)
    d.add("JB", "m.room.member", BOB, {"membership": "join"}, BOB, ["PL", "JR"], 5)
    d.add("T0", "m.room.topic", ALICE, {"topic": "zero"}, "", ["PL", "JA"], 6)
    return d


BASE = ("C", "JA", "PL", "JR", "JB", "T0")


@pytest.fixture(params=VERSIONS, ids=lambda rv: f"v{rv.identifier}")
def rv(request: Any) -> RoomVersion:
    return request.param


def test_no_conflict(rv: RoomVersion) -> None:
    d = base(rv)
    s = d.state(*BASE)
    assert resolve_state(rv, [s, s], d.events) == s
    assert resolve_state(rv, [s], d.events) == s
    assert resolve_state(rv, [], d.events) == {}


def test_ban_beats_concurrent_state_from_banned_user(rv: RoomVersion) -> None:
    d = base(rv)
    d.add("BAN", "m.room.member", ALICE, {"membership": "ban"}, BOB, ["PL", "JA", "JB"], 7)
    d.add("T1", "m.room.topic", BOB, {"topic": "bob"}, "", ["PL", "JB"], 8)
    sa = d.state(*BASE, "BAN")
    sb = d.state(*BASE, "T1")
    for sets in ([sa, sb], [sb, sa]):
        out = resolve_state(rv, sets, d.events)
        assert out[("m.room.member", BOB)] == "$BAN"
        assert out[("m.room.topic", "")] == "$T0"
        assert out[("m.room.power_levels", "")] == "$PL"


def test_later_topic_wins_among_equals(rv: RoomVersion) -> None:
    d = base(rv)
    d.add("T1", "m.room.topic", ALICE, {"topic": "one"}, "", ["PL", "JA"], 8)
    d.add("T2", "m.room.topic", BOB, {"topic": "two"}, "", ["PL", "JB"], 9)
    out = resolve_state(rv, [d.state(*BASE[:-1], "T1"), d.state(*BASE[:-1], "T2")], d.events)
    assert out[("m.room.topic", "")] == "$T2"  # same mainline position: the later one is applied last


def test_power_ordering_and_demotion(rv: RoomVersion) -> None:
    d = base(rv)
    users_a = {BOB: 0} if rv.creators_infinite_pl else {ALICE: 100, BOB: 0}
    users_b = {BOB: 50, CAROL: 50} if rv.creators_infinite_pl else {ALICE: 100, BOB: 50, CAROL: 50}
    d.add("PLA", "m.room.power_levels", ALICE, {"users": users_a}, "", ["PL", "JA"], 20)
    d.add("PLB", "m.room.power_levels", BOB, {"users": users_b, "state_default": 50}, "", ["PL", "JB"], 10)
    # alice's event sorts first despite its later timestamp: higher sender power
    assert reverse_topological_power_order(rv, {"$PLA", "$PLB"}, d.events) == ["$PLA", "$PLB"]
    out = resolve_state(rv, [d.state(*BASE, "PLA"), d.state(*BASE, "PLB")], d.events)
    assert out[("m.room.power_levels", "")] == "$PLA"  # bob was demoted before his change is checked


def test_mainline_ordering(rv: RoomVersion) -> None:
    d = base(rv)
    d.add("PL2", "m.room.power_levels", ALICE, dict(d.events["$PL"]["content"]), "", ["PL", "JA"], 7)
    d.add("OLD", "m.room.topic", ALICE, {"topic": "old"}, "", ["PL", "JA"], 50)
    d.add("NEW", "m.room.topic", ALICE, {"topic": "new"}, "", ["PL2", "JA"], 8)
    d.add("NONE", "m.room.topic", ALICE, {"topic": "none"}, "", ["JA"], 99)
    assert mainline_order(["$NEW", "$OLD", "$NONE"], "$PL2", d.events) == ["$NONE", "$OLD", "$NEW"]
    assert mainline_order(["$NEW", "$OLD"], None, d.events) == ["$NEW", "$OLD"]  # all infinite: by ts


def test_helpers(rv: RoomVersion) -> None:
    d = base(rv)
    d.add("K", "m.room.member", ALICE, {"membership": "leave"}, BOB, ["PL", "JA", "JB"], 7)
    assert is_power_event(d.events["$K"]) and is_power_event(d.events["$PL"])
    assert not is_power_event(d.events["$JB"]) and not is_power_event(d.events["$T0"])
    chain = auth_chain(["$K"], d.events)
    assert {"$PL", "$JA", "$JB", "$JR"} <= chain and "$K" not in chain


def test_conflicted_state_subgraph() -> None:
    rv = KNOWN_ROOM_VERSIONS["12"]
    d = base(rv)
    d.add("X", "m.room.member", BOB, {"membership": "join", "displayname": "x"}, BOB, ["PL", "JB"], 7)
    d.add("Y", "m.room.member", BOB, {"membership": "join", "displayname": "y"}, BOB, ["PL", "X"], 8)
    sub = conflicted_state_subgraph({"$JB", "$Y"}, d.events)
    assert sub == {"$JB", "$X", "$Y"}  # X lies on the path Y -> X -> JB; PL and JR do not


@settings(max_examples=25, deadline=None)
@given(version=st.sampled_from(VERSIONS), picks=st.lists(st.sets(st.sampled_from(["BAN", "T1", "T2", "K"])),
                                                         min_size=1, max_size=3))
def test_resolution_is_order_independent(version: RoomVersion, picks: list[set[str]]) -> None:
    d = base(version)
    d.add("BAN", "m.room.member", ALICE, {"membership": "ban"}, BOB, ["PL", "JA", "JB"], 7)
    d.add("T1", "m.room.topic", BOB, {"topic": "bob"}, "", ["PL", "JB"], 8)
    d.add("T2", "m.room.topic", ALICE, {"topic": "alice"}, "", ["PL", "JA"], 9)
    d.add("K", "m.room.member", ALICE, {"membership": "leave"}, BOB, ["PL", "JA", "JB"], 10)
    sets = []
    for p in picks:
        s = d.state(*BASE)
        for i in sorted(p):
            s.update(d.state(i))
        sets.append(s)
    out = resolve_state(version, sets, d.events)
    assert out == resolve_state(version, list(reversed(sets)), d.events)
    assert out[("m.room.create", "")] == "$C"
    if any("BAN" in p for p in picks) and not any("K" in p for p in picks):
        assert out[("m.room.member", BOB)] == "$BAN"


def test_fork_with_conflicting_power_levels_and_names(rv: RoomVersion) -> None:
    """Two branches of one room: on one, Alice demotes Bob and names the room; on the other, Bob
    (still a moderator there) names it too. Merged, the demotion comes first, so Bob's name fails
    its auth check against the resolved power levels and Alice's name stands, whichever branch
    the resolution is handed first."""
    d = base(rv)
    demoted = {BOB: 0} if rv.creators_infinite_pl else {ALICE: 100, BOB: 0}
    d.add("PLA", "m.room.power_levels", ALICE, {"users": demoted}, "", ["PL", "JA"], 10)
    d.add("NA", "m.room.name", ALICE, {"name": "Alice's"}, "", ["PLA", "JA"], 11)
    d.add("NB", "m.room.name", BOB, {"name": "Bob's"}, "", ["PL", "JB"], 12)
    branch_a = d.state(*BASE, "PLA", "NA")
    branch_b = d.state(*BASE, "NB")
    for sets in ([branch_a, branch_b], [branch_b, branch_a]):
        merged = resolve_state(rv, sets, d.events)
        assert merged[("m.room.power_levels", "")] == "$PLA"
        assert merged[("m.room.name", "")] == "$NA"
        assert merged[("m.room.member", BOB)] == "$JB"  # unconflicted state is kept as is
