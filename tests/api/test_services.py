"""The services routes call instead of the stores: membership preconditions, deactivation,
stored filters, account lookups, and the fan-out that wakes waiting syncs."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from homeserver.app import Homeserver
from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
UNKNOWN_ROOM = "!nowhere:test.parley"


def _errcode(resp: httpx.Response) -> str:
    return str(resp.json()["errcode"])


async def _membership(c: MatrixClient, room: str, user_id: str) -> dict[str, Any]:
    content: dict[str, Any] = await c.ok("GET", f"{V3}/rooms/{room}/state/m.room.member/{user_id}")
    return content


async def test_moderation_preconditions(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    room = await alice.create_room(preset="public_chat")

    resp = await alice.post(f"{V3}/rooms/{room}/kick", {"user_id": bob.user_id})
    assert resp.status_code == 403 and _errcode(resp) == "M_FORBIDDEN"
    assert "join/invite/knock" in resp.json()["error"]
    resp = await alice.post(f"{V3}/rooms/{room}/unban", {"user_id": bob.user_id})
    assert resp.status_code == 403 and "ban" in resp.json()["error"]
    resp = await alice.post(f"{V3}/rooms/{UNKNOWN_ROOM}/kick", {"user_id": bob.user_id})
    assert resp.status_code == 404 and _errcode(resp) == "M_NOT_FOUND"

    # A ban needs no current membership; a banned user cannot leave.
    await alice.ok("POST", f"{V3}/rooms/{room}/ban", {"user_id": bob.user_id, "reason": "spam"})
    assert (await _membership(alice, room, bob.user_id))["membership"] == "ban"
    resp = await bob.post(f"{V3}/rooms/{room}/leave", {})
    assert resp.status_code == 403 and "banned" in resp.json()["error"]
    await alice.ok("POST", f"{V3}/rooms/{room}/unban", {"user_id": bob.user_id})
    assert (await _membership(alice, room, bob.user_id))["membership"] == "leave"


async def test_leave_preconditions_and_joined_rooms(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    first = await alice.create_room(preset="public_chat")
    second = await alice.create_room(preset="public_chat")

    resp = await bob.post(f"{V3}/rooms/{first}/leave", {})
    assert resp.status_code == 403 and _errcode(resp) == "M_FORBIDDEN"
    resp = await bob.post(f"{V3}/rooms/{UNKNOWN_ROOM}/leave", {})
    assert resp.status_code == 404 and _errcode(resp) == "M_NOT_FOUND"

    assert (await bob.ok("GET", f"{V3}/joined_rooms"))["joined_rooms"] == []
    await bob.ok("POST", f"{V3}/join/{second}", {})
    assert (await bob.ok("GET", f"{V3}/joined_rooms"))["joined_rooms"] == [second]
    assert sorted((await alice.ok("GET", f"{V3}/joined_rooms"))["joined_rooms"]) == sorted([first, second])
    await bob.ok("POST", f"{V3}/rooms/{second}/leave", {})
    assert (await bob.ok("GET", f"{V3}/joined_rooms"))["joined_rooms"] == []


async def test_repeated_invite_sends_no_new_event(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    room = await alice.create_room()
    await alice.ok("POST", f"{V3}/rooms/{room}/invite", {"user_id": bob.user_id, "is_direct": True})
    first = await alice.ok("GET", f"{V3}/rooms/{room}/state")
    invite = next(e for e in first if e["type"] == "m.room.member" and e["state_key"] == bob.user_id)
    assert invite["content"]["membership"] == "invite" and invite["content"]["is_direct"] is True
    await alice.ok("POST", f"{V3}/rooms/{room}/invite", {"user_id": bob.user_id})
    again = await alice.ok("GET", f"{V3}/rooms/{room}/state")
    same = next(e for e in again if e["type"] == "m.room.member" and e["state_key"] == bob.user_id)
    assert same["event_id"] == invite["event_id"]


async def test_deactivation_leaves_joined_and_invited_rooms(client: MatrixClient) -> None:
    carol = await client.register("carol")
    alice = await client.register("alice", "pw-pw-pw")
    joined = await carol.create_room(preset="public_chat")
    invited = await carol.create_room()
    await alice.ok("POST", f"{V3}/join/{joined}", {})
    await carol.ok("POST", f"{V3}/rooms/{invited}/invite", {"user_id": alice.user_id})
    await alice.ok("POST", f"{V3}/account/deactivate", {
        "auth": {"type": "m.login.password", "password": "pw-pw-pw", "user": "alice"},
    })
    assert (await _membership(carol, joined, alice.user_id))["membership"] == "leave"
    assert (await _membership(carol, invited, alice.user_id))["membership"] == "leave"
    # The ID stays taken.
    resp = await client.get(f"{V3}/register/available", params={"username": "alice"})
    assert resp.status_code == 400 and _errcode(resp) == "M_USER_IN_USE"


async def test_filter_ids(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    fid = (await alice.ok("POST", f"{V3}/user/{alice.user_id}/filter", {"room": {"timeline": {"limit": 3}}}))[
        "filter_id"]
    assert fid.isdigit()
    for bad in ("abc", "1" * 19, "-1"):
        resp = await alice.get(f"{V3}/user/{alice.user_id}/filter/{bad}")
        assert resp.status_code == 404 and _errcode(resp) == "M_NOT_FOUND", bad
    # Filters belong to their user: bob can neither read alice's nor sync with its ID.
    resp = await bob.get(f"{V3}/user/{alice.user_id}/filter/{fid}")
    assert resp.status_code == 403
    resp = await bob.get(f"{V3}/user/{bob.user_id}/filter/{fid}")
    assert resp.status_code == 404
    resp = await bob.get(f"{V3}/sync", params={"filter": fid})
    assert resp.status_code == 400 and _errcode(resp) == "M_INVALID_PARAM"
    resp = await alice.get(f"{V3}/sync", params={"filter": "1" * 19})
    assert resp.status_code == 400 and _errcode(resp) == "M_INVALID_PARAM"
    await alice.sync(filter=fid)


async def test_presence_of_unknown_user(client: MatrixClient) -> None:
    alice = await client.register("alice")
    resp = await alice.get(f"{V3}/presence/@ghost:test.parley/status")
    assert resp.status_code == 404 and _errcode(resp) == "M_NOT_FOUND"
    await alice.ok("GET", f"{V3}/presence/{alice.user_id}/status")


async def test_fanout_wakes_members_only(hs: Homeserver, client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    carol = await client.register("carol")
    room = await alice.create_room(preset="public_chat")
    await bob.ok("POST", f"{V3}/join/{room}", {})

    bob_waits = hs.notifier.listen(bob.user_id)
    carol_waits = hs.notifier.listen(carol.user_id)
    try:
        await hs.fanout.wake_room(room)
        assert bob_waits.done() and not carol_waits.done()
        # A membership event also wakes its target (carol is not in the room yet).
        await hs.fanout.on_bus_message({"t": "ev", "room": room, "extra": [carol.user_id]})
        assert carol_waits.done()
    finally:
        hs.notifier.unlisten(bob.user_id, bob_waits)
        hs.notifier.unlisten(carol.user_id, carol_waits)


async def test_fanout_applies_typing_from_the_bus(hs: Homeserver, client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    room = await alice.create_room(preset="public_chat")
    await bob.ok("POST", f"{V3}/join/{room}", {})

    bob_waits = hs.notifier.listen(bob.user_id)
    try:
        await hs.fanout.on_bus_message(
            {"t": "typing", "room": room, "user": alice.user_id, "typing": True, "timeout": 30000})
        assert hs.typing.typing_users(room) == [alice.user_id]
        await asyncio.wait_for(bob_waits, 5)  # woken by the typing manager's callback
    finally:
        hs.notifier.unlisten(bob.user_id, bob_waits)
    await hs.fanout.on_bus_message(
        {"t": "typing", "room": room, "user": alice.user_id, "typing": False, "timeout": 0})
    assert hs.typing.typing_users(room) == []
