"""Authorization rules (rooms v1-v12): a table of cases plus property tests."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homeserver.protocol.auth_rules import auth_types_for_event, check_auth, check_auth_events_structure
from homeserver.protocol.errors import AuthError
from homeserver.protocol.power_levels import user_power_level
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion

ALICE, BOB, CAROL, MALLORY = "@alice:x", "@bob:x", "@carol:x", "@mallory:y"
VERSIONS = list(KNOWN_ROOM_VERSIONS.values())
RESTRICTED_VERSIONS = [rv for rv in VERSIONS if rv.restricted_join_rule]  # rooms v8+


class Room:
    """Room state as plain PDUs, built by applying events that pass the rules."""

    def __init__(self, rv: RoomVersion, creator: str = ALICE, federate: bool = True, **pl: Any) -> None:
        self.rv = rv
        self.n = 0
        content: dict[str, Any] = {"room_version": rv.identifier}
        if rv.create_has_creator:
            content["creator"] = creator
        if not federate:
            content["m.federate"] = False
        self.create = {"type": "m.room.create", "state_key": "", "sender": creator, "content": content,
                       "event_id": "$create", "prev_events": []}
        self.room_id = "!create" if rv.room_id_from_create else "!r:x"
        if not rv.room_id_from_create:
            self.create["room_id"] = self.room_id
        self.state: dict[tuple[str, str], dict[str, Any]] = {("m.room.create", ""): self.create}
        self.apply(self.ev("m.room.member", creator, {"membership": "join"}, creator, prev=["$create"]))
        users = {} if rv.creators_infinite_pl else {creator: 100}
        self.apply(self.ev("m.room.power_levels", creator, {"users": users, **pl}, ""))
        self.apply(self.ev("m.room.join_rules", creator, {"join_rule": "public"}, ""))

    def ev(self, etype: str, sender: str, content: dict[str, Any], state_key: str | None = None,
           prev: list[str] | None = None) -> dict[str, Any]:
        self.n += 1
        e = {"type": etype, "sender": sender, "content": content, "room_id": self.room_id,
             "event_id": f"$e{self.n}", "prev_events": prev if prev is not None else [f"$e{self.n - 1}"]}
        if state_key is not None:
            e["state_key"] = state_key
        return e

    def check(self, e: dict[str, Any]) -> None:
        check_auth(self.rv, e, self.state, create_event=self.create)

    def apply(self, e: dict[str, Any]) -> None:
        self.check(e)
        if "state_key" in e:
            self.state[(e["type"], e["state_key"])] = e

    def allowed(self, e: dict[str, Any]) -> bool:
        try:
            self.check(e)
            return True
        except AuthError:
            return False

    def member(self, sender: str, target: str, membership: str, **extra: Any) -> dict[str, Any]:
        return self.ev("m.room.member", sender, {"membership": membership, **extra}, target)

    def pl(self) -> dict[str, Any]:
        return self.state[("m.room.power_levels", "")]["content"]


@pytest.fixture(params=VERSIONS, ids=lambda rv: f"v{rv.identifier}")
def rv(request: Any) -> RoomVersion:
    return request.param


def test_create_rules(rv: RoomVersion) -> None:
    room = Room(rv)
    bad_prev = dict(room.create, prev_events=["$x"])
    with pytest.raises(AuthError):
        check_auth(rv, bad_prev, {})
    bad_version = dict(room.create, content={**room.create["content"], "room_version": "999"})
    with pytest.raises(AuthError):
        check_auth(rv, bad_version, {})
    if rv.room_id_from_create:
        with pytest.raises(AuthError):
            check_auth(rv, dict(room.create, room_id="!r:x"), {})
        with pytest.raises(AuthError):
            check_auth(rv, dict(room.create, content={"room_version": "12", "additional_creators": ["nope"]}), {})
    else:
        with pytest.raises(AuthError):
            check_auth(rv, dict(room.create, room_id="!r:other"), {})
    if rv.create_has_creator:
        with pytest.raises(AuthError):
            check_auth(rv, dict(room.create, content={"room_version": "10"}), {})


def test_joins(rv: RoomVersion) -> None:
    room = Room(rv)
    assert room.allowed(room.member(BOB, BOB, "join"))
    assert not room.allowed(room.member(ALICE, BOB, "join"))  # cannot join someone else
    room.apply(room.ev("m.room.join_rules", ALICE, {"join_rule": "invite"}, ""))
    assert not room.allowed(room.member(BOB, BOB, "join"))
    room.apply(room.member(ALICE, BOB, "invite"))
    assert room.allowed(room.member(BOB, BOB, "join"))
    room.apply(room.member(ALICE, BOB, "ban"))
    assert not room.allowed(room.member(BOB, BOB, "join"))
    assert not room.allowed(room.member(BOB, BOB, "weird"))


@pytest.mark.parametrize("rv", RESTRICTED_VERSIONS, ids=lambda rv: f"v{rv.identifier}")
def test_restricted_join(rv: RoomVersion) -> None:
    room = Room(rv)
    room.apply(room.ev("m.room.join_rules", ALICE, {"join_rule": "restricted", "allow": []}, ""))
    assert not room.allowed(room.member(BOB, BOB, "join"))
    assert room.allowed(room.member(BOB, BOB, "join", join_authorised_via_users_server=ALICE))
    assert not room.allowed(room.member(BOB, BOB, "join", join_authorised_via_users_server=CAROL))


def test_invites_kicks_bans(rv: RoomVersion) -> None:
    room = Room(rv, invite=50)
    room.apply(room.member(BOB, BOB, "join"))
    assert not room.allowed(room.member(BOB, CAROL, "invite"))  # PL 0 < invite 50
    assert room.allowed(room.member(ALICE, CAROL, "invite"))
    assert not room.allowed(room.member(CAROL, CAROL, "invite"))  # not joined
    assert not room.allowed(room.member(ALICE, BOB, "invite"))  # already joined
    assert not room.allowed(room.member(BOB, ALICE, "leave"))  # kick needs power
    assert not room.allowed(room.member(BOB, ALICE, "ban"))
    assert room.allowed(room.member(ALICE, BOB, "leave"))
    assert room.allowed(room.member(BOB, BOB, "leave"))
    assert not room.allowed(room.member(CAROL, CAROL, "leave"))  # never in the room
    room.apply(room.member(ALICE, BOB, "ban"))
    assert not room.allowed(room.member(BOB, BOB, "leave"))
    assert room.allowed(room.member(ALICE, BOB, "leave"))  # unban


def test_equal_power_cannot_kick(rv: RoomVersion) -> None:
    room = Room(rv)
    room.apply(room.member(BOB, BOB, "join"))
    room.apply(room.member(CAROL, CAROL, "join"))
    users = dict(room.pl()["users"])
    users.update({BOB: 50, CAROL: 50})
    room.apply(room.ev("m.room.power_levels", ALICE, {**room.pl(), "users": users}, ""))
    assert not room.allowed(room.member(BOB, CAROL, "leave"))
    assert not room.allowed(room.member(BOB, CAROL, "ban"))
    assert not room.allowed(room.member(BOB, ALICE, "leave"))


def test_message_and_state_power(rv: RoomVersion) -> None:
    room = Room(rv, events={"m.room.name": 50})
    room.apply(room.member(BOB, BOB, "join"))
    assert room.allowed(room.ev("m.room.message", BOB, {"body": "x"}))
    assert not room.allowed(room.ev("m.room.message", CAROL, {"body": "x"}))  # not joined
    assert not room.allowed(room.ev("m.room.name", BOB, {"name": "n"}, ""))
    assert not room.allowed(room.ev("org.custom", BOB, {}, ""))  # state_default 50
    assert room.allowed(room.ev("m.room.name", ALICE, {"name": "n"}, ""))
    assert not room.allowed(room.ev("org.custom", ALICE, {}, BOB))  # @-state key of another user
    assert room.allowed(room.ev("org.custom", ALICE, {}, ALICE))


def test_power_level_changes(rv: RoomVersion) -> None:
    room = Room(rv)
    room.apply(room.member(BOB, BOB, "join"))
    pl = room.pl()
    assert not room.allowed(room.ev("m.room.power_levels", BOB, {**pl, "users": {**pl["users"], BOB: 100}}, ""))
    assert not room.allowed(room.ev("m.room.power_levels", ALICE, {**pl, "users": {"not-a-user": 5}}, ""))
    # strings: integers only from v10 (rooms/v10.md), integer strings before (v1-stringy-power-levels)
    for stringy in ({"ban": "50"}, {"events": {"m.x": "5"}}, {"users": {**pl["users"], BOB: "5"}}):
        assert room.allowed(room.ev("m.room.power_levels", ALICE, {**pl, **stringy}, "")) \
            == (not rv.integer_power_levels)
    room.apply(room.ev("m.room.power_levels", ALICE, {**pl, "users": {**pl["users"], BOB: 50}}, ""))
    pl = room.pl()
    # bob (50) cannot raise anyone above 50 nor demote alice
    assert not room.allowed(room.ev("m.room.power_levels", BOB, {**pl, "users": {**pl["users"], CAROL: 60}}, ""))
    assert not room.allowed(room.ev("m.room.power_levels", BOB, {**pl, "kick": 70}, ""))
    if not rv.creators_infinite_pl:
        assert not room.allowed(room.ev("m.room.power_levels", BOB, {**pl, "users": {BOB: 50}}, ""))


def test_v12_creators(rv: RoomVersion) -> None:
    room = Room(rv)
    level = user_power_level(rv, room.create, room.pl(), ALICE)
    if rv.creators_infinite_pl:
        assert level == math.inf
        pl = room.pl()
        assert not room.allowed(room.ev("m.room.power_levels", ALICE, {**pl, "users": {ALICE: 100}}, ""))
        assert ("m.room.create", "") not in auth_types_for_event(rv, room.ev("m.room.message", ALICE, {}))
    else:
        assert level == 100
        assert ("m.room.create", "") in auth_types_for_event(rv, room.ev("m.room.message", ALICE, {}))


def test_m_federate_false(rv: RoomVersion) -> None:
    room = Room(rv, federate=False)
    assert not room.allowed(room.member(MALLORY, MALLORY, "join"))
    assert room.allowed(room.member(BOB, BOB, "join"))


def test_auth_events_structure(rv: RoomVersion) -> None:
    room = Room(rv)
    e = room.ev("m.room.message", ALICE, {"body": "x"})
    pl, me = room.state[("m.room.power_levels", "")], room.state[("m.room.member", ALICE)]
    good = [pl, me] if rv.room_id_from_create else [room.create, pl, me]
    check_auth_events_structure(rv, e, good)
    with pytest.raises(AuthError):
        check_auth_events_structure(rv, e, good + [me])  # duplicate
    with pytest.raises(AuthError):
        check_auth_events_structure(rv, e, good + [room.state[("m.room.join_rules", "")]])  # not selected
    if rv.room_id_from_create:
        with pytest.raises(AuthError):
            check_auth_events_structure(rv, e, [room.create, pl, me])
    else:
        with pytest.raises(AuthError):
            check_auth_events_structure(rv, e, [pl, me])  # no create


# ---------------------------------------------------------------------- properties

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), st.text(max_size=8))
json_value = st.recursive(
    json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                          max_leaves=10)
users = st.sampled_from([ALICE, BOB, CAROL, MALLORY])
event_types = st.sampled_from(["m.room.power_levels", "m.room.member", "m.room.join_rules", "m.room.name",
                               "m.room.message", "org.x"])


@st.composite
def attempts(draw: Any) -> dict[str, Any]:
    etype = draw(event_types)
    keys = ["membership", "users", "users_default", "events", "ban", "join_rule", "name"]
    values = ["join", "invite", "leave", "ban", "public", "invite"]
    content = draw(st.dictionaries(st.sampled_from(keys),
                                   st.one_of(json_value, st.sampled_from(values)), max_size=4))
    if etype == "m.room.power_levels" and draw(st.booleans()):
        content["users"] = draw(st.dictionaries(users, st.integers(-10, 200), max_size=4))
    state_key = draw(st.one_of(st.none(), st.just(""), users))
    return {"type": etype, "sender": BOB, "content": content, "state_key": state_key}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=st.lists(attempts(), max_size=12), version=st.sampled_from(VERSIONS))
def test_powerless_user_never_gains_power(seq: list[dict[str, Any]], version: RoomVersion) -> None:
    """Whatever a PL-0 member sends, the power levels stay as they were and bob stays at 0."""
    room = Room(version)
    room.apply(room.member(BOB, BOB, "join"))
    before = room.state[("m.room.power_levels", "")]
    for a in seq:
        e = room.ev(a["type"], a["sender"], a["content"], a["state_key"])
        if e.get("state_key") is None:
            e.pop("state_key", None)
        try:
            room.apply(e)
        except AuthError:
            pass
    assert room.state[("m.room.power_levels", "")] is before
    assert user_power_level(version, room.create, room.pl(), BOB) == 0


@settings(max_examples=150, deadline=None)
@given(content=st.dictionaries(st.text(max_size=10), json_value, max_size=5), etype=event_types,
       state_key=st.one_of(st.none(), st.text(max_size=5), users), sender=users, version=st.sampled_from(VERSIONS))
def test_arbitrary_content_only_raises_auth_error(content: dict, etype: str, state_key: Any, sender: str,
                                                   version: RoomVersion) -> None:
    room = Room(version)
    e = room.ev(etype, sender, content, state_key)
    if state_key is None:
        e.pop("state_key", None)
    try:
        room.check(e)
    except AuthError:
        pass


@settings(max_examples=100, deadline=None)
@given(extra=st.dictionaries(st.sampled_from(["reason", "displayname", "join_authorised_via_users_server"]),
                             st.text(max_size=5)),
       version=st.sampled_from(VERSIONS))
def test_banned_user_can_never_join(extra: dict, version: RoomVersion) -> None:
    room = Room(version)
    room.apply(room.member(BOB, BOB, "join"))
    room.apply(room.member(ALICE, BOB, "ban"))
    assert not room.allowed(room.member(BOB, BOB, "join", **extra))
