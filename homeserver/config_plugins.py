"""The `[plugins]` configuration table: whether plugins run, where they are found, the limits of
their sandbox and of their hooks. Every key can be overridden by PARLEY_PLUGINS__<KEY>."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeserver.config_values import ConfigError, as_bool, as_cidr_list, as_float, as_int, as_str, as_str_list

PLUGIN_PATH_KEYS = ("dir", "work_dir")


@dataclass(frozen=True)
class PluginsConfig:
    enabled: bool = False
    # Installed plugin folders (`parley plugins install` copies into it). None: <data_dir>/plugins.
    dir: str | None = None
    # Each plugin's private working directory lives below this. None: <data_dir>/plugin-work.
    work_dir: str | None = None
    # The URL plugins reach the Client-Server API at. None: the first listener, over loopback.
    server_url: str | None = None
    memory_mb: int = 512
    cpu_seconds: int = 600
    open_files: int = 64
    file_size_mb: int = 64
    # A hook (event, command) not acknowledged within this time counts as a hang: restarted.
    hook_timeout_s: float = 10.0
    restart_backoff_max_s: float = 60.0
    # Outgoing webhooks refuse private addresses except inside these networks.
    webhook_ip_allowlist: tuple[str, ...] = ()
    # Application service registration files (YAML), as in the Application Service API.
    app_service_config_files: tuple[str, ...] = ()


def build_plugins_config(raw: Any) -> PluginsConfig:
    if not isinstance(raw, dict):
        raise ConfigError("plugins", "expected a table")
    kw: dict[str, Any] = {}
    for k, v in raw.items():
        key = f"plugins.{k}"
        if k == "enabled":
            kw[k] = as_bool(key, v)
        elif k in ("dir", "work_dir", "server_url"):
            kw[k] = as_str(key, v) if v not in (None, "") else None
        elif k in ("memory_mb", "cpu_seconds", "open_files", "file_size_mb"):
            kw[k] = as_int(key, v, 1)
        elif k in ("hook_timeout_s", "restart_backoff_max_s"):
            kw[k] = as_float(key, v, 0.1)
        elif k == "app_service_config_files":
            kw[k] = as_str_list(key, v)
            from homeserver.appservice.registration import load_registrations

            load_registrations(kw[k])  # a bad registration stops the server at start, naming the key
        elif k == "webhook_ip_allowlist":
            kw[k] = as_cidr_list(key, v)
        else:
            raise ConfigError(key, "unknown plugins key")
    if kw.get("server_url") and not str(kw["server_url"]).startswith(("http://", "https://")):
        raise ConfigError("plugins.server_url", "must start with http:// or https://")
    return PluginsConfig(**kw)


def resolve_plugin_paths(raw: Any, resolve: Any) -> Any:
    """The table with its relative directories made absolute by `resolve` (config.py's rule)."""
    if not isinstance(raw, dict):
        return raw
    out = {k: resolve(v) if k in PLUGIN_PATH_KEYS else v for k, v in raw.items()}
    if isinstance(out.get("app_service_config_files"), list):
        out["app_service_config_files"] = [resolve(v) for v in out["app_service_config_files"]]
    return out
