"""Nearest-neighbour query time of smart search per vector scorer, at 10k and 100k vectors.

    .venv/bin/python -m bench.ai_vectors [--sizes 10000,100000] [--queries 15] [--rooms 50]

Random unit vectors of the local model's size (384) are stored through the real store
(storage/ai_vectors.py) in a SQLite file and a PostgreSQL database; a user joined to every room
asks for the top 40 (what a search with limit 10 asks for), so every vector is scored. Each
scorer this machine has is timed: sqlite-vec (in SQLite), pgvector (if the PostgreSQL server
has it) and numpy over either database. Medians and p90 of --queries queries, after one warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

import numpy as np

from homeserver.storage.ai_vectors import AIVectorStore
from homeserver.storage.database import open_database
from homeserver.storage.migrate import migrate
from tests.conftest import _dsn_for, create_pg_database, drop_pg_database

DIM = 384
MODEL = "bench"


async def bench_db(url: str, n: int, rooms: list[str], queries: int, rng: np.random.Generator) -> None:
    db = open_database(url)
    await db.open()
    await migrate(db)
    writer = AIVectorStore(db)
    await writer.open()
    t0 = time.perf_counter()
    for start in range(0, n, 2000):
        m = rng.standard_normal((min(2000, n - start), DIM)).astype(np.float32)
        m /= np.linalg.norm(m, axis=1, keepdims=True)
        await writer.put([(f"$e{start + i}", rooms[(start + i) % len(rooms)], start + i, MODEL, v, "text")
                          for i, v in enumerate(m)])
    fill_s = time.perf_counter() - t0
    qs = rng.standard_normal((queries + 1, DIM)).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    tops: dict[str, list[list[str]]] = {}
    for prefer in (None, "numpy"):
        store = writer if prefer is None else AIVectorStore(db, prefer=prefer)
        backend = await store.open()
        if backend in tops:
            continue
        times = []
        tops[backend] = []
        for i, q in enumerate(qs):
            t = time.perf_counter()
            got = await store.nearest(rooms, MODEL, q, 40)
            if i:
                times.append((time.perf_counter() - t) * 1000)
                tops[backend].append([e for e, _ in got[:10]])
        times.sort()
        print(f"{db.dialect + '/' + backend:<20} {n:>7} vectors  median {statistics.median(times):7.1f} ms"
              f"  p90 {times[int(len(times) * 0.9) - 1]:7.1f} ms   (stored in {fill_s:.0f} s)")
        if store is not writer:
            await store.close()
    first = next(iter(tops.values()))
    same = all(t == first for t in tops.values())
    print(f"{'':<20} same top 10 on every scorer: {same}")
    await writer.close()
    await db.close()


async def main(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(7)
    rooms = [f"!r{i}:bench" for i in range(args.rooms)]
    for n in (int(x) for x in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            await bench_db(f"sqlite:///{tmp}/v.db", n, rooms, args.queries, rng)
        name = await create_pg_database()
        try:
            await bench_db(_dsn_for(name), n, rooms, args.queries, rng)
        finally:
            await drop_pg_database(name)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--queries", type=int, default=15)
    p.add_argument("--rooms", type=int, default=50)
    asyncio.run(main(p.parse_args()))
