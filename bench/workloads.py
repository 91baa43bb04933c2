"""The load generator: the standard Client-Server API over httpx (async), the same code for every
server. Each workload has a setup part (not timed) and a `measure` part that run.py repeats."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.servers import Server, proc_status

V3 = "/_matrix/client/v3"
WS = "/_matrix/client/unstable/org.parley.ws"
PASSWORD = "bench-pw-1"
# events a public_chat createRoom writes (create, creator's join, power levels, join rules,
# history visibility); used only to count roughly how many events the server stores
CREATE_EVENTS = 5
POOLS = 16


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def lat_summary(xs: list[float]) -> dict[str, float]:
    return {"p50": pct(xs, 50), "p95": pct(xs, 95), "p99": pct(xs, 99), "n": len(xs)}


@dataclass
class User:
    user_id: str
    localpart: str
    token: str
    base: str
    rooms: set[str] = field(default_factory=set)

    @property
    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def bounded(aws: Iterable[Awaitable[Any]], limit: int = 10) -> list[Any]:
    """Run awaitables with at most `limit` in flight; results in order."""
    sem = asyncio.Semaphore(limit)

    async def one(a: Awaitable[Any]) -> Any:
        async with sem:
            return await a

    return list(await asyncio.gather(*(one(a) for a in aws)))


class Client:
    def __init__(self, server: Server) -> None:
        self.server = server
        # several small connection pools instead of one big one: httpx/httpcore scan the whole pool
        # on every request, which made the load generator, not the server, the bottleneck at 50
        # concurrent senders; a user always goes through the same pool
        self.pools = [httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=64,
                                                                         max_keepalive_connections=64))
                      for _ in range(POOLS)]
        self.http = self.pools[0]
        self.users_registered = 0
        self.errors: list[str] = []  # server errors met along the way, for the report
        self.events_written = 0  # counted by the load generator: messages, joins, ~5 per createRoom

    async def close(self) -> None:
        for pool in self.pools:
            await pool.aclose()

    async def _req(self, method: str, url: str, **kw: Any) -> httpx.Response:
        token = kw.get("headers", {}).get("Authorization", "")
        r = await self.pools[hash(token) % POOLS].request(method, url, **kw)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {url.split('/_matrix', 1)[-1]} -> {r.status_code}: {r.text[:300]}")
        return r

    async def register(self) -> User:
        base = self.server.bases[self.users_registered % len(self.server.bases)]
        self.users_registered += 1
        name = "u" + uuid.uuid4().hex[:12]
        r = await self._req("POST", f"{base}{V3}/register", json={
            "username": name, "password": PASSWORD, "auth": {"type": "m.login.dummy"},
            "initial_device_display_name": "bench"})
        d = r.json()
        return User(d["user_id"], name, d["access_token"], base)

    async def users(self, n: int, concurrency: int = 10) -> list[User]:
        return await bounded((self.register() for _ in range(n)), concurrency)

    async def login(self, u: User) -> User:
        """A new device (and access token) for `u`: its first /sync is a true initial sync."""
        r = await self._req("POST", f"{u.base}{V3}/login", json={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": u.localpart},
            "password": PASSWORD})
        return User(u.user_id, u.localpart, r.json()["access_token"], u.base, u.rooms)

    async def create_room(self, u: User, **body: Any) -> tuple[str, float]:
        t0 = time.perf_counter()
        r = await self._req("POST", f"{u.base}{V3}/createRoom", json={"preset": "public_chat", **body}, headers=u.h)
        ms = (time.perf_counter() - t0) * 1000
        room = r.json()["room_id"]
        u.rooms.add(room)
        self.events_written += CREATE_EVENTS
        return room, ms

    async def create_rooms(self, u: User, n: int, concurrency: int = 10) -> list[str]:
        return [r for r, _ in await bounded((self.create_room(u) for _ in range(n)), concurrency)]

    async def join(self, u: User, room: str) -> float:
        t0 = time.perf_counter()
        await self._req("POST", f"{u.base}{V3}/join/{room}", json={}, headers=u.h)
        u.rooms.add(room)
        self.events_written += 1
        return (time.perf_counter() - t0) * 1000

    async def send(self, u: User, room: str, body: str) -> tuple[str, float]:
        t0 = time.perf_counter()
        r = await self._req("PUT", f"{u.base}{V3}/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}",
                            json={"msgtype": "m.text", "body": body}, headers=u.h)
        self.events_written += 1
        return r.json()["event_id"], (time.perf_counter() - t0) * 1000

    async def sync(self, u: User, since: str | None = None, timeout: int = 0,
                   flt: dict[str, Any] | None = None) -> tuple[dict[str, Any], float, int]:
        params: dict[str, Any] = {"timeout": timeout}
        if since:
            params["since"] = since
        if flt is not None:
            params["filter"] = json.dumps(flt)
        t0 = time.perf_counter()
        r = await self._req("GET", f"{u.base}{V3}/sync", params=params, headers=u.h)
        ms = (time.perf_counter() - t0) * 1000
        return r.json(), ms, len(r.content)

    async def messages(self, u: User, room: str, frm: str | None, limit: int) -> tuple[dict[str, Any], float]:
        params: dict[str, Any] = {"dir": "b", "limit": limit}
        if frm:
            params["from"] = frm
        t0 = time.perf_counter()
        r = await self._req("GET", f"{u.base}{V3}/rooms/{room}/messages", params=params, headers=u.h)
        return r.json(), (time.perf_counter() - t0) * 1000


def cpu_ticks(server: Server) -> int:
    return sum(proc_status(p)["cpu_ticks"] for p in server.pids)


def memory(server: Server) -> dict[str, int]:
    st = [proc_status(p) for p in server.pids]
    return {"rss_kib": sum(s["VmRSS"] for s in st), "hwm_kib": sum(s["VmHWM"] for s in st)}


# --- 1. message send throughput and latency -------------------------------------------------

class SendFixture:
    """One set of rooms and a pool of senders shared by every (senders, rooms) configuration on it:
    sender i posts to rooms j with j % senders == i (or to room i % rooms when rooms < senders)."""

    def __init__(self, c: Client, rooms: int) -> None:
        self.c, self.n_rooms = c, rooms
        self.rooms: list[str] = []
        self.users: list[User] = []

    async def prepare(self, senders: int) -> list[list[str]]:
        c = self.c
        if not self.users:
            self.users = await c.users(1)
            self.rooms = await c.create_rooms(self.users[0], self.n_rooms)
        if len(self.users) < senders:
            self.users += await c.users(senders - len(self.users))
        targets = [[r for j, r in enumerate(self.rooms) if j % senders == i] or [self.rooms[i % self.n_rooms]]
                   for i in range(senders)]
        await bounded((c.join(self.users[i], r) for i in range(senders) for r in targets[i]
                       if r not in self.users[i].rooms), 10)
        return targets


async def send_throughput(c: Client, fx: SendFixture, senders: int, total: int) -> dict[str, Any]:
    targets = await fx.prepare(senders)
    per_sender = max(1, total // senders)
    lat: list[float] = []
    errors: list[str] = []

    async def run(i: int) -> None:
        for k in range(per_sender):
            try:
                _, ms = await c.send(fx.users[i], targets[i][k % len(targets[i])], f"bench {i}/{k}")
            except RuntimeError as e:  # a server error is counted and reported, not fatal
                errors.append(str(e))
                continue
            lat.append(ms)

    ticks0 = cpu_ticks(c.server)
    own0 = os.times()
    t0 = time.perf_counter()
    await asyncio.gather(*(run(i) for i in range(senders)))
    elapsed = time.perf_counter() - t0
    ticks = cpu_ticks(c.server) - ticks0
    own1 = os.times()
    own = (own1.user - own0.user) + (own1.system - own0.system)
    n = len(lat)
    if errors:
        c.errors.append(f"send {senders}x{fx.n_rooms}: {len(errors)} of {per_sender * senders} failed, "
                        f"first: {errors[0]}")
    return {"throughput": n / elapsed, **lat_summary(lat),
            "cpu_s_per_1000": ticks / os.sysconf("SC_CLK_TCK") / max(n, 1) * 1000,
            "client_cpu_s_per_1000": own / max(n, 1) * 1000,
            "server_cores": ticks / os.sysconf("SC_CLK_TCK") / elapsed, "client_cores": own / elapsed,
            "errors": len(errors)}


# --- 2. delivery latency --------------------------------------------------------------------

class DeliveryFixture:
    def __init__(self, c: Client) -> None:
        self.c = c
        self.alice: User | None = None

    async def prepare(self) -> tuple[User, User, str]:
        if self.alice is None:
            self.alice, self.bob = await self.c.users(2)
            if len(self.c.server.bases) > 1:  # send through one worker, receive on the other
                self.alice.base, self.bob.base = self.c.server.bases[0], self.c.server.bases[1]
            self.room, _ = await self.c.create_room(self.alice)
            await self.c.join(self.bob, self.room)
        return self.alice, self.bob, self.room


async def delivery_latency(c: Client, samples: int, websocket: bool = False,
                           fx: DeliveryFixture | None = None) -> dict[str, float]:
    """send (HTTP PUT) -> the other user's parked long-poll /sync (or WebSocket frame) returns it."""
    alice, bob, room = await (fx or DeliveryFixture(c)).prepare()
    flt = {"room": {"timeline": {"limit": 1}}}
    lat: list[float] = []
    if websocket:
        import websockets

        async with websockets.connect(bob.base.replace("http", "ws", 1) + WS, additional_headers=bob.h) as sock:
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
        await asyncio.sleep(0.01)  # let the long-poll park first (measurement setup)
        t0 = time.perf_counter()
        await c.send(alice, room, f"d{i}")
        while True:
            resp, _, _ = await poll
            since = resp["next_batch"]
            if resp.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {}).get("events"):
                break
            poll = asyncio.create_task(c.sync(bob, since, 30000, flt))  # woke for something else
        lat.append((time.perf_counter() - t0) * 1000)
    return lat_summary(lat)


