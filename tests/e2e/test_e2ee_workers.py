"""E2EE across two workers (PostgreSQL + Redis): a to-device message sent on one worker wakes
a long-poll on the other and is delivered once; concurrent claims on both workers hand each
one-time key out once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL, drop_pg_database
from tests.e2e.conftest import stop_server
from tests.e2e.test_workers import V3, Cluster, _start_cluster, _user


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c, procs, db = await _start_cluster(tmp_path, REDIS_URL)
    try:
        yield c
    finally:
        for p in procs:
            stop_server(p)
        await drop_pg_database(db)


async def test_to_device_and_claims_across_workers(cluster: Cluster) -> None:
    c = cluster
    async with httpx.AsyncClient(timeout=30) as http:
        alice = await _user(http, c.a, "alice")
        bob = await _user(http, c.b, "bob")
        since = (await http.get(f"{c.b}{V3}/sync", headers=bob["h"])).json()["next_batch"]
        waiter = asyncio.create_task(http.get(f"{c.b}{V3}/sync", params={"since": since, "timeout": 20000},
                                              headers=bob["h"]))
        r = await http.put(f"{c.a}{V3}/sendToDevice/m.test/t1", headers=alice["h"],
                           json={"messages": {bob["user_id"]: {bob["device_id"]: {"n": 1}}}})
        assert r.status_code == 200
        got = (await asyncio.wait_for(waiter, 15)).json()
        assert [e["content"] for e in got["to_device"]["events"]] == [{"n": 1}]
        again = (await http.get(f"{c.a}{V3}/sync", params={"since": got["next_batch"]},
                                headers=bob["h"])).json()
        assert again["to_device"]["events"] == []

        otks = {f"curve25519:K{i:03d}": f"a2V5{i:03d}" for i in range(20)}
        r = await http.post(f"{c.a}{V3}/keys/upload", json={"one_time_keys": otks}, headers=alice["h"])
        assert r.json()["one_time_key_counts"]["curve25519"] == 20
        body = {"one_time_keys": {alice["user_id"]: {alice["device_id"]: "curve25519"}}}

        async def claim(base: str) -> list[str]:
            r = await http.post(f"{base}{V3}/keys/claim", json=body, headers=bob["h"])
            return list(r.json()["one_time_keys"].get(alice["user_id"], {}).get(alice["device_id"], {}))

        results = await asyncio.gather(*(claim(c.a if i % 2 else c.b) for i in range(30)))
        handed = [k for ks in results for k in ks]
        assert sorted(handed) == sorted(otks)
