"""One plugin process: spawned sandboxed, spoken to over its stdin/stdout channel, restarted with
backoff when it crashes, hangs or exits.

The process starts with an empty environment in its own working directory and confines itself
(parley_plugin/sandbox.py) before importing any plugin code. A hook that is not acknowledged
within the hook timeout counts as a hang: the process is killed and started again, and the hook
is delivered again to the new process (at-least-once)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import parley_plugin
from homeserver.config_plugins import PluginsConfig
from parley_plugin.manifest import Manifest

log = logging.getLogger("parley.plugins")
STDERR_TAIL = 40
HEALTHY_AFTER_S = 30.0
START_TIMEOUT_S = 20.0
# Bootstraps the SDK from its private copy; -I -S: no site-packages, no PYTHON* variables.
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from parley_plugin.runner import main; main()"


class HookFailed(Exception):
    """The process died or did not acknowledge a hook in time; it is being restarted."""


@dataclass
class Launch:
    manifest: Manifest
    code_dir: Path
    work_dir: Path
    server_url: str
    server_port: int
    user_id: str
    settings: dict[str, Any]


@dataclass
class ProcessStatus:
    state: str = "stopped"  # stopped | starting | running | backoff
    pid: int | None = None
    restarts: int = 0
    last_exit: int | None = None
    last_error: str | None = None
    confinement: dict[str, Any] = field(default_factory=dict)
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=STDERR_TAIL))


def _interpreter() -> str:
    """The real interpreter, not a venv's wrapper (its pyvenv.cfg is outside the sandbox)."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


class PluginProcess:
    def __init__(self, launch: Launch, config: PluginsConfig, issue_token: Any) -> None:
        self.launch = launch
        self.config = config
        self.issue_token = issue_token  # async () -> str: a fresh capability token
        self.status = ProcessStatus()
        self.ready = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._acks: dict[str, asyncio.Future[None]] = {}
        self._on_message: Any = None
        self._task: asyncio.Task[None] | None = None
        self._backoff = 1.0
        self._stopping = False

    def on_message(self, fn: Any) -> None:
        """`fn(msg)` for each message the plugin sends besides ready/ack (e.g. notices)."""
        self._on_message = fn

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.ensure_future(self._supervise())

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._kill()
        self.status.state = "stopped"

    async def hook(self, msg: dict[str, Any]) -> None:
        """Deliver a hook and wait for its acknowledgement; HookFailed (and a restart) if the
        process dies or takes longer than the hook timeout."""
        proc = self._proc
        if proc is None or proc.stdin is None or not self.ready.is_set():
            raise HookFailed("not running")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks[msg["id"]] = fut
        try:
            proc.stdin.write((json.dumps(msg) + "\n").encode())
            await proc.stdin.drain()
            await asyncio.wait_for(asyncio.shield(fut), self.config.hook_timeout_s)
        except TimeoutError:
            self.status.last_error = f"hook {msg['type']} not acknowledged within {self.config.hook_timeout_s}s"
            log.warning("plugin %s: %s; restarting it", self.launch.manifest.name, self.status.last_error)
            await self._kill()
            raise HookFailed(self.status.last_error) from None
        except (ConnectionError, BrokenPipeError, HookFailed) as e:
            raise HookFailed(str(e)) from None
        finally:
            self._acks.pop(msg["id"], None)

    # ------------------------------------------------------------------ supervision

    async def _supervise(self) -> None:
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a failed start is retried with backoff
                self.status.last_error = f"{type(e).__name__}: {e}"
                log.warning("plugin %s failed to start: %s", self.launch.manifest.name, e)
            self.ready.clear()
            if self._stopping:
                return
            if time.monotonic() - started > HEALTHY_AFTER_S:
                self._backoff = 1.0
            self.status.restarts += 1
            self.status.state = "backoff"
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, self.config.restart_backoff_max_s)

    def _prepare_dirs(self) -> tuple[Path, Path]:
        base = self.launch.work_dir
        sdk = base / "sdk"
        data = base / "data"
        shutil.rmtree(sdk, ignore_errors=True)
        # A fresh copy of the SDK each start: the plugin can write its data, not our code.
        shutil.copytree(Path(parley_plugin.__file__).parent, sdk / "parley_plugin",
                        ignore=shutil.ignore_patterns("__pycache__"))
        data.mkdir(parents=True, exist_ok=True)
        return sdk, data

    async def _run_once(self) -> None:
        m = self.launch.manifest
        self.status.state = "starting"
        sdk, data = self._prepare_dirs()
        token = await self.issue_token()
        proc = await asyncio.create_subprocess_exec(
            _interpreter(), "-I", "-S", "-B", "-c", _BOOT, str(sdk),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=str(data), env={}, start_new_session=True, limit=16 * 1024 * 1024,
        )
        self._proc = proc
        self.status.pid = proc.pid
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        hello = {
            "type": "hello", "protocol": 1, "token": token, "user_id": self.launch.user_id,
            "server_url": self.launch.server_url, "server_port": self.launch.server_port,
            "settings": self.launch.settings, "network": m.network, "entry": m.entry,
            "code_dir": str(self.launch.code_dir), "sdk_dir": str(sdk),
            "limits": {"memory_mb": self.config.memory_mb, "cpu_seconds": self.config.cpu_seconds,
                       "open_files": self.config.open_files, "file_size_mb": self.config.file_size_mb},
        }
        proc.stdin.write((json.dumps(hello) + "\n").encode())
        await proc.stdin.drain()
        err_task = asyncio.ensure_future(self._read_stderr(proc.stderr))
        try:
            await self._read_channel(proc.stdout)
        finally:
            await self._kill()
            await err_task
            for fut in self._acks.values():
                if not fut.done():
                    fut.set_exception(HookFailed("plugin process exited"))
            self.status.last_exit = proc.returncode
            if self.status.stderr:
                self.status.last_error = self.status.stderr[-1]
            log.warning("plugin %s exited with %s", m.name, proc.returncode)

    async def _read_channel(self, stdout: asyncio.StreamReader) -> None:
        try:
            line = await asyncio.wait_for(stdout.readline(), START_TIMEOUT_S)
        except TimeoutError:
            self.status.last_error = "no answer at start"
            return
        while line:
            try:
                msg = json.loads(line)
            except ValueError:
                self.status.last_error = "garbled channel message"
                return
            if isinstance(msg, dict):
                await self._handle(msg)
            line = await stdout.readline()

    async def _handle(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "confined":
            self.status.confinement = {k: v for k, v in msg.items() if k != "type"}
        elif kind == "ready":
            self.status.state = "running"
            self.ready.set()
        elif kind == "ack":
            fut = self._acks.get(str(msg.get("id")))
            if fut is not None and not fut.done():
                fut.set_result(None)
        elif self._on_message is not None:
            try:
                await self._on_message(msg)
            except Exception:  # noqa: BLE001 - a bad request from the plugin is its problem
                log.exception("plugin %s: message %s refused", self.launch.manifest.name, kind)

    async def _read_stderr(self, stderr: asyncio.StreamReader) -> None:
        name = self.launch.manifest.name
        while True:
            line = await stderr.readline()
            if not line:
                return
            text = line.decode(errors="replace").rstrip()[:1000]
            self.status.stderr.append(text)
            log.info("plugin %s: %s", name, text)

    async def _kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)  # its own session: children go too
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 5)
        self.ready.clear()
