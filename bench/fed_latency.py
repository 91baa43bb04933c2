"""Federation speed on loopback, Parley and Synapse side by side (issue 10 §5):

- one-way delivery Parley → Synapse, Synapse → Parley, Parley → Parley and Synapse → Synapse (the
  reference): the receiving user's long-poll /sync is already parked on their server; the figure
  is the time from the sender's PUT /send to that /sync answering with the message;
- remote join latency for the same four pairs: a user of one server joins a fresh public room of
  the other (POST /join, which answers once the join is done); the figure is that round trip;
- joining a Synapse room of `--members` members and `--events` events, from Parley and (the
  reference) from a second Synapse.

The servers are the federation test peers (tests/federation/peers.py: TLS with a test CA, loopback
allow-listed, SQLite), each in a temp dir. Usage:
`.venv/bin/python -m bench.fed_latency [-n 50] [--joins 20] [--members 500] [--events 2000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.synapse_venv import ensure_synapse  # noqa: E402
from tests.federation.peers import Peer, make_test_ca, start_parley, start_synapse  # noqa: E402

V3 = "/_matrix/client/v3"


class User:
    def __init__(self, http: httpx.AsyncClient, peer: Peer) -> None:
        self.http = http
        self.peer = peer
        self.token = ""
        self.user_id = ""
        self.since: str | None = None

    async def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        resp = await self.http.request(method, f"{self.peer.client_base}{V3}{path}", json=body,
                                       params=params or None, headers=headers, timeout=60)
        resp.raise_for_status()
        return resp.json()

    async def register(self, sync: bool = True) -> User:
        got = await self.call("POST", "/register", {"username": f"b{secrets.token_hex(4)}", "password": "pw-bench-1",
                                                    "auth": {"type": "m.login.dummy"}})
        self.token, self.user_id = got["access_token"], got["user_id"]
        if sync:
            self.since = (await self.call("GET", "/sync", timeout=0))["next_batch"]
        return self

    async def wait_for(self, room: str, body: str) -> None:
        while True:
            got = await self.call("GET", "/sync", since=self.since, timeout=30_000)
            self.since = got["next_batch"]
            events = got.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {}).get("events", [])
            if any(e.get("content", {}).get("body") == body for e in events):
                return


async def one_way(sender: User, receiver: User, room: str, n: int) -> list[float]:
    out = []
    for i in range(n + 3):  # the first three warm connections and caches up, and are not counted
        body = f"latency {i} {secrets.token_hex(3)}"
        waiting = asyncio.create_task(receiver.wait_for(room, body))
        await asyncio.sleep(0.05)  # let the receiver's long-poll reach its server
        start = time.perf_counter()
        await sender.call("PUT", f"/rooms/{quote(room)}/send/m.room.message/{secrets.token_hex(8)}",
                          {"msgtype": "m.text", "body": body})
        await asyncio.wait_for(waiting, 60)
        if i >= 3:
            out.append((time.perf_counter() - start) * 1000)
    return out


async def joined(creator: User, joiner: User) -> str:
    room = (await creator.call("POST", "/createRoom", {"preset": "public_chat"}))["room_id"]
    await joiner.call("POST", f"/join/{quote(room)}", {}, server_name=creator.peer.server_name)
    while joiner.user_id not in (await creator.call("GET", f"/rooms/{quote(room)}/joined_members"))["joined"]:
        await asyncio.sleep(0.1)
    return str(room)


def summary(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return f"| {name} | {len(ms)} | {statistics.median(ms):.1f} | {p95:.1f} |"


async def join_latency(creator: User, joiner: User, n: int) -> list[float]:
    """Round trip of POST /join into a fresh public room of the other server, `n` times (after
    one unmeasured warm-up)."""
    out = []
    for i in range(n + 1):
        room = (await creator.call("POST", "/createRoom", {"preset": "public_chat"}))["room_id"]
        start = time.perf_counter()
        await joiner.call("POST", f"/join/{quote(room)}", {}, server_name=creator.peer.server_name)
        if i:
            out.append((time.perf_counter() - start) * 1000)
    return out


async def big_room(http: httpx.AsyncClient, host: Peer, members: int, events: int) -> tuple[User, str, float]:
    """A public room on `host` with `members` members (one of them the creator) and about `events`
    events in all; returns its creator, its ID and the seconds it took to build."""
    start = time.perf_counter()
    owner = await User(http, host).register()
    room = str((await owner.call("POST", "/createRoom", {"preset": "public_chat", "name": "big"}))["room_id"])
    gate = asyncio.Semaphore(8)

    async def member() -> None:
        async with gate:
            u = await User(http, host).register(sync=False)
            await u.call("POST", f"/rooms/{quote(room)}/join", {})

    await asyncio.gather(*(member() for _ in range(members - 1)))
    messages = max(0, events - members - 6)  # the creation's own events and the joins count too

    async def send(i: int) -> None:
        async with gate:
            await owner.call("PUT", f"/rooms/{quote(room)}/send/m.room.message/big{i}",
                             {"msgtype": "m.text", "body": f"filler {i}"})

    await asyncio.gather(*(send(i) for i in range(messages)))
    return owner, room, time.perf_counter() - start


async def timed_join(joiner: User, room: str, via: str) -> float:
    start = time.perf_counter()
    await joiner.call("POST", f"/join/{quote(room)}", {}, server_name=via)
    return time.perf_counter() - start


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=50, help="messages per delivery direction")
    ap.add_argument("--joins", type=int, default=20, help="joins per pair")
    ap.add_argument("--members", type=int, default=500, help="members of the big Synapse room (0: skip it)")
    ap.add_argument("--events", type=int, default=2000, help="events of the big Synapse room")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="parley-fedlat-"))
    peers: list[Peer] = []
    big: list[str] = []
    try:
        ca = make_test_ca(tmp / "tls")
        for name, start_peer in (("parley-a", start_parley), ("parley-b", start_parley),
                                 ("synapse-a", start_synapse), ("synapse-b", start_synapse)):
            peers.append(start_peer(tmp / name, ca))
        par_a, par_b, syn_a, syn_b = peers
        async with httpx.AsyncClient() as http:
            alice = await User(http, par_a).register()
            dave = await User(http, par_b).register()
            bob = await User(http, syn_a).register()
            carol = await User(http, syn_b).register()
            pairs = [("Parley → Synapse", alice, bob), ("Synapse → Parley", bob, alice),
                     ("Parley → Parley", alice, dave), ("Synapse → Synapse (reference)", bob, carol)]
            delivery = [summary(name, await one_way(s, r, await joined(s, r), args.n)) for name, s, r in pairs]
            # "X → Y": a user of X joins a room that lives on Y.
            joins = [summary("Parley → Synapse room", await join_latency(bob, alice, args.joins)),
                     summary("Synapse → Parley room", await join_latency(alice, bob, args.joins)),
                     summary("Parley → Parley room", await join_latency(dave, alice, args.joins)),
                     summary("Synapse → Synapse room (reference)", await join_latency(carol, bob, args.joins))]
            if args.members:
                _, room, built = await big_room(http, syn_a, args.members, args.events)
                parley_s = await timed_join(await User(http, par_a).register(sync=False), room, syn_a.server_name)
                synapse_s = await timed_join(await User(http, syn_b).register(sync=False), room, syn_a.server_name)
                big = [f"Joining a Synapse room of {args.members} members and ~{args.events} events "
                       f"(built in {built:.0f} s):",
                       "| joiner | s |", "|---|---|",
                       f"| Parley | {parley_s:.2f} |", f"| Synapse (reference) | {synapse_s:.2f} |"]
    finally:
        for p in peers:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    version = subprocess.run([str(ensure_synapse()), "-c", "import synapse; print(synapse.__version__)"],
                             capture_output=True, text=True, check=False).stdout.split(" ")[0].strip()
    print(f"Synapse {version}; all servers on SQLite, TLS federation on loopback.\n")
    print(f"One-way federation delivery (send → the other server's /sync), {args.n} messages, ms")
    print("| direction | n | p50 | p95 |")
    print("|---|---|---|---|")
    print("\n".join(delivery))
    print(f"\nRemote join (POST /join round trip into a fresh public room), {args.joins} joins, ms")
    print("| joiner → room's server | n | p50 | p95 |")
    print("|---|---|---|---|")
    print("\n".join(joins))
    if big:
        print()
        print("\n".join(big))


if __name__ == "__main__":
    asyncio.run(main())
