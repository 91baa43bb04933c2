"""Start and stop the servers under test, all on loopback and all started by the benchmark itself:
Parley embedded (SQLite), Parley on PostgreSQL, Parley as two workers (PostgreSQL + Redis) and
Synapse on the same PostgreSQL. Every process started here is killed at exit, even on error."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import yaml

from bench.synapse_venv import SYNAPSE_VENV, SynapseUnavailable, ensure_synapse

__all__ = ["SYNAPSE_VENV", "SynapseUnavailable", "ensure_synapse"]

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_DSN = os.environ.get("PARLEY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PARLEY_BENCH_REDIS", "redis://127.0.0.1:6379/0")

_LIVE: list[subprocess.Popen[bytes]] = []


def _kill_all() -> None:
    for p in _LIVE:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
    _LIVE.clear()


def _on_signal(signum: int, _frame: object) -> None:
    _kill_all()
    raise SystemExit(128 + signum)


atexit.register(_kill_all)
for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


@dataclass
class Server:
    name: str
    bases: list[str]  # one per worker; clients are spread over them
    pids: list[int]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.bases[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM in KiB and utime+stime in clock ticks, of one process."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    out["cpu_ticks"] = int(parts[11]) + int(parts[12])
    return out


def dsn_for(db: str) -> str:
    return PG_ADMIN_DSN.rpartition("/")[0] + "/" + db


async def create_db(name: str, c_locale: bool = False) -> str:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        extra = " TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'" if c_locale else ""
        await conn.execute(f'CREATE DATABASE "{name}"{extra}')
    finally:
        await conn.close()
    return name


async def drop_db(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def postgres_version() -> str:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def _wait_ready(proc: subprocess.Popen[bytes], base: str, log: Path, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} during start:\n"
                               + log.read_text(errors="replace")[-3000:])
        try:
            if httpx.get(f"{base}/_matrix/client/versions", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{what} did not answer /versions within {limit:.0f} s:\n"
                               + log.read_text(errors="replace")[-3000:])
        time.sleep(0.05)  # readiness probe interval


def _spawn(cmd: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=str(cwd))
    _LIVE.append(proc)
    return proc


def _start_parley_process(tmp: Path, database: str, server_name: str, root: Path = ROOT,
                          **extra: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
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
        "PARLEY_AI__INDEX_EMBEDDINGS": "false",  # no background embedding work unless a test asks
        **extra,
    })
    log = tmp / "server.log"
    proc = _spawn([sys.executable, "-m", "homeserver.cli", "--config", str(tmp / "parley.toml"), "serve"],
                  env, log, root)  # `-m` imports the homeserver package found in `root`
    base = f"http://127.0.0.1:{port}"
    _wait_ready(proc, base, log, 60, "Parley")
    return proc, base, log


async def start_parley(kind: str, tmp: Path, root: Path = ROOT) -> Server:
    """kind: sqlite | postgres | workers. `root`: another checkout to run (a before/after comparison)."""
    tmp.mkdir(parents=True, exist_ok=True)
    name = "bench.parley"
    if kind == "sqlite":
        proc, base, log = _start_parley_process(tmp, f"sqlite:///{tmp}/parley.db", name, root)
        return Server("Parley (SQLite)", [base], [proc.pid], [proc], [], [log])
    db = await create_db(f"parley_bench_{uuid.uuid4().hex[:8]}")
    server = Server("Parley (PostgreSQL)" if kind == "postgres" else "Parley (2 workers, PostgreSQL + Redis)",
                    [], [], [], [db], [])
    try:
        workers = ["."] if kind == "postgres" else ["a", "b"]
        for w in workers:
            extra = {} if kind == "postgres" else {"PARLEY_REDIS_URL": REDIS_URL,
                                                    "PARLEY_SIGNING_KEY_PATH": str(tmp / "shared.key")}
            proc, base, log = _start_parley_process(tmp / w, dsn_for(db), name, **extra)
            server.procs.append(proc)
            server.pids.append(proc.pid)
            server.bases.append(base)
            server.logs.append(log)
    except BaseException:
        await stop(server)
        raise
    return server


def synapse_version() -> str:
    py = ensure_synapse()
    # the distribution's version: synapse.__version__ appends the git branch/commit of the work tree
    # its files sit in (this repo, since the venv is under bench/)
    r = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('matrix-synapse'))"],
                       capture_output=True, text=True, cwd="/", check=False)
    return r.stdout.strip() or "?"


_RC = {"per_second": 100000, "burst_count": 100000}


async def start_synapse(tmp: Path) -> Server:
    py = ensure_synapse()
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cfg = tmp / "homeserver.yaml"
    subprocess.run([str(py), "-m", "synapse.app.homeserver", "--generate-config", "--server-name", "bench.synapse",
                    "--config-path", str(cfg), "--report-stats=no", "--data-directory", str(tmp)],
                   check=True, capture_output=True, cwd=tmp)
    db = await create_db(f"synapse_bench_{uuid.uuid4().hex[:8]}", c_locale=True)
    user = PG_ADMIN_DSN.split("//", 1)[1].split("@", 1)[0]
    overrides = {
        "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                       "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}]}],
        "database": {"name": "psycopg2", "args": {"user": user, "database": db, "host": "127.0.0.1",
                                                   "port": 5432, "cp_min": 5, "cp_max": 10}},
        "enable_registration": True, "enable_registration_without_verification": True,
        "report_stats": False, "enable_metrics": False, "url_preview_enabled": False,
        "bcrypt_rounds": 4, "trusted_key_servers": [], "suppress_key_server_warning": True,
        "presence": {"enabled": True},
        **{k: _RC for k in ("rc_message", "rc_registration", "rc_admin_redaction", "rc_joins_per_room",
                            "rc_key_requests", "rc_3pid_validation", "rc_third_party_invite", "rc_media_create",
                            "rc_delayed_event_mgmt", "rc_room_creation", "rc_reports", "rc_user_directory",
                            "rc_profile")},
        "rc_login": {"address": _RC, "account": _RC, "failed_attempts": _RC},
        "rc_joins": {"local": _RC, "remote": _RC},
        "rc_invites": {"per_room": _RC, "per_user": _RC, "per_issuer": _RC},
        "rc_presence": {"per_user": _RC},
        "rc_federation": {"window_size": 1000, "sleep_limit": 100000, "sleep_delay": 1,
                          "reject_limit": 100000, "concurrent": 1000},
    }
    over = tmp / "overrides.yaml"
    over.write_text(yaml.safe_dump(overrides))
    log = tmp / "synapse.log"
    proc = _spawn([str(py), "-m", "synapse.app.homeserver", "-c", str(cfg), "-c", str(over)],
                  dict(os.environ), log, tmp)
    server = Server("Synapse (PostgreSQL)", [f"http://127.0.0.1:{port}"], [proc.pid], [proc], [db], [log])
    try:
        _wait_ready(proc, server.base, log, 120, "Synapse")
    except BaseException:
        await stop(server)
        raise
    return server


def _stop_process(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in _LIVE:
        _LIVE.remove(p)


async def stop(server: Server) -> None:
    for p in server.procs:
        _stop_process(p)
    for db in server.databases:
        try:
            await drop_db(db)
        except Exception as e:  # noqa: BLE001 - cleanup must not hide the real error
            print(f"warning: could not drop database {db}: {e}", file=sys.stderr)


def cleanup_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
