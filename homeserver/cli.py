"""The `parley` command: serve, generate-config, register-user."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import signal
import sys
from pathlib import Path

from homeserver.config import DEFAULT_CONFIG_TEXT, Config, ConfigError, load_config

DEFAULT_CONFIG_PATH = "parley.toml"


def _load(args: argparse.Namespace) -> Config:
    try:
        return load_config(args.config)
    except ConfigError as e:
        print(f"parley: invalid configuration: {e.key}: {e.why}", file=sys.stderr)
        raise SystemExit(2) from None


def _generate_config(args: argparse.Namespace) -> int:
    path = Path(args.config or DEFAULT_CONFIG_PATH)
    if path.exists() and not args.force:
        print(f"parley: {path} exists; use --force to overwrite", file=sys.stderr)
        return 1
    path.write_text(DEFAULT_CONFIG_TEXT.format(server_name=args.server_name))
    print(f"wrote {path}")
    return 0


async def _serve(config: Config) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config as HyperConfig

    from client_api.app import build_app

    Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    hc = HyperConfig()
    hc.bind = [f"{lst.host}:{lst.port}" for lst in config.listeners]
    hc.accesslog = None
    hc.errorlog = "-"
    hc.keep_alive_timeout = 75
    hc.graceful_timeout = 5
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    logging.getLogger("parley").info(
        "Parley serving %s on %s", config.server_name, ", ".join(hc.bind)
    )
    await serve(build_app(config), hc, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


async def _register_user(config: Config, args: argparse.Namespace) -> int:
    from homeserver.app import Homeserver
    from homeserver.protocol.errors import MatrixError

    password = args.password or os.environ.get("PARLEY_NEW_USER_PASSWORD")
    if password is None:
        password = getpass.getpass("Password: ")
    hs = await Homeserver.start(config)
    try:
        result = await hs.accounts.register(args.username, password, admin=args.admin, inhibit_login=True)
    except MatrixError as e:
        print(f"parley: {e.errcode}: {e.error}", file=sys.stderr)
        return 1
    finally:
        await hs.close()
    print(f"registered {result['user_id']}{' (admin)' if args.admin else ''}")
    return 0


def _run(coro: object) -> object:
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="parley", description="Parley Matrix homeserver")
    parser.add_argument("--config", "-c", default=os.environ.get("PARLEY_CONFIG"),
                        help="path to the TOML config (default: parley.toml if present)")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the homeserver")
    gen = sub.add_parser("generate-config", help="write a default config file")
    gen.add_argument("--server-name", default="localhost:8008")
    gen.add_argument("--force", action="store_true")
    reg = sub.add_parser("register-user", help="create an account (admins included)")
    reg.add_argument("username")
    reg.add_argument("--password")
    reg.add_argument("--admin", action="store_true")
    args = parser.parse_args(argv)
    if args.config is None and Path(DEFAULT_CONFIG_PATH).exists():
        args.config = DEFAULT_CONFIG_PATH
    command = args.command or "serve"
    if command == "generate-config":
        return _generate_config(args)
    if command == "serve" and args.config and not Path(args.config).exists():
        # First start: write the default config next to the data it describes.
        Path(args.config).parent.mkdir(parents=True, exist_ok=True)
        Path(args.config).write_text(DEFAULT_CONFIG_TEXT.format(server_name="localhost:8008"))
        print(f"parley: wrote a default configuration to {args.config}", file=sys.stderr)
    config = _load(args)
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if command == "serve":
        _run(_serve(config))
        return 0
    if command == "register-user":
        return int(_run(_register_user(config, args)) or 0)  # type: ignore[call-overload]
    parser.error(f"unknown command {command}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
