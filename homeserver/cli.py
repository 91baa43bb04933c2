"""The `parley` command: serve, generate-config, generate-key, rotate-signing-key, register-user."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from homeserver import cli_plugins
from homeserver.config import Config, config_warnings, default_config_text, load_config
from homeserver.config_values import ConfigError
from homeserver.logs import setup_logging

DEFAULT_CONFIG_PATH = "parley.toml"
GRACEFUL_TIMEOUT_S = 5

log = logging.getLogger("parley")


def _load(args: argparse.Namespace) -> Config:
    try:
        return load_config(args.config)
    except ConfigError as e:
        print(f"parley: invalid configuration: {e.key}: {e.why}", file=sys.stderr)
        raise SystemExit(2) from None


def _generate_config(args: argparse.Namespace) -> int:
    from homeserver.keys.signing_key import create_signing_key

    path = Path(args.config or DEFAULT_CONFIG_PATH)
    if path.exists() and not args.force:
        print(f"parley: {path} exists; use --force to overwrite", file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(default_config_text(args.server_name))
    print(f"wrote {path}")
    # The signing key is made here, once, so workers started later all read the same file.
    key_path = load_config(str(path), env={}).signing_key_path
    if create_signing_key(key_path):
        print(f"wrote a new signing key to {key_path}")
    else:
        print(f"kept the existing signing key {key_path}")
    return 0


def _generate_key(config: Config) -> int:
    from homeserver.keys.signing_key import create_signing_key, read_signing_key
    from homeserver.protocol.signing import key_id

    created = create_signing_key(config.signing_key_path)
    key = read_signing_key(config.signing_key_path)
    print(f"{'wrote' if created else 'kept'} {config.signing_key_path} ({key_id(key)})")
    return 0


async def _bounded_after(stop: asyncio.Event, coro: Any, grace_s: float) -> None:
    """Run a server; once `stop` is set, give it `grace_s` to finish, then cancel it.

    A TLS connection whose idle peer never answers close_notify would otherwise hold the
    process for asyncio's SSL shutdown timeout (30 s) after the graceful period."""
    task = asyncio.ensure_future(coro)
    stopped = asyncio.ensure_future(stop.wait())
    cut_short = False
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait({task}, timeout=grace_s)
    finally:
        stopped.cancel()
        if not task.done():
            # Cancelling leaves a cancelled future inside Hypercorn unretrieved; that is expected.
            asyncio.get_running_loop().set_exception_handler(_quiet_cancelled)
            cut_short = True
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)  # whatever it ends with, it was stopped
    if not cut_short:
        task.result()  # a server that failed (e.g. its port taken) fails the whole start


def _quiet_cancelled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)


