"""Read receipts and read markers."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.accounts.account_data import AccountDataService
from homeserver.events.recent import NothingNote, ReceiptNote
from homeserver.protocol.errors import MatrixError
from homeserver.rooms.reads import RoomReader
from homeserver.storage.stores import Stores

RECEIPT_TYPES = ("m.read", "m.read.private", "m.fully_read")


class ReceiptService:
    def __init__(self, stores: Stores, reader: RoomReader, account_data: AccountDataService,
                 wake_room: Callable[[str], Awaitable[None]],
                 wake_users: Callable[[list[str]], Awaitable[None]]) -> None:
        self.stores = stores
        self.reader = reader
        self.account_data = account_data
        self._wake_room = wake_room
        self._wake_users = wake_users
        #: Called with (room, user, event, thread, ts) after a public receipt changed (federation).
        self.on_receipt: Callable[[str, str, str, str, int], Awaitable[None]] | None = None
        # Called with the user after their read position moved (push badges follow it).
        self.on_read: Callable[[str], Awaitable[None]] | None = None

    async def receipt(self, user_id: str, room_id: str, rtype: str, event_id: str, thread_id: Any) -> None:
        if rtype not in RECEIPT_TYPES:
            raise MatrixError(400, "M_INVALID_PARAM", f"Unknown receipt type {rtype!r}")
        await self.reader.require_joined(user_id, room_id)
        ev = await self.reader.event(user_id, room_id, event_id)
        if rtype == "m.fully_read":
            if thread_id is not None:
                raise MatrixError(400, "M_INVALID_PARAM", "m.fully_read cannot be threaded")
            await self.account_data.put(user_id, room_id, "m.fully_read", {"event_id": event_id})
            return
        if thread_id is None:
            thread = ""
        elif isinstance(thread_id, str) and thread_id and len(thread_id) <= 255:
            thread = thread_id
        else:
            raise MatrixError(400, "M_INVALID_PARAM", "thread_id must be 'main' or an event ID")
        ts = int(time.time() * 1000)
        async with self.stores.stream.write() as (c, pos):
            changed = await self.stores.receipts.upsert(
                c, room_id, user_id, rtype, thread, event_id, ev.stream_ordering, ts, pos,
            )
            self.stores.stream.note(pos, ReceiptNote(room_id, user_id, rtype, thread, event_id, ts)
                                    if changed else NothingNote())
        if changed:
            if self.on_read is not None:
                await self.on_read(user_id)
            if rtype == "m.read.private":
                await self._wake_users([user_id])
            else:
                await self._wake_room(room_id)
                if self.on_receipt is not None:
                    await self.on_receipt(room_id, user_id, event_id, thread, ts)

    async def remote_receipt(self, room_id: str, user_id: str, event_id: str, thread: str, ts: int | None) -> None:
        """A public read receipt from another server (checked by the caller); receipts for
        events this server does not hold are dropped."""
        ev = await self.stores.events.get(event_id)
        if ev is None or ev.room_id != room_id or not ev.in_timeline or len(thread) > 255:
            return
        ts = ts if ts is not None else int(time.time() * 1000)
        async with self.stores.stream.write() as (c, pos):
            changed = await self.stores.receipts.upsert(
                c, room_id, user_id, "m.read", thread, event_id, ev.stream_ordering, ts, pos,
            )
            self.stores.stream.note(pos, ReceiptNote(room_id, user_id, "m.read", thread, event_id, ts)
                                    if changed else NothingNote())
        if changed:
            await self._wake_room(room_id)

    async def read_markers(self, user_id: str, room_id: str, body: dict[str, Any]) -> None:
        for key in ("m.fully_read", "m.read", "m.read.private"):
            eid = body.get(key)
            if eid is None:
                continue
            if not isinstance(eid, str):
                raise MatrixError(400, "M_BAD_JSON", f"'{key}' must be an event ID")
            await self.receipt(user_id, room_id, key, eid, None)
