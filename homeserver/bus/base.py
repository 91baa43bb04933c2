"""The bus: how workers tell each other "something changed". It only wakes people up; the
data itself is always in the database, so a lost bus message delays a wake-up but loses nothing."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("parley.bus")

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class Bus:
    """In-process bus: nothing to fan out to (one worker)."""

    distributed = False

    def __init__(self) -> None:
        self.worker_id = os.urandom(6).hex()
        self._handler: Handler | None = None
        self._on_reconnect: Callable[[], Awaitable[None]] | None = None

    def set_handlers(self, handler: Handler, on_reconnect: Callable[[], Awaitable[None]]) -> None:
        self._handler = handler
        self._on_reconnect = on_reconnect

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, msg: dict[str, Any]) -> None:
        return None  # local effects are applied directly by the caller

    def is_connected(self) -> bool:
        return True  # nothing to be disconnected from
