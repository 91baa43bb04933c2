"""Start and stop the servers under test: Parley (SQLite, PostgreSQL, two workers + Redis) and
Synapse on the same PostgreSQL. Every process is started by the benchmark on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.conftest import PG_ADMIN_DSN, REDIS_URL, _dsn_for  # noqa: E402
from tests.e2e.conftest import free_port, start_server, stop_server  # noqa: E402

SYNAPSE_VENV = ROOT / "bench" / ".venv-synapse"


@dataclass
class Server:
    name: str
    bases: list[str]  # one per worker; clients are spread over them
    pids: list[int]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.bases[0]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM in KiB and utime+stime in clock ticks."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    out["cpu_ticks"] = int(parts[11]) + int(parts[12])
    return out


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


async def start_parley(kind: str, tmp: Path) -> Server:
    tmp.mkdir(parents=True, exist_ok=True)
    env = {"PARLEY_RATE_LIMITS__ENABLED": "false"}
    if kind == "sqlite":
        proc, base = start_server(tmp, f"sqlite:///{tmp}/parley.db", server_name="bench.parley", **env)
        return Server("Parley (SQLite)", [base], [proc.pid], [proc])
    db = await create_db(f"parley_bench_{uuid.uuid4().hex[:8]}")
    if kind == "postgres":
        proc, base = start_server(tmp, _dsn_for(db), server_name="bench.parley", **env)
        return Server("Parley (PostgreSQL)", [base], [proc.pid], [proc], [db])
    procs, bases = [], []
    for w in ("a", "b"):
        (tmp / w).mkdir(exist_ok=True)
        p, b = start_server(tmp / w, _dsn_for(db), server_name=f"bench{uuid.uuid4().hex[:4]}.parley",
                            PARLEY_REDIS_URL=REDIS_URL, PARLEY_SIGNING_KEY_PATH=str(tmp / "shared.key"), **env)
        procs.append(p)
        bases.append(b)
    return Server("Parley (2 workers, PostgreSQL + Redis)", bases, [p.pid for p in procs], procs, [db])


def ensure_synapse() -> Path:
    py = SYNAPSE_VENV / "bin" / "python"
    if not py.exists() or subprocess.run([str(py), "-c", "import synapse"], capture_output=True).returncode:
        subprocess.run([sys.executable, "-m", "venv", str(SYNAPSE_VENV)], check=True)
        r = subprocess.run([str(SYNAPSE_VENV / "bin" / "pip"), "install", "-q", "matrix-synapse[postgres]"],
                           capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"could not install matrix-synapse: {r.stderr[-2000:]}")
    return py


def synapse_version() -> str:
    py = ensure_synapse()
    r = subprocess.run([str(py), "-c", "import synapse; print(synapse.__version__)"], capture_output=True, text=True)
    return r.stdout.strip()


_RC = {"per_second": 100000, "burst_count": 100000}


async def start_synapse(tmp: Path) -> Server:
    py = ensure_synapse()
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    name = "bench.synapse"
    cfg = tmp / "homeserver.yaml"
    subprocess.run([str(py), "-m", "synapse.app.homeserver", "--generate-config", "--server-name", name,
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
    }
    over = tmp / "overrides.yaml"
    over.write_text(yaml.safe_dump(overrides))
    log = open(tmp / "synapse.log", "wb")
    proc = subprocess.Popen([str(py), "-m", "synapse.app.homeserver", "-c", str(cfg), "-c", str(over)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError("synapse exited: " + (tmp / "synapse.log").read_text()[-3000:])
        try:
            if httpx.get(f"{base}/_matrix/client/versions", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("synapse did not start")
        time.sleep(0.1)  # readiness probe
    return Server("Synapse (PostgreSQL)", [base], [proc.pid], [proc], [db])


async def stop(server: Server) -> None:
    for p in server.procs:
        stop_server(p)
    for db in server.databases:
        await drop_db(db)


def cleanup_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


__all__ = ["Server", "start_parley", "start_synapse", "stop", "proc_status", "synapse_version", "os"]
