"""Leader leases: exactly one worker holds a named role (the federation sender, the push
delivery queue, ...) and another takes it over when the holder dies.

On PostgreSQL the lease is a session advisory lock held on a connection of its own (not from a
pool): PostgreSQL releases it the moment that session ends, so a worker that crashes, is killed
or loses its connection frees the role without any timeout bookkeeping. The holder pings its
session every `check_s` seconds and stops its work as soon as the session is gone; the other
workers try the lock every `retry_s` seconds.

On SQLite there is one process per database file, so the role is always held (the in-process
`asyncio.Lock` only keeps two runs of the same role in one process apart).

Usage: `await LeaderLease(db, "federation-sender").run(work)` runs `work()` while this worker
holds the role; when `work` returns or raises, the lease is released and the call returns
(raising what `work` raised). `run_forever(work)` restarts `work` on a fresh lease after a loss
or a failure, until cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.storage.database import Database, PostgresDatabase

log = logging.getLogger("parley.lease")

Work = Callable[[], Awaitable[None]]
_local_locks: dict[tuple[int, str], asyncio.Lock] = {}


class LeaseLost(Exception):
    """The session holding the lease ended while the work was running."""


def lease_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a role name."""
    digest = hashlib.sha256(b"parley.lease." + name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class LeaderLease:
    def __init__(self, db: Database, name: str, *, retry_s: float = 2.0, check_s: float = 2.0) -> None:
        self.db = db
        self.name = name
        self.retry_s = retry_s
        self.check_s = check_s
        self.held = False

    async def run(self, work: Work) -> None:
        """Wait for the role, run `work` while holding it, release it afterwards. Raises
        `LeaseLost` (and cancels `work`) if the lease's session ends meanwhile."""
        lock = _local_locks.setdefault((id(self.db), self.name), asyncio.Lock())
        async with lock:
            if isinstance(self.db, PostgresDatabase):
                await self._run_postgres(work)
            else:
                self.held = True
                try:
                    await work()
                finally:
                    self.held = False

    async def run_forever(self, work: Work, *, backoff_s: float = 1.0) -> None:
        """Hold the role and run `work` for as long as this worker lives: after the lease is
        lost or `work` fails, wait and try again. Returns only when `work` returns normally."""
        while True:
            try:
                await self.run(work)
                return
            except asyncio.CancelledError:
                raise
            except LeaseLost:
                log.warning("lease %s lost; trying to take it again", self.name)
            except Exception:
                log.exception("work under lease %s failed; restarting it", self.name)
            await asyncio.sleep(backoff_s)

    async def _run_postgres(self, work: Work) -> None:
        import asyncpg

        assert isinstance(self.db, PostgresDatabase)
        key = lease_key(self.name)
        conn: Any = await asyncpg.connect(self.db.dsn)
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                await asyncio.sleep(self.retry_s)
            log.info("lease %s taken", self.name)
            self.held = True
            task = asyncio.ensure_future(work())
            try:
                while True:
                    done, _ = await asyncio.wait({task}, timeout=self.check_s)
                    if done:
                        task.result()  # returns or raises what work() raised
                        return
                    try:
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=self.check_s)
                    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                        raise LeaseLost(self.name) from exc
            finally:
                self.held = False
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=self.check_s)
