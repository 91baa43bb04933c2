"""The one error every configuration check raises: the offending key and why, so the CLI can
print one line and exit with status 2."""

from __future__ import annotations


class ConfigError(Exception):
    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key}: {why}")
        self.key = key
        self.why = why
