"""Shared fixtures: a homeserver on SQLite or PostgreSQL, and a Matrix-aware HTTP client."""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from client_api.app import build_app
from homeserver.app import Homeserver
from homeserver.config import Config, RateLimits
from homeserver.config_ai import AIConfig
from homeserver.protocol.signing import generate_signing_key
from homeserver.storage.database import PostgresDatabase
from homeserver.storage.migrate import migrate
from homeserver.storage.stores import Stores

PG_ADMIN_DSN = os.environ.get("PARLEY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PARLEY_TEST_REDIS", "redis://127.0.0.1:6379/0")
SERVER_NAME = "test.parley"
_TEMPLATE = f"parley_tmpl_{os.getpid()}"
_template_ready = False


def _dsn_for(db: str) -> str:
    base, _, _ = PG_ADMIN_DSN.rpartition("/")
    return f"{base}/{db}"


async def _ensure_template() -> None:
    """A migrated template database, copied per test (much faster than migrating each time)."""
    global _template_ready
    if _template_ready:
        return
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{_TEMPLATE}"')
        await conn.execute(f'CREATE DATABASE "{_TEMPLATE}"')
    finally:
        await conn.close()
    db = PostgresDatabase(_dsn_for(_TEMPLATE), min_size=1, max_size=1)
    await db.open()
    try:
        await migrate(db)
    finally:
        await db.close()
    _template_ready = True


async def create_pg_database() -> str:
    await _ensure_template()
    name = f"parley_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_TEMPLATE}"')
    finally:
        await conn.close()
    return name


async def drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    if not _template_ready:
        return
    import asyncio

    async def drop() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{_TEMPLATE}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


def make_config(tmp_path: Path, database: str, **overrides: Any) -> Config:
    cfg = Config(
        server_name=SERVER_NAME,
        public_baseurl="http://127.0.0.1:8008/",
        data_dir=str(tmp_path),
        database=database,
        media_dir=str(tmp_path / "media"),
        signing_key_path=str(tmp_path / "signing.key"),
        rate_limits=RateLimits(enabled=False),
        ai=AIConfig(index_embeddings=False),  # tests of smart search turn the indexer on
    )
    return replace(cfg, **overrides)


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: Any, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/parley.db"
        return
    name = await create_pg_database()
    try:
        yield _dsn_for(name)
    finally:
        await drop_pg_database(name)


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
async def hs(backend: str, tmp_path: Path, config_overrides: dict[str, Any]) -> AsyncIterator[Homeserver]:
    config = make_config(tmp_path, backend, **config_overrides)
    stores = await Stores.open(config.database)
    server = Homeserver(config, stores, generate_signing_key("t1"))
    await server.start_background()
    try:
        yield server
    finally:
        await server.close()


class MatrixClient:
    """A thin helper over httpx: every response is checked against the spec's schemas."""

    def __init__(self, http: httpx.AsyncClient, token: str | None = None,
                 user_id: str | None = None, device_id: str | None = None) -> None:
        self.http = http
        self.token = token
        self.user_id = user_id
        self.device_id = device_id

    def as_user(self, token: str, user_id: str, device_id: str) -> MatrixClient:
        return MatrixClient(self.http, token, user_id, device_id)

    async def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                      params: dict[str, Any] | None = None, token: str | None = None,
                      validate: bool = True, headers: dict[str, str] | None = None) -> httpx.Response:
        h = dict(headers or {})
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        if raw is not None:
            resp = await self.http.request(method, path, content=raw, params=params, headers=h)
        elif body is not None:
            resp = await self.http.request(method, path, json=body, params=params, headers=h)
        else:
            resp = await self.http.request(method, path, params=params, headers=h)
        if validate and resp.headers.get("content-type", "").startswith("application/json"):
            from tests.spec_schema import validate_response

            try:
                validate_response(method, httpx.URL(path).path, resp.status_code, resp.json())
            except LookupError:
                pass
        return resp

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return await self.request("POST", path, body if body is not None else {}, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        return await self.request("PUT", path, body if body is not None else {}, **kw)

    async def delete(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kw)

    async def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        resp = await self.request(method, path, body, **kw)
        assert resp.status_code == 200, f"{method} {path} -> {resp.status_code} {resp.text}"
        return resp.json()

    async def register(self, username: str | None = None, password: str = "correct horse battery",
                       **extra: Any) -> MatrixClient:
        username = username or f"u{secrets.token_hex(4)}"
        body = {"username": username, "password": password, "auth": {"type": "m.login.dummy"}, **extra}
        data = await self.ok("POST", "/_matrix/client/v3/register", body, token="")
        return self.as_user(data["access_token"], data["user_id"], data["device_id"])

    async def create_room(self, **body: Any) -> str:
        data = await self.ok("POST", "/_matrix/client/v3/createRoom", body)
        return data["room_id"]

    async def send_text(self, room_id: str, text: str, txn: str | None = None) -> str:
        txn = txn or secrets.token_hex(8)
        data = await self.ok(
            "PUT", f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{txn}",
            {"msgtype": "m.text", "body": text},
        )
        return data["event_id"]

    async def sync(self, **params: Any) -> Any:
        return await self.ok("GET", "/_matrix/client/v3/sync", params=params)


@pytest.fixture
async def client(hs: Homeserver) -> AsyncIterator[MatrixClient]:
    app = build_app(hs.config, hs)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://parley.test") as http:
        yield MatrixClient(http)


async def assert_database_free_of(hs: Homeserver, needles: list[str]) -> None:
    """No row of any table of the server's database holds one of `needles` (end-to-end
    encrypted plaintexts the server must never have seen)."""
    db = hs.stores.db
    if db.dialect == "sqlite":
        tables = [r["name"] for r in await db.fetch("SELECT name FROM sqlite_master WHERE type = 'table'")]
    else:
        tables = [r["tablename"] for r in await db.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
    assert "events" in tables and "to_device_inbox" in tables
    for table in tables:
        for row in await db.fetch(f"SELECT * FROM {table}"):
            text = repr(dict(row))
            for needle in needles:
                assert needle not in text, (table, needle)
