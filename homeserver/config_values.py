"""What every configuration check shares: the one error it raises (the offending key and why,
so the CLI prints one line and exits with status 2) and the parsers of plain values that TOML
and PARLEY_* environment variables both give."""

from __future__ import annotations

import ipaddress
from typing import Any


class ConfigError(Exception):
    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key}: {why}")
        self.key = key
        self.why = why


def as_bool(key: str, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(v, str) and v.lower() in ("false", "0", "no", "off"):
        return False
    raise ConfigError(key, f"expected a boolean, got {v!r}")


def as_str(key: str, v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ConfigError(key, f"expected a non-empty string, got {v!r}")
    return v


def as_int(key: str, v: Any, minimum: int = 0) -> int:
    """An integer (a TOML integer or a decimal string from the environment), at least `minimum`."""
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise ConfigError(key, f"expected an integer, got {v!r}")
    try:
        n = int(v)
    except ValueError:
        raise ConfigError(key, f"expected an integer, got {v!r}") from None
    if n < minimum:
        raise ConfigError(key, f"must be at least {minimum}")
    return n


def as_float(key: str, v: Any, minimum: float | None = None) -> float:
    """A number; positive, or at least `minimum` when one is given."""
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise ConfigError(key, f"expected a number, got {v!r}")
    try:
        f = float(v)
    except ValueError:
        raise ConfigError(key, f"expected a number, got {v!r}") from None
    if minimum is None and not f > 0:
        raise ConfigError(key, "must be positive")
    if minimum is not None and not f >= minimum:
        raise ConfigError(key, f"must be at least {minimum}")
    return f


def as_str_list(key: str, v: Any) -> tuple[str, ...]:
    """A list of non-empty strings; from the environment, comma-separated."""
    if isinstance(v, str):
        v = [s.strip() for s in v.split(",") if s.strip()]
    if not isinstance(v, list) or not all(isinstance(s, str) and s for s in v):
        raise ConfigError(key, "expected a list of strings")
    return tuple(v)


def as_cidr_list(key: str, v: Any) -> tuple[str, ...]:
    """A list of IP networks (CIDR notation; a bare address is a one-address network)."""
    cidrs = as_str_list(key, v)
    for c in cidrs:
        try:
            ipaddress.ip_network(c, strict=False)
        except ValueError:
            raise ConfigError(key, f"{c!r} is not an IP network") from None
    return cidrs
