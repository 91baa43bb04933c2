"""Configuration: one TOML file plus PARLEY_* environment overrides, validated at start.

Every problem is reported as a ConfigError naming the offending key, so the CLI can print one
line and exit with status 2.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from homeserver.protocol.ids import is_valid_server_name
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS


class ConfigError(Exception):
    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key}: {why}")
        self.key = key
        self.why = why


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
    allow_guest_access: bool = False
    user_directory_search_all_users: bool = False

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


_REGISTRATION_MODES = ("open", "token", "closed")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

DEFAULT_CONFIG_TEXT = """\
# Parley homeserver configuration. Every key can be overridden by an environment variable:
# PARLEY_<KEY> (nested keys joined with "__", e.g. PARLEY_RATE_LIMITS__ENABLED=false).

server_name = "{server_name}"
public_baseurl = "http://127.0.0.1:8008/"
data_dir = "data"
# sqlite:///path (embedded default) or postgresql://user@host:port/db
database = "sqlite:///data/parley.db"
# redis_url = "redis://127.0.0.1:6379/0"
# open | token | closed
registration = "open"
registration_tokens = []
media_dir = "data/media"
log_level = "INFO"
signing_key_path = "data/signing.key"
default_room_version = "12"

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


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith("PARLEY_") or name == "PARLEY_CONFIG":
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


