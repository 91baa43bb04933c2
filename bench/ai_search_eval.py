"""Search quality on the labelled set (tests/ai/data/search_eval.json): recall@5 and MRR of
keyword-only, vector-only and merged (reciprocal-rank fusion, as the server does) rankings,
on every vector scorer this machine has.

    .venv/bin/python -m bench.ai_search_eval [--write-vectors]

--write-vectors first recomputes the set's vectors with the local MiniLM model (the tests read
them from tests/ai/data/search_eval_vectors.npz).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile

from homeserver.storage.ai_vectors import AIVectorStore
from homeserver.storage.database import open_database
from homeserver.storage.migrate import migrate
from tests.ai.search_eval import fill, load_set, mrr, rankings, recall_at, write_vectors
from tests.conftest import _dsn_for, create_pg_database, drop_pg_database


async def main(args: argparse.Namespace) -> None:
    if args.write_vectors:
        write_vectors()
    s = load_set()
    print(f"{len(s.messages)} messages in {len(s.rooms)} channels, {len(s.queries)} queries")
    print(f"{'scorer':<20} {'method':<8} {'recall@5':>8} {'MRR':>6}")
    name = await create_pg_database()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for url in (f"sqlite:///{tmp}/eval.db", _dsn_for(name)):
                db = open_database(url)
                await db.open()
                await migrate(db)
                seen: set[str] = set()
                for prefer in (None, "numpy"):
                    store = AIVectorStore(db, prefer=prefer)
                    backend = await store.open()
                    if backend in seen:
                        continue
                    seen.add(backend)
                    await fill(store, s)
                    ranked = await rankings(store, s)
                    for method in ("keyword", "vector", "merged"):
                        print(f"{db.dialect + '/' + backend:<20} {method:<8} "
                              f"{recall_at(ranked[method], s):>8.3f} {mrr(ranked[method], s):>6.3f}")
                    await store.close()
                await db.close()
    finally:
        await drop_pg_database(name)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--write-vectors", action="store_true")
    asyncio.run(main(p.parse_args()))
