"""Rate limits shared by every worker: a token bucket per key in Redis (one Lua script)."""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from homeserver.protocol.errors import MatrixError

_BUCKET = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 't'))
local last = tonumber(redis.call('HGET', KEYS[1], 'l'))
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if tokens == nil then tokens = burst; last = now end
tokens = math.min(burst, tokens + (now - last) * rate)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'l', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, tostring(tokens)}
"""


class RedisRateLimiter:
    def __init__(self, enabled: bool, redis: aioredis.Redis) -> None:
        self.enabled = enabled
        self._redis = redis
        self._script = redis.register_script(_BUCKET)

    async def check(self, action: str, key: str, per_second: float, burst: int) -> None:
        if not self.enabled:
            return
        try:
            allowed, tokens = await self._script(keys=[f"parley:rl:{action}:{key}"],
                                                 args=[per_second, burst, time.time()])
        except (RedisError, OSError):
            return  # fail open: an unreachable Redis must not stop people chatting
        if not int(allowed):
            retry_ms = int((1.0 - float(tokens)) / per_second * 1000) + 1
            raise MatrixError(429, "M_LIMIT_EXCEEDED", "Too many requests", retry_after_ms=retry_ms)
