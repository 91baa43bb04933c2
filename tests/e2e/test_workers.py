"""Two worker processes on one PostgreSQL and one Redis: cross-worker delivery by /sync and
WebSocket, typing and presence, one linear history under concurrent sends, Redis restarts."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import websockets

from tests.conftest import REDIS_URL, _dsn_for, create_pg_database, drop_pg_database
from tests.e2e.conftest import free_port, start_server, stop_server

V3 = "/_matrix/client/v3"
WS = "/_matrix/client/unstable/org.parley.ws"


class Cluster:
    def __init__(self, a: str, b: str, dsn: str) -> None:
        self.a, self.b, self.dsn = a, b, dsn


async def _start_cluster(tmp: Path, redis_url: str) -> tuple[Cluster, list[Any], str]:
    db = await create_pg_database()
    dsn = _dsn_for(db)
    name = f"w{uuid.uuid4().hex[:6]}.parley"
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    shared_key = str(tmp / "signing.key")
    pa, a = start_server(tmp / "a", dsn, server_name=name, PARLEY_REDIS_URL=redis_url,
                         PARLEY_SIGNING_KEY_PATH=shared_key)
    pb, b = start_server(tmp / "b", dsn, server_name=name, PARLEY_REDIS_URL=redis_url,
                         PARLEY_SIGNING_KEY_PATH=shared_key)
    return Cluster(a, b, dsn), [pa, pb], db


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c, procs, db = await _start_cluster(tmp_path, REDIS_URL)
    try:
        yield c
    finally:
        for p in procs:
            stop_server(p)
        await drop_pg_database(db)


async def _user(http: httpx.AsyncClient, base: str, name: str) -> dict[str, Any]:
    r = await http.post(f"{base}{V3}/register", json={"username": name, "password": "pw-" + name,
                                                       "auth": {"type": "m.login.dummy"}})
    assert r.status_code == 200, r.text
    u = r.json()
    u["h"] = {"Authorization": f"Bearer {u['access_token']}"}
    return u


async def _room(http: httpx.AsyncClient, c: Cluster, alice: dict, bob: dict) -> str:
    created = await http.post(f"{c.a}{V3}/createRoom", json={"preset": "public_chat"}, headers=alice["h"])
    room = created.json()["room_id"]
    assert (await http.post(f"{c.b}{V3}/join/{room}", json={}, headers=bob["h"])).status_code == 200
    return room


async def _send(http: httpx.AsyncClient, base: str, user: dict, room: str, body: str) -> str:
    r = await http.put(f"{base}{V3}/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}",
                       json={"msgtype": "m.text", "body": body}, headers=user["h"])
    assert r.status_code == 200, r.text
    return r.json()["event_id"]


async def _sync(http: httpx.AsyncClient, base: str, user: dict, since: str | None, timeout: int = 0) -> dict:
    params: dict[str, Any] = {"timeout": timeout, "filter": json.dumps({"room": {"timeline": {"limit": 100}}})}
    if since:
        params["since"] = since
    r = await http.get(f"{base}{V3}/sync", params=params, headers=user["h"])
    assert r.status_code == 200, r.text
    return r.json()


def _ids(sync: dict, room: str) -> list[str]:
    timeline = sync.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {})
    return [e["event_id"] for e in timeline.get("events", [])]


async def test_cross_worker_sync_ws_typing_presence(cluster: Cluster) -> None:
    c = cluster
    async with httpx.AsyncClient(timeout=30) as http:
        alice = await _user(http, c.a, "alice")
        bob = await _user(http, c.b, "bob")
        room = await _room(http, c, alice, bob)
        since = (await _sync(http, c.a, bob, None))["next_batch"]
        # bob long-polls worker A; alice sends through worker B
        latencies = []
        for i in range(5):
            waiter = asyncio.create_task(_sync(http, c.a, bob, since, 20000))
            await asyncio.sleep(0)
            t0 = time.perf_counter()
            eid = await _send(http, c.b, alice, room, f"cross {i}")
            got = await asyncio.wait_for(waiter, 15)
            latencies.append((time.perf_counter() - t0) * 1000)
            ids = _ids(got, room)
            while eid not in ids:  # the wake may have been for an earlier change
                got = await _sync(http, c.a, bob, got["next_batch"], 20000)
                ids += _ids(got, room)
            since = got["next_batch"]
        print(f"cross-worker /sync delivery ms: {sorted(latencies)}")
        # WebSocket on A, send on B
        async with websockets.connect(c.a.replace("http", "ws") + WS, additional_headers=bob["h"]) as sock:
            await sock.send(json.dumps({"type": "sync", "since": since}))
            eid = await _send(http, c.b, alice, room, "to the socket")
            seen: list[str] = []
            while eid not in seen:
                f = json.loads(await asyncio.wait_for(sock.recv(), 15))
                if f["type"] == "sync":
                    seen += _ids(f, room)
                    since = f["next_batch"]
        # typing and presence set on B are seen by a sync on A
        r = await http.put(f"{c.b}{V3}/rooms/{room}/typing/{alice['user_id']}", json={"typing": True, "timeout": 20000},
                           headers=alice["h"])
        assert r.status_code == 200
        r = await http.put(f"{c.b}{V3}/presence/{alice['user_id']}/status",
                           json={"presence": "unavailable", "status_msg": "on B"}, headers=alice["h"])
        assert r.status_code == 200
        typing_seen = presence_seen = False
        for _ in range(10):
            got = await _sync(http, c.a, bob, since, 10000)
            since = got["next_batch"]
            eph = got.get("rooms", {}).get("join", {}).get(room, {}).get("ephemeral", {}).get("events", [])
            typing_seen |= any(e["type"] == "m.typing" and alice["user_id"] in e["content"]["user_ids"] for e in eph)
            presence_seen |= any(e["sender"] == alice["user_id"] and e["content"].get("status_msg") == "on B"
                                 for e in got["presence"]["events"])
            if typing_seen and presence_seen:
                break
        assert typing_seen and presence_seen
        r = await http.get(f"{c.a}{V3}/presence/{alice['user_id']}/status", headers=bob["h"])
        assert r.json()["status_msg"] == "on B"


async def test_concurrent_sends_keep_one_linear_history(cluster: Cluster) -> None:
    c = cluster
    async with httpx.AsyncClient(timeout=60) as http:
        alice = await _user(http, c.a, "alice")
        bob = await _user(http, c.b, "bob")
        room = await _room(http, c, alice, bob)
        results = await asyncio.gather(
            *(_send(http, c.a if i % 2 else c.b, alice if i % 3 else bob, room, f"n{i}") for i in range(60))
        )
        assert len(set(results)) == 60
        r = await http.get(f"{c.a}{V3}/rooms/{room}/messages", params={"dir": "b", "limit": 200}, headers=alice["h"])
        bodies = {e["content"].get("body") for e in r.json()["chunk"] if e["type"] == "m.room.message"}
        assert bodies == {f"n{i}" for i in range(60)}
    conn = await asyncpg.connect(c.dsn)
    try:
        assert await conn.fetchval("SELECT COUNT(*) FROM forward_extremities WHERE room_id = $1", room) == 1
        rows = await conn.fetch("SELECT json FROM events WHERE room_id = $1 ORDER BY stream_ordering", room)
        ids = [r["event_id"] for r in await conn.fetch(
            "SELECT event_id FROM events WHERE room_id = $1 ORDER BY stream_ordering", room)]
        for prev_id, row in zip(ids, rows[1:]):
            assert json.loads(row["json"])["prev_events"] == [prev_id]  # one linear chain
    finally:
        await conn.close()


async def _collect(http: httpx.AsyncClient, base: str, user: dict, room: str, since: str,
                   got: list[str], want: int) -> str:
    """Long-poll until `got` holds `want` timeline events of the room; returns the new token."""
    for _ in range(20):
        s = await _sync(http, base, user, since, 5000)
        since = s["next_batch"]
        got += _ids(s, room)
        if len(got) >= want:
            break
    return since


def _redis_server(port: int, tmp: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            import socket
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)  # readiness probe


async def _subscribers(port: int, channel_prefix: str) -> int:
    import redis.asyncio as aioredis
    r = aioredis.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        chans = await r.pubsub_channels(f"{channel_prefix}*")
        if not chans:
            return 0
        counts = await r.pubsub_numsub(*chans)
        return sum(n for _, n in counts)
    finally:
        await r.aclose()


async def test_redis_restart_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    redis_proc = _redis_server(port, tmp_path)
    c, procs, db = await _start_cluster(tmp_path, f"redis://127.0.0.1:{port}/0")
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            alice = await _user(http, c.a, "alice")
            bob = await _user(http, c.b, "bob")
            room = await _room(http, c, alice, bob)
            since = (await _sync(http, c.a, bob, None))["next_batch"]
            sent = [await _send(http, c.b, alice, room, "before")]
            redis_proc.terminate()
            redis_proc.wait(10)
            # Redis is down: sends still succeed and the other worker still delivers them
            for i in range(3):
                sent.append(await _send(http, c.b, alice, room, f"during {i}"))
            got: list[str] = []
            since = await _collect(http, c.a, bob, room, since, got, len(sent))
            assert got == sent
            redis_proc = _redis_server(port, tmp_path)
            # both workers resubscribe by themselves
            for _ in range(200):
                if await _subscribers(port, "parley:") >= 2:
                    break
                await asyncio.sleep(0.05)  # polling an external condition with a bound, not ordering test steps
            assert await _subscribers(port, "parley:") >= 2
            # The first publishes after the restart go out on the bus (no stale connection
            # failing them, no wait for the one-second database poll).
            log_b = tmp_path / "b" / "server.log"
            seen = log_b.stat().st_size
            for i in range(3):
                sent.append(await _send(http, c.b, alice, room, f"after {i}"))
            await _collect(http, c.a, bob, room, since, got, len(sent))
            assert got == sent
            assert "bus publish failed" not in log_b.read_text()[seen:]
    finally:
        for p in procs:
            stop_server(p)
        redis_proc.terminate()
        redis_proc.wait(10)
        await drop_pg_database(db)
