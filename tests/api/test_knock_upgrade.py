"""Knocking (join rules knock / knock_restricted) and room upgrades."""

from __future__ import annotations

import pytest

from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"


async def _state(c: MatrixClient, room: str) -> dict[tuple[str, str], dict]:
    events = await c.ok("GET", f"{V3}/rooms/{room}/state")
    return {(e["type"], e["state_key"]): e for e in events}


async def _membership(c: MatrixClient, room: str, user: str) -> str:
    return (await c.ok("GET", f"{V3}/rooms/{room}/state/m.room.member/{user}"))["membership"]


# ---------------------------------------------------------------------- knocking


@pytest.mark.parametrize("version,rule", [("10", "knock"), ("12", "knock"), ("11", "knock_restricted")])
async def test_knock_then_invite_and_join(client: MatrixClient, version: str, rule: str) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    room = await alice.create_room(room_version=version, name="Knockers", room_alias_name="knockers")
    content: dict = {"join_rule": rule}
    if rule == "knock_restricted":
        content["allow"] = []
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.join_rules", content)
    first = await bob.sync()

    data = await bob.ok("POST", f"{V3}/knock/%23knockers:test.parley", {"reason": "let me in"})
    assert data == {"room_id": room}
    assert await _membership(alice, room, bob.user_id) == "knock"
    sync = await bob.sync(since=first["next_batch"], timeout=0)
    knock_state = sync["rooms"]["knock"][room]["knock_state"]["events"]
    types = {e["type"] for e in knock_state}
    assert {"m.room.create", "m.room.join_rules", "m.room.name", "m.room.member"} <= types
    mine = next(e for e in knock_state if e["type"] == "m.room.member")
    assert mine["state_key"] == bob.user_id and mine["content"]["membership"] == "knock"
    assert mine["content"]["reason"] == "let me in"
    assert all(set(e) == {"type", "state_key", "sender", "content"} for e in knock_state)
    assert room not in sync["rooms"].get("join", {})

    # A knocker cannot join by themselves, but an invite lets them in.
    resp = await bob.post(f"{V3}/rooms/{room}/join", {})
    assert resp.status_code == 403
    await alice.ok("POST", f"{V3}/rooms/{room}/invite", {"user_id": bob.user_id})
    await bob.ok("POST", f"{V3}/rooms/{room}/join", {})
    assert await _membership(alice, room, bob.user_id) == "join"


