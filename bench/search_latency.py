"""Server-side search: how fast messages are sent with the full-text index kept in the same
transaction, and how long `POST /search` takes over a channel of N messages, on SQLite (FTS5)
and PostgreSQL (tsvector + GIN).

    .venv/bin/python -m bench.search_latency [--messages 3000] [-n 30] [--backends sqlite,postgres]

The server runs in-process behind httpx's ASGI transport (no sockets: the figures are the
server's own work plus the HTTP stack). Messages are 12 words drawn from a 2,000-word
vocabulary, plus one rare word in one message of 1,000 and a common word in every tenth.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from client_api.app import build_app
from homeserver.app import Homeserver
from homeserver.protocol.signing import generate_signing_key
from homeserver.storage.stores import Stores
from tests.conftest import _dsn_for, create_pg_database, drop_pg_database, make_config

V3 = "/_matrix/client/v3"


def text(rng: random.Random, vocab: list[str], i: int) -> str:
    words = rng.choices(vocab, k=12)
    if i % 1000 == 7:
        words.append("quetzal")
    if i % 10 == 3:
        words.append("standup")
    return " ".join(words)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))] * 1000


async def run(backend: str, messages: int, n: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="parley-search-bench-"))
    pg = await create_pg_database() if backend == "postgres" else None
    url = _dsn_for(pg) if pg else f"sqlite:///{tmp}/parley.db"
    cfg = make_config(tmp, url)
    stores = await Stores.open(cfg.database)
    hs = Homeserver(cfg, stores, generate_signing_key("b1"))
    await hs.start_background()
    out: dict[str, Any] = {"backend": backend, "messages": messages}
    try:
        transport = httpx.ASGITransport(app=build_app(cfg, hs))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=60) as c:
            r = await c.post(f"{V3}/register", json={"username": "b", "password": "pw-bench-123",
                                                       "auth": {"type": "m.login.dummy"}})
            h = {"Authorization": f"Bearer {r.json()['access_token']}"}
            room = (await c.post(f"{V3}/createRoom", json={}, headers=h)).json()["room_id"]
            rng = random.Random(7)
            vocab = [f"w{i}x" for i in range(2000)]
            t0 = time.perf_counter()
            for i in range(messages):
                resp = await c.put(f"{V3}/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}", headers=h,
                                   json={"msgtype": "m.text", "body": text(rng, vocab, i)})
                assert resp.status_code == 200, resp.text
            out["send_per_s"] = messages / (time.perf_counter() - t0)

            async def timed(term: str, order: str, next_batch: str | None = None) -> tuple[float, dict[str, Any]]:
                body = {"search_categories": {"room_events": {"search_term": term, "order_by": order}}}
                params = {"next_batch": next_batch} if next_batch else None
                s = time.perf_counter()
                resp = await c.post(f"{V3}/search", json=body, headers=h, params=params)
                assert resp.status_code == 200, resp.text
                return time.perf_counter() - s, resp.json()["search_categories"]["room_events"]

            for label, term, order in [("rare word, rank", "quetzal", "rank"),
                                       ("common word, rank", "standup", "rank"),
                                       ("common word, recent", "standup", "recent"),
                                       ("two words, rank", "standup w5x", "rank")]:
                await timed(term, order)  # warm the caches once
                times = []
                for _ in range(n):
                    dt, res = await timed(term, order)
                    times.append(dt)
                out[label] = (statistics.median(times) * 1000, pct(times, 0.95), res["count"])
            _, first = await timed("standup", "recent")
            times = []
            for _ in range(n):
                dt, _ = await timed("standup", "recent", first["next_batch"])
                times.append(dt)
            out["common word, recent, page 2"] = (statistics.median(times) * 1000, pct(times, 0.95), first["count"])
    finally:
        await hs.close()
        if pg:
            await drop_pg_database(pg)
    return out


async def main(messages: int, n: int, backends: list[str]) -> None:
    rows = [await run(b, messages, n) for b in backends]
    print(f"| search over {messages} messages | " + " | ".join(r["backend"] for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    print("| sends/s (index kept in the send's transaction) | " +
          " | ".join(f"{r['send_per_s']:.0f}" for r in rows) + " |")
    for label in ("rare word, rank", "common word, rank", "common word, recent", "common word, recent, page 2",
                  "two words, rank"):
        cells = [f"{r[label][0]:.1f} / {r[label][1]:.1f} ms (count {r[label][2]})" for r in rows]
        print(f"| {label}: p50 / p95 | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--backends", default="sqlite,postgres")
    a = ap.parse_args()
    asyncio.run(main(a.messages, a.n, a.backends.split(",")))
