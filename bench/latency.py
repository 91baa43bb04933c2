"""Delivery latency: send (HTTP) -> the other user's WebSocket frame, and -> their long-poll /sync.

One worker (SQLite), and two workers (PostgreSQL + Redis: sent through one worker, received on
the other). Prints p50/p95 in milliseconds. Usage: `make latency` (N=200 by default).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.servers import start_parley, stop
from bench.workloads import Client, delivery_latency


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="parley-latency-"))
    rows = []
    try:
        for kind in ("sqlite", "workers"):
            server = await start_parley(kind, tmp / kind)
            c = Client(server)
            try:
                ws = await delivery_latency(c, args.n, websocket=True)
                sync = await delivery_latency(c, args.n)
            finally:
                await c.close()
                await stop(server)
            rows.append(f"| {server.name} | {ws['p50']:.1f} | {ws['p95']:.1f} "
                        f"| {sync['p50']:.1f} | {sync['p95']:.1f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"Delivery latency, {args.n} messages each, milliseconds")
    print("| setup | send→WebSocket p50 | p95 | send→/sync p50 | p95 |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    asyncio.run(main())
