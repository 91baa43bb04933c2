"""A real Parley process with plugins enabled, and a plain HTTP Matrix client for it."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.conftest import spawn_server, stop_server, wait_ready

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
SERVER_NAME = "e2e.parley"
ADMIN = f"@admin:{SERVER_NAME}"
CANARY = "canary-" + uuid.uuid4().hex
EXT = "/_matrix/client/unstable/org.parley.plugins"
ADMIN_API = "/_parley/admin/v1/plugins"


async def until(what: Callable[[], Awaitable[Any]], timeout: float = 30.0, step: float = 0.1) -> Any:
    """Poll `what()` until it returns something truthy (a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(step)


@dataclass
class User:
    http: httpx.AsyncClient
    user_id: str
    token: str

    async def call(self, method: str, path: str, body: Any = None, expect: int | None = 200) -> Any:
        r = await self.http.request(method, path, json=body, headers={"Authorization": f"Bearer {self.token}"})
        if expect is not None:
            assert r.status_code == expect, (method, path, r.status_code, r.text)
        return r.json()

    async def create_room(self, invite: list[str] | None = None) -> str:
        return str((await self.call("POST", "/_matrix/client/v3/createRoom", {"invite": invite or []}))["room_id"])

    async def send_text(self, room_id: str, body: str) -> str:
        path = f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/{uuid.uuid4().hex}"
        return str((await self.call("PUT", path, {"msgtype": "m.text", "body": body}))["event_id"])

    async def messages(self, room_id: str) -> list[dict[str, Any]]:
        out = await self.call("GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/messages?dir=b&limit=100")
        return list(reversed(out["chunk"]))

    async def message_from(self, room_id: str, sender: str, prefix: str, timeout: float = 30.0) -> dict[str, Any]:
        async def find() -> dict[str, Any] | None:
            for ev in await self.messages(room_id):
                body = ev.get("content", {}).get("body", "")
                if ev["sender"] == sender and ev["type"] == "m.room.message" and body.startswith(prefix):
                    return ev
            return None
        return dict(await until(find, timeout))

    async def command(self, room_id: str, command: str, args: str = "", expect: int = 202) -> Any:
        return await self.call("POST", f"{EXT}/rooms/{quote(room_id)}/commands/{command}", {"args": args},
                               expect=expect)


@dataclass
class PluginServer:
    base: str
    tmp: Path
    pid: int
    http: httpx.AsyncClient

    async def register(self, name: str) -> User:
        r = await self.http.post("/_matrix/client/v3/register",
                                 json={"username": name, "password": "pw-" + name, "auth": {"type": "m.login.dummy"}})
        assert r.status_code == 200, r.text
        return User(self.http, r.json()["user_id"], r.json()["access_token"])

    async def install(self, admin: User, folder: Path, enable: bool = True) -> None:
        await admin.call("POST", f"{ADMIN_API}/install", {"path": str(folder)})
        if enable:
            name = folder.name
            await admin.call("PUT", f"{ADMIN_API}/{name}/enabled", {"enabled": True})

    async def status(self, admin: User, name: str) -> dict[str, Any]:
        plugins = (await admin.call("GET", ADMIN_API))["plugins"]
        return dict(next(p for p in plugins if p["name"] == name))

    async def wait_running(self, admin: User, name: str, timeout: float = 30.0) -> dict[str, Any]:
        async def running() -> dict[str, Any] | None:
            s = await self.status(admin, name)
            return s if s.get("process", {}).get("state") == "running" else None
        return dict(await until(running, timeout))

    async def bot_joined(self, user: User, room_id: str, bot: str) -> None:
        async def joined() -> bool:
            out = await user.call("GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/joined_members")
            return bot in out["joined"]
        await until(joined)


@contextlib.asynccontextmanager
async def running_plugin_server(tmp_path: Path, backend: str, **extra: str) -> AsyncIterator[PluginServer]:
    """A server with plugins enabled; `extra` environment overrides (e.g. the hook timeout)."""
    env = {
        "PARLEY_PLUGINS__ENABLED": "true",
        "PARLEY_PLUGINS__DIR": str(tmp_path / "plugins"),
        "PARLEY_PLUGINS__HOOK_TIMEOUT_S": "3",
        "PARLEY_PLUGINS__MEMORY_MB": "256",
        "PARLEY_PLUGINS__RESTART_BACKOFF_MAX_S": "2",
        "PARLEY_ADMINS": ADMIN,
        "PARLEY_LOG_LEVEL": "INFO",
        "PARLEY_PLUGINS__WEBHOOK_IP_ALLOWLIST": "127.0.0.0/8",
        "CANARY_SECRET": CANARY,
        **extra,
    }
    proc, base = spawn_server(tmp_path, backend, SERVER_NAME, **env)
    try:
        wait_ready(proc, base, tmp_path / "server.log")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            yield PluginServer(base, tmp_path, proc.pid, http)
    finally:
        stop_server(proc)


@pytest.fixture
async def plugin_server(tmp_path: Path, backend: str) -> AsyncIterator[PluginServer]:
    async with running_plugin_server(tmp_path, backend) as server:
        yield server
