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


def start_server(tmp: Path, database: str, server_name: str = "e2e.parley",
                 **env_extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
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
        **env_extra,
    })
    log = open(tmp / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "homeserver.cli", "--config", str(tmp / "parley.toml"), "serve"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(Path(__file__).resolve().parents[2]),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(tmp / 'server.log').read_text()}")
        try:
            if httpx.get(f"{base}/_matrix/client/versions", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server did not start: {(tmp / 'server.log').read_text()}")
        time.sleep(0.05)  # readiness probe interval, not synchronization of test steps
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
