"""AI jobs across two real `parley serve` processes on one PostgreSQL database and Redis (the
scaled-out shape: without the bus a worker would not see the other's new messages): the worker that
holds a job is killed (SIGKILL) mid-job, the other takes the job over once its lease runs out,
and the job finishes exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.ai.fake_inference import FakeInference
from tests.conftest import REDIS_URL, _dsn_for, create_pg_database, drop_pg_database
from tests.e2e.conftest import start_server, stop_server

AI = "/_matrix/client/unstable/org.parley.ai"
V3 = "/_matrix/client/v3"
# Renewed every third of it: long enough that a worker stalled by a loaded CI machine keeps its
# job (a lease lost to a slow heartbeat would be a second claim, and the test counts claims).
LEASE_S = 10


async def wait_for(cond: Any, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def fake() -> AsyncIterator[FakeInference]:
    server = await FakeInference(hang=True).start()
    try:
        yield server
    finally:
        await server.stop()


async def test_a_killed_worker_leaves_its_job_to_the_other(tmp_path: Path, fake: FakeInference) -> None:
    db = await create_pg_database()
    dsn = _dsn_for(db)
    name = f"ai{uuid.uuid4().hex[:6]}.parley"
    procs: list[subprocess.Popen[bytes]] = []
    env = {"PARLEY_SIGNING_KEY_PATH": str(tmp_path / "signing.key"), "PARLEY_AI__ENDPOINT": fake.url,
           "PARLEY_AI__JOB_LEASE_S": str(LEASE_S), "PARLEY_REDIS_URL": REDIS_URL}
    try:
        bases = []
        for w in ("a", "b"):
            (tmp_path / w).mkdir()
            proc, base = await asyncio.to_thread(start_server, tmp_path / w, dsn, name, **env)
            procs.append(proc)
            bases.append(base)
        by_pid = {p.pid: p for p in procs}
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(f"{bases[0]}{V3}/register", json={"username": "alice", "password": "pw-alice-1",
                                                                    "auth": {"type": "m.login.dummy"}})
            auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
            room = (await http.post(f"{bases[0]}{V3}/createRoom", json={}, headers=auth)).json()["room_id"]
            for i in range(3):
                await http.put(f"{bases[1]}{V3}/rooms/{room}/send/m.room.message/t{i}",
                               json={"msgtype": "m.text", "body": f"incident update {i}"}, headers=auth)
            job_id = (await http.post(f"{bases[1]}{AI}/rooms/{room}/topics", headers=auth)).json()["job_id"]

            conn = await asyncpg.connect(dsn)
            try:
                async def claimed() -> bool:
                    return bool(fake.chats()) and await conn.fetchval(
                        "SELECT status FROM ai_jobs WHERE job_id = $1", job_id) == "running"

                await wait_for(claimed)  # one worker is inside the job, its request to the model hanging
                worker = await conn.fetchval("SELECT worker FROM ai_jobs WHERE job_id = $1", job_id)
                pid = int(worker.split(":")[1])
                assert pid in by_pid, worker
                victim = by_pid.pop(pid)
                os.kill(victim.pid, signal.SIGKILL)
                await asyncio.to_thread(victim.wait, 30)
                fake.hang = False  # the survivor's request is answered at once

                async def done() -> bool:
                    row = await conn.fetchrow("SELECT status, attempts, error FROM ai_jobs WHERE job_id = $1", job_id)
                    assert row["status"] in ("running", "queued", "done"), dict(row)
                    return bool(row["status"] == "done")

                await wait_for(done, 30 + 3 * LEASE_S)
                row = await conn.fetchrow("SELECT attempts, worker, result FROM ai_jobs WHERE job_id = $1", job_id)
            finally:
                await conn.close()
            assert row["attempts"] == 2 and row["worker"] != worker
            assert int(row["worker"].split(":")[1]) in by_pid  # the survivor finished it
            assert len(fake.chats()) == 2  # once by each worker, and never again after it was done
            survivor = bases[procs.index(next(iter(by_pid.values())))]
            job = (await http.get(f"{survivor}{AI}/jobs/{job_id}", headers=auth)).json()
            assert job["status"] == "done" and job["result"]["labels"] and job["result"]["message_count"] == 3, job
    finally:
        fake.release.set()
        for p in procs:
            if p.poll() is None:
                stop_server(p)
        await drop_pg_database(db)
