"""A database-backed job queue for AI work (topic labels, background summaries, ...).

Every worker process runs `JobQueue.run()`; jobs are claimed through the database
(storage/ai_jobs.py), so one worker or many pick them up safely on SQLite and PostgreSQL. A
claimed job holds a lease the worker renews while it runs; a worker that dies stops renewing and
the job becomes claimable again once the lease expires (it is retried, up to MAX_ATTEMPTS
claims). Progress is written with each renewal; a cancelled job is noticed at the next renewal
and its handler is cancelled. Results stay in the table for reuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.protocol.errors import MatrixError
from homeserver.storage.ai_jobs import AIJobStore, JobRow

log = logging.getLogger("parley.ai.jobs")
MAX_ATTEMPTS = 3

Progress = Callable[[int], None]
Handler = Callable[[JobRow, Progress], Awaitable[dict[str, Any]]]


def now_ms() -> int:
    return int(time.time() * 1000)


def job_json(job: JobRow) -> dict[str, Any]:
    out: dict[str, Any] = {"job_id": job.job_id, "kind": job.kind, "status": job.status,
                           "progress": job.progress, "created_ts": job.created_ts, "updated_ts": job.updated_ts}
    if job.room_id is not None:
        out["room_id"] = job.room_id
    if job.result is not None:
        out["result"] = job.result
    if job.error is not None:
        out["error"] = job.error
    return out


class JobQueue:
    def __init__(self, store: AIJobStore, worker_id: str | None = None, *, lease_s: float = 30.0,
                 poll_s: float = 1.0) -> None:
        self.store = store
        # Host and process in the ID, so an operator (or a test) can tell which process holds a job.
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.handlers: dict[str, Handler] = {}
        self._wake = asyncio.Event()

    def register(self, kind: str, handler: Handler) -> None:
        self.handlers[kind] = handler

    async def submit(self, kind: str, user_id: str, room_id: str | None, params: dict[str, Any]) -> str:
        if kind not in self.handlers:
            raise MatrixError(400, "M_INVALID_PARAM", f"Unknown job kind {kind!r}")
        job_id = secrets.token_urlsafe(12)
        await self.store.enqueue(job_id, kind, user_id, room_id, params, now_ms())
        self._wake.set()
        return job_id

    async def get(self, job_id: str, user_id: str) -> dict[str, Any]:
        job = await self.store.get(job_id)
        if job is None or job.user_id != user_id:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown job")
        return job_json(job)

    async def cancel(self, job_id: str, user_id: str) -> dict[str, Any]:
        await self.store.cancel(job_id, user_id, now_ms())
        return await self.get(job_id, user_id)

    # ------------------------------------------------------------------ worker

    async def run(self) -> None:
        """Claim and run jobs until cancelled."""
        while True:
            try:
                job = await self.store.claim(self.worker_id, now_ms(), now_ms() + int(self.lease_s * 1000),
                                             MAX_ATTEMPTS)
            except Exception:  # noqa: BLE001 - a database hiccup must not end the worker
                log.exception("claiming an AI job failed; trying again")
                job = None
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
                continue
            await self._run_one(job)

    async def run_once(self) -> bool:
        """Claim and run one job if there is one (tests, draining)."""
        job = await self.store.claim(self.worker_id, now_ms(), now_ms() + int(self.lease_s * 1000), MAX_ATTEMPTS)
        if job is None:
            return False
        await self._run_one(job)
        return True

    async def _run_one(self, job: JobRow) -> None:
        handler = self.handlers.get(job.kind)
        if handler is None:
            await self.store.fail(job.job_id, self.worker_id, f"no handler for {job.kind}", now_ms(), False)
            return
        progress: list[int | None] = [None]

        def report(pct: int) -> None:
            progress[0] = max(0, min(99, int(pct)))

        task = asyncio.ensure_future(handler(job, report))
        status = "running"
        while status == "running":
            done, _ = await asyncio.wait({task}, timeout=self.lease_s / 3)
            if done:
                break
            status = await self.store.heartbeat(job.job_id, self.worker_id,
                                                now_ms() + int(self.lease_s * 1000), progress[0])
        if not task.done():  # cancelled by its user, or taken over by another worker
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            log.info("job %s stopped: %s", job.job_id, status)
            return
        try:
            result = task.result()
        except MatrixError as e:
            await self.store.fail(job.job_id, self.worker_id, f"{e.errcode}: {e.to_dict().get('error')}",
                                  now_ms(), retry=e.status >= 500)
            return
        except Exception as e:  # noqa: BLE001 - a failed job is recorded, the worker goes on
            log.exception("job %s (%s) failed", job.job_id, job.kind)
            await self.store.fail(job.job_id, self.worker_id, type(e).__name__, now_ms(), retry=True)
            return
        if not await self.store.finish(job.job_id, self.worker_id, result, now_ms()):
            log.info("job %s finished after it was taken over or cancelled; result dropped", job.job_id)