async def test_knock_rescind_kick_and_refusals(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    carol = await client.register("carol")
    room = await alice.create_room()
    # Invite-only rooms do not take knocks.
    resp = await bob.post(f"{V3}/knock/{room}", {})
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.join_rules", {"join_rule": "knock"})

    # Leaving rescinds a knock.
    await bob.ok("POST", f"{V3}/knock/{room}", {})
    await bob.ok("POST", f"{V3}/rooms/{room}/leave", {})
    assert await _membership(alice, room, bob.user_id) == "leave"
    # Kicking denies one.
    await bob.ok("POST", f"{V3}/knock/{room}", {})
    await alice.ok("POST", f"{V3}/rooms/{room}/kick", {"user_id": bob.user_id, "reason": "no"})
    assert await _membership(alice, room, bob.user_id) == "leave"
    # A banned user cannot knock; a joined member cannot either.
    await alice.ok("POST", f"{V3}/rooms/{room}/ban", {"user_id": carol.user_id})
    resp = await carol.post(f"{V3}/knock/{room}", {})
    assert resp.status_code == 403
    resp = await alice.post(f"{V3}/knock/{room}", {})
    assert resp.status_code == 403

    for target, status, code in (
        ("!nowhere:test.parley", 404, "M_NOT_FOUND"),
        ("%23nothing:test.parley", 404, "M_NOT_FOUND"),
        ("not-a-room", 400, "M_INVALID_PARAM"),
    ):
        resp = await bob.post(f"{V3}/knock/{target}", {})
        assert resp.status_code == status and resp.json()["errcode"] == code, target
    resp = await bob.post(f"{V3}/knock/{room}", {"reason": 5})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_BAD_JSON"


# ---------------------------------------------------------------------- upgrades


@pytest.mark.parametrize("old,new", [("10", "11"), ("11", "12"), ("12", "12"), ("12", "10")])
async def test_upgrade_room(client: MatrixClient, old: str, new: str) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    room = await alice.create_room(room_version=old, name="Old", topic="old topic",
                                   room_alias_name="team", visibility="public", preset="public_chat")
    await alice.ok("PUT", f"{V3}/directory/room/%23team2:test.parley", {"room_id": room})
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.canonical_alias",
                   {"alias": "#team:test.parley", "alt_aliases": ["#team2:test.parley"]})
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.history_visibility",
                   {"history_visibility": "joined"})
    await alice.ok("POST", f"{V3}/rooms/{room}/ban", {"user_id": "@mallory:elsewhere.example"})
    await bob.ok("POST", f"{V3}/rooms/{room}/join", {})
    old_pl = (await _state(alice, room))[("m.room.power_levels", "")]["content"]

    # Bob may not send a tombstone, so he may not upgrade.
    resp = await bob.post(f"{V3}/rooms/{room}/upgrade", {"new_version": new})
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"

    new_room = (await alice.ok("POST", f"{V3}/rooms/{room}/upgrade", {"new_version": new}))["replacement_room"]
    assert new_room != room
    old_state = await _state(alice, room)
    tomb = old_state[("m.room.tombstone", "")]
    assert tomb["content"]["replacement_room"] == new_room
    assert old_state[("m.room.canonical_alias", "")]["content"] == {}
    restricted = old_state[("m.room.power_levels", "")]["content"]
    assert restricted["events_default"] == 50 and restricted["invite"] == 50
    # Bob (level 0) can no longer talk in the old room.
    resp = await bob.put(f"{V3}/rooms/{room}/send/m.room.message/t1", {"msgtype": "m.text", "body": "x"})
    assert resp.status_code == 403

    state = await _state(alice, new_room)
    create = state[("m.room.create", "")]
    assert create["content"]["room_version"] == new
    assert create["content"]["predecessor"]["room_id"] == room
    if new == "12":
        assert ":" not in new_room
    else:
        assert create["content"]["predecessor"]["event_id"] == tomb["event_id"]
    assert state[("m.room.name", "")]["content"]["name"] == "Old"
    assert state[("m.room.topic", "")]["content"]["topic"] == "old topic"
    assert state[("m.room.join_rules", "")]["content"]["join_rule"] == "public"
    assert state[("m.room.history_visibility", "")]["content"]["history_visibility"] == "joined"
    assert state[("m.room.canonical_alias", "")]["content"] == {
        "alias": "#team:test.parley", "alt_aliases": ["#team2:test.parley"]}
    assert state[("m.room.member", "@mallory:elsewhere.example")]["content"]["membership"] == "ban"
    assert state[("m.room.member", alice.user_id)]["content"]["membership"] == "join"
    assert ("m.room.member", bob.user_id) not in state
    new_pl = state[("m.room.power_levels", "")]["content"]
    if new == "12":
        assert alice.user_id not in new_pl["users"]
    elif old == "12":
        assert new_pl["users"][alice.user_id] >= 100
    else:
        assert new_pl == old_pl
    for alias in ("%23team:test.parley", "%23team2:test.parley"):
        assert (await client.ok("GET", f"{V3}/directory/room/{alias}"))["room_id"] == new_room
    public = await client.ok("GET", f"{V3}/publicRooms")
    assert [r["room_id"] for r in public["chunk"]] == [new_room]

    # Bob follows; the new room works.
    await bob.ok("POST", f"{V3}/join/{new_room}", {})
    await bob.send_text(new_room, "hello again")
    # The creator shows up in sync with the new room's create event first.
    sync = await alice.sync()
    assert sync["rooms"]["join"][new_room]["timeline"]["events"] or \
        sync["rooms"]["join"][new_room]["state"]["events"]


async def test_upgrade_keeps_a_moderators_levels(client: MatrixClient) -> None:
    alice = await client.register("alice")
    mod = await client.register("mod")
    room = await alice.create_room(room_version="10", preset="public_chat")
    await mod.ok("POST", f"{V3}/rooms/{room}/join", {})
    pl = (await _state(alice, room))[("m.room.power_levels", "")]["content"]
    pl["users"][mod.user_id] = 50
    pl["users"]["@test:xyz"] = 40
    pl["events"]["m.room.tombstone"] = 50
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.power_levels", pl)
    new_room = (await mod.ok("POST", f"{V3}/rooms/{room}/upgrade", {"new_version": "11"}))["replacement_room"]
    # The new room ends with exactly the old levels (after a bootstrap event that let the
    # moderator copy the state), and the old room's levels are untouched: a moderator may send
    # tombstones there but not power levels.
    assert (await _state(mod, new_room))[("m.room.power_levels", "")]["content"] == pl
    assert (await _state(mod, room))[("m.room.power_levels", "")]["content"] == pl
    assert (await _state(mod, new_room))[("m.room.history_visibility", "")]["content"] == {
        "history_visibility": "shared"}


