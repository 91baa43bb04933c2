"""Message vectors for smart search (migration 033) and the nearest-neighbour query over them.

Vectors are unit-length float32, stored as raw little-endian bytes in `ai_vectors.vec`. The
query is brute force (every vector of the asked rooms is scored), done by the best scorer this
database has, detected at open:

- `sqlite-vec`: SQLite with the `sqlite-vec` package. Its `vec_distance_cosine` runs inside
  SQLite on a read-only connection of its own (WAL lets it read beside the writer), so only the
  top k rows leave the database. That connection comes from the standard `sqlite3` module when
  the Python build can load extensions, else from `apsw` (whose wheels always can).
- `pgvector`: PostgreSQL with the `vector` extension and the `embedding` column of migration 034;
  ordered by `<=>` (cosine distance) in the database.
- `numpy`: anything else. The vectors of the asked rooms are fetched as bytes and scored with one
  matrix product. (A float4[] column scored in SQL was measured at about 2 s per 10k vectors
  against 70 ms for bytes + numpy, so PostgreSQL without pgvector stores bytes too.)

All three return the same ranking: cosine similarity, ties broken by event ID
(tests/ai/test_vector_backends.py compares them on a labelled set; bench/ai_vectors.py times them).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import numpy as np

from homeserver.storage.database import Database, chunks, placeholders

log = logging.getLogger("parley.storage.ai_vectors")
BACKENDS = ("sqlite-vec", "pgvector", "numpy")


def vector_bytes(v: np.ndarray) -> bytes:
    return np.asarray(v, dtype="<f4").tobytes()


def _pg_vector_text(v: np.ndarray) -> str:
    # repr of a float32 widened to float64 round-trips it exactly through pgvector's parser.
    return "[" + ",".join(repr(float(x)) for x in np.asarray(v, dtype=np.float32)) + "]"


def _top(ids: list[str], sims: np.ndarray, k: int) -> list[tuple[str, float]]:
    order = sorted(range(len(ids)), key=lambda i: (-float(sims[i]), ids[i]))[:k] if len(ids) <= 4 * k \
        else _top_large(ids, sims, k)
    return [(ids[i], float(sims[i])) for i in order]


def _top_large(ids: list[str], sims: np.ndarray, k: int) -> list[int]:
    # argpartition first (linear), then a stable sort of the few candidates; the candidates take
    # every vector tied with the k-th so that the event-ID tie-break sees all of them.
    part = np.argpartition(-sims, k - 1)[:k]
    cutoff = float(sims[part].min())
    cand = np.nonzero(sims >= cutoff)[0]
    return sorted((int(i) for i in cand), key=lambda i: (-float(sims[i]), ids[i]))[:k]


def _sqlite_vec_path() -> str | None:
    if importlib.util.find_spec("sqlite_vec") is None:
        return None
    import sqlite_vec

    return str(sqlite_vec.loadable_path())


class _VecReader:
    """A read-only connection with sqlite-vec loaded, on a thread of its own."""

    def __init__(self, conn: Any, executor: ThreadPoolExecutor, driver: str) -> None:
        self.conn = conn
        self.executor = executor
        self.driver = driver

    @classmethod
    def open(cls, path: str) -> _VecReader | None:
        ext = _sqlite_vec_path()
        if ext is None:
            return None
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-vec")

        def connect() -> tuple[Any, str] | None:
            if hasattr(sqlite3.Connection, "enable_load_extension"):
                c = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, check_same_thread=False)
                c.enable_load_extension(True)
                c.load_extension(ext)
                c.enable_load_extension(False)
                return c, "sqlite3"
            if importlib.util.find_spec("apsw") is None:
                return None
            import apsw

            a = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
            a.enable_load_extension(True)
            a.load_extension(ext)
            a.enable_load_extension(False)
            return a, "apsw"

        try:
            got = executor.submit(connect).result()
        except Exception as e:  # noqa: BLE001 - an extension that will not load means numpy, not a failed start
            log.warning("sqlite-vec is installed but could not be loaded (%s); scoring vectors with numpy", e)
            got = None
        if got is None:
            executor.shutdown(wait=False)
            return None
        conn, driver = got
        conn.execute("PRAGMA busy_timeout=5000")
        return cls(conn, executor, driver)

    async def fetch(self, sql: str, args: list[Any]) -> list[tuple[Any, ...]]:
        def go() -> list[tuple[Any, ...]]:
            return [tuple(r) for r in self.conn.execute(sql, args).fetchall()]

        return await asyncio.get_running_loop().run_in_executor(self.executor, go)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.executor, self.conn.close)
        self.executor.shutdown(wait=True)


class AIVectorStore:
    def __init__(self, db: Database, prefer: str | None = None) -> None:
        """`prefer="numpy"` turns the database scorers off (benchmarks and the comparison test)."""
        if prefer is not None and prefer not in BACKENDS:
            raise ValueError(f"prefer must be one of {BACKENDS}")
        self.db = db
        self.prefer = prefer
        self.backend = "numpy"
        self._vec: _VecReader | None = None
        self._opened = False
        self._open_lock = asyncio.Lock()

    async def open(self) -> str:
        """Detect the scorer (idempotent); its name."""
        async with self._open_lock:
            if not self._opened:
                self.backend = await self._detect()
                self._opened = True
                log.info("smart search vectors are scored with %s", self.backend)
        return self.backend

    async def _detect(self) -> str:
        if self.prefer == "numpy":
            return "numpy"
        if self.db.dialect == "sqlite":
            path = getattr(self.db, "path", ":memory:")
            if path != ":memory:":
                self._vec = await asyncio.to_thread(_VecReader.open, path)
            return "sqlite-vec" if self._vec is not None else "numpy"
        has = await self.db.fetchval(
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = 'ai_vectors' AND column_name = 'embedding'")
        return "pgvector" if has else "numpy"

    async def close(self) -> None:
        if self._vec is not None:
            vec, self._vec = self._vec, None
            await vec.close()
        self._opened = False

    # ------------------------------------------------------------------ writes

    async def put(self, rows: list[tuple[str, str, int, str, np.ndarray, str]]) -> None:
        """(event_id, room_id, stream_ordering, model, unit vector, body); replaces earlier vectors."""
        if not rows:
            return
        await self.open()
        values = [(e, r, s, m, int(v.shape[0]), vector_bytes(v), b) for e, r, s, m, v, b in rows]
        sql = ("INSERT INTO ai_vectors (event_id, room_id, stream_ordering, model, dim, vec, body)"
               " VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (event_id) DO UPDATE SET model = excluded.model,"
               " dim = excluded.dim, vec = excluded.vec, body = excluded.body")
        if self.backend == "pgvector":
            sql = ("INSERT INTO ai_vectors (event_id, room_id, stream_ordering, model, dim, vec, body, embedding)"
                   " VALUES ($1,$2,$3,$4,$5,$6,$7,$8::text::vector) ON CONFLICT (event_id) DO UPDATE SET"
                   " model = excluded.model, dim = excluded.dim, vec = excluded.vec, body = excluded.body,"
                   " embedding = excluded.embedding")
            values = [(*t, _pg_vector_text(row[4])) for t, row in zip(values, rows)]  # type: ignore[misc]
        async with self.db.transaction() as c:
            await c.executemany(sql, values)

    async def delete(self, event_ids: list[str]) -> None:
        for part in chunks(event_ids):
            await self.db.execute(f"DELETE FROM ai_vectors WHERE event_id IN ({placeholders(1, len(part))})", *part)

    async def count(self) -> int:
        return int(await self.db.fetchval("SELECT COUNT(*) FROM ai_vectors") or 0)

    # ------------------------------------------------------------------ reads

    async def nearest(self, room_ids: list[str], model: str, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k vectors of these rooms (and model, same dimension) most similar to the unit
        vector `query`: (event_id, cosine similarity), best first, ties by event ID."""
        if not room_ids or k <= 0:
            return []
        await self.open()
        q = np.asarray(query, dtype=np.float32)
        found: list[tuple[str, float]] = []
        for part in chunks(room_ids):
            if self.backend == "sqlite-vec":
                found += await self._nearest_sqlite_vec(list(part), model, q, k)
            elif self.backend == "pgvector":
                found += await self._nearest_pgvector(list(part), model, q, k)
            else:
                found += await self._nearest_numpy(list(part), model, q, k)
        found.sort(key=lambda t: (-t[1], t[0]))
        return found[:k]

    async def _nearest_numpy(self, rooms: list[str], model: str, q: np.ndarray, k: int) -> list[tuple[str, float]]:
        rows = await self.db.fetch(
            "SELECT event_id, vec FROM ai_vectors WHERE model = $1 AND dim = $2"
            f" AND room_id IN ({placeholders(3, len(rooms))})", model, int(q.shape[0]), *rooms)
        if not rows:
            return []
        mat = np.frombuffer(b"".join(bytes(r["vec"]) for r in rows), dtype="<f4").reshape(len(rows), q.shape[0])
        return _top([r["event_id"] for r in rows], mat @ q, k)

    async def _nearest_sqlite_vec(self, rooms: list[str], model: str, q: np.ndarray,
                                  k: int) -> list[tuple[str, float]]:
        assert self._vec is not None
        marks = ",".join("?" * len(rooms))
        rows = await self._vec.fetch(
            "SELECT event_id, 1.0 - vec_distance_cosine(vec, ?) AS sim FROM ai_vectors"
            f" WHERE model = ? AND dim = ? AND room_id IN ({marks}) ORDER BY sim DESC, event_id LIMIT ?",
            [vector_bytes(q), model, int(q.shape[0]), *rooms, int(k)])
        return [(str(e), float(s)) for e, s in rows]

    async def _nearest_pgvector(self, rooms: list[str], model: str, q: np.ndarray,
                                k: int) -> list[tuple[str, float]]:
        # The query vector is parsed once (a materialized CTE), not once per row: a cast of the
        # parameter inside the expression is evaluated for every row under a generic plan.
        rows = await self.db.fetch(
            "WITH q AS MATERIALIZED (SELECT $1::text::vector AS v)"
            " SELECT event_id, embedding <=> q.v AS dist FROM ai_vectors, q"
            " WHERE model = $2 AND dim = $3 AND room_id = ANY($4::text[]) AND embedding IS NOT NULL"
            " ORDER BY dist, event_id LIMIT $5",
            _pg_vector_text(q), model, int(q.shape[0]), rooms, int(k))
        return [(str(r["event_id"]), 1.0 - float(r["dist"])) for r in rows]

    async def keyword_matches(self, room_ids: list[str], words: list[str], model: str, limit: int) -> list[str]:
        """Event IDs whose indexed text holds every word (case-insensitive), newest first: the
        keyword-only baseline of the labelled search evaluation (tests/ai/search_eval.py). Smart
        search itself takes its keyword half from the full-text index of POST /search."""
        if not words or not room_ids:
            return []
        out: list[str] = []
        for part in chunks(room_ids):
            conds = " AND ".join(f"LOWER(body) LIKE ${i + 2 + len(part)}" for i in range(len(words)))
            rows = await self.db.fetch(
                f"SELECT event_id FROM ai_vectors WHERE model = $1 AND room_id IN ({placeholders(2, len(part))})"
                f" AND {conds} ORDER BY stream_ordering DESC LIMIT {int(limit)}",
                model, *part, *(f"%{w.lower()}%" for w in words))
            out.extend(r["event_id"] for r in rows)
        return out[:limit]
