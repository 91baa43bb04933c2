"""The `[push]` and `[email]` configuration tables (notifications).

Every key can be overridden by PARLEY_PUSH__<KEY> / PARLEY_EMAIL__<KEY>; lists are
comma-separated there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeserver.config_values import ConfigError, as_bool, as_cidr_list, as_float, as_int, as_str


@dataclass(frozen=True)
class PushConfig:
    enabled: bool = True
    # Networks exempt from the refusal of private, loopback and link-local push gateways.
    ip_range_allowlist: tuple[str, ...] = ()
    http_timeout_s: float = 10.0
    # Retries: first after retry_base_ms, doubling up to retry_max_ms; given up after max_attempts.
    retry_base_ms: int = 1000
    retry_max_ms: int = 10 * 60 * 1000
    max_attempts: int = 12
    # How often the delivery worker looks at the queue when nothing woke it.
    poll_interval_ms: int = 1000
    # Concurrent deliveries (one hanging gateway holds one slot until its timeout).
    concurrency: int = 16
    # Contact in the VAPID JWT (`sub`), e.g. mailto:admin@example.com; defaults to public_baseurl.
    vapid_contact: str | None = None


@dataclass(frozen=True)
class EmailConfig:
    enabled: bool = False
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    # STARTTLS after connecting (required when true), or implicit TLS from the first byte.
    require_starttls: bool = False
    force_tls: bool = False
    # Extra trust anchors (PEM) for the SMTP server's certificate, on top of the system store.
    ca_file: str | None = None
    notif_from: str = "Parley <noreply@localhost>"
    app_name: str = "Parley"
    # Messages still unread after this long are emailed (one digest per user per batch).
    notif_delay_ms: int = 10 * 60 * 1000
    # The web client's address, for "open the room" links (default: public_baseurl).
    client_base_url: str | None = None


def _table(name: str, raw: Any, known: frozenset[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(name, "expected a table")
    for k in raw:
        if k not in known:
            raise ConfigError(f"{name}.{k}", f"unknown {name} key")
    return raw


def build_push_config(raw: Any) -> PushConfig:
    raw = _table("push", raw, frozenset(PushConfig.__dataclass_fields__))
    kw: dict[str, Any] = {}
    if "enabled" in raw:
        kw["enabled"] = as_bool("push.enabled", raw["enabled"])
    if "ip_range_allowlist" in raw:
        kw["ip_range_allowlist"] = as_cidr_list("push.ip_range_allowlist", raw["ip_range_allowlist"])
    if "http_timeout_s" in raw:
        kw["http_timeout_s"] = as_float("push.http_timeout_s", raw["http_timeout_s"])
    for k, minimum in (("retry_base_ms", 1), ("retry_max_ms", 1), ("max_attempts", 1),
                       ("poll_interval_ms", 10), ("concurrency", 1)):
        if k in raw:
            kw[k] = as_int(f"push.{k}", raw[k], minimum)
    if raw.get("vapid_contact") not in (None, ""):
        kw["vapid_contact"] = as_str("push.vapid_contact", raw["vapid_contact"])
    return PushConfig(**kw)


def build_email_config(raw: Any) -> EmailConfig:
    raw = _table("email", raw, frozenset(EmailConfig.__dataclass_fields__))
    kw: dict[str, Any] = {}
    for k in ("enabled", "require_starttls", "force_tls"):
        if k in raw:
            kw[k] = as_bool(f"email.{k}", raw[k])
    for k in ("smtp_host", "notif_from", "app_name"):
        if k in raw:
            kw[k] = as_str(f"email.{k}", raw[k])
    for k in ("smtp_user", "smtp_password", "client_base_url", "ca_file"):
        if raw.get(k) not in (None, ""):
            kw[k] = as_str(f"email.{k}", raw[k])
    if "smtp_port" in raw:
        kw["smtp_port"] = as_int("email.smtp_port", raw["smtp_port"], 1)
        if kw["smtp_port"] > 65535:
            raise ConfigError("email.smtp_port", "must be at most 65535")
    if "notif_delay_ms" in raw:
        kw["notif_delay_ms"] = as_int("email.notif_delay_ms", raw["notif_delay_ms"], 0)
    cfg = EmailConfig(**kw)
    if cfg.require_starttls and cfg.force_tls:
        raise ConfigError("email.force_tls", "choose either force_tls or require_starttls")
    return cfg
