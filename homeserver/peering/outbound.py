"""What this server tells other servers: its new events (PDUs) and its users' ephemeral changes
(EDUs), written to the per-destination queue that homeserver/peering/sender.py delivers.

Only events created here are sent (received events are the origin server's to send). An event
goes to every other server with a joined member in the room after it, and a leave or ban also to
the server of the user it removed (who would otherwise never hear of it). EDUs go to the servers
that share the room (typing, receipts) or any room (presence, device lists) with the user, and
to-device messages to the recipients' servers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from homeserver.bus.base import Bus
from homeserver.events.members import RoomMembers
from homeserver.peering.sender import FederationSender
from homeserver.protocol.ids import server_name_of
from homeserver.storage.events import StoredEvent
from homeserver.storage.federation_queue import QueueItem
from homeserver.storage.stores import Stores

log = logging.getLogger("parley.federation.sender")

#: The bus message kind that wakes the sender on the worker holding the lease.
BUS_KIND = "fedq"
#: Local events with no other server to go to move the watermark at most this often (seconds):
#: re-checking them after a crash queues nothing, so they need not cost a write each.
WATERMARK_IDLE_S = 1.0


def _server(user_id: str) -> str:
    return server_name_of(user_id) if ":" in user_id else ""


class FederationOutbound:
    def __init__(self, stores: Stores, server_name: str, bus: Bus, sender: FederationSender,
                 enabled: bool, members: RoomMembers) -> None:
        self.stores = stores
        self.members = members  # shared with the fan-out and the push pipeline
        self.server_name = server_name
        self.bus = bus
        self.sender = sender
        self.enabled = enabled
        self._tasks: set[asyncio.Task[None]] = set()
        self._watermark_written = 0.0  # time.monotonic() of the last write of the watermark
        #: Each local user's newest presence not yet queued, and the lock that queues presence
        #: one change at a time (see `_presence`).
        self._presence_pending: dict[str, dict[str, Any]] = {}
        self._presence_lock = asyncio.Lock()

    def is_local(self, user_id: str) -> bool:
        return _server(user_id) == self.server_name

    # ------------------------------------------------------------------ who is where

    async def servers_in_room(self, room_id: str) -> set[str]:
        members = await self.members.get(room_id, ("join",))
        return {_server(u) for u in members} - {self.server_name, ""}

    async def servers_sharing_with(self, user_id: str) -> set[str]:
        servers = {_server(u) for u in await self.stores.e2e_keys.users_sharing_rooms(user_id)}
        return servers - {self.server_name, ""}

    # ------------------------------------------------------------------ queueing

    async def _queue(self, items: list[QueueItem], watermark: int | None = None) -> None:
        if not items and watermark is None:
            return
        try:
            await self.stores.federation_queue.add(items, int(time.time() * 1000), watermark)
        except Exception:
            # The change itself has committed: the caller's request succeeded either way.
            log.exception("could not queue %d item(s) for other servers", len(items))
            return
        if not items:
            return
        destinations = sorted({i.destination for i in items})
        self.sender.wake(destinations)
        if self.bus.distributed:
            await self.bus.publish({"t": BUS_KIND, "dests": destinations})

    async def on_bus_message(self, msg: dict[str, Any]) -> None:
        dests = msg.get("dests")
        if isinstance(dests, list):
            self.sender.wake([d for d in dests if isinstance(d, str)])

    async def edu(self, destinations: set[str], edu_type: str, content: dict[str, Any]) -> None:
        if self.enabled:
            await self._queue([QueueItem(d, "edu", edu_type=edu_type, content=content) for d in sorted(destinations)])

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ PDUs

    async def event_persisted(self, ev: StoredEvent) -> None:
        """The persister's hook (after the commit): queue a local event for the room's servers,
        and move the watermark of queued local events up to it (same transaction)."""
        if not self.enabled or not self.is_local(ev.sender):
            return
        items = await self._event_items(ev)
        now = time.monotonic()
        if not items and now - self._watermark_written < WATERMARK_IDLE_S:
            return  # nothing to queue: a later write of the watermark covers it (a re-check finds nothing)
        self._watermark_written = now
        await self._queue(items, watermark=ev.stream_ordering)

    async def _event_items(self, ev: StoredEvent) -> list[QueueItem]:
        destinations = await self.servers_in_room(ev.room_id)
        if ev.type == "m.room.member" and ev.state_key and \
                ev.pdu.get("content", {}).get("membership") in ("leave", "ban"):
            destinations.add(_server(ev.state_key))
        destinations -= {self.server_name, ""}
        return [QueueItem(d, "pdu", room_id=ev.room_id, event_id=ev.event_id) for d in sorted(destinations)]

    async def queue_missed_events(self, batch: int = 500) -> int:
        """Queue the local events after the watermark: committed, but the process ended before
        their queue rows were written. Run when this worker becomes the sender (a destination
        deduplicates an event it is sent twice). Their servers are the room's as of now.
        Returns how many events were queued."""
        if not self.enabled:
            return 0
        q = self.stores.federation_queue
        pos = await q.watermark()
        queued = 0
        while rows := await q.events_after(pos, self.server_name, batch):
            events = await self.stores.events.get_many([event_id for _, event_id in rows])
            items: list[QueueItem] = []
            for _, event_id in rows:
                ev = events.get(event_id)
                if ev is not None and self.is_local(ev.sender):
                    more = await self._event_items(ev)
                    queued += bool(more)
                    items += more
            pos = rows[-1][0]
            await self._queue(items, watermark=pos)
        if queued:
            log.info("queued %d local event(s) that had not reached the federation queue", queued)
        return queued

    async def join_accepted(self, ev: StoredEvent, origin: str) -> None:
        """A remote user's join accepted through send_join here: the room's other servers
        hear of it from us (the joining server only talks to this one)."""
        if not self.enabled:
            return
        destinations = await self.servers_in_room(ev.room_id) - {origin}
        await self._queue([QueueItem(d, "pdu", room_id=ev.room_id, event_id=ev.event_id)
                           for d in sorted(destinations)])

    # ------------------------------------------------------------------ EDUs

    async def typing(self, room_id: str, user_id: str, typing: bool) -> None:
        if not self.enabled or not self.is_local(user_id):
            return
        await self.edu(await self.servers_in_room(room_id), "m.typing",
                       {"room_id": room_id, "user_id": user_id, "typing": typing})

    async def receipt(self, room_id: str, user_id: str, event_id: str, thread_id: str, ts: int) -> None:
        """A public read receipt (m.read.private never leaves this server)."""
        if not self.enabled or not self.is_local(user_id):
            return
        data: dict[str, Any] = {"ts": ts}
        if thread_id:
            data["thread_id"] = thread_id
        await self.edu(await self.servers_in_room(room_id), "m.receipt",
                       {room_id: {"m.read": {user_id: {"event_ids": [event_id], "data": data}}}})

    def presence_changed(self, user_id: str, presence: dict[str, Any]) -> None:
        """A local user's presence changed (the presence manager's callback, synchronous)."""
        if self.enabled and self.is_local(user_id):
            self._presence_pending[user_id] = presence
            self._spawn(self._presence(user_id))

    async def _presence(self, user_id: str) -> None:
        """Queue the user's newest presence. The sender keeps only the last queued presence of a
        user, so the queue order must be the order of the changes: one task at a time, each
        queueing whatever is newest when its turn comes (a task that finds nothing was overtaken
        by one that already queued the newer state). Left to run freely, a task that waited
        longer on the database could queue an older state after a newer one."""
        async with self._presence_lock:
            presence = self._presence_pending.pop(user_id, None)
            if presence is None:
                return
            try:
                entry: dict[str, Any] = {"user_id": user_id, **presence}
                await self.edu(await self.servers_sharing_with(user_id), "m.presence", {"push": [entry]})
            except Exception:
                log.exception("could not queue presence of %s", user_id)

    async def to_device(self, sender: str, event_type: str, message_id: str,
                        messages: dict[str, dict[str, Any]]) -> None:
        """To-device messages for remote users, one m.direct_to_device per recipient server."""
        if not self.enabled:
            return
        by_server: dict[str, dict[str, Any]] = {}
        for user_id, devices in messages.items():
            server = _server(user_id)
            if server and server != self.server_name:
                by_server.setdefault(server, {})[user_id] = devices
        await self._queue([QueueItem(server, "edu", edu_type="m.direct_to_device", content={
            "sender": sender, "type": event_type, "message_id": message_id, "messages": msgs})
            for server, msgs in sorted(by_server.items())])

    async def device_list_changed(self, user_id: str, device_ids: list[str] | None, deleted: bool) -> None:
        """A local user's device was added, changed or deleted (None: all of their devices)."""
        if not self.enabled or not self.is_local(user_id):
            return
        destinations = await self.servers_sharing_with(user_id)
        if not destinations:
            return
        names = {str(d["device_id"]): d.get("display_name") for d in await self.stores.accounts.list_devices(user_id)}
        stream_id = self.stores.stream.current()
        for device_id in device_ids if device_ids is not None else sorted(names):
            content: dict[str, Any] = {"user_id": user_id, "device_id": device_id, "stream_id": stream_id,
                                       "prev_id": [], "deleted": deleted or device_id not in names}
            if not content["deleted"]:
                keys = await self.stores.e2e_keys.get_device_keys(user_id, device_id)
                if keys is not None:
                    content["keys"] = keys
                if names.get(device_id):
                    content["device_display_name"] = names[device_id]
            await self.edu(destinations, "m.device_list_update", content)

    async def signing_keys_changed(self, user_id: str, keys: dict[str, dict[str, Any]]) -> None:
        """A local user's public cross-signing keys (master, self-signing) changed."""
        if not self.enabled or not self.is_local(user_id):
            return
        content: dict[str, Any] = {"user_id": user_id}
        for usage in ("master", "self_signing"):
            if usage in keys:
                content[f"{usage}_key"] = keys[usage]
        if len(content) > 1:
            await self.edu(await self.servers_sharing_with(user_id), "m.signing_key_update", content)
