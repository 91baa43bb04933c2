"""The workloads: plain Client-Server API over httpx, the same code for every server."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from bench.servers import Server, proc_status

V3 = "/_matrix/client/v3"
WS = "/_matrix/client/unstable/org.parley.ws"


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def lat_summary(xs: list[float]) -> dict[str, float]:
    return {"p50": pct(xs, 50), "p95": pct(xs, 95), "p99": pct(xs, 99)}


@dataclass
class User:
    user_id: str
    token: str
    base: str

    @property
    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Client:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.http = httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=400, max_keepalive_connections=400))
        self._n = 0

    async def close(self) -> None:
        await self.http.aclose()

    async def register(self) -> User:
        base = self.server.bases[self._n % len(self.server.bases)]
        self._n += 1
        name = "u" + uuid.uuid4().hex[:10]
        r = await self.http.post(f"{base}{V3}/register", json={"username": name, "password": "bench-pw-1",
                                                                "auth": {"type": "m.login.dummy"}})
        r.raise_for_status()
        d = r.json()
        return User(d["user_id"], d["access_token"], base)

    async def users(self, n: int) -> list[User]:
        out: list[User] = []
        for i in range(0, n, 10):
            out += await asyncio.gather(*(self.register() for _ in range(min(10, n - i))))
        return out

    async def create_room(self, u: User, **body: Any) -> tuple[str, float]:
        t0 = time.perf_counter()
        r = await self.http.post(f"{u.base}{V3}/createRoom", json={"preset": "public_chat", **body}, headers=u.h)
        r.raise_for_status()
        return r.json()["room_id"], (time.perf_counter() - t0) * 1000

    async def join(self, u: User, room: str) -> float:
        t0 = time.perf_counter()
        r = await self.http.post(f"{u.base}{V3}/join/{room}", json={}, headers=u.h)
        r.raise_for_status()
        return (time.perf_counter() - t0) * 1000

    async def send(self, u: User, room: str, body: str) -> tuple[str, float]:
        t0 = time.perf_counter()
        r = await self.http.put(f"{u.base}{V3}/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}",
                                json={"msgtype": "m.text", "body": body}, headers=u.h)
        r.raise_for_status()
        return r.json()["event_id"], (time.perf_counter() - t0) * 1000

    async def sync(self, u: User, since: str | None = None, timeout: int = 0,
                   flt: dict[str, Any] | None = None) -> tuple[dict[str, Any], float, int]:
        params: dict[str, Any] = {"timeout": timeout}
        if since:
            params["since"] = since
        if flt is not None:
            params["filter"] = json.dumps(flt)
        t0 = time.perf_counter()
        r = await self.http.get(f"{u.base}{V3}/sync", params=params, headers=u.h)
        r.raise_for_status()
        return r.json(), (time.perf_counter() - t0) * 1000, len(r.content)


def cpu_ticks(server: Server) -> int:
    return sum(proc_status(p)["cpu_ticks"] for p in server.pids)


async def send_throughput(c: Client, senders: int, rooms: int, total: int) -> dict[str, Any]:
    """`senders` concurrent users sending `total` messages over `rooms` rooms."""
    users = await c.users(senders)
    room_ids: list[str] = []
    creators = [users[i % senders] for i in range(rooms)]
    for i in range(0, rooms, 10):
        room_ids += [r for r, _ in await asyncio.gather(*(c.create_room(u) for u in creators[i:i + 10]))]
    # each sender posts to the rooms it created, or joins one room when there are fewer rooms
    targets: list[list[str]] = [[] for _ in range(senders)]
    for j, room in enumerate(room_ids):
        targets[j % senders].append(room)
    joins = []
    for i in range(senders):
        if not targets[i]:
            targets[i] = [room_ids[i % rooms]]
            joins.append(c.join(users[i], targets[i][0]))
    for i in range(0, len(joins), 10):
        await asyncio.gather(*joins[i:i + 10])
    per_sender = max(1, total // senders)
    lat: list[float] = []
    ticks0 = cpu_ticks(c.server)

    async def run(i: int) -> None:
        for k in range(per_sender):
            room = targets[i][k % len(targets[i])]
            _, ms = await c.send(users[i], room, f"bench {i}/{k}")
            lat.append(ms)

    t0 = time.perf_counter()
    await asyncio.gather(*(run(i) for i in range(senders)))
    elapsed = time.perf_counter() - t0
    ticks = cpu_ticks(c.server) - ticks0
    n = per_sender * senders
    import os
    return {"throughput": n / elapsed, **lat_summary(lat), "messages": n,
            "cpu_s_per_1000": ticks / os.sysconf("SC_CLK_TCK") / n * 1000}


async def delivery_latency(c: Client, samples: int, websocket: bool = False) -> dict[str, float]:
    alice, bob = await c.users(2)
    if len(c.server.bases) > 1:  # receive on the other worker than the one we send through
        bob.base = c.server.bases[1]
        alice.base = c.server.bases[0]
    room, _ = await c.create_room(alice)
    await c.join(bob, room)
    flt = {"room": {"timeline": {"limit": 1}}}
    lat: list[float] = []
    if websocket:
        import websockets

        async with websockets.connect(bob.base.replace("http", "ws") + WS, additional_headers=bob.h) as sock:
            await sock.send(json.dumps({"type": "sync", "filter": flt}))
            while json.loads(await sock.recv())["type"] != "sync":
                pass
            for i in range(samples):
                task = asyncio.create_task(c.send(alice, room, f"d{i}"))
                t0 = time.perf_counter()
                while True:
                    f = json.loads(await sock.recv())
                    if f["type"] == "sync":
                        await sock.send(json.dumps({"type": "ack", "next_batch": f["next_batch"]}))
                        if f.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {}).get("events"):
                            break
                lat.append((time.perf_counter() - t0) * 1000)
                await task
        return lat_summary(lat)
    since = (await c.sync(bob, flt=flt))[0]["next_batch"]
    for i in range(samples):
        poll = asyncio.create_task(c.sync(bob, since, 30000, flt))
        await asyncio.sleep(0.005)  # let the long-poll park first (measurement setup, not a test)
        t0 = time.perf_counter()
        await c.send(alice, room, f"d{i}")
        resp, _, _ = await poll
        lat.append((time.perf_counter() - t0) * 1000)
        since = resp["next_batch"]
    return lat_summary(lat)


async def initial_sync(c: Client, rooms: int, per_room: int) -> dict[str, float]:
    u, = await c.users(1)
    room_ids = []
    for i in range(0, rooms, 10):
        room_ids += [r for r, _ in await asyncio.gather(*(c.create_room(u) for _ in range(min(10, rooms - i))))]

    async def fill(room: str) -> None:
        for k in range(per_room):
            await c.send(u, room, f"m{k}")

    for i in range(0, rooms, 10):
        await asyncio.gather(*(fill(r) for r in room_ids[i:i + 10]))
    times, sizes = [], []
    for _ in range(3):
        _, ms, size = await c.sync(u)
        times.append(ms)
        sizes.append(size)
    resp, _, _ = await c.sync(u)
    since = resp["next_batch"]
    empty = [(await c.sync(u, since))[1] for _ in range(5)]
    one = []
    for i in range(5):
        await c.send(u, room_ids[0], f"new {i}")
        r, ms, _ = await c.sync(u, since)
        since = r["next_batch"]
        one.append(ms)
    return {"initial_ms": statistics.median(times), "initial_bytes": statistics.median(sizes),
            "incr_empty_ms": statistics.median(empty), "incr_one_ms": statistics.median(one)}


async def pagination(c: Client, events: int, page: int = 100) -> dict[str, float]:
    u, = await c.users(1)
    room, _ = await c.create_room(u)
    for i in range(0, events, 20):
        await asyncio.gather(*(c.send(u, room, f"p{k}") for k in range(i, min(events, i + 20))))
    lat = []
    token = None
    seen = 0
    t0 = time.perf_counter()
    while True:
        params: dict[str, Any] = {"dir": "b", "limit": page}
        if token:
            params["from"] = token
        t1 = time.perf_counter()
        r = await c.http.get(f"{u.base}{V3}/rooms/{room}/messages", params=params, headers=u.h)
        r.raise_for_status()
        lat.append((time.perf_counter() - t1) * 1000)
        d = r.json()
        seen += len(d["chunk"])
        if not d["chunk"] or "end" not in d or seen > events + 50:
            break
        token = d["end"]
    return {"total_ms": (time.perf_counter() - t0) * 1000, "events_seen": seen, **lat_summary(lat)}


async def rooms_and_members(c: Client, samples: int, members: int) -> dict[str, float]:
    owner, = await c.users(1)
    create = [(await c.create_room(owner))[1] for _ in range(samples)]
    room, _ = await c.create_room(owner)
    users = await c.users(members)
    join_lat: list[float] = []
    for i in range(0, members, 10):
        join_lat += await asyncio.gather(*(c.join(u, room) for u in users[i:i + 10]))
    _, ms, size = await c.sync(users[-1])
    return {"create": lat_summary(create), "join": lat_summary(join_lat), "member_sync_ms": ms,
            "member_sync_bytes": size}


def memory(server: Server) -> dict[str, int]:
    st = [proc_status(p) for p in server.pids]
    return {"rss_kib": sum(s["VmRSS"] for s in st), "hwm_kib": sum(s["VmHWM"] for s in st)}
