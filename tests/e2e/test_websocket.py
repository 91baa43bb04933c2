"""WebSocket sync against a real server process: streaming, actions, resume, msgpack, backpressure."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import websockets

from tests.e2e.conftest import start_server, stop_server

WS = "/_matrix/client/unstable/org.parley.ws"
V3 = "/_matrix/client/v3"


async def register(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    r = await http.post(f"{V3}/register", json={"username": name, "password": "pw-" + name,
                                                 "auth": {"type": "m.login.dummy"}})
    assert r.status_code == 200, r.text
    return r.json()


def ws_url(base: str, query: str = "") -> str:
    return base.replace("http://", "ws://") + WS + query


async def frames(sock: Any) -> AsyncIterator[dict[str, Any]]:
    while True:
        raw = await sock.recv()
        yield msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)


async def next_of(sock: Any, kind: str, timeout: float = 10, ack: bool = True) -> dict[str, Any]:
    async def find() -> dict[str, Any]:
        async for f in frames(sock):
            if f["type"] == "sync" and ack:
                await sock.send(json.dumps({"type": "ack", "next_batch": f["next_batch"]}))
            if f["type"] == kind:
                return f
        raise AssertionError("socket closed")
    return await asyncio.wait_for(find(), timeout)


def timeline_ids(frame: dict[str, Any], room: str) -> list[str]:
    timeline = frame.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {})
    return [e["event_id"] for e in timeline.get("events", [])]


@pytest.fixture
async def setup(server: str) -> AsyncIterator[tuple[str, httpx.AsyncClient, dict, dict, str]]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        alice = await register(http, "alice")
        bob = await register(http, "bob")
        h = {"Authorization": f"Bearer {alice['access_token']}"}
        room = (await http.post(f"{V3}/createRoom", json={"preset": "public_chat"}, headers=h)).json()["room_id"]
        r = await http.post(f"{V3}/join/{room}", json={}, headers={"Authorization": f"Bearer {bob['access_token']}"})
        assert r.status_code == 200
        yield server, http, alice, bob, room


async def send(http: httpx.AsyncClient, user: dict, room: str, body: str) -> str:
    r = await http.put(f"{V3}/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}",
                       json={"msgtype": "m.text", "body": body},
                       headers={"Authorization": f"Bearer {user['access_token']}"})
    assert r.status_code == 200, r.text
    return r.json()["event_id"]


async def test_stream_and_actions(setup: Any) -> None:
    server, http, alice, bob, room = setup
    headers = {"Authorization": f"Bearer {bob['access_token']}"}
    async with websockets.connect(ws_url(server), additional_headers=headers) as sock:
        assert (await next_of(sock, "authenticated"))["user_id"] == bob["user_id"]
        await sock.send(json.dumps({"type": "sync", "id": "s1"}))
        initial = await next_of(sock, "sync")
        assert room in initial["rooms"]["join"]
        eid = await send(http, alice, room, "over the socket")
        frame = await next_of(sock, "sync")
        assert timeline_ids(frame, room) == [eid]
        # actions over the socket, answered by id
        await sock.send(json.dumps({"type": "send", "id": "a1", "room_id": room, "event_type": "m.room.message",
                                    "txn_id": "t1", "content": {"msgtype": "m.text", "body": "from bob"}}))
        res = await next_of(sock, "result")
        assert res["id"] == "a1" and res["result"]["event_id"].startswith("$")
        await sock.send(json.dumps({"type": "send", "id": "a2", "room_id": room, "event_type": "m.room.message",
                                    "txn_id": "t1", "content": {"msgtype": "m.text", "body": "from bob"}}))
        again = await next_of(sock, "result")
        assert again["result"]["event_id"] == res["result"]["event_id"]  # idempotent
        await sock.send(json.dumps({"type": "typing", "id": "a3", "room_id": room, "typing": True, "timeout": 10000}))
        await sock.send(json.dumps({"type": "receipt", "id": "a4", "room_id": room, "event_id": eid}))
        await sock.send(json.dumps({"type": "send", "id": "bad", "room_id": room}))
        err = await next_of(sock, "error")
        assert err["id"] == "bad" and err["errcode"] == "M_BAD_JSON"
        await sock.send("not json")
        assert (await next_of(sock, "error"))["errcode"] == "M_NOT_JSON"
        await sock.send(json.dumps({"type": "ping", "id": "p"}))
        assert (await next_of(sock, "pong"))["id"] == "p"
    # alice sees bob typing through her own socket (auth by first frame)
    async with websockets.connect(ws_url(server)) as sock:
        await sock.send(json.dumps({"type": "auth", "access_token": alice["access_token"]}))
        await next_of(sock, "authenticated")
        await sock.send(json.dumps({"type": "sync"}))
        initial = await next_of(sock, "sync")
        eph = initial["rooms"]["join"][room]["ephemeral"]["events"]
        typing = [e for e in eph if e["type"] == "m.typing"]
        assert typing and bob["user_id"] in typing[0]["content"]["user_ids"]


async def test_auth_required_and_query_token_refused(setup: Any) -> None:
    server, http, alice, bob, room = setup
    async with websockets.connect(ws_url(server, f"?access_token={alice['access_token']}")) as sock:
        await sock.send(json.dumps({"type": "sync"}))
        err = await next_of(sock, "error")
        assert err["errcode"] == "M_MISSING_TOKEN"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await sock.recv()
        assert closed.value.rcvd.code == 4001
    async with websockets.connect(ws_url(server), additional_headers={"Authorization": "Bearer nope"}) as sock:
        assert (await next_of(sock, "error"))["errcode"] == "M_UNKNOWN_TOKEN"


async def test_resume_after_disconnect_loses_and_repeats_nothing(setup: Any) -> None:
    server, http, alice, bob, room = setup
    sent: list[str] = []
    got: list[str] = []
    headers = {"Authorization": f"Bearer {bob['access_token']}"}
    async with websockets.connect(ws_url(server), additional_headers=headers) as sock:
        await next_of(sock, "authenticated")
        await sock.send(json.dumps({"type": "sync", "filter": {"room": {"timeline": {"limit": 100}}}}))
        token = (await next_of(sock, "sync"))["next_batch"]
        for i in range(5):
            sent.append(await send(http, alice, room, f"a{i}"))
        while len(got) < 5:
            f = await next_of(sock, "sync")
            got += timeline_ids(f, room)
            token = f["next_batch"]
    # socket killed mid-stream: more messages arrive while bob is away
    for i in range(7):
        sent.append(await send(http, alice, room, f"b{i}"))
    async with websockets.connect(ws_url(server), additional_headers=headers) as sock:
        await next_of(sock, "authenticated")
        await sock.send(json.dumps({"type": "sync", "since": token, "filter": {"room": {"timeline": {"limit": 100}}}}))
        sender = asyncio.create_task(_send_many(http, alice, room, sent, 3))
        while len(got) < 15:
            got += timeline_ids(await next_of(sock, "sync"), room)
        await sender
    assert got == sent


async def _send_many(http: httpx.AsyncClient, user: dict, room: str, sent: list[str], n: int) -> None:
    for i in range(n):
        sent.append(await send(http, user, room, f"c{i}"))


async def test_msgpack_frames_and_subscriptions(setup: Any) -> None:
    server, http, alice, bob, room = setup
    h = {"Authorization": f"Bearer {alice['access_token']}"}
    other = (await http.post(f"{V3}/createRoom", json={}, headers=h)).json()["room_id"]
    async with websockets.connect(ws_url(server, "?format=msgpack"), additional_headers=h) as sock:
        raw = await sock.recv()
        assert isinstance(raw, bytes) and msgpack.unpackb(raw)["type"] == "authenticated"
        await sock.send(msgpack.packb({"type": "subscribe", "id": 1, "rooms": [room]}))
        assert (await next_of(sock, "result"))["result"]["subscriptions"] == [room]
        await sock.send(msgpack.packb({"type": "sync"}))
        initial = await next_of(sock, "sync")
        assert set(initial["rooms"]["join"]) == {room}
        await send(http, alice, other, "unsubscribed room")
        eid = await send(http, alice, room, "subscribed room")
        f = await next_of(sock, "sync")
        while not timeline_ids(f, room):
            assert other not in f.get("rooms", {}).get("join", {})
            f = await next_of(sock, "sync")
        assert timeline_ids(f, room) == [eid] and other not in f["rooms"]["join"]


async def test_slow_consumer_closed_with_resume_token(tmp_path: Path) -> None:
    proc, base = start_server(tmp_path, f"sqlite:///{tmp_path}/p.db", PARLEY_WS_MAX_QUEUED_FRAMES="3")
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            alice = await register(http, "alice")
            h = {"Authorization": f"Bearer {alice['access_token']}"}
            room = (await http.post(f"{V3}/createRoom", json={}, headers=h)).json()["room_id"]
            async with websockets.connect(ws_url(base), additional_headers=h) as sock:
                await next_of(sock, "authenticated")
                await sock.send(json.dumps({"type": "sync"}))
                acked = (await next_of(sock, "sync"))["next_batch"]  # acknowledged
                seen = 0
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    for i in range(20):
                        await send(http, alice, room, f"m{i}")
                        # read without acknowledging: the window of 3 frames runs out
                        await next_of(sock, "sync", ack=False)
                        seen += 1
                assert closed.value.rcvd.code == 4008
                assert closed.value.rcvd.reason == f"resume:{acked}"
                assert seen == 3
    finally:
        stop_server(proc)
