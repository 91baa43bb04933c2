"""Fan-out: after a change, wake exactly the waiting syncs it concerns, here and on every worker.

A change is announced in two ways at once: the local Notifier wakes this worker's waiters, and
(with Redis) a small bus message tells the other workers, which apply the same wake-up (and the
same typing/presence change) on their side. Bus messages only carry wake-ups and positions; the
data itself is in the database, so a lost message delays a wake-up by at most HEAD_WATCH_S.

Bus message kinds (`t`): "ev" (an event was persisted), "room" (a room-wide stream write such
as a receipt), "users" (per-user data such as account data), "typing", "presence".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from homeserver.bus.base import Bus
from homeserver.ephemeral.presence import PresenceManager
from homeserver.ephemeral.typing import TypingManager
from homeserver.events.members import RoomMembers
from homeserver.events.notifier import Notifier, peek_key
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores

log = logging.getLogger("parley")
HEAD_WATCH_S = 1.0


class FanOut:
    def __init__(self, stores: Stores, notifier: Notifier, bus: Bus, members: RoomMembers) -> None:
        self.stores = stores
        self.members = members
        self.notifier = notifier
        self.bus = bus
        self._typing: TypingManager | None = None
        self._presence: PresenceManager | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: Handlers of further bus message kinds (`t`), e.g. the federation sender's wake-up.
        self.bus_handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {}
        #: Told of typing changes made here (room, user, typing) and of local presence changes
        #: (user, presence as /presence shows it): the federation sender's EDUs.
        self.on_typing: Callable[[str, str, bool], Awaitable[None]] | None = None
        self.on_local_presence: Callable[[str, dict[str, Any]], None] | None = None
        #: Told of users whose per-user data changed on another worker (cached push rules), or
        #: None for everyone after a bus reconnect (messages may have been lost meanwhile).
        self.on_users_changed: Callable[[list[str] | None], None] | None = None

    def attach_ephemeral(self, typing: TypingManager, presence: PresenceManager) -> None:
        """The typing and presence managers call back into this service, so they are built
        after it (with `typing_changed`/`presence_changed`) and handed over here."""
        self._typing = typing
        self._presence = presence

    @property
    def typing(self) -> TypingManager:
        if self._typing is None:
            raise RuntimeError("FanOut.attach_ephemeral was not called")
        return self._typing

    @property
    def presence(self) -> PresenceManager:
        if self._presence is None:
            raise RuntimeError("FanOut.attach_ephemeral was not called")
        return self._presence

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.bus.set_handlers(self.on_bus_message, self.on_bus_reconnect)
        await self.bus.start()
        if self.bus.distributed:
            self._spawn(self._head_watch())

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await self.bus.stop()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ from other workers

    async def _head_watch(self) -> None:
        """Safety net for multi-worker mode: if a bus message was lost (Redis restarting),
        notice the new stream head from the database within a second."""
        while True:
            await asyncio.sleep(HEAD_WATCH_S)
            try:
                if await self.stores.stream.refresh_from_db():
                    self.notifier.wake(self.notifier.waiting_users())
            except Exception:
                log.exception("stream head refresh failed")

    async def on_bus_reconnect(self) -> None:
        if self.on_users_changed is not None:
            self.on_users_changed(None)
        await self.stores.stream.refresh_from_db()
        self.notifier.wake(self.notifier.waiting_users())

    async def on_bus_message(self, msg: dict[str, Any]) -> None:
        kind = msg.get("t")
        pos = msg.get("pos")
        if isinstance(pos, int):
            self.stores.stream.advance_remote(pos)
        if kind == "ev":
            if isinstance(msg.get("redacts"), str):
                self.stores.events.invalidate(msg["redacts"])
            await self._wake_room_local(str(msg.get("room")), tuple(msg.get("extra") or ()))
        elif kind == "room":
            await self._wake_room_local(str(msg.get("room")))
        elif kind == "users":
            users = [u for u in msg.get("users") or () if isinstance(u, str)]
            if self.on_users_changed is not None:
                self.on_users_changed(users)
            self.notifier.wake(users)
        elif kind == "typing":
            self.typing.set_typing(str(msg["room"]), str(msg["user"]), bool(msg["typing"]), int(msg["timeout"]))
        elif kind == "presence":
            at, active = msg.get("at"), msg.get("active")
            self.presence.set(str(msg["user"]), str(msg["presence"]),
                              msg["status_msg"] if "status_msg" in msg else ..., local=False,
                              at_ms=at if isinstance(at, int) else None,
                              last_active_ts=active if isinstance(active, int) and active else None)
        elif isinstance(kind, str) and kind in self.bus_handlers:
            await self.bus_handlers[kind](msg)

    # ------------------------------------------------------------------ from this worker

    async def wake_room(self, room_id: str, extra: tuple[str, ...] = ()) -> None:
        """Wake the room's members here and on every other worker (after a stream write)."""
        await self._wake_room_local(room_id, extra)
        if self.bus.distributed:
            await self.bus.publish({"t": "room", "room": room_id, "pos": self.stores.stream.current()})

    async def wake_users(self, users: list[str]) -> None:
        self.notifier.wake(users)
        if self.bus.distributed:
            await self.bus.publish({"t": "users", "users": list(users), "pos": self.stores.stream.current()})

    async def event_persisted(self, ev: StoredEvent) -> None:
        """The persister's callback, after each event commits."""
        # The target of a membership change may just have left: wake them too.
        extra = (ev.state_key,) if ev.type == "m.room.member" and ev.state_key else ()
        await self._wake_room_local(ev.room_id, extra)
        if self.bus.distributed:
            msg: dict[str, Any] = {"t": "ev", "room": ev.room_id, "pos": ev.stream_ordering,
                                   "extra": list(extra)}
            if ev.type == "m.room.redaction":
                target = ev.pdu.get("content", {}).get("redacts", ev.pdu.get("redacts"))
                if isinstance(target, str):
                    msg["redacts"] = target
            await self.bus.publish(msg)

    async def set_typing(self, room_id: str, user_id: str, typing: bool, timeout_ms: int) -> None:
        self.typing.set_typing(room_id, user_id, typing, timeout_ms)
        if self.bus.distributed:
            await self.bus.publish({"t": "typing", "room": room_id, "user": user_id, "typing": typing,
                                    "timeout": timeout_ms})
        if self.on_typing is not None:
            await self.on_typing(room_id, user_id, typing)

    async def set_presence(self, user_id: str, presence: Any, status_msg: Any) -> None:
        self.presence.set(user_id, presence, status_msg)

    async def set_remote_presence(self, user_id: str, presence: str, status_msg: str | None,
                                  last_active_ago: int | None = None) -> None:
        """Another server's user: applied here as not local (so never sent back out) and
        passed to the other workers. Updates apply in the order they arrive here (each
        server sends its transactions one at a time); the other workers get the arrival time
        so that a bus message overtaken by a newer one changes nothing."""
        now = int(time.time() * 1000)
        active = now - last_active_ago if last_active_ago is not None else None
        self.presence.set(user_id, presence, status_msg, now_ms=now, local=False, at_ms=now, last_active_ts=active)
        if self.bus.distributed:
            await self.bus.publish({"t": "presence", "user": user_id, "presence": presence, "status_msg": status_msg,
                                    "at": now, "active": self.presence.snapshot(user_id)["last_active_ts"]})

    def typing_changed(self, room_id: str) -> None:
        """The typing manager's callback (local changes, remote ones and timeouts)."""
        self._spawn(self._wake_room_local(room_id))

    def presence_changed(self, user_id: str, local: bool) -> None:
        """The presence manager's callback; only local changes travel on the bus."""
        self._spawn(self._wake_co_members(user_id))
        if local and self.on_local_presence is not None:
            self.on_local_presence(user_id, self.presence.get(user_id))
        if local and self.bus.distributed:
            snap = self.presence.snapshot(user_id)
            self._spawn(self.bus.publish({"t": "presence", "user": user_id, "presence": snap["presence"],
                                          "status_msg": snap["status_msg"], "at": snap["updated_ts"],
                                          "active": snap["last_active_ts"]}))

    # ------------------------------------------------------------------ who to wake

    async def _wake_room_local(self, room_id: str, extra: tuple[str, ...] = ()) -> None:
        """Wake the waiting syncs of the room's joined and invited members (and `extra`)."""
        waiting = self.notifier.waiting_users()
        if not waiting:
            return
        members = set(await self.members.get(room_id, ("join", "invite")))
        members.update(extra)
        members.add(peek_key(room_id))  # users peeking into the room (GET /events?room_id=)
        self.notifier.wake(members & waiting)

    async def _wake_co_members(self, user_id: str) -> None:
        waiting = self.notifier.waiting_users()
        if not waiting:
            return
        rooms = await self.stores.state.rooms_for_user(user_id)
        targets = {user_id}
        for room_id, (membership, _, _) in rooms.items():
            if membership == "join":
                targets.update(await self.members.get(room_id, ("join",)))
        self.notifier.wake(targets & waiting)
