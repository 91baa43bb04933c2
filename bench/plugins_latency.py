"""Send latency with plugins: does a plugin slow message sending down?

One server process (SQLite) with plugins enabled. Phases of N sequential sends (PUT /send,
HTTP round trip) by one user: no plugin installed; then, with the `probe` test plugin listening
to every message, the `pager` example forwarding mentions to a local HTTP receiver and the
`stall` test plugin whose notification hook never returns (killed at the hook timeout,
restarted, again and again), sends alternating message by message between a room without
plugin bots and a room with all three (every send there mentions a member: a hook for each
plugin), so that both rooms see the same machine load; then the probe stuck in an endless loop
(`/spin`). Prints p50 and p95 in milliseconds and ratios. Usage:
`.venv/bin/python bench/plugins_latency.py -n 300`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import httpx

from tests.e2e.conftest import spawn_server, stop_server, wait_ready
from tests.plugins.conftest import ADMIN, ADMIN_API, FIXTURES, REPO, SERVER_NAME, PluginServer, User
from tests.plugins.test_webhooks import Receiver

PROBE = f"@probe:{SERVER_NAME}"
BOTS = [PROBE, f"@pager:{SERVER_NAME}", f"@stall:{SERVER_NAME}"]


async def one_send(user: User, room: str, body: str, mention: str) -> float:
    content = {"msgtype": "m.text", "body": f"{body} {mention}", "m.mentions": {"user_ids": [mention]}}
    start = time.perf_counter()
    await user.call("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{time.time_ns()}", content)
    return (time.perf_counter() - start) * 1000


async def sends(user: User, room: str, n: int, mention: str) -> list[float]:
    return [await one_send(user, room, f"message {i}", mention) for i in range(n)]


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
    rows: list[tuple[str, list[float]]] = []
    pages, stalls = Receiver(), Receiver()
    try:
        wait_ready(proc, base, tmp / "server.log", timeout=180)
        async with httpx.AsyncClient(base_url=base, timeout=30) as http, pages as page_url, stalls as stall_url:
            server = PluginServer(base, tmp, proc.pid, http)
            admin = await server.register("admin")
            bob = await server.register("bob")
            plain = await admin.create_room(invite=[bob.user_id])
            await bob.call("POST", f"/_matrix/client/v3/join/{plain}", {})
            await sends(admin, plain, 50, bob.user_id)  # warm up
            base_ms = await sends(admin, plain, args.n, bob.user_id)
            rows.append(("no plugin installed", base_ms))
            for name, folder in (("probe", FIXTURES / "probe"), ("pager", REPO / "plugins" / "pager"),
                                 ("stall", FIXTURES / "stall")):
                await admin.call("POST", f"{ADMIN_API}/install", {"path": str(folder)})
                if name != "probe":
                    url = page_url if name == "pager" else stall_url
                    await admin.call("PUT", f"{ADMIN_API}/{name}/settings", {"url": url})
                await admin.call("PUT", f"{ADMIN_API}/{name}/enabled", {"enabled": True})
                await server.wait_running(admin, name)
            hooked = await admin.create_room(invite=[bob.user_id, *BOTS])
            await bob.call("POST", f"/_matrix/client/v3/join/{hooked}", {})
            for bot in BOTS:
                await server.bot_joined(admin, hooked, bot)
            without, with_hooks = [], []
            for i in range(args.n):  # alternating: both rooms see the same load
                without.append(await one_send(admin, plain, f"plain {i}", bob.user_id))
                with_hooks.append(await one_send(admin, hooked, f"hooked {i}", bob.user_id))
            rows.append(("alternating: room without plugin bots", without))
            rows.append(("alternating: room with 3 plugins (listener, pager, stalled hook)", with_hooks))
            paged, stalled = len(pages.requests), len(stalls.requests)
            for _ in range(20):
                await admin.command(hooked, "spin")
            rows.append(("probe looping forever (killed, restarted)", await sends(admin, hooked, args.n, bob.user_id)))
            restarts = {n: (await server.status(admin, n))["process"]["restarts"] for n in ("probe", "stall")}
    finally:
        stop_server(proc)
    b50, b95 = summary(base_ms)
    w50, w95 = summary(without)
    print(f"N={args.n} sequential sends, one server process (SQLite); load average {os.getloadavg()[0]:.1f}"
          f" on {os.cpu_count()} cores at the end")
    print("| phase | p50 ms | p95 ms | p50 ratio | p95 ratio |")
    print("|---|---|---|---|---|")
    for name, ms in rows:
        p50, p95 = summary(ms)
        ref50, ref95 = (w50, w95) if name.startswith("alternating") else (b50, b95)
        print(f"| {name} | {p50:.2f} | {p95:.2f} | {p50 / ref50:.2f} | {p95 / ref95:.2f} |")
    print("(alternating rows: ratio to the room without plugin bots; others: to no plugin installed)")
    print(f"during the alternating phase: {paged} pages received, the stalled hook entered {stalled} times;"
          f" restarts by the end: {restarts}")


if __name__ == "__main__":
    asyncio.run(main())