def _as_bool(key: str, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(v, str) and v.lower() in ("false", "0", "no", "off"):
        return False
    raise ConfigError(key, f"expected a boolean, got {v!r}")


def _as_int(key: str, v: Any, minimum: int = 0) -> int:
    try:
        if isinstance(v, bool):
            raise ValueError
        n = int(v)
    except (TypeError, ValueError):
        raise ConfigError(key, f"expected an integer, got {v!r}") from None
    if n < minimum:
        raise ConfigError(key, f"must be at least {minimum}")
    return n


def _as_float(key: str, v: Any) -> float:
    try:
        if isinstance(v, bool):
            raise ValueError
        f = float(v)
    except (TypeError, ValueError):
        raise ConfigError(key, f"expected a number, got {v!r}") from None
    if f <= 0:
        raise ConfigError(key, "must be positive")
    return f


def _as_str(key: str, v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ConfigError(key, f"expected a non-empty string, got {v!r}")
    return v


def _as_str_list(key: str, v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [s for s in v.split(",") if s]
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise ConfigError(key, "expected a list of strings")
    return tuple(v)


def _listeners(v: Any) -> tuple[Listener, ...]:
    if isinstance(v, str):  # PARLEY_LISTENERS=127.0.0.1:8008,0.0.0.0:8009
        items: list[Any] = []
        for part in v.split(","):
            host, _, port = part.rpartition(":")
            items.append({"host": host or "127.0.0.1", "port": port})
        v = items
    if not isinstance(v, list) or not v:
        raise ConfigError("listeners", "expected a non-empty list of {host, port}")
    out = []
    for i, item in enumerate(v):
        if not isinstance(item, dict):
            raise ConfigError(f"listeners[{i}]", "expected a table with host and port")
        host = _as_str(f"listeners[{i}].host", item.get("host", "127.0.0.1"))
        port = _as_int(f"listeners[{i}].port", item.get("port"), 0)
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
    "s3_region", "url_preview_enabled", "url_preview_ip_allowlist",
    "allow_guest_access", "user_directory_search_all_users",
}


def build_config(raw: Mapping[str, Any]) -> Config:
    """Validate a raw mapping (file merged with environment) into a Config."""
    for key in raw:
        if key not in _KNOWN_KEYS:
            raise ConfigError(key, "unknown configuration key")
    kw: dict[str, Any] = {}
    if "server_name" in raw:
        sn = _as_str("server_name", raw["server_name"])
        if not is_valid_server_name(sn):
            raise ConfigError("server_name", f"{sn!r} is not a valid Matrix server name")
        kw["server_name"] = sn
    if "public_baseurl" in raw:
        url = _as_str("public_baseurl", raw["public_baseurl"])
        if not url.startswith(("http://", "https://")):
            raise ConfigError("public_baseurl", "must start with http:// or https://")
        kw["public_baseurl"] = url if url.endswith("/") else url + "/"
    if "listeners" in raw:
        kw["listeners"] = _listeners(raw["listeners"])
    for key in ("data_dir", "media_dir", "signing_key_path"):
        if key in raw:
            kw[key] = _as_str(key, raw[key])
    if "database" in raw:
        db = _as_str("database", raw["database"])
        if not db.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ConfigError("database", "must start with sqlite:/// or postgresql://")
        kw["database"] = db
    if "redis_url" in raw:
        r = raw["redis_url"]
        if r in ("", None):
            kw["redis_url"] = None
        else:
            r = _as_str("redis_url", r)
            if not r.startswith(("redis://", "rediss://", "unix://")):
                raise ConfigError("redis_url", "must start with redis://, rediss:// or unix://")
            kw["redis_url"] = r
    if "registration" in raw:
        mode = raw["registration"]
        if mode not in _REGISTRATION_MODES:
            raise ConfigError("registration", f"must be one of {', '.join(_REGISTRATION_MODES)}")
        kw["registration"] = mode
    if "registration_tokens" in raw:
        kw["registration_tokens"] = _as_str_list("registration_tokens", raw["registration_tokens"])
    if "url_preview_enabled" in raw:
        kw["url_preview_enabled"] = _as_bool("url_preview_enabled", raw["url_preview_enabled"])
    if "url_preview_ip_allowlist" in raw:
        cidrs = _as_str_list("url_preview_ip_allowlist", raw["url_preview_ip_allowlist"])
        import ipaddress

        for c in cidrs:
            try:
                ipaddress.ip_network(c, strict=False)
            except ValueError:
                raise ConfigError("url_preview_ip_allowlist", f"{c!r} is not an IP network") from None
        kw["url_preview_ip_allowlist"] = cidrs
    if "media_backend" in raw:
        if raw["media_backend"] not in ("local", "s3"):
            raise ConfigError("media_backend", "must be 'local' or 's3'")
        kw["media_backend"] = raw["media_backend"]
    for key in ("s3_endpoint", "s3_access_key", "s3_secret_key"):
        if key in raw:
            kw[key] = _as_str(key, raw[key])
    for key in ("s3_bucket", "s3_region"):
        if key in raw:
            kw[key] = _as_str(key, raw[key])
    for key in ("allow_guest_access", "user_directory_search_all_users"):
        if key in raw:
            kw[key] = _as_bool(key, raw[key])
    if "presence_enabled" in raw:
        kw["presence_enabled"] = _as_bool("presence_enabled", raw["presence_enabled"])
    if "admins" in raw:
        kw["admins"] = _as_str_list("admins", raw["admins"])
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
            kw[key] = _as_int(key, raw[key], minimum)
    if "rate_limits" in raw:
        rl = raw["rate_limits"]
        if not isinstance(rl, dict):
            raise ConfigError("rate_limits", "expected a table")
        rkw: dict[str, Any] = {}
        for k, v in rl.items():
            full = f"rate_limits.{k}"
            if k == "enabled":
                rkw[k] = _as_bool(full, v)
            elif k.endswith("_per_second"):
                rkw[k] = _as_float(full, v)
            elif k.endswith("_burst"):
                rkw[k] = _as_int(full, v, 1)
            else:
                raise ConfigError(full, "unknown rate limit key")
            if k not in RateLimits.__dataclass_fields__:
                raise ConfigError(full, "unknown rate limit key")
        kw["rate_limits"] = RateLimits(**rkw)
    return Config(**kw)


def load_config(path: str | None, env: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (if any), apply PARLEY_* overrides, validate."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path:
        p = Path(path)
        if p.exists():
            try:
                raw = tomllib.loads(p.read_text())
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(str(p), f"not valid TOML: {e}") from None
    raw = _merge(raw, _env_overrides(env))
    return build_config(raw)
