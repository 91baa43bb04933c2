"""Stream positions and other generated ids.

One growing stream position orders every persisted change a sync can see (events, account
data, receipts). A position is allocated inside the transaction that writes it; on PostgreSQL
that transaction first takes a transaction-scoped advisory lock shared by every worker, so
positions commit in increasing order across processes and "the highest committed position" is
a safe sync token. Within a process, `current()` still only advances past positions whose write
has finished (committed or abandoned).
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from homeserver.storage.database import Conn, Database

STREAM_WRITE_LOCK = 0x70617231  # advisory lock key shared by every worker's stream writes


class StreamTracker:
    def __init__(self, db: Database, name: str, seed_sql: str) -> None:
        self._db = db
        self._name = name
        self._seed_sql = seed_sql
        self._next = 0
        self._max_done = 0
        self._in_flight: list[int] = []
        self._finished: set[int] = set()
        self._notes: dict[int, object] = {}
        #: Told of every finished position (in finishing order) with what its writer noted it
        #: held, or None when nothing was noted or the write failed: the recent-changes log.
        self.on_finish: Callable[[int, object | None], None] | None = None

    async def open(self) -> None:
        seed = await self._db.fetchval(self._seed_sql) or 0
        if self._db.dialect == "postgres":
            # Keep the sequence ahead of anything already stored.
            cur = await self._db.fetchval(f"SELECT last_value FROM {self._name}")
            if cur < seed:
                await self._db.fetchval(f"SELECT setval('{self._name}', $1)", seed)
        self._next = seed
        self._max_done = seed

        self._remote_max = 0

    async def _allocate(self, c: Conn) -> int:
        if self._db.dialect == "postgres":
            await c.execute("SELECT pg_advisory_xact_lock($1)", STREAM_WRITE_LOCK)
            pos = int(await c.fetchval(f"SELECT nextval('{self._name}')"))
        else:
            self._next += 1
            pos = self._next
        heapq.heappush(self._in_flight, pos)
        return pos

    def _finish(self, pos: int) -> None:
        self._finished.add(pos)
        while self._in_flight and self._in_flight[0] in self._finished:
            done = heapq.heappop(self._in_flight)
            self._finished.discard(done)
            self._max_done = max(self._max_done, done)
        if not self._in_flight:
            self._max_done = max(self._max_done, pos)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[tuple[Conn, int]]:
        """A transaction with a freshly allocated stream position; finished when it exits."""
        pos: int | None = None
        committed = False
        try:
            async with self._db.transaction() as c:
                pos = await self._allocate(c)
                yield c, pos
            committed = True
        finally:
            if pos is not None:
                note = self._notes.pop(pos, None)
                self._finish(pos)
                if self.on_finish is not None:
                    self.on_finish(pos, note if committed else None)

    def note(self, pos: int, what: object) -> None:
        """Say what the write at `pos` (still open) holds; reported with the position once it
        commits. A write that notes nothing is reported as unknown."""
        self._notes[pos] = what

    def current(self) -> int:
        """Highest position below which all writes have finished (ours, or announced by peers)."""
        if self._in_flight:
            local = min(self._max_done, self._in_flight[0] - 1)
        else:
            local = self._max_done
        return max(local, self._remote_max)

    def advance_remote(self, pos: int) -> bool:
        """Another worker committed `pos` (it holds the write lock in order). True if new."""
        if pos > self._remote_max and pos > self.current():
            self._remote_max = pos
            return True
        self._remote_max = max(self._remote_max, pos)
        return False

    async def refresh_from_db(self) -> bool:
        """Re-read the committed head (after a bus outage, or as a periodic safety net).

        While no worker holds the write lock, the sequence's last value is committed (or was
        rolled back, which only leaves a harmless gap)."""
        if self._db.dialect != "postgres":
            return False
        async with self._db.transaction() as c:
            if not await c.fetchval("SELECT pg_try_advisory_xact_lock($1)", STREAM_WRITE_LOCK):
                return False
            head = await c.fetchval(f"SELECT last_value FROM {self._name}")
        return self.advance_remote(int(head or 0))


class Counter:
    """A plain unique-id source (state groups, filters): no ordering guarantees needed."""

    def __init__(self, db: Database, name: str, seed_sql: str) -> None:
        self._db = db
        self._name = name
        self._seed_sql = seed_sql
        self._next = 0

    async def open(self) -> None:
        seed = await self._db.fetchval(self._seed_sql) or 0
        if self._db.dialect == "postgres":
            cur = await self._db.fetchval(f"SELECT last_value FROM {self._name}")
            if cur < seed:
                await self._db.fetchval(f"SELECT setval('{self._name}', $1)", seed)
        self._next = seed

    async def next(self, c: Conn | None = None) -> int:
        """`c`: the caller's open transaction, if any (never take a second pool connection
        while holding one)."""
        if self._db.dialect == "postgres":
            return int(await (c or self._db).fetchval(f"SELECT nextval('{self._name}')"))
        self._next += 1
        return self._next
