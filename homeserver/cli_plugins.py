"""`parley plugins list|install|enable|disable|config`: the same operations as the admin API
(/_parley/admin/v1/plugins), on the database named by the config. A running server picks the
changes up within a few seconds."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from homeserver.config import Config


def add_parser(sub: Any) -> None:
    p = sub.add_parser("plugins", help="list, install, enable, disable and configure plugins")
    ps = p.add_subparsers(dest="plugins_command", required=True)
    ps.add_parser("list", help="discovered and installed plugins")
    inst = ps.add_parser("install", help="install a plugin folder, or a discovered plugin by name")
    inst.add_argument("source", help="a folder with manifest.toml, or the name of a discovered plugin")
    for verb in ("enable", "disable"):
        ps.add_parser(verb).add_argument("name")
    cfg = ps.add_parser("config", help="show or set a plugin's settings (key=value, JSON values)")
    cfg.add_argument("name")
    cfg.add_argument("pairs", nargs="*", metavar="key=value")


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


async def run(config: Config, args: argparse.Namespace) -> int:
    from pathlib import Path

    from homeserver.app import Homeserver
    from homeserver.protocol.errors import MatrixError

    # The management commands never start plugin processes themselves.
    quiet = dataclasses.replace(config, plugins=dataclasses.replace(config.plugins, enabled=False))
    hs = await Homeserver.start(quiet)
    try:
        cmd = args.plugins_command
        if cmd == "list":
            for p in await hs.plugins.list_plugins():
                state = "enabled" if p["enabled"] else ("installed" if p["installed"] else "available")
                print(f"{p['name']:<20} {p.get('version', '?'):<10} {state:<10} "
                      f"commands={','.join(p.get('commands', []))} bot={p.get('bot', '?')}")
        elif cmd == "install":
            src = Path(args.source)
            out = await hs.plugins.install(str(src) if src.is_dir() else None,
                                           None if src.is_dir() else args.source)
            print(f"installed {out['name']} {out['version']} (disabled; `parley plugins enable {out['name']}`)")
        elif cmd in ("enable", "disable"):
            await hs.plugins.set_enabled(args.name, cmd == "enable")
            print(f"{args.name} {cmd}d")
        elif cmd == "config":
            current = next((p for p in await hs.plugins.list_plugins() if p["name"] == args.name), None)
            if current is None or not current["installed"]:
                raise MatrixError(404, "M_NOT_FOUND", f"Plugin {args.name!r} is not installed")
            settings = dict(current.get("settings", {}))
            for pair in args.pairs:
                key, sep, value = pair.partition("=")
                if not sep:
                    raise MatrixError(400, "M_INVALID_PARAM", f"expected key=value, got {pair!r}")
                settings[key] = _value(value)
            merged = await hs.plugins.configure(args.name, settings) if args.pairs else settings
            print(json.dumps(merged, indent=2, sort_keys=True))
    except MatrixError as e:
        print(f"parley: {e.errcode}: {e.error}", file=sys.stderr)
        return 1
    finally:
        await hs.close()
    return 0
