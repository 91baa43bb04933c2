"""Database facade: one async API over SQLite (embedded) and PostgreSQL (asyncpg).

SQL is written once, in PostgreSQL's `$1` placeholder style; the SQLite adapter rewrites the
placeholders. Both dialects understand `ON CONFLICT`, `RETURNING` and the column types used in
the migrations (TEXT, BIGINT, INTEGER, BOOLEAN stored as INTEGER on SQLite).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

Row = dict[str, Any]

_PLACEHOLDER = re.compile(r"\$(\d+)")
LOCK_POOL_SIZE = 32
MIGRATION_LOCK = 0x70617230  # advisory lock key: one migrating worker at a time
# PRAGMA synchronous values. In WAL mode NORMAL may lose the last commits on power loss;
# FULL syncs the WAL at every commit, so a 200 (sent after the commit) survives it.
SQLITE_SYNCHRONOUS = ("off", "normal", "full", "extra")


IN_CHUNK = 500


def chunks(items: Sequence[Any], size: int = IN_CHUNK) -> list[Sequence[Any]]:
    """Split a long IN (...) list so that no statement exceeds the parameter limits."""
    return [items[i:i + size] for i in range(0, len(items), size)]


def placeholders(first: int, count: int) -> str:
    """`$first,$first+1,...`: the placeholders of an IN (...) list."""
    return ",".join(f"${n}" for n in range(first, first + count))


class Conn(Protocol):
    """What a store sees inside a transaction (or for a single autocommit statement)."""

    async def execute(self, sql: str, *args: Any) -> None: ...
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...
    async def fetchval(self, sql: str, *args: Any) -> Any: ...


class Database:
    dialect: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    def transaction(self) -> Any:  # async context manager yielding Conn
        raise NotImplementedError

    def room_lock(self, room_id: str) -> Any:
        """Serialize writers of one room (in-process lock; advisory lock on PostgreSQL)."""
        raise NotImplementedError

    @asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[None]:
        """Held while the schema is checked and migrated. SQLite is one process's file."""
        yield

    def pool_stats(self) -> dict[str, tuple[int, int]]:
        """Connections per pool: name -> (open, idle). For the metrics endpoint."""
        return {}

    # Convenience single-statement helpers (each its own transaction).
    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self.transaction() as c:
            return await c.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self.transaction() as c:
            return await c.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self.transaction() as c:
            return await c.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> None:
        async with self.transaction() as c:
            await c.execute(sql, *args)


# --------------------------------------------------------------------------- SQLite


class _SqliteConn:
    """A transaction on the writer connection. Statements whose results nobody reads are queued
    and run together with the next read or the COMMIT, in one hop to the SQLite thread (a hop
    costs more than most statements)."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self.pending: list[tuple[str, Any, bool]] = [("BEGIN IMMEDIATE", (), False)]
        self.begun = False

    def _drain(self, c: sqlite3.Connection) -> None:
        pending, self.pending = self.pending, []
        for sql, args, many in pending:
            if many:
                c.executemany(sql, args)
            else:
                c.execute(sql, args)
            if sql == "BEGIN IMMEDIATE":
                self.begun = True

    async def execute(self, sql: str, *args: Any) -> None:
        _nul_free(args)
        self.pending.append((self._db._sql(sql), args, False))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        rows = list(rows)
        for row in rows:
            _nul_free(row)
        if rows:
            self.pending.append((self._db._sql(sql), rows, True))

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        _nul_free(args)
        q = self._db._sql(sql)

        def go(c: sqlite3.Connection) -> list[Row]:
            self._drain(c)
            cur = c.execute(q, args)
            cols = [d[0] for d in cur.description or ()]
            return [dict(zip(cols, r)) for r in cur.fetchall()]

        return await self._db._run_to_end(go)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        _nul_free(args)
        q = self._db._sql(sql)

        def go(c: sqlite3.Connection) -> Any:
            self._drain(c)
            r = c.execute(q, args).fetchone()
            return r[0] if r else None

        return await self._db._run_to_end(go)

    async def commit(self) -> None:
        def go(c: sqlite3.Connection) -> None:
            try:
                self._drain(c)
                if self.begun:
                    c.execute("COMMIT")
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise

        await self._db._run_to_end(go)

    async def rollback(self) -> None:
        self.pending = []
        await self._db._run_to_end(lambda c: c.in_transaction and c.execute("ROLLBACK"))


class SqliteDatabase(Database):
    """One connection, driven from a dedicated thread; writes serialize on one lock.

    SQLite allows one writer at a time anyway, so a single connection with a transaction lock
    is both the simplest and the fastest arrangement for the embedded default.
    """

    dialect = "sqlite"

    def __init__(self, path: str, synchronous: str = "full") -> None:
        if synchronous not in SQLITE_SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SQLITE_SYNCHRONOUS}")
        self.path = path
        self.synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._room_locks: dict[str, asyncio.Lock] = {}
        self._sql_cache: dict[str, str] = {}
        self._executor: Any = None
        # A second connection on its own thread serves reads outside transactions: WAL lets it
        # read the last committed state while a write transaction is open on the first.
        self._reader: sqlite3.Connection | None = None
        self._read_executor: Any = None

    def _sql(self, sql: str) -> str:
        out = self._sql_cache.get(sql)
        if out is None:
            out = _PLACEHOLDER.sub(r"?\1", sql)
            self._sql_cache[sql] = out
        return out

    async def open(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        synchronous = self.synchronous
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")

        def connect() -> sqlite3.Connection:
            c = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute(f"PRAGMA synchronous={synchronous.upper()}")
            c.execute("PRAGMA foreign_keys=ON")
            c.execute("PRAGMA busy_timeout=5000")
            return c

        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._executor, connect)
        if self.path != ":memory:":
            self._read_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-read")
            self._reader = await loop.run_in_executor(self._read_executor, connect)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await loop.run_in_executor(self._read_executor, reader.close)
            self._read_executor.shutdown(wait=True)
        if self._conn is not None:
            conn = self._conn
            self._conn = None
            await loop.run_in_executor(self._executor, conn.close)
            self._executor.shutdown(wait=True)

    async def _read(self, fn: Any) -> Any:
        if self._reader is None:
            async with self._lock:
                return await self._run(fn)
        return await asyncio.get_running_loop().run_in_executor(self._read_executor, fn, self._reader)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        _nul_free(args)
        q = self._sql(sql)

        def go(c: sqlite3.Connection) -> list[Row]:
            cur = c.execute(q, args)
            cols = [d[0] for d in cur.description or ()]
            return [dict(zip(cols, r)) for r in cur.fetchall()]

        return await self._read(go)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        _nul_free(args)
        q = self._sql(sql)

        def go(c: sqlite3.Connection) -> Any:
            r = c.execute(q, args).fetchone()
            return r[0] if r else None

        return await self._read(go)

    async def _run(self, fn: Any) -> Any:
        conn = self._conn
        assert conn is not None, "database not open"
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, conn)

    async def _run_to_end(self, fn: Any) -> Any:
        """Run on the SQLite thread and wait for it even if this task is cancelled meanwhile:
        the statement runs anyway, and the connection's transaction state must stay known."""
        fut = asyncio.ensure_future(self._run(fn))
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            await asyncio.wait([fut])
            raise

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        async with self._lock:
            conn = _SqliteConn(self)
            try:
                yield conn
            except BaseException:
                await asyncio.shield(conn.rollback())
                raise
            else:
                await conn.commit()

    async def read(self, fn: Any) -> Any:
        return await self._run(fn)

    @asynccontextmanager
    async def room_lock(self, room_id: str) -> AsyncIterator[None]:
        lock = self._room_locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            yield

    def pool_stats(self) -> dict[str, tuple[int, int]]:
        busy = 1 if self._lock.locked() else 0
        return {"writer": (int(self._conn is not None), int(self._conn is not None) - busy)}


