"""One-way federation delivery latency on loopback: Parley -> Synapse, Synapse -> Parley, and
Synapse -> Synapse as the reference.

For each message the receiving user's long-poll /sync is already parked on their server; the
figure is the time from the sender's PUT /send to that /sync answering with the message. The
servers are the federation test peers (tests/federation/peers.py: TLS with a test CA, loopback
allow-listed), each in a temp dir. Usage: `.venv/bin/python -m bench.fed_latency [-n 50]`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
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

    async def register(self) -> User:
        got = await self.call("POST", "/register", {"username": f"b{secrets.token_hex(4)}", "password": "pw-bench-1",
                                                    "auth": {"type": "m.login.dummy"}})
        self.token, self.user_id = got["access_token"], got["user_id"]
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


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=50)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="parley-fedlat-"))
    peers: list[Peer] = []
    try:
        ca = make_test_ca(tmp / "tls")
        parley = start_parley(tmp / "parley", ca)
        peers.append(parley)
        syn_a = start_synapse(tmp / "synapse-a", ca)
        peers.append(syn_a)
        syn_b = start_synapse(tmp / "synapse-b", ca)
        peers.append(syn_b)
        async with httpx.AsyncClient() as http:
            alice = await User(http, parley).register()
            bob = await User(http, syn_a).register()
            carol = await User(http, syn_b).register()
            mixed = await joined(alice, bob)
            both_synapse = await joined(bob, carol)
            rows = [summary("Parley → Synapse", await one_way(alice, bob, mixed, args.n)),
                    summary("Synapse → Parley", await one_way(bob, alice, mixed, args.n)),
                    summary("Synapse → Synapse (reference)", await one_way(bob, carol, both_synapse, args.n))]
    finally:
        for p in peers:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"One-way federation delivery on loopback (send → the other server's /sync), {args.n} messages, ms")
    print("| direction | n | p50 | p95 |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    asyncio.run(main())
