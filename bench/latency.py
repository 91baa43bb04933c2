"""Delivery latency: send (HTTP) -> the other user's WebSocket frame, and -> their long-poll /sync.

Runs on one worker (SQLite) and on two workers (PostgreSQL + Redis, sending through one worker,
receiving on the other). Prints p50/p95 in milliseconds. Usage: `make latency` (N=200 by default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import REDIS_URL, _dsn_for, create_pg_database, drop_pg_database  # noqa: E402
from tests.e2e.conftest import start_server, stop_server  # noqa: E402

V3 = "/_matrix/client/v3"
WS = "/_matrix/client/unstable/org.parley.ws"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def user(http: httpx.AsyncClient, base: str, name: str) -> dict[str, Any]:
    r = await http.post(f"{base}{V3}/register", json={"username": name, "password": "pw-" + name,
                                                       "auth": {"type": "m.login.dummy"}})
    r.raise_for_status()
    u = r.json()
    u["h"] = {"Authorization": f"Bearer {u['access_token']}"}
    return u


async def measure(send_base: str, recv_base: str, n: int) -> dict[str, list[float]]:
    async with httpx.AsyncClient(timeout=30) as http:
        alice = await user(http, send_base, "alice" + uuid.uuid4().hex[:6])
        bob = await user(http, recv_base, "bob" + uuid.uuid4().hex[:6])
        room = (await http.post(f"{send_base}{V3}/createRoom", json={"preset": "public_chat"}, headers=alice["h"])).json()["room_id"]
        (await http.post(f"{recv_base}{V3}/join/{room}", json={}, headers=bob["h"])).raise_for_status()

        async def send(i: int) -> tuple[str, float]:
            t0 = time.perf_counter()
            r = await http.put(f"{send_base}{V3}/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}",
                               json={"msgtype": "m.text", "body": f"lat {i}"}, headers=alice["h"])
            r.raise_for_status()
            return r.json()["event_id"], t0

        ws_lat: list[float] = []
        async with websockets.connect(recv_base.replace("http", "ws") + WS, additional_headers=bob["h"]) as sock:
            await sock.send(json.dumps({"type": "sync", "filter": {"room": {"timeline": {"limit": 1}}}}))
            while json.loads(await sock.recv())["type"] != "sync":
                pass
            for i in range(n):
                task = asyncio.create_task(send(i))
                while True:
                    f = json.loads(await sock.recv())
                    if f["type"] == "sync":
                        await sock.send(json.dumps({"type": "ack", "next_batch": f["next_batch"]}))
                        if f.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {}).get("events"):
                            break
                _, t0 = await task
                ws_lat.append((time.perf_counter() - t0) * 1000)
        sync_lat: list[float] = []
        flt = json.dumps({"room": {"timeline": {"limit": 1}}})
        since = (await http.get(f"{recv_base}{V3}/sync", params={"filter": flt}, headers=bob["h"])).json()["next_batch"]
        for i in range(n):
            poll = asyncio.create_task(http.get(f"{recv_base}{V3}/sync", headers=bob["h"],
                                                params={"since": since, "timeout": 30000, "filter": flt}))
            await asyncio.sleep(0.002)  # let the long-poll park before sending (measurement only)
            _, t0 = await send(i)
            resp = (await poll).json()
            sync_lat.append((time.perf_counter() - t0) * 1000)
            since = resp["next_batch"]
        return {"ws": ws_lat, "sync": sync_lat}


def row(name: str, lat: dict[str, list[float]]) -> str:
    return (f"| {name} | {pct(lat['ws'], 50):.1f} | {pct(lat['ws'], 95):.1f} | "
            f"{pct(lat['sync'], 50):.1f} | {pct(lat['sync'], 95):.1f} |")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "one").mkdir()
        proc, base = start_server(tmp / "one", f"sqlite:///{tmp}/one/p.db", server_name="lat1.parley")
        try:
            rows.append(row("1 worker (SQLite)", await measure(base, base, args.n)))
        finally:
            stop_server(proc)
        db = await create_pg_database()
        name = f"lat{uuid.uuid4().hex[:6]}.parley"
        procs = []
        try:
            for w in ("a", "b"):
                (tmp / w).mkdir()
                p, b = start_server(tmp / w, _dsn_for(db), server_name=name, PARLEY_REDIS_URL=REDIS_URL,
                                    PARLEY_SIGNING_KEY_PATH=str(tmp / "shared.key"))
                procs.append((p, b))
            rows.append(row("2 workers (PostgreSQL + Redis), send on A, receive on B",
                            await measure(procs[0][1], procs[1][1], args.n)))
        finally:
            for p, _ in procs:
                stop_server(p)
            await drop_pg_database(db)
    print(f"Delivery latency, {args.n} messages each, milliseconds")
    print("| setup | send→WebSocket p50 | p95 | send→/sync p50 | p95 |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(r)


if __name__ == "__main__":
    asyncio.run(main())