# --- 3. initial and incremental /sync -------------------------------------------------------

class SyncFixture:
    """One user in a growing number of rooms, each with `per_room` messages."""

    def __init__(self, c: Client, per_room: int) -> None:
        self.c, self.per_room = c, per_room
        self.user: User | None = None
        self.rooms: list[str] = []

    async def grow_to(self, rooms: int) -> None:
        c = self.c
        if self.user is None:
            self.user, = await c.users(1)
        new = await c.create_rooms(self.user, rooms - len(self.rooms))
        self.rooms += new
        u = self.user

        async def fill(room: str) -> None:
            for k in range(self.per_room):
                await c.send(u, room, f"m{k}")

        await bounded((fill(r) for r in new), 20)


async def sync_measure(c: Client, fx: SyncFixture) -> dict[str, float]:
    """A fresh device (Synapse caches /sync responses per device for 2 minutes): its initial sync,
    an incremental sync with nothing new, and one after a new event."""
    assert fx.user is not None
    dev = await c.login(fx.user)
    resp, initial_ms, size = await c.sync(dev)
    since = resp["next_batch"]
    resp, empty_ms, _ = await c.sync(dev, since)
    since = resp["next_batch"]
    await c.send(fx.user, fx.rooms[0], "one new event")
    _, one_ms, _ = await c.sync(dev, since)
    return {"initial_ms": initial_ms, "initial_kib": size / 1024, "incr_empty_ms": empty_ms, "incr_one_ms": one_ms}


