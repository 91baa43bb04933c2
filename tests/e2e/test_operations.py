"""Operating Parley as the README shows: several workers started at once on a fresh PostgreSQL
database from one config file, the signing key check, prompt shutdown, metrics and access logs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
import websockets

from homeserver.keys.signing_key import read_signing_key
from homeserver.protocol.signing import key_id, verify_key_b64
from tests.conftest import PG_ADMIN_DSN, REDIS_URL, _dsn_for, drop_pg_database
from tests.e2e.conftest import free_port, spawn_server, start_server, stop_server, wait_ready

V3 = "/_matrix/client/v3"
WS = "/_matrix/client/unstable/org.parley.ws"
# Unset the per-process paths spawn_server would pass, so the shared config file decides.
FROM_CONFIG = {"PARLEY_DATA_DIR": "", "PARLEY_MEDIA_DIR": "", "PARLEY_SIGNING_KEY_PATH": "",
               "PARLEY_DATABASE": "", "PARLEY_SERVER_NAME": "", "PARLEY_PUBLIC_BASEURL": ""}


async def _fresh_database() -> str:
    """An empty database (not the suite's migrated template): the workers must migrate it."""
    name = f"parley_fresh_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


def _write_config(deploy: Path, dsn: str, server_name: str) -> Path:
    # Relative paths on purpose: they resolve against this file's directory for every worker.
    cfg = deploy / "parley.toml"
    cfg.write_text(
        f'server_name = "{server_name}"\n'
        'public_baseurl = "https://chat.example.org/"\n'
        f'database = "{dsn}"\n'
        f'redis_url = "{REDIS_URL}"\n'
        'data_dir = "data"\n'
        'media_dir = "shared/media"\n'
        'signing_key_path = "keys/signing.key"\n'
        'registration = "open"\n'
        'log_level = "WARNING"\n'
        '[rate_limits]\nenabled = false\n'
    )
    return cfg


async def test_four_workers_start_together_on_a_fresh_database(tmp_path: Path) -> None:
    db = await _fresh_database()
    dsn = _dsn_for(db)
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    name = f"w{uuid.uuid4().hex[:6]}.parley"
    cfg = _write_config(deploy, dsn, name)
    procs: list[subprocess.Popen[bytes]] = []
    bases: list[str] = []
    dirs = []
    mport = free_port()
    try:
        # Four workers, each from its own working directory, all started before any is ready.
        for i in range(4):
            wd = tmp_path / f"worker{i}"
            wd.mkdir()
            dirs.append(wd)
            extra = {"PARLEY_METRICS_LISTENER": f"127.0.0.1:{mport}"} if i == 0 else {}
            p, base = spawn_server(wd, dsn, name, cwd=wd, config=cfg, **FROM_CONFIG, **extra)
            procs.append(p)
            bases.append(base)
        for p, base, wd in zip(procs, bases, dirs):
            wait_ready(p, base, wd / "server.log", timeout=60)

        async with httpx.AsyncClient(timeout=30) as http:
            for base in bases:
                r = await http.get(f"{base}/health")
                assert r.status_code == 200 and r.json()["database"] == "ok", r.text
            r = await http.post(f"{bases[0]}{V3}/register", json={
                "username": "alice", "password": "pw-alice", "auth": {"type": "m.login.dummy"}})
            assert r.status_code == 200, r.text
            alice = r.json()
            h = {"Authorization": f"Bearer {alice['access_token']}"}
            # Tokens are signed with a secret derived from the key: every worker accepts them.
            for base in bases:
                r = await http.get(f"{base}{V3}/account/whoami", headers=h)
                assert r.status_code == 200 and r.json()["user_id"] == alice["user_id"], r.text
            # An upload through one worker downloads through another started elsewhere.
            body = os.urandom(3000)
            r = await http.post(f"{bases[1]}/_matrix/media/v3/upload", content=body,
                                headers={**h, "Content-Type": "application/octet-stream"})
            assert r.status_code == 200, r.text
            mxc = r.json()["content_uri"]
            server, media_id = mxc[len("mxc://"):].split("/")
            r = await http.get(f"{bases[3]}/_matrix/client/v1/media/download/{server}/{media_id}", headers=h)
            assert r.status_code == 200, r.text
            assert r.content == body
            # One room written through all four workers keeps one history.
            room = (await http.post(f"{bases[2]}{V3}/createRoom", json={}, headers=h)).json()["room_id"]
            for i, base in enumerate(bases):
                r = await http.put(f"{base}{V3}/rooms/{room}/send/m.room.message/t{i}",
                                   json={"msgtype": "m.text", "body": f"via {i}"}, headers=h)
                assert r.status_code == 200, r.text
            r = await http.get(f"{bases[0]}{V3}/rooms/{room}/messages", params={"dir": "b", "limit": 50},
                               headers=h)
            bodies = [e["content"]["body"] for e in r.json()["chunk"] if e["type"] == "m.room.message"]
            assert sorted(bodies) == [f"via {i}" for i in range(4)]
            # Worker 0 heard the others over the bus, and says so in its metrics.
            scrape = (await http.get(f"http://127.0.0.1:{mport}/metrics")).text
            lag = [line for line in scrape.splitlines() if line.startswith("parley_bus_lag_seconds_count ")]
            assert lag and float(lag[0].split()[1]) >= 1, scrape
            assert "parley_bus_connected 1.0" in scrape
            assert 'parley_db_pool_connections{pool="main",state="idle"}' in scrape

        # Paths resolved against the config file: one key, one media store, nothing per worker.
        assert sorted(p.name for p in (deploy / "keys").iterdir()) == ["signing.key"]
        assert list((deploy / "shared" / "media").rglob("*")), "no media stored under the config's directory"
        for wd in dirs:
            assert not (wd / "shared").exists() and not (wd / "keys").exists()
        key = read_signing_key(str(deploy / "keys" / "signing.key"))
        conn = await asyncpg.connect(dsn)
        try:
            versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_version")]
            assert len(versions) == len(set(versions)) and 1 in versions and 7 in versions
            row = await conn.fetchrow("SELECT key_id, public_key FROM deployment_signing_key")
            assert (row["key_id"], row["public_key"]) == (key_id(key), verify_key_b64(key))
        finally:
            await conn.close()

        # A fifth worker with another key file refuses to start, saying why.
        other = tmp_path / "other"
        other.mkdir()
        p5, _ = spawn_server(other, dsn, name, cwd=other, config=cfg,
                             **{**FROM_CONFIG, "PARLEY_SIGNING_KEY_PATH": str(other / "signing.key")})
        assert p5.wait(30) == 1
        log5 = (other / "server.log").read_text()
        assert "refusing to start" in log5 and "not the key this database was first used with" in log5
        assert "Traceback" not in log5
    finally:
        for p in procs:
            stop_server(p)
        await drop_pg_database(db)
    for wd in dirs:
        log = (wd / "server.log").read_text(errors="replace")
        assert "Traceback" not in log and "ERROR" not in log, log


def test_first_start_keeps_data_beside_its_config(tmp_path: Path) -> None:
    """`make run`: `parley --config data/parley.toml serve` in a fresh checkout writes the config
    into data/ and keeps the database, key and media there too (not in data/data/)."""
    proc, base = spawn_server(tmp_path, "", cwd=tmp_path, config=Path("data/parley.toml"),
                              **{**FROM_CONFIG, "PARLEY_SERVER_NAME": "localhost:8008"})
    try:
        wait_ready(proc, base, tmp_path / "server.log")
        assert httpx.get(f"{base}/health").status_code == 200
    finally:
        stop_server(proc)
    data = tmp_path / "data"
    assert (data / "parley.toml").exists() and (data / "parley.db").exists() and (data / "signing.key").exists()
    assert not (data / "data").exists()
    # Started again from another directory with the same file: the same server.
    other = tmp_path / "elsewhere"
    other.mkdir()
    proc, base = spawn_server(other, "", cwd=other, config=data / "parley.toml",
                              **{**FROM_CONFIG, "PARLEY_SERVER_NAME": "localhost:8008"})
    try:
        wait_ready(proc, base, other / "server.log")
    finally:
        stop_server(proc)
    assert sorted(p.name for p in other.iterdir()) == ["server.log"]


async def _register(http: httpx.AsyncClient, base: str, name: str) -> dict[str, str]:
    r = await http.post(f"{base}{V3}/register", json={"username": name, "password": "pw-" + name,
                                                       "auth": {"type": "m.login.dummy"}})
    assert r.status_code == 200, r.text
    return r.json()


async def test_shutdown_ends_long_polls_and_websockets_promptly(tmp_path: Path) -> None:
    proc, base = start_server(tmp_path, f"sqlite:///{tmp_path}/parley.db", PARLEY_LOG_LEVEL="INFO")
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            user = await _register(http, base, "sleeper")
            h = {"Authorization": f"Bearer {user['access_token']}"}
            since = (await http.get(f"{base}{V3}/sync", headers=h)).json()["next_batch"]
            poll = asyncio.create_task(http.get(f"{base}{V3}/sync", params={"since": since, "timeout": 60000},
                                                headers=h))
            async with websockets.connect(base.replace("http", "ws") + WS, additional_headers=h) as sock:
                assert json.loads(await sock.recv())["type"] == "authenticated"
                await sock.send(json.dumps({"type": "sync"}))
                while json.loads(await asyncio.wait_for(sock.recv(), 10))["type"] != "sync":
                    pass  # the request's own "result" frame comes first
                # The socket's handshake and first frame took several round trips after the
                # long-poll was sent; either way, parked or about to park, both must end now.
                t0 = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                r = await asyncio.wait_for(poll, 10)
                assert r.status_code == 200 and "next_batch" in r.json()
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(sock.recv(), 10)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert proc.wait(10) == 0
        elapsed = time.monotonic() - t0
        assert elapsed < 3, f"shutdown took {elapsed:.1f}s (the grace period is 5s)"
    finally:
        if proc.poll() is None:
            stop_server(proc)
    log = (tmp_path / "server.log").read_text(errors="replace")
    assert "Traceback" not in log and "CancelledError" not in log, log
    assert "shutting down" in log


async def test_metrics_listener_and_access_log(tmp_path: Path) -> None:
    mport = free_port()
    proc, base = start_server(tmp_path, f"sqlite:///{tmp_path}/parley.db", PARLEY_LOG_LEVEL="INFO",
                              PARLEY_METRICS_LISTENER=f"127.0.0.1:{mport}", PARLEY_LOG_FORMAT="json")
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            # The main listener does not serve the numbers; the metrics listener does.
            assert (await http.get(f"{base}/metrics")).status_code == 404
            before = await http.get(f"http://127.0.0.1:{mport}/metrics")
            assert before.status_code == 200
            assert before.headers["content-type"].startswith("text/plain; version=0.0.4")
            user = await _register(http, base, "counted")
            h = {"Authorization": f"Bearer {user['access_token']}"}
            room = (await http.post(f"{base}{V3}/createRoom", json={}, headers=h)).json()["room_id"]
            r = await http.put(f"{base}{V3}/rooms/{room}/send/m.room.message/t1?access_token=secret-in-query",
                               json={"msgtype": "m.text", "body": "hi"}, headers=h)
            assert r.status_code == 200
            after = (await http.get(f"http://127.0.0.1:{mport}/metrics")).text
    finally:
        stop_server(proc)

    def value(text: str, series: str) -> float:
        for line in text.splitlines():
            if line.startswith(series + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    send_route = "/_matrix/client/v3/rooms/{room_id}/send/{event_type}/{txn_id}"
    series = f'parley_http_requests_total{{method="PUT",route="{send_route}",status="200"}}'
    assert value(before.text, series) == 0 and value(after, series) == 1, after
    create = 'parley_http_request_duration_seconds_count{method="POST",route="/_matrix/client/v3/createRoom"}'
    assert value(after, create) == 1
    assert value(after, "parley_event_persist_seconds_count") > value(before.text, "parley_event_persist_seconds_count")
    assert 'parley_db_pool_connections{pool="writer",state="idle"}' in after
    assert "parley_websocket_connections 0.0" in after and "parley_bus_connected 1.0" in after
    assert "# TYPE parley_sync_wakeups_total counter" in after

    records = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines()
               if line.startswith("{")]
    access = [r for r in records if r["logger"] == "parley.access"]
    sends = [r for r in access if r["method"] == "PUT"]
    assert len(sends) == 1 and sends[0]["status"] == 200 and sends[0]["route"] == send_route
    assert isinstance(sends[0]["duration_ms"], float)
    assert "secret-in-query" not in (tmp_path / "server.log").read_text()
