"""To-device messages over the WebSocket against a real server: deleted only once the client
acks a later frame, so a socket killed between frame and ack gets them again, exactly once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets

from tests.e2e.test_websocket import V3, frames, next_of, register, ws_url


async def _send(http: httpx.AsyncClient, sender: dict[str, Any], to: dict[str, Any], n: int) -> None:
    r = await http.put(f"{V3}/sendToDevice/m.test/t{n}",
                       json={"messages": {to["user_id"]: {to["device_id"]: {"n": n}}}},
                       headers={"Authorization": f"Bearer {sender['access_token']}"})
    assert r.status_code == 200, r.text


async def _to_device_frame(sock: Any, ack: bool) -> dict[str, Any]:
    """The next sync frame carrying to-device messages (acking the empty ones before it)."""
    async for f in frames(sock):
        if f["type"] != "sync":
            continue
        if f["to_device"]["events"]:
            if ack:
                await sock.send(json.dumps({"type": "ack", "next_batch": f["next_batch"]}))
            return f
        await sock.send(json.dumps({"type": "ack", "next_batch": f["next_batch"]}))
    raise AssertionError("socket closed")


def _ns(frame: dict[str, Any]) -> list[int]:
    return [e["content"]["n"] for e in frame["to_device"]["events"]]


async def test_to_device_exactly_once_across_a_killed_socket(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        alice = await register(http, "alice")
        bob = await register(http, "bob")
        headers = {"Authorization": f"Bearer {bob['access_token']}"}
        received: list[int] = []
        async with websockets.connect(ws_url(server), additional_headers=headers) as sock:
            await next_of(sock, "authenticated")
            await sock.send(json.dumps({"type": "sync"}))
            acked = (await next_of(sock, "sync"))["next_batch"]
            await _send(http, alice, bob, 1)
            f = await _to_device_frame(sock, ack=True)
            received += _ns(f)
            acked = f["next_batch"]
            await _send(http, alice, bob, 2)
            unacked = await _to_device_frame(sock, ack=False)
            assert _ns(unacked) == [2]
            # killed between the frame and its ack
        async with websockets.connect(ws_url(server), additional_headers=headers) as sock:
            await next_of(sock, "authenticated")
            await sock.send(json.dumps({"type": "sync", "since": acked}))
            f = await _to_device_frame(sock, ack=True)
            received += _ns(f)
            await _send(http, alice, bob, 3)
            f = await _to_device_frame(sock, ack=True)
            received += _ns(f)
            await _send(http, alice, bob, 4)
            f = await _to_device_frame(sock, ack=True)
            received += _ns(f)
            last = f["next_batch"]
        assert received == [1, 2, 3, 4]
        # from the last acked token nothing is left, and nothing is repeated
        r = await http.get(f"{V3}/sync", params={"since": last}, headers=headers)
        assert r.json()["to_device"]["events"] == []
        r = await http.get(f"{V3}/sync", params={"since": acked}, headers=headers)
        assert [e["content"]["n"] for e in r.json()["to_device"]["events"]] == []


async def test_device_list_change_is_pushed_as_a_frame(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        alice = await register(http, "alice")
        bob = await register(http, "bob")
        ah = {"Authorization": f"Bearer {alice['access_token']}"}
        headers = {"Authorization": f"Bearer {bob['access_token']}"}
        room = (await http.post(f"{V3}/createRoom", json={"preset": "public_chat"}, headers=ah)).json()["room_id"]
        assert (await http.post(f"{V3}/join/{room}", json={}, headers=headers)).status_code == 200
        async with websockets.connect(ws_url(server), additional_headers=headers) as sock:
            await next_of(sock, "authenticated")
            await sock.send(json.dumps({"type": "sync"}))
            await next_of(sock, "sync")
            # a new device of alice's (a login) is a device-list change, and nothing else
            r = await http.post(f"{V3}/login", json={"type": "m.login.password", "password": "pw-alice",
                                                      "identifier": {"type": "m.id.user", "user": "alice"}})
            assert r.status_code == 200, r.text

            async def changed() -> dict[str, Any]:
                async for f in frames(sock):
                    if f["type"] == "sync" and f["device_lists"]["changed"]:
                        return f
                raise AssertionError("socket closed")

            f = await asyncio.wait_for(changed(), 10)
            assert f["device_lists"]["changed"] == [alice["user_id"]]
