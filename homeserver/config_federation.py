"""The `[federation]` configuration table, validated like the rest of the config.

Kept apart from config.py so the federation settings and their checks read in one place.
Every key can be overridden by PARLEY_FEDERATION__<KEY>; lists are comma-separated there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homeserver.config_values import ConfigError, as_bool, as_cidr_list, as_str, as_str_list
from homeserver.protocol.ids import is_valid_server_name

# Keys holding file system paths: resolved against the config file's directory like the
# top-level paths (config.PATH_KEYS).
FEDERATION_PATH_KEYS = ("tls_certificate_path", "tls_private_key_path", "ca_file")


@dataclass(frozen=True)
class FederationConfig:
    """Server-server settings. Off by default: the embedded server's name is not reachable."""

    enabled: bool = False
    # host:port of the TLS listener serving /_matrix/federation, /_matrix/key (and the client
    # API). None: federation is served on the plain listeners, behind a TLS-terminating proxy.
    listen: tuple[str, int] | None = None
    tls_certificate_path: str | None = None
    tls_private_key_path: str | None = None
    # Extra trust anchors for outbound TLS, on top of the system store.
    ca_file: str | None = None
    # Networks exempt from the refusal of private, loopback and link-local peers.
    ip_range_allowlist: tuple[str, ...] = ()
    # When non-empty: the only servers federated with, both directions.
    domain_allowlist: tuple[str, ...] = ()
    # Notaries asked for a server's keys when the server itself does not answer.
    trusted_key_servers: tuple[str, ...] = ()
    # Served as /.well-known/matrix/server {"m.server": ...} when set (delegation).
    well_known_server: str | None = None

    def allows_domain(self, server_name: str) -> bool:
        return not self.domain_allowlist or server_name in self.domain_allowlist


KNOWN_KEYS = frozenset(FederationConfig.__dataclass_fields__)


def _listen(key: str, v: Any) -> tuple[str, int]:
    host, sep, port = as_str(key, v).rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ConfigError(key, f"expected host:port, e.g. 0.0.0.0:8448, got {v!r}")
    return host, int(port)


def _readable_file(key: str, path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(key, f"{path} does not exist or is not a file")
    try:
        p.open("rb").close()
    except OSError as e:
        raise ConfigError(key, f"{path} cannot be read: {e.strerror}") from None
    return path


def build_federation_config(raw: Any) -> FederationConfig:
    """Validate the raw `[federation]` table (file merged with environment)."""
    if not isinstance(raw, dict):
        raise ConfigError("federation", "expected a table")
    for k in raw:
        if k not in KNOWN_KEYS:
            raise ConfigError(f"federation.{k}", "unknown federation key")
    kw: dict[str, Any] = {}
    if "enabled" in raw:
        kw["enabled"] = as_bool("federation.enabled", raw["enabled"])
    if raw.get("listen") not in (None, ""):
        kw["listen"] = _listen("federation.listen", raw["listen"])
    for k in FEDERATION_PATH_KEYS:
        if raw.get(k) not in (None, ""):
            kw[k] = _readable_file(f"federation.{k}", as_str(f"federation.{k}", raw[k]))
    if "ip_range_allowlist" in raw:
        kw["ip_range_allowlist"] = as_cidr_list("federation.ip_range_allowlist", raw["ip_range_allowlist"])
    for k in ("domain_allowlist", "trusted_key_servers"):
        if k in raw:
            names = as_str_list(f"federation.{k}", raw[k])
            for n in names:
                if not is_valid_server_name(n):
                    raise ConfigError(f"federation.{k}", f"{n!r} is not a valid server name")
            kw[k] = names
    if raw.get("well_known_server") not in (None, ""):
        wk = as_str("federation.well_known_server", raw["well_known_server"])
        if not is_valid_server_name(wk):
            raise ConfigError("federation.well_known_server", f"{wk!r} is not a valid server name")
        kw["well_known_server"] = wk
    cfg = FederationConfig(**kw)
    if cfg.listen is not None and not (cfg.tls_certificate_path and cfg.tls_private_key_path):
        raise ConfigError("federation.listen", "a TLS listener needs tls_certificate_path and "
                                                         "tls_private_key_path")
    return cfg


def resolve_federation_paths(raw: Any, resolve: Any) -> Any:
    """The table with its relative file paths made absolute by `resolve` (config.py's rule)."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    for k in FEDERATION_PATH_KEYS:
        if k in out:
            out[k] = resolve(out[k])
    return out
