"""A real Parley process configured by PARLEY_AI__* variables: summaries stream in order over
the WebSocket (`ai.*` frames) and over SSE, and a client going away (or `ai.cancel`) stops the
upstream request."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.ai.fake_inference import FakeInference
from tests.e2e.conftest import start_server, stop_server

V3 = "/_matrix/client/v3"
AI = "/_matrix/client/unstable/org.parley.ai"
WS = "/_matrix/client/unstable/org.parley.ws"


@pytest.fixture
async def world(tmp_path: Path, fake: FakeInference) -> AsyncIterator[tuple[str, httpx.AsyncClient, str, str]]:
    proc, base = await asyncio.to_thread(
        start_server, tmp_path, f"sqlite:///{tmp_path}/parley.db",
        PARLEY_AI__ENDPOINT=fake.url, PARLEY_AI__API_STYLE="ollama", PARLEY_AI__INDEX_EMBEDDINGS="false")
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            r = await http.post(f"{V3}/register", json={"username": "carol", "password": "pw-carol-123",
                                                         "auth": {"type": "m.login.dummy"}})
            token = r.json()["access_token"]
            h = {"Authorization": f"Bearer {token}"}
            room = (await http.post(f"{V3}/createRoom", json={}, headers=h)).json()["room_id"]
            for text in ("the build is red", "fixed by reverting the flaky test"):
                await http.put(f"{V3}/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}", headers=h,
                               json={"msgtype": "m.text", "body": text})
            yield base, http, token, room
    finally:
        await asyncio.to_thread(stop_server, proc)
        log = (tmp_path / "server.log").read_text(errors="replace")
        assert "Traceback" not in log, log


async def frames_until(sock: Any, kinds: set[str], timeout: float = 20) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []

    async def read() -> None:
        while True:
            f = json.loads(await sock.recv())
            if f["type"].startswith("ai.") or f["type"] == "error":
                got.append(f)
            if f["type"] in kinds:
                return

    await asyncio.wait_for(read(), timeout)
    return got


async def test_websocket_streams_in_order_and_cancels(world: Any, fake: FakeInference) -> None:
    base, _, token, room = world
    fake.reply = [f"tok{i} " for i in range(25)]
    url = base.replace("http://", "ws://") + WS
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as sock:
        await sock.send(json.dumps({"type": "ai.summarize", "id": "s1", "room_id": room}))
        got = await frames_until(sock, {"ai.done", "ai.error"})
        assert got[0]["type"] == "ai.start" and got[0]["message_count"] == 2
        assert [f["text"] for f in got if f["type"] == "ai.token"] == fake.reply
        assert got[-1] == {"type": "ai.done", "id": "s1", "text": "".join(fake.reply)}
        assert fake.chats()[-1].path == "/api/chat"
        assert "fixed by reverting" in fake.chats()[-1].body["messages"][-1]["content"]

        # A question about the channel streams the same way, its prompt holding the question.
        fake.reply = ["It ", "was ", "the ", "flaky ", "test."]
        await sock.send(json.dumps({"type": "ai.ask", "id": "q1", "room_id": room, "question": "why was it red?"}))
        got = await frames_until(sock, {"ai.done", "ai.error"})
        assert got[0]["type"] == "ai.start" and got[0]["id"] == "q1"
        assert [f["text"] for f in got if f["type"] == "ai.token"] == fake.reply
        assert got[-1] == {"type": "ai.done", "id": "q1", "text": "It was the flaky test."}
        prompt = fake.chats()[-1].body["messages"][-1]["content"]
        assert "Question: why was it red?" in prompt and "the build is red" in prompt
        await sock.send(json.dumps({"type": "ai.ask", "id": "q2", "room_id": room}))
        got = await frames_until(sock, {"error"})
        assert got[-1]["id"] == "q2" and got[-1]["errcode"] == "M_BAD_JSON"

        fake.hang = True
        fake.stream_started.clear()
        await sock.send(json.dumps({"type": "ai.summarize", "id": "s2", "room_id": room}))
        await asyncio.wait_for(fake.stream_started.wait(), 20)
        await sock.send(json.dumps({"type": "ai.cancel", "id": "s2"}))
        got = await frames_until(sock, {"ai.cancelled"})
        assert got[-1] == {"type": "ai.cancelled", "id": "s2", "found": True}
        fake.release.set()
        await asyncio.wait_for(fake.disconnected.wait(), 20)


async def test_sse_disconnect_stops_the_upstream_request(world: Any, fake: FakeInference) -> None:
    base, http, token, room = world
    fake.reply = ["a ", "b ", "c"]
    h = {"Authorization": f"Bearer {token}"}
    async with http.stream("POST", f"{AI}/rooms/{room}/summarize", json={"stream": True}, headers=h) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        body = (await r.aread()).decode()
    assert body.index("event: ai.start") < body.index('"a "') < body.index('"b "') < body.index("event: ai.done")
    assert '"text":"a b c"' in body

    fake.hang = True
    fake.reply = ["x"] * 50
    fake.chunk_delay_s = 0.05
    fake.stream_started.clear()

    async def read_then_leave() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            async with c.stream("POST", f"{AI}/rooms/{room}/summarize", json={"stream": True}, headers=h) as r:
                async for line in r.aiter_lines():
                    if line == "event: ai.token":
                        return  # closes the connection mid-stream

    task = asyncio.create_task(read_then_leave())
    await asyncio.wait_for(fake.stream_started.wait(), 20)
    fake.release.set()
    await asyncio.wait_for(task, 20)
    await asyncio.wait_for(fake.disconnected.wait(), 20)
