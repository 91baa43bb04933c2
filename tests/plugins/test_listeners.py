"""Event listeners: declared events reach the plugin in order, and events sent while the
plugin was off are delivered when it comes back (the cursor is persisted, nothing is missed).
And `parley plugins ...` manages plugins from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins.conftest import ADMIN_API, FIXTURES, REPO, SERVER_NAME, PluginServer, until

PROBE = f"@probe:{SERVER_NAME}"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
async def test_events_in_order_and_none_missed_while_disabled(plugin_server: PluginServer) -> None:
    admin = await plugin_server.register("admin")
    await plugin_server.install(admin, FIXTURES / "probe")
    await plugin_server.wait_running(admin, "probe")
    room = await admin.create_room(invite=[PROBE])
    await plugin_server.bot_joined(admin, room, PROBE)
    await admin.send_text(room, "echo live")
    await admin.message_from(room, PROBE, "echoed: live")

    await admin.call("PUT", f"{ADMIN_API}/probe/enabled", {"enabled": False})

    async def stopped() -> bool:
        return "process" not in await plugin_server.status(admin, "probe")
    await until(stopped)
    for i in range(5):
        await admin.send_text(room, f"echo {i}")
    await admin.call("PUT", f"{ADMIN_API}/probe/enabled", {"enabled": True})

    async def all_echoed() -> list[str] | None:
        got = [e["content"]["body"] for e in await admin.messages(room)
               if e["sender"] == PROBE and e["content"].get("body", "").startswith("echoed: ")]
        return got if len(got) >= 6 else None
    got = await until(all_echoed)
    assert got == ["echoed: live"] + [f"echoed: {i}" for i in range(5)]


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "homeserver.cli", "--config", str(config), "plugins", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def test_cli_manages_plugins(tmp_path: Path) -> None:
    config = tmp_path / "parley.toml"
    config.write_text(f'server_name = "{SERVER_NAME}"\ndata_dir = "."\ndatabase = "sqlite:///parley.db"\n'
                      'signing_key_path = "signing.key"\nmedia_dir = "media"\n[plugins]\ndir = "plugins"\n')
    out = _cli(config, "install", str(REPO / "plugins" / "poll"))
    assert out.returncode == 0, out.stderr
    assert "installed poll 1.0.0" in out.stdout
    assert (tmp_path / "plugins" / "poll" / "manifest.toml").is_file()
    out = _cli(config, "list")
    assert "poll" in out.stdout and "installed" in out.stdout and "commands=poll" in out.stdout
    assert _cli(config, "enable", "poll").returncode == 0
    assert "enabled" in _cli(config, "list").stdout
    out = _cli(config, "config", "poll", "max_options=4")
    assert out.returncode == 0 and '"max_options": 4' in out.stdout
    out = _cli(config, "config", "poll", "max_options=lots")
    assert out.returncode == 1 and "M_INVALID_PARAM" in out.stderr
    out = _cli(config, "disable", "nope")
    assert out.returncode == 1 and "M_NOT_FOUND" in out.stderr
    assert _cli(config, "disable", "poll").returncode == 0
    assert "installed" in _cli(config, "list").stdout
