"""More authorization-rule cases: knocks, third-party invites, leaves, v10/v12 specifics, rule 2."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homeserver.protocol.auth_rules import auth_types_for_event, check_auth, check_auth_events_structure
from homeserver.protocol.errors import AuthError
from homeserver.protocol.power_levels import event_required_level, named_level, user_power_level
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.protocol.signing import generate_signing_key, sign_json, verify_key_b64
from tests.protocol.test_auth_rules import ALICE, BOB, CAROL, MALLORY, RESTRICTED_VERSIONS, VERSIONS, Room

V10, V11, V12 = (KNOWN_ROOM_VERSIONS[v] for v in ("10", "11", "12"))


@pytest.fixture(params=VERSIONS, ids=lambda rv: f"v{rv.identifier}")
def rv(request: Any) -> RoomVersion:
    return request.param


@pytest.mark.parametrize("rv", [v for v in VERSIONS if v.knock_join_rule], ids=lambda rv: f"v{rv.identifier}")
def test_knock(rv: RoomVersion) -> None:
    room = Room(rv)
    assert not room.allowed(room.member(BOB, BOB, "knock"))  # public room: no knocking
    room.apply(room.ev("m.room.join_rules", ALICE, {"join_rule": "knock"}, ""))
    assert not room.allowed(room.member(BOB, CAROL, "knock"))  # knock for someone else
    room.apply(room.member(BOB, BOB, "knock"))
    assert not room.allowed(room.member(BOB, BOB, "join"))  # a knock is not an invite
    assert room.allowed(room.member(BOB, BOB, "leave"))  # rescind the knock
    room.apply(room.member(ALICE, BOB, "invite"))
    assert not room.allowed(room.member(BOB, BOB, "knock"))  # already invited
    assert room.allowed(room.member(BOB, BOB, "join"))
    room.apply(room.ev("m.room.join_rules", ALICE, {"join_rule": "knock_restricted", "allow": []}, ""))
    assert room.allowed(room.member(CAROL, CAROL, "knock")) == rv.knock_restricted_supported  # v10+
    room.apply(room.member(ALICE, CAROL, "ban"))
    assert not room.allowed(room.member(CAROL, CAROL, "knock"))


def test_leave_rules(rv: RoomVersion) -> None:
    room = Room(rv, kick=50, ban=60)
    room.apply(room.member(BOB, BOB, "join"))
    room.apply(room.member(CAROL, CAROL, "join"))
    pl = room.pl()
    room.apply(room.ev("m.room.power_levels", ALICE, {**pl, "users": {**pl["users"], BOB: 55}}, ""))
    assert room.allowed(room.member(BOB, CAROL, "leave"))  # kick: 55 >= 50 and carol 0 < 55
    assert not room.allowed(room.member(BOB, CAROL, "ban"))  # ban level 60
    room.apply(room.member(ALICE, CAROL, "ban"))
    assert not room.allowed(room.member(BOB, CAROL, "leave"))  # unban needs the ban level
    assert room.allowed(room.member(ALICE, CAROL, "leave"))
    assert not room.allowed(room.member(MALLORY, BOB, "leave"))  # kicker not joined


def test_invite_target_states(rv: RoomVersion) -> None:
    room = Room(rv)
    room.apply(room.member(ALICE, BOB, "invite"))
    assert room.allowed(room.member(ALICE, BOB, "invite"))  # re-invite is fine
    room.apply(room.member(BOB, BOB, "leave"))  # reject
    room.apply(room.member(ALICE, BOB, "ban"))
    assert not room.allowed(room.member(ALICE, BOB, "invite"))


def test_third_party_invite(rv: RoomVersion) -> None:
    room = Room(rv, invite=10)
    room.apply(room.member(BOB, BOB, "join"))
    assert not room.allowed(room.ev("m.room.third_party_invite", BOB, {"public_key": "x"}, "tok"))  # PL 0 < 10
    idkey = generate_signing_key("0")
    room.apply(room.ev("m.room.third_party_invite", ALICE,
                       {"display_name": "c", "key_validity_url": "https://id/x",
                        "public_key": "unused", "public_keys": [{"public_key": verify_key_b64(idkey)}]}, "tok"))
    signed = sign_json({"mxid": CAROL, "token": "tok", "sender": ALICE}, "id.example", idkey)

    def invite(sender: str, target: str, signed_block: Any) -> dict[str, Any]:
        return room.member(sender, target, "invite", third_party_invite={"display_name": "c", "signed": signed_block})

    assert room.allowed(invite(ALICE, CAROL, signed))
    assert not room.allowed(invite(BOB, CAROL, signed))  # not the 3pid invite's sender
    assert not room.allowed(invite(ALICE, BOB, signed))  # mxid != state_key
    assert not room.allowed(invite(ALICE, CAROL, {**signed, "mxid": CAROL, "token": "other"}))
    assert not room.allowed(invite(ALICE, CAROL, {**signed, "sender": BOB}))  # breaks the signature
    assert not room.allowed(invite(ALICE, CAROL, {"mxid": CAROL}))  # no token
    assert not room.allowed(room.member(ALICE, CAROL, "invite", third_party_invite={"display_name": "c"}))
    other = sign_json({"mxid": CAROL, "token": "tok", "sender": ALICE}, "id.example", generate_signing_key("1"))
    assert not room.allowed(invite(ALICE, CAROL, other))  # unknown key
    e = invite(ALICE, CAROL, signed)
    assert ("m.room.third_party_invite", "tok") in auth_types_for_event(rv, e)
    room.apply(room.member(ALICE, CAROL, "ban"))
    assert not room.allowed(invite(ALICE, CAROL, signed))  # target banned


@pytest.mark.parametrize("rv", RESTRICTED_VERSIONS, ids=lambda rv: f"v{rv.identifier}")
def test_restricted_join_needs_invite_power(rv: RoomVersion) -> None:
    room = Room(rv, invite=50)
    room.apply(room.member(BOB, BOB, "join"))
    room.apply(room.ev("m.room.join_rules", ALICE, {"join_rule": "restricted", "allow": []}, ""))
    assert not room.allowed(room.member(CAROL, CAROL, "join", join_authorised_via_users_server=BOB))
    assert room.allowed(room.member(CAROL, CAROL, "join", join_authorised_via_users_server=ALICE))
    e = room.member(CAROL, CAROL, "join", join_authorised_via_users_server=ALICE)
    assert ("m.room.member", ALICE) in auth_types_for_event(rv, e)


def test_first_join_only_for_creator(rv: RoomVersion) -> None:
    room = Room(rv)
    fresh = {("m.room.create", ""): room.create}
    creator_join = room.member(ALICE, ALICE, "join")
    creator_join["prev_events"] = [room.create["event_id"]]
    check_auth(rv, creator_join, fresh, create_event=room.create)
    other = room.member(BOB, BOB, "join")
    other["prev_events"] = [room.create["event_id"]]
    with pytest.raises(AuthError):  # no join rules yet: invite-only
        check_auth(rv, other, fresh, create_event=room.create)


def test_no_power_levels_defaults(rv: RoomVersion) -> None:
    room = Room(rv)
    assert user_power_level(rv, room.create, None, ALICE) == (math.inf if rv.creators_infinite_pl else 100)
    assert user_power_level(rv, room.create, None, BOB) == 0
    assert named_level(None, "state_default") == 50 and named_level(None, "invite") == 0
    assert named_level({}, "ban") == 50 and named_level({"ban": 7}, "ban") == 7
    assert event_required_level(None, "m.room.name", True) == 50
    assert event_required_level(None, "m.room.message", False) == 0
    assert event_required_level({"events": {"m.room.message": 20}}, "m.room.message", False) == 20
    assert event_required_level({"state_default": 5}, "x", True) == 5


def test_third_party_invite_event_needs_join(rv: RoomVersion) -> None:
    room = Room(rv)
    assert not room.allowed(room.ev("m.room.third_party_invite", CAROL, {}, "t"))


def test_unknown_create_version_and_missing_version() -> None:
    for rv in VERSIONS:
        room = Room(rv)
        content = {k: v for k, v in room.create["content"].items() if k != "room_version"}
        check_auth(rv, dict(room.create, content=content), {})  # absent room_version is fine


def test_v10_creator_property() -> None:
    room = Room(V10, creator=ALICE)
    # v10: "the creator" is content.creator, even if someone else sent the create
    create = dict(room.create, sender=BOB, content={"creator": ALICE, "room_version": "10"})
    assert user_power_level(V10, create, None, ALICE) == 100
    assert user_power_level(V10, create, None, BOB) == 0
    assert user_power_level(V11, dict(create, content={}), None, BOB) == 100


def test_v12_room_id_must_match_create() -> None:
    room = Room(V12)
    e = room.ev("m.room.message", ALICE, {"body": "x"})
    room.check(e)
    with pytest.raises(AuthError):
        room.check(dict(e, room_id="!other"))
    without_create = {k: v for k, v in room.state.items() if k[0] != "m.room.create"}
    check_auth(V12, e, without_create, create_event=room.create)
    with pytest.raises(AuthError):
        check_auth(V12, e, without_create)  # v12 needs the create event handed over


def test_v12_additional_creators() -> None:
    room = Room(V12)
    create = dict(room.create, content={"room_version": "12", "additional_creators": [BOB]})
    room.create = create
    room.state[("m.room.create", "")] = create
    assert user_power_level(V12, create, room.pl(), BOB) == math.inf
    room.apply(room.member(BOB, BOB, "join"))
    pl = room.pl()
    assert not room.allowed(room.ev("m.room.power_levels", ALICE, {**pl, "users": {BOB: 50}}, ""))
    assert room.allowed(room.ev("m.room.power_levels", BOB, {**pl, "users": {CAROL: 1000}}, ""))
    assert room.allowed(room.member(BOB, ALICE, "leave")) is False  # creators are equal: inf < inf fails
    check_auth(V12, dict(create, content={"room_version": "12", "additional_creators": [BOB, CAROL]}), {})
    with pytest.raises(AuthError):
        check_auth(V12, dict(create, content={"room_version": "12", "additional_creators": BOB}), {})


def test_auth_events_from_other_room(rv: RoomVersion) -> None:
    room = Room(rv)
    e = room.ev("m.room.message", ALICE, {"body": "x"})
    pl, me = room.state[("m.room.power_levels", "")], room.state[("m.room.member", ALICE)]
    good = [pl, me] if rv.room_id_from_create else [room.create, pl, me]
    with pytest.raises(AuthError):
        check_auth_events_structure(rv, e, good[:-1] + [dict(me, room_id="!elsewhere:x")])
    with pytest.raises(AuthError):
        check_auth_events_structure(rv, e, good[:-1] + [dict(me, rejected=True)])


# ---------------------------------------------------------------------- properties

@settings(max_examples=60, deadline=None)
@given(version=st.sampled_from(VERSIONS), level=st.integers(-5, 99), target_level=st.integers(-5, 99),
       op=st.sampled_from(["leave", "ban"]))
def test_cannot_kick_or_ban_equal_or_higher(version: RoomVersion, level: int, target_level: int, op: str) -> None:
    """A kick or ban succeeds iff the sender outranks the target and meets the level (50)."""
    room = Room(version)
    room.apply(room.member(BOB, BOB, "join"))
    room.apply(room.member(CAROL, CAROL, "join"))
    pl = room.pl()
    users = {**pl["users"], BOB: level, CAROL: target_level}
    room.apply(room.ev("m.room.power_levels", ALICE, {**pl, "users": users}, ""))
    assert room.allowed(room.member(BOB, CAROL, op)) == (level >= 50 and target_level < level)


@settings(max_examples=60, deadline=None)
@given(version=st.sampled_from(VERSIONS), level=st.integers(0, 99), new=st.integers(0, 200),
       key=st.sampled_from(["ban", "kick", "redact", "invite", "state_default", "events_default", "users_default"]))
def test_cannot_set_named_level_above_own(version: RoomVersion, level: int, new: int, key: str) -> None:
    room = Room(version)
    room.apply(room.member(BOB, BOB, "join"))
    pl = room.pl()
    room.apply(room.ev("m.room.power_levels", ALICE, {**pl, "users": {**pl["users"], BOB: level}}, ""))
    pl = room.pl()
    pl = {**pl, **({key: old} if (old := {"ban": 40, "kick": 60}.get(key)) is not None else {})}
    room.apply(room.ev("m.room.power_levels", ALICE, pl, ""))
    ok = room.allowed(room.ev("m.room.power_levels", BOB, {**pl, key: new}, ""))
    needed = event_required_level(pl, "m.room.power_levels", True)
    changed = pl.get(key) != new
    old_ok = key not in pl or pl[key] <= level  # an added key has no current value to compare
    assert ok == (level >= needed and (not changed or (old_ok and new <= level)))
