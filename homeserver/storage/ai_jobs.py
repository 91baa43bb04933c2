"""The AI job queue's table (migration 018).

A job is claimed by a compare-and-set UPDATE: it names the job and repeats the condition that
made it claimable (queued, or running with an expired lease). Two workers racing for one job
both run the UPDATE; on SQLite they are serialized by the single writer, on PostgreSQL the
second waits for the first's row lock and then re-checks the condition against the new row, so
exactly one gets the row back. Every later write names the worker too: a worker whose lease ran
out (it stalled, or died and came back) can no longer finish a job someone else has taken over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from homeserver.storage.database import Database

CLAIMABLE = "(status = 'queued' OR (status = 'running' AND lease_until < $2))"
CANDIDATES = 8


@dataclass(frozen=True)
class JobRow:
    job_id: str
    kind: str
    user_id: str
    room_id: str | None
    params: dict[str, Any]
    status: str
    progress: int
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    worker: str | None
    created_ts: int
    updated_ts: int


def _row(r: Any) -> JobRow:
    return JobRow(r["job_id"], r["kind"], r["user_id"], r["room_id"], orjson.loads(r["params"]), r["status"],
                  int(r["progress"]), orjson.loads(r["result"]) if r["result"] is not None else None, r["error"],
                  int(r["attempts"]), r["worker"], int(r["created_ts"]), int(r["updated_ts"]))


COLUMNS = ("job_id, kind, user_id, room_id, params, status, progress, result, error, attempts, worker,"
           " created_ts, updated_ts")


class AIJobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def enqueue(self, job_id: str, kind: str, user_id: str, room_id: str | None,
                      params: dict[str, Any], now: int) -> None:
        await self.db.execute(
            "INSERT INTO ai_jobs (job_id, kind, user_id, room_id, params, status, progress, attempts,"
            " lease_until, created_ts, updated_ts) VALUES ($1,$2,$3,$4,$5,'queued',0,0,0,$6,$6)",
            job_id, kind, user_id, room_id, orjson.dumps(params).decode(), now)

    async def claim(self, worker: str, now: int, lease_until: int, max_attempts: int) -> JobRow | None:
        """Take one claimable job for `worker`, oldest first; None when there is none."""
        await self.db.execute(
            f"UPDATE ai_jobs SET status = 'failed', error = 'gave up after repeated attempts', updated_ts = $1"
            f" WHERE {CLAIMABLE.replace('$2', '$1')} AND attempts >= $2", now, max_attempts)
        while True:
            ids = await self.db.fetch(
                f"SELECT job_id FROM ai_jobs WHERE {CLAIMABLE.replace('$2', '$1')} ORDER BY created_ts, job_id"
                f" LIMIT {CANDIDATES}", now)
            if not ids:
                return None
            for r in ids:
                got = await self.db.fetchrow(
                    f"UPDATE ai_jobs SET status = 'running', worker = $3, lease_until = $4,"
                    f" attempts = attempts + 1, updated_ts = $2 WHERE job_id = $1 AND {CLAIMABLE}"
                    f" RETURNING {COLUMNS}", r["job_id"], now, worker, lease_until)
                if got is not None:
                    return _row(got)
            # Every candidate went to another worker meanwhile: look again.

    async def heartbeat(self, job_id: str, worker: str, lease_until: int, progress: int | None) -> str:
        """Extend the lease; the job's status if still ours ('running'), or what it became."""
        got = await self.db.fetchval(
            "UPDATE ai_jobs SET lease_until = $3, progress = COALESCE($4, progress) WHERE job_id = $1"
            " AND worker = $2 AND status = 'running' RETURNING status", job_id, worker, lease_until, progress)
        if got is not None:
            return str(got)
        st = await self.db.fetchval("SELECT status FROM ai_jobs WHERE job_id = $1", job_id)
        return "lost" if st == "running" else (str(st) if st is not None else "gone")

    async def finish(self, job_id: str, worker: str, result: dict[str, Any], now: int) -> bool:
        got = await self.db.fetchval(
            "UPDATE ai_jobs SET status = 'done', progress = 100, result = $3, updated_ts = $4, error = NULL"
            " WHERE job_id = $1 AND worker = $2 AND status = 'running' RETURNING job_id",
            job_id, worker, orjson.dumps(result).decode(), now)
        return got is not None

    async def fail(self, job_id: str, worker: str, error: str, now: int, retry: bool) -> None:
        await self.db.execute(
            "UPDATE ai_jobs SET status = $3, error = $4, updated_ts = $5, lease_until = 0, worker = NULL"
            " WHERE job_id = $1 AND worker = $2 AND status = 'running'",
            job_id, worker, "queued" if retry else "failed", error[:500], now)

    async def cancel(self, job_id: str, user_id: str, now: int) -> bool:
        got = await self.db.fetchval(
            "UPDATE ai_jobs SET status = 'cancelled', updated_ts = $3 WHERE job_id = $1 AND user_id = $2"
            " AND status IN ('queued', 'running') RETURNING job_id", job_id, user_id, now)
        return got is not None

    async def get(self, job_id: str) -> JobRow | None:
        r = await self.db.fetchrow(f"SELECT {COLUMNS} FROM ai_jobs WHERE job_id = $1", job_id)
        return _row(r) if r is not None else None

    async def latest(self, user_id: str, room_id: str, kind: str) -> JobRow | None:
        r = await self.db.fetchrow(
            f"SELECT {COLUMNS} FROM ai_jobs WHERE user_id = $1 AND room_id = $2 AND kind = $3"
            " ORDER BY created_ts DESC, job_id DESC LIMIT 1", user_id, room_id, kind)
        return _row(r) if r is not None else None

    async def latest_done(self, user_id: str, room_id: str, kind: str) -> JobRow | None:
        r = await self.db.fetchrow(
            f"SELECT {COLUMNS} FROM ai_jobs WHERE user_id = $1 AND room_id = $2 AND kind = $3"
            " AND status = 'done' ORDER BY updated_ts DESC, job_id DESC LIMIT 1", user_id, room_id, kind)
        return _row(r) if r is not None else None

    async def count_by_status(self) -> dict[str, int]:
        rows = await self.db.fetch("SELECT status, COUNT(*) AS n FROM ai_jobs GROUP BY status")
        return {r["status"]: int(r["n"]) for r in rows}
