"""The AI job queue on SQLite and PostgreSQL: two workers, 200 jobs, each done once; a worker
that dies mid-job leaves the job to be retried; progress, cancel and kept results."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from homeserver.ai.jobs import JobQueue
from homeserver.storage.ai_jobs import AIJobStore, JobRow
from homeserver.storage.stores import Stores


@pytest.fixture
async def two_dbs(backend: str) -> AsyncIterator[tuple[Stores, Stores]]:
    """Two store bundles on one database, as two worker processes would have (on SQLite the
    same process shares one, as a single-process deployment does)."""
    a = await Stores.open(backend)
    b = a if backend.startswith("sqlite") else await Stores.open(backend)
    try:
        yield a, b
    finally:
        if b is not a:
            await b.close()
        await a.close()


async def wait_until(cond: Any, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_two_workers_200_jobs_each_done_once(two_dbs: tuple[Stores, Stores]) -> None:
    done: Counter[str] = Counter()
    by_worker: Counter[str] = Counter()
    queues = [JobQueue(AIJobStore(s.db), f"w{i}", lease_s=10, poll_s=0.05) for i, s in enumerate(two_dbs)]

    def handler_for(name: str) -> Any:
        async def handle(job: JobRow, progress: Any) -> dict[str, Any]:
            done[job.job_id] += 1
            by_worker[name] += 1
            await asyncio.sleep(0)  # let the other worker interleave
            return {"n": job.params["n"] * 2}
        return handle

    for q in queues:
        q.register("double", handler_for(q.worker_id))
    ids = [await queues[0].submit("double", "@u:test", None, {"n": n}) for n in range(200)]
    tasks = [asyncio.create_task(q.run()) for q in queues]
    store = queues[0].store

    async def all_done() -> bool:
        return (await store.count_by_status()).get("done", 0) == 200

    try:
        await wait_until(all_done, 120)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert set(done) == set(ids) and all(c == 1 for c in done.values())
    assert sum(by_worker.values()) == 200 and all(by_worker[q.worker_id] > 0 for q in queues), by_worker
    for n, job_id in enumerate(ids[:5]):
        job = await queues[1].get(job_id, "@u:test")
        assert job["status"] == "done" and job["result"] == {"n": n * 2} and job["progress"] == 100


async def test_job_of_a_dead_worker_is_retried(two_dbs: tuple[Stores, Stores]) -> None:
    a, b = (JobQueue(AIJobStore(s.db), f"w{i}", lease_s=0.6, poll_s=0.05) for i, s in enumerate(two_dbs))
    started = asyncio.Event()
    runs: list[str] = []

    async def hangs(job: JobRow, progress: Any) -> dict[str, Any]:
        runs.append("a")
        started.set()
        await asyncio.Event().wait()  # never returns: the worker will "die" here
        return {}

    async def works(job: JobRow, progress: Any) -> dict[str, Any]:
        runs.append("b")
        return {"ok": True}

    a.register("k", hangs)
    b.register("k", works)
    job_id = await a.submit("k", "@u:test", None, {})
    worker_a = asyncio.create_task(a.run())
    await asyncio.wait_for(started.wait(), 10)
    worker_a.cancel()  # killed mid-job: nothing is written back, the lease simply stops being renewed
    await asyncio.gather(worker_a, return_exceptions=True)
    assert (await b.get(job_id, "@u:test"))["status"] == "running"
    assert await b.run_once() is False  # the lease has not run out yet
    worker_b = asyncio.create_task(b.run())

    async def done() -> bool:
        return (await b.get(job_id, "@u:test"))["status"] == "done"

    try:
        await wait_until(done, 20)
    finally:
        worker_b.cancel()
        await asyncio.gather(worker_b, return_exceptions=True)
    job = await b.store.get(job_id)
    assert job is not None and job.attempts == 2 and job.result == {"ok": True} and runs == ["a", "b"]


async def test_progress_and_cancel(two_dbs: tuple[Stores, Stores]) -> None:
    q = JobQueue(AIJobStore(two_dbs[0].db), "w", lease_s=0.3, poll_s=0.05)
    step = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow(job: JobRow, progress: Any) -> dict[str, Any]:
        progress(40)
        step.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {}

    q.register("slow", slow)
    job_id = await q.submit("slow", "@u:test", "!r:test", {})
    worker = asyncio.create_task(q.run())
    try:
        await asyncio.wait_for(step.wait(), 10)

        async def progressed() -> bool:
            return (await q.get(job_id, "@u:test"))["progress"] == 40

        await wait_until(progressed, 10)
        with pytest.raises(Exception) as e:
            await q.get(job_id, "@someone-else:test")
        assert getattr(e.value, "status", None) == 404
        assert (await q.cancel(job_id, "@u:test"))["status"] == "cancelled"
        await asyncio.wait_for(cancelled.wait(), 10)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    assert (await q.get(job_id, "@u:test"))["status"] == "cancelled"


async def test_failures_retry_then_give_up(two_dbs: tuple[Stores, Stores]) -> None:
    q = JobQueue(AIJobStore(two_dbs[0].db), "w", lease_s=5, poll_s=0.05)
    calls = 0

    async def broken(job: JobRow, progress: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    q.register("broken", broken)
    job_id = await q.submit("broken", "@u:test", None, {})
    while await q.run_once():
        pass
    job = await q.get(job_id, "@u:test")
    assert job["status"] == "failed" and calls == 3


async def test_a_stuck_job_does_not_hold_up_the_others(two_dbs: tuple[Stores, Stores]) -> None:
    q = JobQueue(AIJobStore(two_dbs[0].db), "w", lease_s=5, poll_s=0.05)
    release = asyncio.Event()

    async def handle(job: JobRow, progress: Any) -> dict[str, Any]:
        if job.params["stuck"]:
            await release.wait()
        return {"ok": job.params["stuck"]}

    q.register("k", handle)
    stuck = await q.submit("k", "@u:test", None, {"stuck": True})
    quick = await q.submit("k", "@u:test", None, {"stuck": False})
    loops = [asyncio.create_task(q.run()) for _ in range(2)]  # as AIService starts them

    async def quick_done() -> bool:
        return (await q.get(quick, "@u:test"))["status"] == "done"

    try:
        await wait_until(quick_done, 20)
        assert (await q.get(stuck, "@u:test"))["status"] == "running"
        release.set()

        async def stuck_done() -> bool:
            return (await q.get(stuck, "@u:test"))["status"] == "done"

        await wait_until(stuck_done, 20)
    finally:
        for t in loops:
            t.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
