"""Configuration: one TOML file plus PARLEY_* environment overrides, validated at start.

Every problem is reported as a ConfigError naming the offending key, so the CLI can print one
line and exit with status 2.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homeserver.config_ai import AIConfig, build_ai_config
from homeserver.config_federation import (
    FederationConfig,
    build_federation_config,
    resolve_federation_paths,
)
from homeserver.config_plugins import PluginsConfig, build_plugins_config, resolve_plugin_paths
from homeserver.config_push import EmailConfig, PushConfig, build_email_config, build_push_config
from homeserver.config_values import ConfigError, as_bool, as_cidr_list, as_float, as_int, as_str, as_str_list
from homeserver.protocol.ids import is_valid_server_name
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS


@dataclass(frozen=True)
class Listener:
    host: str
    port: int


@dataclass(frozen=True)
class RateLimits:
    """Token buckets per user (or per IP for unauthenticated endpoints)."""

    enabled: bool = True
    messages_per_second: float = 10.0
    messages_burst: int = 50
    login_per_second: float = 0.5
    login_burst: int = 10
    register_per_second: float = 0.2
    register_burst: int = 10


@dataclass(frozen=True)
class Config:
    server_name: str = "localhost:8008"
    public_baseurl: str = "http://127.0.0.1:8008/"
    listeners: tuple[Listener, ...] = (Listener("127.0.0.1", 8008),)
    data_dir: str = "data"
    database: str = "sqlite:///data/parley.db"
    redis_url: str | None = None
    registration: str = "open"
    registration_tokens: tuple[str, ...] = ()
    rate_limits: RateLimits = field(default_factory=RateLimits)
    media_dir: str = "data/media"
    log_level: str = "INFO"
    signing_key_path: str = "data/signing.key"
    default_room_version: str = "12"
    access_token_lifetime_ms: int = 5 * 60 * 1000
    max_sync_timeout_ms: int = 60_000
    admins: tuple[str, ...] = ()
    presence_enabled: bool = True
    ws_max_queued_frames: int = 64
    max_upload_bytes: int = 50 * 1024 * 1024
    media_backend: str = "local"
    s3_endpoint: str | None = None
    s3_bucket: str = "parley-media"
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"
    url_preview_enabled: bool = False
    url_preview_ip_allowlist: tuple[str, ...] = ()
    sqlite_synchronous: str = "full"
    metrics_listener: Listener | None = None
    log_format: str = "text"
    allow_guest_access: bool = False
    user_directory_search_all_users: bool = False
    federation: FederationConfig = field(default_factory=FederationConfig)
    push: PushConfig = field(default_factory=PushConfig)
    email: EmailConfig = field(default_factory=EmailConfig)
    # Enables Synapse-style /_synapse/admin/v1/register (nonce + HMAC-SHA1) when set.
    registration_shared_secret: str | None = None
    web_client_dir: str | None = None  # the web client's static export; None: web/out in the source tree
    ai: AIConfig = field(default_factory=AIConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


_REGISTRATION_MODES = ("open", "token", "closed")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LOG_FORMATS = ("text", "json")
_SQLITE_SYNCHRONOUS = ("off", "normal", "full", "extra")
# Keys holding file system paths: relative values in the config file resolve against the
# directory of that file, so every worker started with it agrees whatever its working directory.
PATH_KEYS = ("data_dir", "media_dir", "signing_key_path")

DEFAULT_CONFIG_TEXT = """\
# Parley homeserver configuration. Every key can be overridden by an environment variable:
# PARLEY_<KEY> (nested keys joined with "__", e.g. PARLEY_RATE_LIMITS__ENABLED=false).
# Relative paths below resolve against the directory of this file.

server_name = "{server_name}"
# The URL clients reach this server at (behind a load balancer: its https:// address).
public_baseurl = "{public_baseurl}"
data_dir = "{data}"
# sqlite:///path (embedded default) or postgresql://user@host:port/db
database = "sqlite:///{data}/parley.db"
# full keeps every answered write through a power loss; normal is faster and may lose the last ones
sqlite_synchronous = "full"
# redis_url = "redis://127.0.0.1:6379/0"
# open | token | closed  (closed: create accounts with `parley register-user`)
registration = "{registration}"
registration_tokens = []
# Several workers need one shared media store: a shared volume here, or media_backend = "s3".
media_dir = "{data}/media"
log_level = "INFO"
# text | json (one JSON object per line)
log_format = "text"
signing_key_path = "{data}/signing.key"
default_room_version = "12"
# Prometheus /metrics on a separate listener (off when unset), e.g. "127.0.0.1:9108"
# metrics_listener = "127.0.0.1:9108"

