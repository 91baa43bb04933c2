"""What every configuration check shares: the one error it raises (the offending key and why,
so the CLI prints one line and exits with status 2) and the parsers of plain values that TOML
and PARLEY_* environment variables both give."""

from __future__ import annotations

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