# --------------------------------------------------------------------------- PostgreSQL


def _nul_free(args: Sequence[Any]) -> None:
    # PostgreSQL TEXT cannot hold NUL; SQLite can. Refuse it the same way on both backends.
    for a in args:
        if isinstance(a, str) and "\x00" in a:
            from homeserver.protocol.errors import MatrixError

            raise MatrixError(400, "M_INVALID_PARAM", "NUL characters are not allowed here")


class _PgConn:
    def __init__(self, conn: Any) -> None:
        self._c = conn

    async def execute(self, sql: str, *args: Any) -> None:
        _nul_free(args)
        await self._c.execute(sql, *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        for row in rows:
            _nul_free(row)
        await self._c.executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        _nul_free(args)
        return [dict(r) for r in await self._c.fetch(sql, *args)]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        _nul_free(args)
        r = await self._c.fetchrow(sql, *args)
        return dict(r) if r is not None else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        _nul_free(args)
        return await self._c.fetchval(sql, *args)


class PostgresDatabase(Database):
    dialect = "postgres"

    def __init__(self, dsn: str, min_size: int = 2, max_size: int = 10) -> None:
        self.dsn = dsn
        self._pool: Any = None
        # Room locks hold a session for the whole build-and-persist of an event, which itself
        # needs a connection: taking both from one pool could deadlock once every connection is
        # a lock holder waiting for a transaction. Lock sessions get their own pool.
        self._lock_pool: Any = None
        self._min = min_size
        self._max = max_size
        self._room_locks: dict[str, asyncio.Lock] = {}

    async def open(self) -> None:
        import asyncpg

        self._pool = await asyncpg.create_pool(self.dsn, min_size=self._min, max_size=self._max)
        self._lock_pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=LOCK_POOL_SIZE)

    async def close(self) -> None:
        if self._lock_pool is not None:
            await self._lock_pool.close()
            self._lock_pool = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[None]:
        # A session lock on a connection of its own (the lock pool), so the migration
        # transactions can use the main pool meanwhile. Waiting workers block here until the
        # first one has finished, then see every version applied.
        async with self._lock_pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)

    def pool_stats(self) -> dict[str, tuple[int, int]]:
        out = {}
        for name, pool in (("main", self._pool), ("lock", self._lock_pool)):
            if pool is not None:
                out[name] = (pool.get_size(), pool.get_idle_size())
        return out

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                yield _PgConn(conn)

    @asynccontextmanager
    async def room_lock(self, room_id: str) -> AsyncIterator[None]:
        # In-process first (cheap, fair), then a session advisory lock so that other workers
        # on the same database serialize too.
        lock = self._room_locks.setdefault(room_id, asyncio.Lock())
        async with lock:
            async with self._lock_pool.acquire() as conn:
                await conn.execute("SELECT pg_advisory_lock(hashtext($1))", room_id)
                try:
                    yield
                finally:
                    await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", room_id)


def sqlite_path(url: str) -> str:
    """sqlite:///data/x.db -> data/x.db (relative); sqlite:////srv/x.db -> /srv/x.db."""
    path = url[len("sqlite://"):]
    if path.startswith("/") and not url.startswith("sqlite:////"):
        path = path[1:]
    elif url.startswith("sqlite:////"):
        path = path[1:]
    return path or ":memory:"


def open_database(url: str, sqlite_synchronous: str = "full") -> Database:
    if url.startswith("sqlite://"):
        return SqliteDatabase(sqlite_path(url), sqlite_synchronous)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url)
    raise ValueError(f"unsupported database URL {url!r}")
