"""Sync tokens: a position in every stream a sync covers.

`s<stream>_<typing>_<presence>`: the shared persistent stream (events, account data, receipts),
then the typing and presence serials (millisecond-based, so that every worker orders them the
same way). `s<stream>` alone is accepted (older tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

from homeserver.protocol.errors import MatrixError


@dataclass(frozen=True)
class SyncToken:
    stream: int
    typing: int = 0
    presence: int = 0

    def encode(self) -> str:
        return f"s{self.stream}_{self.typing}_{self.presence}"

    @classmethod
    def parse(cls, token: str) -> SyncToken:
        if not token.startswith("s"):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid since token")
        parts = token[1:].split("_")
        if not 1 <= len(parts) <= 3 or not all(p.isascii() and p.isdigit() and len(p) <= 18 for p in parts):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid since token")
        nums = [int(p) for p in parts] + [0] * (3 - len(parts))
        return cls(nums[0], nums[1], nums[2])
