"""A real Parley server process on a loopback port, for clients that speak real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn_server(tmp: Path, database: str, server_name: str = "e2e.parley", *, port: int | None = None,
                 cwd: Path | None = None, config: Path | None = None,
                 **env_extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start `parley serve` without waiting for it; (process, base URL). Its output goes to
    tmp/server.log. Env values of "" are removed (to let the config file decide)."""
    port = port or free_port()
    env = dict(os.environ)
    env.update({
        "PARLEY_SERVER_NAME": server_name,
        "PARLEY_PUBLIC_BASEURL": f"http://127.0.0.1:{port}/",
        "PARLEY_LISTENERS": f"127.0.0.1:{port}",
        "PARLEY_DATA_DIR": str(tmp),
        "PARLEY_DATABASE": database,
        "PARLEY_SIGNING_KEY_PATH": str(tmp / "signing.key"),
        "PARLEY_MEDIA_DIR": str(tmp / "media"),
        "PARLEY_RATE_LIMITS__ENABLED": "false",
        "PARLEY_LOG_LEVEL": "WARNING",
        "PARLEY_AI__INDEX_EMBEDDINGS": "false",  # no background embedding work unless a test asks
        **env_extra,
    })
    env = {k: v for k, v in env.items() if v != ""}
    log = open(tmp / "server.log", "wb")
    repo = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = str(repo) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "homeserver.cli", "--config", str(config or tmp / "parley.toml"), "serve"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(cwd or repo),
    )
    return proc, f"http://127.0.0.1:{port}"


def wait_ready(proc: subprocess.Popen[bytes], base: str, log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()}")
        try:
            if httpx.get(f"{base}/_matrix/client/versions", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server did not start: {log_path.read_text()}")
        time.sleep(0.05)  # readiness probe interval, not synchronization of test steps


def start_server(tmp: Path, database: str, server_name: str = "e2e.parley",
                 **env_extra: str) -> tuple[subprocess.Popen[bytes], str]:
    proc, base = spawn_server(tmp, database, server_name, **env_extra)
    wait_ready(proc, base, tmp / "server.log")
    return proc, base


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    proc, base = start_server(tmp_path, f"sqlite:///{tmp_path}/parley.db")
    try:
        yield base
    finally:
        stop_server(proc)
        log = (tmp_path / "server.log").read_text(errors="replace")
        assert "Traceback" not in log, log
