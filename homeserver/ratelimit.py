"""Token-bucket rate limits, in process (Redis-shared limits come with the real-time layer)."""

from __future__ import annotations

import time
from typing import Protocol

from homeserver.protocol.errors import MatrixError


class Limiter(Protocol):
    """What callers need of a rate limiter (in process here, or RedisRateLimiter)."""

    async def check(self, action: str, key: str, per_second: float, burst: int) -> None: ...


class RateLimiter:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    async def check(self, action: str, key: str, per_second: float, burst: int) -> None:
        """Take one token or raise M_LIMIT_EXCEEDED with retry_after_ms."""
        if not self.enabled:
            return
        now = time.monotonic()
        tokens, last = self._buckets.get((action, key), (float(burst), now))
        tokens = min(float(burst), tokens + (now - last) * per_second)
        if tokens < 1.0:
            retry_ms = int((1.0 - tokens) / per_second * 1000) + 1
            self._buckets[(action, key)] = (tokens, now)
            raise MatrixError(429, "M_LIMIT_EXCEEDED", "Too many requests", retry_after_ms=retry_ms)
        self._buckets[(action, key)] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:
            self._buckets.clear()