[[listeners]]
host = "127.0.0.1"
port = 8008

[rate_limits]
enabled = true
messages_per_second = 10.0
messages_burst = 50
login_per_second = 0.5
login_burst = 10
"""

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")


def is_loopback_host(host: str) -> bool:
    """True for names that only this machine can reach (localhost, 127.0.0.0/8, ::1)."""
    host = host.strip("[]").lower()
    if host in ("localhost", "::1") or host.endswith(".localhost"):
        return True
    return host.startswith("127.")


def _server_host(server_name: str) -> str:
    if server_name.startswith("["):
        return server_name[1:server_name.index("]")] if "]" in server_name else server_name
    return server_name.rsplit(":", 1)[0] if server_name.count(":") == 1 else server_name


def default_config_text(server_name: str = "localhost:8008", data: str = "data") -> str:
    """The config `generate-config` writes. A public server name gets an https:// base URL and
    closed registration (accounts by `parley register-user` until the operator opens it)."""
    local = is_loopback_host(_server_host(server_name))
    return DEFAULT_CONFIG_TEXT.format(
        server_name=server_name,
        public_baseurl="http://127.0.0.1:8008/" if local else f"https://{_server_host(server_name)}/",
        registration="open" if local else "closed",
        data=data,
    )


def config_warnings(cfg: Config) -> list[str]:
    """Settings that start but are almost certainly wrong for the way the server is exposed."""
    out = []
    exposed = [lst for lst in cfg.listeners if not is_loopback_host(lst.host)]
    if exposed:
        where = ", ".join(f"{lst.host}:{lst.port}" for lst in exposed)
        if is_loopback_host(_server_host(cfg.server_name)):
            out.append(f"server_name is {cfg.server_name!r} but the server listens on {where}: user IDs "
                       "will end in a name nobody else can reach and federation cannot work. Set "
                       "server_name (and public_baseurl) before creating accounts; it cannot be changed later.")
        from urllib.parse import urlsplit

        base_host = urlsplit(cfg.public_baseurl).hostname or ""
        if is_loopback_host(base_host):
            out.append(f"public_baseurl is {cfg.public_baseurl!r} but the server listens on {where}: clients "
                       "will be told to reach it on this machine's loopback address.")
    return out


# PARLEY_* variables that are command inputs, not configuration keys.
_NOT_CONFIG_ENV = frozenset(("PARLEY_CONFIG", "PARLEY_NEW_USER_PASSWORD"))


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith("PARLEY_") or name in _NOT_CONFIG_ENV:
            continue
        path = name[len("PARLEY_"):].lower().split("__")
        cursor = out
        for part in path[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[path[-1]] = value
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def _listeners(v: Any) -> tuple[Listener, ...]:
    if isinstance(v, str):  # PARLEY_LISTENERS=127.0.0.1:8008,0.0.0.0:8009
        items: list[Any] = []
        for part in v.split(","):
            host, _, port_text = part.rpartition(":")
            items.append({"host": host or "127.0.0.1", "port": port_text})
        v = items
    if not isinstance(v, list) or not v:
        raise ConfigError("listeners", "expected a non-empty list of {host, port}")
    out = []
    for i, item in enumerate(v):
        if not isinstance(item, dict):
            raise ConfigError(f"listeners[{i}]", "expected a table with host and port")
        host = as_str(f"listeners[{i}].host", item.get("host", "127.0.0.1"))
        port = as_int(f"listeners[{i}].port", item.get("port"), 0)
        if port > 65535:
            raise ConfigError(f"listeners[{i}].port", "must be at most 65535")
        out.append(Listener(host, port))
    return tuple(out)


_KNOWN_KEYS = {
    "server_name", "public_baseurl", "listeners", "data_dir", "database", "redis_url",
    "registration", "registration_tokens", "rate_limits", "media_dir", "log_level",
    "signing_key_path", "default_room_version", "access_token_lifetime_ms",
    "max_sync_timeout_ms", "admins", "presence_enabled", "ws_max_queued_frames",
    "max_upload_bytes", "media_backend", "s3_endpoint", "s3_bucket", "s3_access_key", "s3_secret_key",
    "s3_region", "url_preview_enabled", "url_preview_ip_allowlist", "sqlite_synchronous",
    "metrics_listener", "log_format", "allow_guest_access", "user_directory_search_all_users",
    "federation", "registration_shared_secret", "web_client_dir", "push", "email", "ai", "plugins",
}


def build_config(raw: Mapping[str, Any]) -> Config:
    """Validate a raw mapping (file merged with environment) into a Config."""
    for key in raw:
        if key not in _KNOWN_KEYS:
            raise ConfigError(key, "unknown configuration key")
    kw: dict[str, Any] = {}
    if "server_name" in raw:
        sn = as_str("server_name", raw["server_name"])
        if not is_valid_server_name(sn):
            raise ConfigError("server_name", f"{sn!r} is not a valid Matrix server name")
        kw["server_name"] = sn
    if "public_baseurl" in raw:
        url = as_str("public_baseurl", raw["public_baseurl"])
        if not url.startswith(("http://", "https://")):
            raise ConfigError("public_baseurl", "must start with http:// or https://")
        kw["public_baseurl"] = url if url.endswith("/") else url + "/"
    if "listeners" in raw:
        kw["listeners"] = _listeners(raw["listeners"])
    for key in ("data_dir", "media_dir", "signing_key_path"):
        if key in raw:
            kw[key] = as_str(key, raw[key])
    if "database" in raw:
        db = as_str("database", raw["database"])
        if not db.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ConfigError("database", "must start with sqlite:/// or postgresql://")
        kw["database"] = db
    if "redis_url" in raw:
        r = raw["redis_url"]
        if r in ("", None):
            kw["redis_url"] = None
        else:
            r = as_str("redis_url", r)
            if not r.startswith(("redis://", "rediss://", "unix://")):
                raise ConfigError("redis_url", "must start with redis://, rediss:// or unix://")
            kw["redis_url"] = r
    if "registration" in raw:
        mode = raw["registration"]
        if mode not in _REGISTRATION_MODES:
            raise ConfigError("registration", f"must be one of {', '.join(_REGISTRATION_MODES)}")
        kw["registration"] = mode
    if "registration_tokens" in raw:
        kw["registration_tokens"] = as_str_list("registration_tokens", raw["registration_tokens"])
    if "url_preview_enabled" in raw:
        kw["url_preview_enabled"] = as_bool("url_preview_enabled", raw["url_preview_enabled"])
    if "url_preview_ip_allowlist" in raw:
        kw["url_preview_ip_allowlist"] = as_cidr_list("url_preview_ip_allowlist", raw["url_preview_ip_allowlist"])
    if "media_backend" in raw:
        if raw["media_backend"] not in ("local", "s3"):
            raise ConfigError("media_backend", "must be 'local' or 's3'")
        kw["media_backend"] = raw["media_backend"]
    for key in ("s3_endpoint", "s3_access_key", "s3_secret_key"):
        if key in raw:
            kw[key] = as_str(key, raw[key])
    for key in ("s3_bucket", "s3_region"):
        if key in raw:
            kw[key] = as_str(key, raw[key])
    for key in ("allow_guest_access", "user_directory_search_all_users"):
        if key in raw:
            kw[key] = as_bool(key, raw[key])
    if "web_client_dir" in raw:
        kw["web_client_dir"] = as_str("web_client_dir", raw["web_client_dir"]) or None
    if "presence_enabled" in raw:
        kw["presence_enabled"] = as_bool("presence_enabled", raw["presence_enabled"])
    if "admins" in raw:
        kw["admins"] = as_str_list("admins", raw["admins"])
    if "log_format" in raw:
        fmt = str(raw["log_format"]).lower()
        if fmt not in _LOG_FORMATS:
            raise ConfigError("log_format", f"must be one of {', '.join(_LOG_FORMATS)}")
        kw["log_format"] = fmt
    if "sqlite_synchronous" in raw:
        sync = str(raw["sqlite_synchronous"]).lower()
        if sync not in _SQLITE_SYNCHRONOUS:
            raise ConfigError("sqlite_synchronous", f"must be one of {', '.join(_SQLITE_SYNCHRONOUS)}")
        kw["sqlite_synchronous"] = sync
    if "metrics_listener" in raw:
        ml = raw["metrics_listener"]
        if ml in ("", None):
            kw["metrics_listener"] = None
        else:
            host, _, port = as_str("metrics_listener", ml).rpartition(":")
            if not host:
                raise ConfigError("metrics_listener", "expected host:port, e.g. 127.0.0.1:9108")
            n = as_int("metrics_listener", port, 0)
            if n > 65535:
                raise ConfigError("metrics_listener", "port must be at most 65535")
            kw["metrics_listener"] = Listener(host.strip("[]"), n)
    if "log_level" in raw:
        lvl = str(raw["log_level"]).upper()
        if lvl not in _LOG_LEVELS:
            raise ConfigError("log_level", f"must be one of {', '.join(_LOG_LEVELS)}")
        kw["log_level"] = lvl
    if "default_room_version" in raw:
        ver = str(raw["default_room_version"])
        if ver not in KNOWN_ROOM_VERSIONS:
            raise ConfigError("default_room_version", f"unsupported room version {ver!r}")
        kw["default_room_version"] = ver
    for key, minimum in (("access_token_lifetime_ms", 1000), ("max_sync_timeout_ms", 0),
                         ("ws_max_queued_frames", 1), ("max_upload_bytes", 1)):
        if key in raw:
            kw[key] = as_int(key, raw[key], minimum)
    if "federation" in raw:
        kw["federation"] = build_federation_config(raw["federation"])
    if "push" in raw:
        kw["push"] = build_push_config(raw["push"])
    if "email" in raw:
        kw["email"] = build_email_config(raw["email"])
    if "ai" in raw:
        kw["ai"] = build_ai_config(raw["ai"])
    if "plugins" in raw:
        kw["plugins"] = build_plugins_config(raw["plugins"])
    if raw.get("registration_shared_secret") not in (None, ""):
        kw["registration_shared_secret"] = as_str("registration_shared_secret", raw["registration_shared_secret"])
    if "rate_limits" in raw:
        rl = raw["rate_limits"]
        if not isinstance(rl, dict):
            raise ConfigError("rate_limits", "expected a table")
        rkw: dict[str, Any] = {}
        for k, v in rl.items():
            full = f"rate_limits.{k}"
            if k == "enabled":
                rkw[k] = as_bool(full, v)
            elif k.endswith("_per_second"):
                rkw[k] = as_float(full, v)
            elif k.endswith("_burst"):
                rkw[k] = as_int(full, v, 1)
            else:
                raise ConfigError(full, "unknown rate limit key")
            if k not in RateLimits.__dataclass_fields__:
                raise ConfigError(full, "unknown rate limit key")
        kw["rate_limits"] = RateLimits(**rkw)
    return Config(**kw)


def _resolve(value: Any, base: Path) -> Any:
    if not isinstance(value, str) or not value:
        return value
    return str(base / value) if not Path(value).is_absolute() else value


def _resolve_database(value: Any, base: Path) -> Any:
    if not isinstance(value, str) or not value.startswith("sqlite://"):
        return value
    from homeserver.storage.database import sqlite_path

    path = sqlite_path(value)
    if path == ":memory:" or Path(path).is_absolute():
        return value
    return "sqlite:///" + str(base / path)


def _resolve_file_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths from the config file, made absolute against the file's directory."""
    out = dict(raw)
    for key in PATH_KEYS:
        if key in out:
            out[key] = _resolve(out[key], base)
    if "database" in out:
        out["database"] = _resolve_database(out["database"], base)
    if "federation" in out:
        out["federation"] = resolve_federation_paths(out["federation"], lambda v: _resolve(v, base))
    if "plugins" in out:
        out["plugins"] = resolve_plugin_paths(out["plugins"], lambda v: _resolve(v, base))
    return out


