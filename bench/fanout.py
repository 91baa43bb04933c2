"""Fan-out at team scale: N connected clients, one sender at a steady rate, how fast every message
reaches every client.

Clients are devices: users get `--devices` devices each (10 by default, as a team member with a
phone, a laptop and stale sessions). In the one-room layout every user is in one room; in the
20-room layout users are spread evenly over 20 rooms and the sender (a member of all of them)
sends round-robin, so one message reaches N/20 clients. Parley is measured over its WebSocket
stream and over long-poll `/sync`; Synapse over long-poll `/sync`.

Reported per (server, transport, layout, N): delivery latency p50/p95/p99/max (send start -> the
client has parsed the message), missed deliveries (not received within `--grace` seconds of the
last send), the server's CPU seconds and peak RSS over the run, and the sender's p95.

All clients live in this one process: on a 2-core machine the load generator competes with the
server for CPU, and the machine may be shared, so compare rows of one run (Parley and Synapse
are run one after the other at each size, same generator), not across runs.

    .venv/bin/python -m bench.fanout --sizes 10,50,100 --layouts 1,20 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.servers import Server, proc_status, start_parley, start_synapse, stop  # noqa: E402
from bench.workloads import V3, WS, Client, User, bounded, pct  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FILTER = {"room": {"timeline": {"limit": 20}}}


@dataclass
class Run:
    sent: dict[str, float] = field(default_factory=dict)  # body tag -> send start (perf_counter)
    expected: dict[str, int] = field(default_factory=dict)  # body tag -> clients that should get it
    got: dict[str, int] = field(default_factory=dict)
    lat: list[float] = field(default_factory=list)
    send_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def seen(self, body: object, now: float) -> None:
        if isinstance(body, str) and body in self.sent:
            self.lat.append((now - self.sent[body]) * 1000)
            self.got[body] = self.got.get(body, 0) + 1


def _bodies(resp: dict[str, Any]) -> list[object]:
    out = []
    for section in resp.get("rooms", {}).get("join", {}).values():
        for ev in section.get("timeline", {}).get("events", ()):
            if ev.get("type") == "m.room.message":
                out.append(ev.get("content", {}).get("body"))
    return out


async def _longpoll_client(http: aiohttp.ClientSession, u: User, run: Run, ready: asyncio.Event,
                           stop_at: asyncio.Event, count: list[int]) -> None:
    params = {"filter": json.dumps(FILTER), "timeout": "0"}
    since = None
    first = True
    while not stop_at.is_set():
        if since:
            params["since"] = since
            params["timeout"] = "30000"
        try:
            async with http.get(f"{u.base}{V3}/sync", params=params, headers=u.h) as r:
                raw = await r.read()
                if r.status != 200:
                    run.errors.append(f"/sync {r.status}: {raw[:200]!r}")
                    await asyncio.sleep(0.5)  # back off before retrying an error (load generator)
                    continue
        except (TimeoutError, aiohttp.ClientError) as e:
            run.errors.append(f"/sync: {e!r}")
            continue
        now = time.perf_counter()
        resp = orjson.loads(raw)
        since = resp["next_batch"]
        first = _received(resp, first, now, run, count, ready)


def _received(resp: dict[str, Any], first: bool, now: float, run: Run, count: list[int],
              ready: asyncio.Event) -> bool:
    """One sync answer (long-poll body or WebSocket frame). The first is the initial sync: it
    counts the client as connected (`ready` once all `count[1]` are); later ones deliver."""
    if first:
        count[0] += 1
        if count[0] == count[1]:
            ready.set()
    else:
        for body in _bodies(resp):
            run.seen(body, now)
    return False


async def _ws_client(u: User, run: Run, ready: asyncio.Event, stop_at: asyncio.Event, count: list[int]) -> None:
    url = u.base.replace("http", "ws", 1) + WS
    async with websockets.connect(url, additional_headers=u.h, max_size=None, open_timeout=120) as sock:
        await sock.send(json.dumps({"type": "sync", "filter": FILTER}))
        first = True
        while not stop_at.is_set():
            try:
                raw = await asyncio.wait_for(sock.recv(), 1.0)
            except TimeoutError:
                continue
            now = time.perf_counter()
            f = orjson.loads(raw)
            if f.get("type") != "sync":
                if f.get("type") == "ping":
                    await sock.send('{"type":"pong"}')
                continue
            await sock.send(orjson.dumps({"type": "ack", "next_batch": f["next_batch"]}).decode())
            first = _received(f, first, now, run, count, ready)


async def _setup(c: Client, n_clients: int, devices: int, n_rooms: int) -> tuple[User, list[str], list[User]]:
    sender = (await c.users(1))[0]
    rooms = await c.create_rooms(sender, n_rooms, 5)
    n_users = max(1, -(-n_clients // devices))
    users = await c.users(n_users, 10)
    await bounded((c.join(u, rooms[i % n_rooms]) for i, u in enumerate(users)), 10)
    clients: list[User] = []
    for u in users:
        clients.append(u)
    extra = [u for u in users for _ in range(devices - 1)][: max(0, n_clients - len(users))]
    clients += await bounded((c.login(u) for u in extra), 10)
    return sender, rooms, clients[:n_clients]


async def measure(server: Server, transport: str, n_clients: int, n_rooms: int, devices: int,
                  seconds: float, rate: float, grace: float) -> dict[str, Any]:
    c = Client(server)
    run = Run()
    try:
        sender, rooms, clients = await _setup(c, n_clients, devices, n_rooms)
        room_of = {u.token: next(iter(u.rooms)) for u in clients}
        per_room: dict[str, int] = {}
        for u in clients:
            per_room[room_of[u.token]] = per_room.get(room_of[u.token], 0) + 1
        ready, stop_at = asyncio.Event(), asyncio.Event()
        count = [0, len(clients)]
        conn = aiohttp.TCPConnector(limit=0, force_close=False)
        http = aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=300))
        tasks = []
        for i, u in enumerate(clients):
            if transport == "ws":
                tasks.append(asyncio.create_task(_ws_client(u, run, ready, stop_at, count)))
            else:
                tasks.append(asyncio.create_task(_longpoll_client(http, u, run, ready, stop_at, count)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # stagger connection set-up (load generator pacing)
        await asyncio.wait_for(ready.wait(), 600)
        cpu0 = sum(proc_status(p)["cpu_ticks"] for p in server.pids)
        gen0 = time.process_time()  # the load generator's own CPU: it shares the machine's cores
        t_start = time.perf_counter()
        total = int(seconds * rate)

        async def send(i: int) -> None:
            tag = f"fan-{uuid.uuid4().hex[:10]}"
            room = rooms[i % len(rooms)]
            run.expected[tag] = per_room.get(room, 0)
            run.sent[tag] = time.perf_counter()
            try:
                _, ms = await c.send(sender, room, tag)
                run.send_ms.append(ms)
            except Exception as e:  # noqa: BLE001 - recorded in the report
                run.errors.append(f"send: {e}")

        sends = []
        for i in range(total):
            # a steady rate: each send starts on its own schedule, whatever earlier sends take
            delay = t_start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sends.append(asyncio.create_task(send(i)))
        await asyncio.gather(*sends)
        want = sum(run.expected.values())
        deadline = time.perf_counter() + grace
        while sum(run.got.values()) < want and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)  # the grace period for late deliveries (measurement window)
        cpu1 = sum(proc_status(p)["cpu_ticks"] for p in server.pids)
        gen_cpu = time.process_time() - gen0
        elapsed = time.perf_counter() - t_start
        stop_at.set()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        await http.close()
        rss = max(proc_status(p)["VmHWM"] for p in server.pids)
        got = sum(min(run.got.get(k, 0), v) for k, v in run.expected.items())
        tick = os.sysconf("SC_CLK_TCK")
        return {
            "server": server.name, "transport": transport, "clients": len(clients), "rooms": n_rooms,
            "messages": total, "deliveries": want,
            "p50": pct(run.lat, 50), "p95": pct(run.lat, 95), "p99": pct(run.lat, 99),
            "max": max(run.lat) if run.lat else float("nan"),
            "missed": want - got, "missed_pct": 100 * (want - got) / want if want else 0.0,
            "cpu_s": (cpu1 - cpu0) / tick, "cpu_us_per_delivery": 1e6 * (cpu1 - cpu0) / tick / max(1, got),
            "elapsed_s": elapsed, "generator_cpu_s": gen_cpu, "peak_rss_mib": rss / 1024,
            "send_p95": pct(run.send_ms, 95),
            "errors": run.errors[:5], "error_count": len(run.errors),
        }
    finally:
        await c.close()


def _row(r: dict[str, Any]) -> str:
    return (f"| {r['server']} | {r['transport']} | {r['rooms']} | {r['clients']} | {r['p50']:.0f} | {r['p95']:.0f} "
            f"| {r['p99']:.0f} | {r['max']:.0f} | {r['missed']} ({r['missed_pct']:.1f}%) | {r['cpu_s']:.1f} "
            f"| {r['cpu_us_per_delivery']:.0f} | {r.get('generator_cpu_s', float('nan')):.1f} / {r['elapsed_s']:.0f} "
            f"| {r['peak_rss_mib']:.0f} | {r['send_p95']:.0f} |")


HEADER = ("| server | transport | rooms | clients | p50 ms | p95 ms | p99 ms | max ms | missed | server CPU s "
          "| CPU µs/delivery | generator CPU s / run s | peak RSS MiB | send p95 ms |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,50,100")
    ap.add_argument("--layouts", default="1,20", help="room counts: 1 (everyone in one room), 20")
    ap.add_argument("--setups", default="parley-ws,parley-poll,synapse")
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=float, default=5)
    ap.add_argument("--grace", type=float, default=15)
    ap.add_argument("--label", default="")
    ap.add_argument("--base-root", default="",
                    help="another checkout (e.g. `git archive` of the commit before) run as the base-ws / base-poll "
                         "setups, interleaved with this one so both meet the same machine load")
    args = ap.parse_args()
    setups = args.setups.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="parley-fanout-"))
    rows: list[dict[str, Any]] = []
    stamp = time.strftime("%Y%m%d-%H%M", time.gmtime())
    load_before = os.getloadavg()
    try:
        for n in [int(s) for s in args.sizes.split(",")]:
            for layout in [int(x) for x in args.layouts.split(",")]:
                for setup in setups:
                    # a fresh server per row: earlier rows' users and rooms do not weigh on later ones
                    d = tmp / f"{setup}-{n}-{layout}"
                    if setup == "synapse":
                        server = await start_synapse(d)
                    elif setup.startswith("base-"):
                        server = await start_parley("sqlite", d, Path(args.base_root))
                        server.name = "Parley before (SQLite)"
                    else:
                        server = await start_parley("sqlite", d)
                    try:
                        r = await measure(server, "ws" if setup.endswith("-ws") else "long-poll", n, layout,
                                          args.devices, args.seconds, args.rate, args.grace)
                    except Exception as e:  # noqa: BLE001 - a failed row is reported, the run goes on
                        r = {"server": server.name, "transport": setup, "clients": n, "rooms": layout,
                             "failed": repr(e)[:300]}
                    finally:
                        await stop(server)
                    rows.append(r)
                    print(_row(r) if "failed" not in r else f"| {setup} | {n} | {layout} | failed: {r['failed']} |",
                          flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    name = f"fanout-{stamp}{'-' + args.label if args.label else ''}"
    meta = {"args": vars(args), "nproc": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg(),
            "python": platform.python_version(), "rows": rows}
    (RESULTS / f"{name}.json").write_text(json.dumps(meta, indent=1))
    lines = [f"# Fan-out {stamp} {args.label}", "",
             f"{args.devices} devices per user, {args.rate} msg/s for {args.seconds} s, grace {args.grace} s; "
             f"{os.cpu_count()} cores, load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} "
             "(the machine is shared).", "", HEADER]
    lines += [_row(r) for r in rows if "failed" not in r]
    lines += [f"| {r['server']} | {r['transport']} | {r['rooms']} | {r['clients']} | failed: {r['failed']} |"
              for r in rows if "failed" in r]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
