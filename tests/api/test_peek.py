"""Peeking with GET /events?room_id= into world-readable rooms."""

from __future__ import annotations

import asyncio

import pytest

from homeserver.app import Homeserver
from homeserver.rooms.peek import peek_key
from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"


async def _events(c: MatrixClient, room: str, **params: object) -> dict:
    return await c.ok("GET", f"{V3}/events", params={"room_id": room, **params})


async def test_peek_world_readable_room(client: MatrixClient, hs: Homeserver,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    room = await alice.create_room(preset="private_chat")
    resp = await bob.get(f"{V3}/events", params={"room_id": room, "timeout": 0})
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.history_visibility",
                   {"history_visibility": "world_readable"})

    first = await _events(bob, room, timeout=0)
    assert first["chunk"] == []
    await alice.send_text(room, "one")
    got = await _events(bob, room, timeout=0, **{"from": first["end"]})
    assert [e["content"]["body"] for e in got["chunk"]] == ["one"]
    assert got["start"] == first["end"] and got["end"] != first["end"]
    again = await _events(bob, room, timeout=0, **{"from": got["end"]})
    assert again["chunk"] == [] and again["end"] == got["end"]

    # A long poll returns as soon as something is sent.
    parked = asyncio.Event()
    listen = hs.notifier.listen

    def listen_and_tell(key: str) -> asyncio.Future[None]:
        fut = listen(key)
        if key == peek_key(room):
            parked.set()
        return fut

    monkeypatch.setattr(hs.notifier, "listen", listen_and_tell)
    waiter = asyncio.create_task(_events(bob, room, timeout=20_000, **{"from": got["end"]}))
    await asyncio.wait_for(parked.wait(), 20)  # the request is registered on the notifier
    assert peek_key(room) in hs.notifier.waiting_users()
    await alice.send_text(room, "two")
    done = await asyncio.wait_for(waiter, 10)
    assert [e["content"]["body"] for e in done["chunk"]] == ["two"]
    # Bob never joined.
    assert room not in (await bob.ok("GET", f"{V3}/joined_rooms"))["joined_rooms"]

    # Turning world-readable off ends the peeking.
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.history_visibility",
                   {"history_visibility": "shared"})
    resp = await bob.get(f"{V3}/events", params={"room_id": room, "timeout": 0})
    assert resp.status_code == 403


async def test_peek_bad_requests(client: MatrixClient) -> None:
    alice = await client.register("alice")
    room = await alice.create_room()
    for params, status, code in (
        ({"room_id": "nonsense"}, 400, "M_INVALID_PARAM"),
        ({"room_id": "!nowhere:test.parley"}, 404, "M_NOT_FOUND"),
        ({"room_id": room, "from": "bogus"}, 400, "M_INVALID_PARAM"),
        ({"room_id": room, "timeout": "soon"}, 400, "M_INVALID_PARAM"),
    ):
        resp = await alice.get(f"{V3}/events", params=params)
        assert resp.status_code == status and resp.json()["errcode"] == code, params
    # Members may read their own room's stream here too.
    assert (await _events(alice, room, timeout=0))["chunk"] == []


@pytest.mark.parametrize("config_overrides", [{"allow_guest_access": True}])
async def test_guest_peeks(client: MatrixClient) -> None:
    alice = await client.register("alice")
    room = await alice.create_room(preset="public_chat")
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.history_visibility",
                   {"history_visibility": "world_readable"})
    data = await client.ok("POST", f"{V3}/register", {}, params={"kind": "guest"}, token="")
    guest = client.as_user(data["access_token"], data["user_id"], data["device_id"])
    start = await _events(guest, room, timeout=0)
    await alice.send_text(room, "hi guests")
    got = await _events(guest, room, timeout=0, **{"from": start["end"]})
    assert [e["content"]["body"] for e in got["chunk"]] == ["hi guests"]
