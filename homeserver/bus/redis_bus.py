"""Redis pub/sub bus between workers, with reconnects.

Frames are msgpack maps with the sender's worker id and send time; a worker ignores its own
frames. When the connection drops, publishing fails soft (logged), and on reconnect every worker
re-reads the stream head from the database, so clients catch up from their sync tokens.

After a Redis restart the pooled publish connections are dead sockets. The subscriber notices
first and drops them, and a publish that still meets one retries at once on a fresh connection,
so the first wake-up after a restart goes out on the bus instead of waiting for the head watch.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgpack
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from homeserver import metrics
from homeserver.bus.base import Bus, log

RECONNECT_MAX_S = 2.0
PUBLISH_TIMEOUT_S = 0.25


class RedisBus(Bus):
    distributed = True

    def __init__(self, url: str, server_name: str) -> None:
        super().__init__()
        self.url = url
        self.channel = f"parley:{server_name}:bus"  # one deployment per channel
        self._redis: aioredis.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    @property
    def redis(self) -> aioredis.Redis:
        return self.redis_client()

    def redis_client(self) -> aioredis.Redis:
        if self._redis is None:
            # Retries without backoff: a dead pooled socket is replaced by a fresh one at once
            # (a backoff would outlast the publish budget and the message would be lost).
            self._redis = aioredis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5,
                                            health_check_interval=5, retry=Retry(NoBackoff(), 2),
                                            retry_on_error=[RedisConnectionError, RedisTimeoutError])
        return self._redis

    async def start(self) -> None:
        self.redis_client()
        self._task = asyncio.get_running_loop().create_task(self._listen_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._redis is not None:
            await self._redis.aclose()

    async def publish(self, msg: dict[str, Any]) -> None:
        msg = dict(msg, w=self.worker_id, ts=time.time())
        try:
            # Bounded: a request must not hang on an unreachable Redis (the head watch and the
            # reconnect resync cover whatever this message would have said).
            await asyncio.wait_for(self.redis.publish(self.channel, msgpack.packb(msg, use_bin_type=True)),
                                   PUBLISH_TIMEOUT_S)
        except (TimeoutError, RedisError, OSError) as e:
            metrics.BUS_PUBLISH_FAILURES.inc()
            log.warning("bus publish failed (%s); peers will catch up from the database", e)

    def is_connected(self) -> bool:
        return self.connected.is_set()

    async def _listen_forever(self) -> None:
        delay = 0.05
        first = True
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self.connected.set()
                if not first:
                    # Idle pooled connections predate the outage: drop them so that the next
                    # publish connects afresh instead of failing on a closed socket.
                    await self.redis.connection_pool.disconnect(inuse_connections=False)
                    if self._on_reconnect is not None:
                        await self._on_reconnect()
                first = False
                delay = 0.05
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        msg = msgpack.unpackb(message["data"], raw=False)
                    except Exception:
                        continue
                    if not isinstance(msg, dict) or msg.get("w") == self.worker_id:
                        continue
                    sent = msg.get("ts")
                    if isinstance(sent, float):
                        metrics.BUS_LAG.observe(max(0.0, time.time() - sent))
                    if self._handler is not None:
                        try:
                            await self._handler(msg)
                        except Exception:
                            log.exception("bus handler failed for %r", msg.get("t"))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as e:
                self.connected.clear()
                log.warning("bus connection lost (%s); retrying", e)
                first = False
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass
            await asyncio.sleep(delay)  # reconnect backoff
            delay = min(delay * 2, RECONNECT_MAX_S)
