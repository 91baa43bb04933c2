"""Leader leases: one holder per role across workers, taken over when the holder's session dies."""

from __future__ import annotations

import asyncio

import asyncpg

from homeserver.lease import LeaderLease, LeaseLost, lease_key
from homeserver.storage.database import PostgresDatabase, SqliteDatabase
from tests.conftest import PG_ADMIN_DSN


async def test_sqlite_lease_runs_work_and_serializes_one_process(tmp_path) -> None:
    db = SqliteDatabase(str(tmp_path / "x.db"))
    await db.open()
    try:
        order: list[str] = []
        gate = asyncio.Event()

        async def first() -> None:
            order.append("first-start")
            await gate.wait()
            order.append("first-end")

        async def second() -> None:
            order.append("second")

        a = asyncio.ensure_future(LeaderLease(db, "role").run(first))
        while order != ["first-start"]:
            await asyncio.sleep(0)
        b = asyncio.ensure_future(LeaderLease(db, "role").run(second))
        await asyncio.sleep(0)
        assert order == ["first-start"]  # the second run waits for the first
        gate.set()
        await asyncio.gather(a, b)
        assert order == ["first-start", "first-end", "second"]
    finally:
        await db.close()


async def test_postgres_lease_is_exclusive_and_taken_over_when_holder_dies() -> None:
    db = PostgresDatabase(PG_ADMIN_DSN, min_size=1, max_size=2)
    await db.open()
    name = f"test-{id(db)}"
    try:
        a_running = asyncio.Event()
        b_running = asyncio.Event()

        async def work_a() -> None:
            a_running.set()
            await asyncio.Event().wait()  # holds until cancelled

        async def work_b() -> None:
            b_running.set()

        lease_a = LeaderLease(db, name, retry_s=0.05, check_s=0.05)
        lease_b = LeaderLease(db, name, retry_s=0.05, check_s=0.05)
        task_a = asyncio.ensure_future(lease_a.run(work_a))
        await a_running.wait()
        assert lease_a.held
        task_b = asyncio.ensure_future(lease_b.run(work_b))
        # B keeps trying while A holds: let it try a few times, then check it never ran.
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            for _ in range(5):
                await asyncio.wait({task_b}, timeout=0.06)
            assert not b_running.is_set()
            # Kill A's session, as a crashed worker would lose it.
            pids = await admin.fetch(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND ((classid::bigint << 32) | objid::bigint) = ($1::bigint & x'ffffffffffffffff'::bigint)",
                lease_key(name),
            )
            assert len(pids) == 1
            await admin.execute("SELECT pg_terminate_backend($1)", pids[0]["pid"])
        finally:
            await admin.close()
        try:
            await task_a
            raise AssertionError("the holder should have noticed its lost session")
        except LeaseLost:
            pass
        await task_b
        assert b_running.is_set()
        assert not lease_a.held and not lease_b.held
    finally:
        await db.close()