# --- 4. /messages pagination ----------------------------------------------------------------

class PaginationFixture:
    def __init__(self, c: Client) -> None:
        self.c = c
        self.user: User | None = None
        self.events = 0

    async def grow_to(self, events: int) -> None:
        c = self.c
        if self.user is None:
            self.user, = await c.users(1)
            self.room, _ = await c.create_room(self.user)
        # one room is serialized by every server anyway; a few in flight keep the pipe full
        await bounded((c.send(self.user, self.room, f"p{k}") for k in range(self.events, events)), 8)
        self.events = events


async def pagination(c: Client, fx: PaginationFixture, page: int = 100) -> dict[str, float]:
    """Page backwards from the end to the room's creation."""
    assert fx.user is not None
    lat: list[float] = []
    token = None
    seen = 0
    t0 = time.perf_counter()
    while True:
        d, ms = await c.messages(fx.user, fx.room, token, page)
        lat.append(ms)
        seen += len(d["chunk"])
        if not d["chunk"] or "end" not in d or seen > fx.events + 50:
            break
        token = d["end"]
    return {"total_ms": (time.perf_counter() - t0) * 1000, "page_p50": pct(lat, 50), "page_p95": pct(lat, 95),
            "events_seen": seen}


# --- 5. createRoom, join, a big room --------------------------------------------------------

