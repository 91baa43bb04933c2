"""Peeking: `GET /events?room_id=` for rooms a user has not joined (client-server API §Room
previews, "Peeking into a room"), as used for room previews and by guests.

A user may peek into a room whose history is `world_readable` now; members of the room may read
its stream here too. Every event of the chunk still passes the per-event history-visibility
filter (events/visibility.py), so history from before the room became world-readable stays
hidden.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from homeserver.events.notifier import Notifier, peek_key
from homeserver.events.visibility import VisibilityFilter
from homeserver.protocol.errors import MatrixError
from homeserver.rooms.serialize import EventSerializer
from homeserver.storage.stores import Stores

MAX_CHUNK = 100


class PeekService:
    def __init__(self, stores: Stores, serializer: EventSerializer, notifier: Notifier,
                 visibility: VisibilityFilter) -> None:
        self.stores = stores
        self.visibility = visibility
        self.serializer = serializer
        self.notifier = notifier

    async def _world_readable(self, room_id: str) -> bool:
        return await self.visibility.current_visibility(room_id) == "world_readable"

    async def check(self, user_id: str, room_id: str) -> None:
        if await self.serializer.room_version(room_id) is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown room")
        m = await self.stores.state.membership(room_id, user_id)
        if m is not None and m[0] == "join":
            return
        if not await self._world_readable(room_id):
            raise MatrixError(403, "M_FORBIDDEN", "This room's history is not world-readable")

    async def events(self, user_id: str, device_id: str, room_id: str, from_pos: int | None,
                     timeout_ms: int) -> dict[str, Any]:
        """Events of the room after `from_pos` (now, if None), waiting up to `timeout_ms` for
        the first one. Tokens are stream tokens (`t<N>`), as in /messages."""
        await self.check(user_id, room_id)
        now = self.stores.stream.current()
        start = now if from_pos is None else min(from_pos, now)
        deadline = time.monotonic() + timeout_ms / 1000
        key = peek_key(room_id)
        while True:
            fut = self.notifier.listen(key)
            try:
                upto = self.stores.stream.current()
                evs = await self.stores.events.room_events_between(room_id, start, upto, MAX_CHUNK, False)
                remaining = deadline - time.monotonic()
                if evs or remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(asyncio.shield(fut), remaining)
                except TimeoutError:
                    pass
            finally:
                self.notifier.unlisten(key, fut)
        end = evs[-1].stream_ordering if evs else upto
        if evs:
            # History visibility may have changed while waiting.
            await self.check(user_id, room_id)
            evs = await self.visibility.filter_for_user(user_id, evs)
        return {
            "chunk": await self.serializer.serialize(evs, (user_id, device_id)),
            "start": f"t{start}",
            "end": f"t{end}",
        }