async def test_upgrade_to_v12_with_additional_creators(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    room = await alice.create_room(room_version="11", creation_content={"m.federate": False})
    body = {"new_version": "12", "additional_creators": [bob.user_id]}
    new_room = (await alice.ok("POST", f"{V3}/rooms/{room}/upgrade", body))["replacement_room"]
    state = await _state(alice, new_room)
    content = state[("m.room.create", "")]["content"]
    assert content["additional_creators"] == [bob.user_id]
    assert content["m.federate"] is False
    assert "event_id" not in content["predecessor"]
    users = state[("m.room.power_levels", "")]["content"]["users"]
    assert alice.user_id not in users and bob.user_id not in users


async def test_upgrade_rejects_bad_requests(client: MatrixClient) -> None:
    alice = await client.register("alice")
    room = await alice.create_room()
    for body, status, code in (
        ({"new_version": "my_bad_version"}, 400, "M_UNSUPPORTED_ROOM_VERSION"),
        ({"new_version": 11}, 400, "M_UNSUPPORTED_ROOM_VERSION"),
        ({}, 400, "M_MISSING_PARAM"),
        ({"new_version": "12", "additional_creators": ["nope"]}, 400, "M_INVALID_PARAM"),
    ):
        resp = await alice.post(f"{V3}/rooms/{room}/upgrade", body)
        assert resp.status_code == status and resp.json()["errcode"] == code, body
    for version in ("11", "2"):
        resp = await alice.post(f"{V3}/rooms/!fail:unknown/upgrade", {"new_version": version})
        assert resp.status_code == 404 and resp.json()["errcode"] == "M_NOT_FOUND"
    bob = await client.register("bob")
    resp = await bob.post(f"{V3}/rooms/{room}/upgrade", {"new_version": "2"})
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    # A tombstone pointing at its own room is refused.
    resp = await alice.put(f"{V3}/rooms/{room}/send/m.room.tombstone/t1", {"replacement_room": room})
    assert resp.status_code == 400
    resp = await alice.put(f"{V3}/rooms/{room}/state/m.room.tombstone", {"replacement_room": room})
    assert resp.status_code == 400
    assert ("m.room.tombstone", "") not in await _state(alice, room)


async def test_upgrade_carries_personal_settings(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    room = await alice.create_room(room_version="11", preset="public_chat")
    await bob.ok("POST", f"{V3}/rooms/{room}/join", {})
    for user in (alice, bob):
        await user.ok("PUT", f"{V3}/user/{user.user_id}/account_data/m.direct",
                      {"@someone:test.parley": [room, "!other:test.parley"]})
    await bob.ok("PUT", f"{V3}/pushrules/global/room/{room}", {"actions": ["notify"]})
    await bob.ok("PUT", f"{V3}/user/{bob.user_id}/rooms/{room}/tags/u.work", {"order": 0.5})

    new_room = (await alice.ok("POST", f"{V3}/rooms/{room}/upgrade", {"new_version": "12"}))["replacement_room"]
    # The upgrader's own settings move at once.
    direct = await alice.ok("GET", f"{V3}/user/{alice.user_id}/account_data/m.direct")
    assert direct == {"@someone:test.parley": [room, "!other:test.parley", new_room]}
    # Bob's move when he joins the new room, not before.
    resp = await bob.get(f"{V3}/pushrules/global/room/{new_room}")
    assert resp.status_code == 404
    await bob.ok("POST", f"{V3}/rooms/{new_room}/join", {})
    rule = await bob.ok("GET", f"{V3}/pushrules/global/room/{new_room}")
    assert rule["actions"] == ["notify"]
    tags = await bob.ok("GET", f"{V3}/user/{bob.user_id}/rooms/{new_room}/tags")
    assert tags == {"tags": {"u.work": {"order": 0.5}}}
    direct = await bob.ok("GET", f"{V3}/user/{bob.user_id}/account_data/m.direct")
    assert new_room in direct["@someone:test.parley"]


@pytest.mark.parametrize("rule", ["knock_restricted", "restricted"])
async def test_restricted_join_through_allowed_room(client: MatrixClient, rule: str) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    carol = await client.register("carol")
    space = await alice.create_room(preset="public_chat")
    room = await alice.create_room(room_version="11")
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.join_rules", {
        "join_rule": rule, "allow": [{"type": "m.room_membership", "room_id": space}]})
    # Carol is in no allowed room: no join; with knock_restricted she may knock instead.
    resp = await carol.post(f"{V3}/rooms/{room}/join", {})
    assert resp.status_code == 403
    resp = await carol.post(f"{V3}/knock/{room}", {})
    assert resp.status_code == (200 if rule == "knock_restricted" else 403)
    # Bob, a member of the allowed room, joins directly; the join names who vouched for it.
    await bob.ok("POST", f"{V3}/rooms/{space}/join", {})
    await bob.ok("POST", f"{V3}/rooms/{room}/join", {})
    member = await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.member/{bob.user_id}")
    assert member["membership"] == "join"
    assert member["join_authorised_via_users_server"] == alice.user_id
