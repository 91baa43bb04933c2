"""Send latency with plugins: does a plugin slow message sending down?

One server process (SQLite) with plugins enabled. Three phases of N sequential sends
(PUT /send, HTTP round trip) by one user in one room: no plugin; the `probe` test plugin
listening to every message of the room (each send becomes a hook); the same plugin stuck in an
endless loop (`/spin`, killed at the hook timeout and restarted, again and again). Prints p50
and p95 in milliseconds and the ratio to the first phase. Usage:
`.venv/bin/python bench/plugins_latency.py -n 300`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import httpx

from tests.e2e.conftest import spawn_server, stop_server, wait_ready
from tests.plugins.conftest import ADMIN, FIXTURES, SERVER_NAME, PluginServer, User

PROBE = f"@probe:{SERVER_NAME}"


async def sends(user: User, room: str, n: int) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        await user.send_text(room, f"message {i}")
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(ms: list[float]) -> tuple[float, float]:
    ms = sorted(ms)
    return statistics.median(ms), ms[int(len(ms) * 0.95) - 1]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=300)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="parley-plugins-bench-"))
    env = {"PARLEY_PLUGINS__ENABLED": "true", "PARLEY_PLUGINS__DIR": str(tmp / "plugins"),
           "PARLEY_PLUGINS__HOOK_TIMEOUT_S": "2", "PARLEY_PLUGINS__RESTART_BACKOFF_MAX_S": "1",
           "PARLEY_ADMINS": ADMIN}
    proc, base = spawn_server(tmp, f"sqlite:///{tmp}/parley.db", SERVER_NAME, **env)
    rows = []
    try:
        wait_ready(proc, base, tmp / "server.log")
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            server = PluginServer(base, tmp, proc.pid, http)
            admin = await server.register("admin")
            room = await admin.create_room()
            await sends(admin, room, 50)  # warm up
            base_ms = await sends(admin, room, args.n)
            rows.append(("no plugin", base_ms))
            await server.install(admin, FIXTURES / "probe")
            await server.wait_running(admin, "probe")
            await admin.call("POST", f"/_matrix/client/v3/rooms/{room}/invite", {"user_id": PROBE})
            await server.bot_joined(admin, room, PROBE)
            rows.append(("plugin listening to every message", await sends(admin, room, args.n)))
            for _ in range(20):
                await admin.command(room, "spin")
            rows.append(("plugin looping forever (killed, restarted)", await sends(admin, room, args.n)))
            restarts = (await server.status(admin, "probe"))["process"]["restarts"]
    finally:
        stop_server(proc)
    b50, b95 = summary(base_ms)
    print(f"N={args.n} sequential sends, one server process (SQLite), 2-core machine shared with other work")
    print("| phase | p50 ms | p95 ms | p50 ratio | p95 ratio |")
    print("|---|---|---|---|---|")
    for name, ms in rows:
        p50, p95 = summary(ms)
        print(f"| {name} | {p50:.2f} | {p95:.2f} | {p50 / b50:.2f} | {p95 / b95:.2f} |")
    print(f"plugin restarts during the looping phase: {restarts}")


if __name__ == "__main__":
    asyncio.run(main())
