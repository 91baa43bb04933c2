"""Operator-facing pieces, in process: config paths and warnings, generate-config, the signing
key file, SQLite durability, concurrent migrations, /health and the metrics exposition."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from client_api.app import build_app
from client_api.metrics_app import MetricsApp
from homeserver import metrics
from homeserver.app import Homeserver
from homeserver.config import ConfigError, build_config, config_warnings, default_config_text, load_config
from homeserver.keys.signing_key import (
    SigningKeyMismatch,
    check_against_seen,
    create_signing_key,
    read_signing_key,
)
from homeserver.logs import JsonFormatter
from homeserver.protocol.signing import key_id, verify_key_b64
from homeserver.storage.database import PostgresDatabase, SqliteDatabase
from homeserver.storage.migrate import MIGRATIONS, migrate
from tests.conftest import PG_ADMIN_DSN, _dsn_for, drop_pg_database, make_config

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- config


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "etc" / "parley.toml"
    conf.parent.mkdir()
    conf.write_text('media_dir = "media"\nsigning_key_path = "keys/s.key"\ndata_dir = "."\n'
                    'database = "sqlite:///db/parley.db"\n')
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(str(conf), env={})
    etc = conf.parent.resolve()
    assert cfg.media_dir == str(etc / "media")
    assert cfg.signing_key_path == str(etc / "keys" / "s.key")
    assert Path(cfg.data_dir).resolve() == etc
    assert cfg.database == f"sqlite:///{etc}/db/parley.db"
    # Values from the environment keep the working directory, like any shell path.
    cfg = load_config(str(conf), env={"PARLEY_MEDIA_DIR": "m2"})
    assert cfg.media_dir == "m2"
    # Absolute paths and PostgreSQL URLs are left alone.
    conf.write_text('media_dir = "/srv/media"\ndatabase = "postgresql://p@h/db"\n')
    cfg = load_config(str(conf), env={})
    assert cfg.media_dir == "/srv/media" and cfg.database == "postgresql://p@h/db"


def test_data_left_at_the_old_relative_place_is_not_silently_replaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A config written before paths were relative to the file: data/parley.toml naming data/parley.db.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "parley.db").write_bytes(b"")
    conf = tmp_path / "data" / "parley.toml"
    conf.write_text('database = "sqlite:///data/parley.db"\n')
    with pytest.raises(ConfigError) as e:
        load_config(str(conf), env={})
    assert e.value.key == "database" and "config file's directory" in e.value.why


def test_command_inputs_in_the_environment_are_not_config_keys() -> None:
    cfg = load_config(None, env={"PARLEY_NEW_USER_PASSWORD": "pw", "PARLEY_CONFIG": "x.toml"})
    assert cfg.server_name == "localhost:8008"


def test_new_keys_validated() -> None:
    cfg = build_config({"sqlite_synchronous": "NORMAL", "metrics_listener": "127.0.0.1:9108", "log_format": "json"})
    assert cfg.sqlite_synchronous == "normal" and cfg.log_format == "json"
    ml = cfg.metrics_listener
    assert ml is not None and (ml.host, ml.port) == ("127.0.0.1", 9108)
    defaults = build_config({})
    assert defaults.sqlite_synchronous == "full" and defaults.metrics_listener is None
    assert defaults.log_format == "text"
    for raw, key in (({"sqlite_synchronous": "sometimes"}, "sqlite_synchronous"),
                     ({"metrics_listener": "9108"}, "metrics_listener"),
                     ({"metrics_listener": "h:99999"}, "metrics_listener"),
                     ({"log_format": "xml"}, "log_format")):
        with pytest.raises(ConfigError) as e:
            build_config(raw)
        assert e.value.key == key


def test_warnings_for_local_names_on_public_listeners() -> None:
    assert config_warnings(build_config({})) == []
    public = [{"host": "0.0.0.0", "port": 8008}]
    warns = config_warnings(build_config({"listeners": public}))
    assert len(warns) == 2 and "server_name" in warns[0] and "public_baseurl" in warns[1]
    ok = build_config({"listeners": public, "server_name": "chat.example.org",
                       "public_baseurl": "https://chat.example.org/"})
    assert config_warnings(ok) == []
    # Loopback listeners behind a balancer never warn, whatever the names.
    assert config_warnings(build_config({"listeners": [{"host": "127.0.0.1", "port": 8101}],
                                         "server_name": "localhost"})) == []


def test_default_config_text_for_public_and_local_names() -> None:
    import tomllib

    public = tomllib.loads(default_config_text("chat.example.org"))
    assert public["public_baseurl"] == "https://chat.example.org/" and public["registration"] == "closed"
    build_config(public)
    local = tomllib.loads(default_config_text("localhost:8008"))
    assert local["public_baseurl"] == "http://127.0.0.1:8008/" and local["registration"] == "open"
    assert local["sqlite_synchronous"] == "full"


def test_generate_config_writes_config_and_key_once(tmp_path: Path) -> None:
    conf = tmp_path / "srv" / "parley.toml"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "homeserver.cli", "--config", str(conf), *args],
                              cwd=REPO, capture_output=True, text=True, timeout=60)

    r = run("generate-config", "--server-name", "chat.example.org")
    assert r.returncode == 0, r.stderr
    key_file = tmp_path / "srv" / "data" / "signing.key"
    assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600
    first = key_file.read_text()
    cfg = load_config(str(conf), env={})
    assert cfg.server_name == "chat.example.org" and cfg.registration == "closed"
    assert cfg.public_baseurl == "https://chat.example.org/"
    assert run("generate-config", "--server-name", "chat.example.org").returncode == 1  # exists
    r = run("generate-config", "--server-name", "chat.example.org", "--force")
    assert r.returncode == 0 and key_file.read_text() == first  # the key is never replaced
    r = run("generate-key")
    assert r.returncode == 0 and "kept" in r.stdout and key_file.read_text() == first


# ---------------------------------------------------------------- signing key


def test_signing_key_created_once_under_concurrency(tmp_path: Path) -> None:
    path = str(tmp_path / "keys" / "signing.key")
    results: list[bool] = []
    start = threading.Barrier(8)

    def create() -> None:
        start.wait()
        results.append(create_signing_key(path))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["signing.key"]  # no temporary files left
    key = read_signing_key(path)
    check_against_seen(key, key_id(key), verify_key_b64(key), path)
    with pytest.raises(SigningKeyMismatch):
        check_against_seen(key, key_id(key), "AAAA", path)


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
async def test_homeserver_refuses_a_key_the_database_has_not_seen(tmp_path: Path, dialect: str) -> None:
    if dialect == "sqlite":
        database, db_name = f"sqlite:///{tmp_path}/parley.db", None
    else:
        from tests.conftest import create_pg_database

        db_name = await create_pg_database()
        database = _dsn_for(db_name)
    try:
        first = make_config(tmp_path, database, signing_key_path=str(tmp_path / "a.key"))
        hs = await Homeserver.start(first)
        await hs.close()
        hs = await Homeserver.start(first)  # the same key again: fine
        await hs.close()
        with pytest.raises(SigningKeyMismatch):
            await Homeserver.start(make_config(tmp_path, database, signing_key_path=str(tmp_path / "b.key")))
    finally:
        if db_name:
            await drop_pg_database(db_name)


# ---------------------------------------------------------------- storage


async def test_sqlite_synchronous_setting(tmp_path: Path) -> None:
    for setting, expected in (("full", 2), ("normal", 1), ("extra", 3)):
        db = SqliteDatabase(str(tmp_path / f"{setting}.db"), setting)
        await db.open()
        try:
            # Both connections (the writer and the reader) use the setting.
            assert await db.fetchval("PRAGMA synchronous") == expected
            async with db.transaction() as c:
                assert await c.fetchval("PRAGMA synchronous") == expected
        finally:
            await db.close()
    # The default keeps "a 200 is durable": FULL.
    assert SqliteDatabase(str(tmp_path / "d.db")).synchronous == "full"
    with pytest.raises(ValueError):
        SqliteDatabase(str(tmp_path / "x.db"), "sometimes")


async def test_concurrent_migrations_on_a_fresh_postgres_database() -> None:
    name = f"parley_mig_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    dbs = [PostgresDatabase(_dsn_for(name), min_size=1, max_size=1) for _ in range(4)]
    try:
        for db in dbs:
            await db.open()
        versions = await asyncio.gather(*(migrate(db) for db in dbs))
        assert set(versions) == {max(v for v, _ in MIGRATIONS)}
        rows = await dbs[0].fetch("SELECT version FROM schema_version ORDER BY version")
        assert [r["version"] for r in rows] == sorted(v for v, _ in MIGRATIONS)
    finally:
        for db in dbs:
            await db.close()
        await drop_pg_database(name)


async def test_a_missing_lower_version_is_applied_after_a_higher_one(tmp_path: Path) -> None:
    # A database migrated by a build that knew 1, 2, 3 and 7 but not 7's predecessors from a
    # parallel branch: simulate by removing 7 and checking it is applied though 3 < 7 is max.
    db = SqliteDatabase(str(tmp_path / "m.db"))
    await db.open()
    try:
        await migrate(db)
        await db.execute("DROP TABLE deployment_signing_key")
        await db.execute("DELETE FROM schema_version WHERE version = 7")
        await db.execute("INSERT INTO schema_version (version) VALUES (99)")  # a newer, unknown one
        assert await migrate(db) == 99
        assert await db.fetchval("SELECT COUNT(*) FROM deployment_signing_key") == 0
        assert await db.fetchval("SELECT COUNT(*) FROM schema_version WHERE version = 7") == 1
    finally:
        await db.close()


def test_sqlite_urls(tmp_path: Path) -> None:
    from homeserver.storage.database import sqlite_path

    assert sqlite_path(f"sqlite:///{tmp_path}/x.db") == f"{tmp_path}/x.db"
    assert sqlite_path("sqlite:///data/x.db") == "data/x.db"
    assert sqlite_path("sqlite://") == ":memory:"


# ---------------------------------------------------------------- health and metrics


async def test_health_and_metrics_exposition(hs: Homeserver) -> None:
    app = build_app(hs.config, hs)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p.test") as http, \
            httpx.AsyncClient(transport=httpx.ASGITransport(app=MetricsApp(hs)), base_url="http://m.test") as mx:
        def count(text: str, series: str) -> float:
            for line in text.splitlines():
                if line.startswith(series + " "):
                    return float(line.rsplit(" ", 1)[1])
            return 0.0

        series = 'parley_http_requests_total{method="GET",route="/health",status="200"}'
        before = (await mx.get("/metrics")).text
        r = await http.get("/health")
        assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["database"] == "ok"
        r = await http.get("/_matrix/client/v3/no/such/path")  # (other paths belong to the web client)
        assert r.status_code == 404 and r.json()["errcode"] == "M_UNRECOGNIZED"
        after = await mx.get("/metrics")
        assert after.status_code == 200 and after.headers["content-type"].startswith("text/plain")
        assert count(after.text, series) == count(before, series) + 1
        assert count(after.text, 'parley_http_requests_total{method="GET",route="unmatched",status="404"}') >= 1
        assert "parley_db_pool_connections{" in after.text
        assert (await mx.get("/health")).status_code == 200
        assert (await mx.get("/other")).status_code == 404
        # Shutting down: /health turns 503 so balancers stop sending requests here.
        hs.begin_shutdown()
        r = await http.get("/health")
        assert r.status_code == 503 and r.json()["status"] == "stopping"


async def test_sync_wakeups_counted_and_shutdown_releases_waiters(hs: Homeserver) -> None:
    before = metrics.SYNC_WAKEUPS._value.get()
    fut = hs.notifier.listen("@a:test.parley")
    hs.notifier.wake(["@a:test.parley"])
    assert fut.done() and metrics.SYNC_WAKEUPS._value.get() == before + 1
    parked = hs.notifier.listen("@b:test.parley")
    hs.begin_shutdown()
    assert parked.done()
    assert hs.notifier.listen("@c:test.parley").done()  # nobody parks any more


def test_json_log_lines() -> None:
    rec = logging.LogRecord("parley.access", logging.INFO, __file__, 1, "%s %d", ("GET", 200), None)
    rec.duration_ms = 1.5
    out = json.loads(JsonFormatter().format(rec))
    assert out["msg"] == "GET 200" and out["level"] == "INFO" and out["logger"] == "parley.access"
    assert out["duration_ms"] == 1.5 and out["ts"].endswith("Z")
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.LogRecord("parley", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: boom" in json.loads(JsonFormatter().format(rec))["exc"]


def test_outbound_http_clients_do_not_log_each_request_at_info() -> None:
    import logging

    from homeserver.logs import setup_logging

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging("INFO", "text")
        assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
        assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
        assert logging.getLogger("parley").isEnabledFor(logging.INFO)
        setup_logging("ERROR", "text")
        assert not logging.getLogger("httpx").isEnabledFor(logging.WARNING)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("httpx").setLevel(logging.NOTSET)
        logging.getLogger("httpcore").setLevel(logging.NOTSET)
