"""Driving matrix-js-sdk (Element's SDK, with its Rust crypto) from tests: a `Party` is one node
process running tests/jssdk/party.mjs for one user on one homeserver (Parley or Synapse)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import httpx

JSSDK = Path(__file__).resolve().parents[1] / "jssdk"
DEADLINE_S = 240  # generous: a loaded CI machine starts node and its wasm crypto slowly
V3 = "/_matrix/client/v3"
PASSWORD = "correct horse battery"
#: When set, every line the parties print (the SDK's log included) is appended to this file.
DEBUG_LOG = os.environ.get("JSSDK_PARTY_LOG")


def install_jssdk() -> None:
    subprocess.run([str(JSSDK / "deps.sh")], check=True)


async def register(http: httpx.AsyncClient, name: str) -> dict[str, Any]:
    """A new account (and its first device) on the server `http` points at: the register answer."""
    resp = await http.post(f"{V3}/register", json={"username": f"{name}{secrets.token_hex(3)}",
                                                  "password": PASSWORD, "auth": {"type": "m.login.dummy"}})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def login(http: httpx.AsyncClient, user_id: str) -> dict[str, Any]:
    """A new device of an existing account (password login)."""
    resp = await http.post(f"{V3}/login", json={"type": "m.login.password", "password": PASSWORD,
                                                "identifier": {"type": "m.id.user", "user": user_id}})
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


class Party:
    """A node process running tests/jssdk/party.mjs. Its stdout is drained all the time (the SDK
    logs there too, and a full pipe would stall it); our own lines carry a marker. Some modes
    read commands from stdin (`tell`)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self.changed = asyncio.Condition()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while raw := await self.proc.stdout.readline():
            if DEBUG_LOG:
                with open(DEBUG_LOG, "ab") as f:
                    f.write(f"[{self.proc.pid}] ".encode() + raw)
            if raw.startswith(b"@@party "):
                async with self.changed:
                    self.lines.append(json.loads(raw[len(b"@@party "):]))
                    self.changed.notify_all()
        async with self.changed:
            self.changed.notify_all()

    @classmethod
    async def start(cls, mode: str, base: str, user: dict[str, Any], *extra: str) -> Party:
        proc = await asyncio.create_subprocess_exec(
            "node", str(JSSDK / "party.mjs"), mode, base, user["user_id"], user["access_token"],
            user["device_id"], *extra, cwd=str(JSSDK), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT if DEBUG_LOG else asyncio.subprocess.DEVNULL)
        return cls(proc)

    async def wait_for(self, key: str, value: Any = None) -> dict[str, Any]:
        """The first line that has `key` (with `value`, when given), waiting for it."""
        def found() -> dict[str, Any] | None:
            return next((line for line in self.lines
                         if key in line and (value is None or line[key] == value)), None)

        async with asyncio.timeout(DEADLINE_S), self.changed:
            while (line := found()) is None:
                if self.reader.done():
                    raise AssertionError(f"party exited without {key!r}={value!r}: {self.lines}")
                await self.changed.wait()
            return line

    def seen(self, key: str) -> list[Any]:
        return [line[key] for line in self.lines if key in line]

    async def tell(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        await self.reader


def assert_sqlite_free_of(db_path: Path, needles: list[str]) -> None:
    """No row of any table of a server's SQLite database holds one of `needles`."""
    db = sqlite3.connect(db_path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert "events" in tables
        for table in tables:
            for row in db.execute(f"SELECT * FROM {table}"):
                text = repr(row)
                for needle in needles:
                    assert needle not in text, (table, needle)
    finally:
        db.close()
