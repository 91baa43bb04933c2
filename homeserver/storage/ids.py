"""Stream positions and other generated ids.

One growing stream position orders every persisted change a sync can see (events, account
data). Positions are handed out before the writing transaction commits, so a position can
commit after a later one: `StreamTracker.current()` only advances to a position below which
every handed-out position has finished (committed or abandoned).
"""

from __future__ import annotations

import heapq
from contextlib import asynccontextmanager
from typing import AsyncIterator

from homeserver.storage.database import Database


class StreamTracker:
    def __init__(self, db: Database, name: str, seed_sql: str) -> None:
        self._db = db
        self._name = name
        self._seed_sql = seed_sql
        self._next = 0
        self._max_done = 0
        self._in_flight: list[int] = []
        self._finished: set[int] = set()

    async def open(self) -> None:
        seed = await self._db.fetchval(self._seed_sql) or 0
        if self._db.dialect == "postgres":
            # Keep the sequence ahead of anything already stored.
            cur = await self._db.fetchval(f"SELECT last_value FROM {self._name}")
            if cur < seed:
                await self._db.fetchval(f"SELECT setval('{self._name}', $1)", seed)
        self._next = seed
        self._max_done = seed

    async def _allocate(self) -> int:
        if self._db.dialect == "postgres":
            pos = int(await self._db.fetchval(f"SELECT nextval('{self._name}')"))
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
    async def next(self) -> AsyncIterator[int]:
        """Allocate a position for one write; it counts as finished when the block exits."""
        pos = await self._allocate()
        try:
            yield pos
        finally:
            self._finish(pos)

    def current(self) -> int:
        """Highest position below which all writes have finished."""
        if self._in_flight:
            return min(self._max_done, self._in_flight[0] - 1)
        return self._max_done


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

    async def next(self) -> int:
        if self._db.dialect == "postgres":
            return int(await self._db.fetchval(f"SELECT nextval('{self._name}')"))
        self._next += 1
        return self._next
