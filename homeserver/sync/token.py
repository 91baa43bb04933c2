"""Sync tokens: a position in every stream a sync covers, keyed by stream.

`s<stream>_<typing>_<presence>_<to_device>`: the shared persistent stream (events, receipts,
account data, device-list changes), the typing and presence serials (millisecond-based, so that
every worker orders them the same way), and how far the device has received its to-device
messages (on the shared stream's scale, but it may lag behind when a sync delivered only part
of a backlog). Older tokens with fewer parts (`s<stream>`, `s<stream>_<typing>_<presence>`)
keep working: a missing position is 0.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from homeserver.protocol.errors import MatrixError

#: The token's positions in the order they are encoded; a new stream appends its key.
KEYS = ("stream", "typing", "presence", "to_device")


@dataclass(frozen=True)
class SyncToken:
    stream: int
    typing: int = 0
    presence: int = 0
    to_device: int = 0

    def encode(self) -> str:
        return "s" + "_".join(str(getattr(self, k)) for k in KEYS)

    def position(self, key: str) -> int:
        value: int = getattr(self, key)
        return value

    def with_position(self, key: str, value: int) -> SyncToken:
        return replace(self, **{key: value})

    def clamp(self, now: SyncToken) -> SyncToken:
        """A token from the future (another worker ahead, a restart) is clamped, never trusted."""
        return SyncToken(**{f.name: min(getattr(self, f.name), getattr(now, f.name)) for f in fields(self)})

    @classmethod
    def parse(cls, token: str) -> SyncToken:
        if not token.startswith("s"):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid since token")
        parts = token[1:].split("_")
        if not 1 <= len(parts) <= len(KEYS) or not all(
                p.isascii() and p.isdigit() and len(p) <= 18 for p in parts):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid since token")
        return cls(**{k: int(p) for k, p in zip(KEYS, parts, strict=False)})