def _check_moved_paths(raw: dict[str, Any], resolved: dict[str, Any]) -> None:
    """Paths in a config file used to resolve against the working directory. If the old place
    holds data and the new one does not, starting would silently begin a new, empty server:
    refuse with a message saying what to change instead."""
    from homeserver.storage.database import sqlite_path

    for key in (*PATH_KEYS, "database"):
        old, new = raw.get(key), resolved.get(key)
        if not isinstance(old, str) or old == new:
            continue
        if key == "database":
            if not old.startswith("sqlite://"):
                continue
            old, new = sqlite_path(old), sqlite_path(str(new))
        old_p, new_p = Path(old).resolve(), Path(str(new)).resolve()
        if old_p != new_p and old_p.exists() and not new_p.exists() and key != "data_dir":
            raise ConfigError(key, f"relative paths now resolve against the config file's directory: "
                                   f"{raw[key]!r} means {new_p}, which does not exist, while {old_p} "
                                   "does; move the data there or write the absolute path")


def load_config(path: str | None, env: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (if any), apply PARLEY_* overrides, validate.

    Relative paths written in the file resolve against the file's directory; relative paths
    from the environment (or defaults, without a file) against the working directory."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path:
        p = Path(path)
        if p.exists():
            try:
                file_raw = tomllib.loads(p.read_text())
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(str(p), f"not valid TOML: {e}") from None
            raw = _resolve_file_paths(file_raw, p.resolve().parent)
            _check_moved_paths(file_raw, raw)
    raw = _merge(raw, _env_overrides(env))
    return build_config(raw)