async def create_rooms_latency(c: Client, u: User, samples: int) -> dict[str, float]:
    return lat_summary([(await c.create_room(u))[1] for _ in range(samples)])


class MembersFixture:
    def __init__(self, c: Client) -> None:
        self.c = c
        self.members: list[User] = []
        self.join_ms: list[float] = []

    async def grow_to(self, members: int) -> dict[str, float]:
        """Join users (10 at a time) until the room has `members` members; latencies of these joins."""
        c = self.c
        if not self.members:
            owner, = await c.users(1)
            self.room, _ = await c.create_room(owner)
            self.members = [owner]
        new = await c.users(members - len(self.members))
        lat = await bounded((c.join(u, self.room) for u in new), 10)
        self.members += new
        return lat_summary(lat)


async def member_sync(c: Client, fx: MembersFixture) -> dict[str, float]:
    dev = await c.login(fx.members[-1])
    _, ms, size = await c.sync(dev)
    return {"ms": ms, "kib": size / 1024}


# --- 6. growth probe ------------------------------------------------------------------------

class Probe:
    """A fixed small measurement repeated as the server fills up: 20 sequential sends, a fresh
    device's initial /sync of a user in 5 rooms, one /messages page of 50, and 10 registrations."""

    def __init__(self, c: Client) -> None:
        self.c = c
        self.user: User | None = None

    async def run(self) -> dict[str, float]:
        c = self.c
        if self.user is None:
            self.user, = await c.users(1)
            self.rooms = await c.create_rooms(self.user, 5)
            await bounded((c.send(self.user, r, f"seed {i}") for r in self.rooms for i in range(5)), 5)
        send = [(await c.send(self.user, self.rooms[i % 5], f"probe {i}"))[1] for i in range(20)]
        dev = await c.login(self.user)
        _, sync_ms, _ = await c.sync(dev)
        _, msg_ms = await c.messages(self.user, self.rooms[0], None, 50)
        reg = []
        for _ in range(10):
            t0 = time.perf_counter()
            await c.register()
            reg.append((time.perf_counter() - t0) * 1000)
        return {"users": c.users_registered, "events": c.events_written, "send_p50": pct(send, 50),
                "send_p95": pct(send, 95), "sync_ms": sync_ms, "messages_ms": msg_ms, "register_p50": pct(reg, 50)}


async def fill_users(c: Client, total: int) -> None:
    if c.users_registered < total:
        await c.users(total - c.users_registered)


Measure = Callable[[], Awaitable[dict[str, Any]]]