async def _serve(config: Config) -> int:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config as HyperConfig

    from client_api.app import build_app
    from client_api.metrics_app import MetricsApp
    from homeserver.app import Homeserver
    from homeserver.keys.signing_key import SigningKeyMismatch

    Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    for warning in config_warnings(config):
        log.warning("CONFIGURATION: %s", warning)
    try:
        hs = await Homeserver.start(config)
    except SigningKeyMismatch as e:
        log.error("refusing to start: %s", e)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def shutdown_trigger() -> None:
        await stop.wait()
        # End parked long-polls and WebSockets now; otherwise the server would wait its whole
        # grace period for them and then cancel them mid-request.
        log.info("shutting down")
        hs.begin_shutdown()

    def hyper(binds: list[str]) -> HyperConfig:
        hc = HyperConfig()
        hc.bind = binds
        hc.accesslog = None  # Parley writes its own access log (parley.access)
        hc.errorlog = logging.getLogger("hypercorn.error")
        hc.keep_alive_timeout = 75
        hc.graceful_timeout = GRACEFUL_TIMEOUT_S
        return hc

    hc = hyper([f"{lst.host}:{lst.port}" for lst in config.listeners])
    servers: list[Any] = [serve(build_app(config, hs), hc, shutdown_trigger=shutdown_trigger)]  # type: ignore[arg-type]
    fed = config.federation
    if fed.enabled and fed.listen is not None:
        # The TLS listener peers connect to; it serves the whole API (SyTest needs the client
        # API there too), so the same app is mounted on it.
        fc = hyper([f"{fed.listen[0]}:{fed.listen[1]}"])
        fc.certfile, fc.keyfile = fed.tls_certificate_path, fed.tls_private_key_path
        tls_server = serve(build_app(config, hs), fc, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
        servers.append(_bounded_after(stop, tls_server, GRACEFUL_TIMEOUT_S + 2))
        log.info("federation (TLS) on %s", fc.bind[0])
    if config.metrics_listener is not None:
        ml = config.metrics_listener
        servers.append(serve(MetricsApp(hs), hyper([f"{ml.host}:{ml.port}"]),  # type: ignore[arg-type]
                             shutdown_trigger=stop.wait))
        log.info("metrics on http://%s:%d/metrics", ml.host, ml.port)
    log.info("Parley serving %s on %s", config.server_name, ", ".join(hc.bind))
    try:
        await asyncio.gather(*servers)
    except OSError as e:  # a port in use, an address not on this machine
        log.error("cannot listen: %s", e)
        return 1
    finally:
        await hs.close()
    return 0


async def _rotate_signing_key(config: Config) -> int:
    """A new signing key; the old one stays published in old_verify_keys with its expired_ts."""
    from homeserver.keys.signing_key import read_signing_key, write_rotated_key_file
    from homeserver.protocol.signing import key_id, verify_key_b64
    from homeserver.storage.stores import Stores

    current = read_signing_key(config.signing_key_path)
    stores = await Stores.open(config.database, config.sqlite_synchronous)
    try:
        seen = await stores.deployment.seen_signing_key(key_id(current), verify_key_b64(current))
        if seen != (key_id(current), verify_key_b64(current)):
            print(f"parley: {config.signing_key_path} holds {key_id(current)}, but the database knows "
                  f"{seen[0]}; not rotating", file=sys.stderr)
            return 1
        old, new = write_rotated_key_file(config.signing_key_path)
        if not await stores.deployment.replace_signing_key(key_id(old), verify_key_b64(old), key_id(new),
                                                           verify_key_b64(new)):
            print("parley: the database's signing key changed during the rotation", file=sys.stderr)
            return 1
    finally:
        await stores.close()
    print(f"rotated {config.signing_key_path}: {key_id(new)} replaces {key_id(old)} (now in old_verify_keys); "
          "restart every worker to sign with the new key")
    return 0


async def _register_user(config: Config, args: argparse.Namespace) -> int:
    from homeserver.app import Homeserver
    from homeserver.keys.signing_key import SigningKeyMismatch
    from homeserver.protocol.errors import MatrixError

    password = args.password or os.environ.get("PARLEY_NEW_USER_PASSWORD")
    if password is None:
        password = getpass.getpass("Password: ")
    try:
        hs = await Homeserver.start(config)
    except SigningKeyMismatch as e:
        print(f"parley: {e}", file=sys.stderr)
        return 1
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
    gen = sub.add_parser("generate-config", help="write a config file and the signing key")
    gen.add_argument("--server-name", default="localhost:8008")
    gen.add_argument("--force", action="store_true")
    sub.add_parser("generate-key", help="create the signing key named by the config, if missing")
    sub.add_parser("rotate-signing-key", help="replace the signing key; the old one stays in old_verify_keys")
    reg = sub.add_parser("register-user", help="create an account (admins included)")
    reg.add_argument("username")
    reg.add_argument("--password")
    reg.add_argument("--admin", action="store_true")
    cli_plugins.add_parser(sub)
    args = parser.parse_args(argv)
    if args.config is None and Path(DEFAULT_CONFIG_PATH).exists():
        args.config = DEFAULT_CONFIG_PATH
    command = args.command or "serve"
    if command == "generate-config":
        return _generate_config(args)
    if command == "serve" and args.config and not Path(args.config).exists():
        # First start: write the default config. Beside the working directory's data/ when
        # the file goes here, else its data lives in the file's own directory (data/parley.toml).
        cfg_path = Path(args.config)
        cfg_path.parent.mkdir(parents=True, exist_ok=True)
        data = "data" if cfg_path.resolve().parent == Path.cwd().resolve() else "."
        cfg_path.write_text(default_config_text("localhost:8008", data=data))
        print(f"parley: wrote a default configuration to {args.config}", file=sys.stderr)
    config = _load(args)
    setup_logging(config.log_level, config.log_format)
    if command == "serve":
        return int(_run(_serve(config)) or 0)  # type: ignore[call-overload]
    if command == "generate-key":
        return _generate_key(config)
    if command == "rotate-signing-key":
        return int(_run(_rotate_signing_key(config)) or 0)  # type: ignore[call-overload]
    if command == "register-user":
        return int(_run(_register_user(config, args)) or 0)  # type: ignore[call-overload]
    if command == "plugins":
        return int(_run(cli_plugins.run(config, args)) or 0)  # type: ignore[call-overload]
    parser.error(f"unknown command {command}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
