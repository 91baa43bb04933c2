"""Assembly: config -> stores, keys, services. The HTTP layer gets one `Homeserver`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from federation.service import Federation
from homeserver import metrics
from homeserver.accounts.account_data import AccountDataService
from homeserver.accounts.profile import ProfileService
from homeserver.accounts.service import AccountService, token_secret_from_seed
from homeserver.accounts.shared_secret import SharedSecretRegistration
from homeserver.accounts.user_directory import UserDirectoryService
from homeserver.bus.base import Bus
from homeserver.config import Config
from homeserver.ephemeral.presence import PresenceManager
from homeserver.ephemeral.typing import TypingManager
from homeserver.events.notifier import Notifier
from homeserver.events.persister import EventPersister
from homeserver.events.visibility import VisibilityFilter
from homeserver.keys.signing_key import (
    RetiredKey,
    check_against_seen,
    create_signing_key,
    load_or_create_signing_key,
    read_key_file,
    token_key,
)
from homeserver.media.service import MediaService
from homeserver.protocol.signing import encode_signing_key_seed, key_id, verify_key_b64
from homeserver.push.service import PushService
from homeserver.ratelimit import RateLimiter
from homeserver.rooms.directory import DirectoryService
from homeserver.rooms.peek import PeekService, peek_key
from homeserver.rooms.reads import RoomReader
from homeserver.rooms.receipts import ReceiptService
from homeserver.rooms.serialize import EventSerializer
from homeserver.rooms.service import RoomService
from homeserver.rooms.upgrade import RoomUpgrader
from homeserver.rooms.upgrade_settings import UpgradeSettings
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores
from homeserver.sync.service import SyncService

log = logging.getLogger("parley")
HEAD_WATCH_S = 1.0
HEALTH_TIMEOUT_S = 2.0

__all__ = ["Homeserver", "load_or_create_signing_key"]


class Homeserver:
    def __init__(self, config: Config, stores: Stores, signing_key: Any,
                 retired_keys: list[RetiredKey] | None = None) -> None:
        self.config = config
        self.server_name = config.server_name
        self.stores = stores
        self.signing_key = signing_key
        self.notifier = Notifier()
        self.ratelimiter: Any = RateLimiter(config.rate_limits.enabled)
        self.bus: Bus = Bus()
        if config.redis_url:
            from homeserver.bus.redis_bus import RedisBus
            from homeserver.ratelimit_redis import RedisRateLimiter

            rbus = RedisBus(config.redis_url, config.server_name)
            self.bus = rbus
            self.ratelimiter = RedisRateLimiter(config.rate_limits.enabled, rbus.redis_client())
        self.serializer = EventSerializer(stores)
        self.persister = EventPersister(
            stores, config.server_name, signing_key, self.notifier, self._on_persisted
        )
        self.retired_keys = retired_keys or []
        seed = encode_signing_key_seed(token_key(signing_key, self.retired_keys)).encode()
        self.accounts = AccountService(
            stores, config.server_name, token_secret_from_seed(seed), config.admins,
            config.access_token_lifetime_ms,
        )
        self.rooms = RoomService(
            stores, self.persister, self.serializer, config.server_name, config.default_room_version
        )
        self.visibility = VisibilityFilter(stores, config.server_name)
        self.reader = RoomReader(stores, self.serializer, self.visibility)
        self.typing = TypingManager(self._typing_changed)
        self.presence = PresenceManager(config.presence_enabled, self._presence_changed)
        self.push = PushService(stores, self.wake_users)
        self.sync = SyncService(stores, self.serializer, self.notifier, self.typing, self.presence, self.push,
                                self.visibility)
        self.account_data = AccountDataService(stores, self.wake_users)
        self.receipts = ReceiptService(stores, self.reader, self.account_data, self.wake_room,
                                       self.wake_users)
        self._tasks: set[asyncio.Task[None]] = set()
        self.profile = ProfileService(stores, self.rooms)
        self.directory = DirectoryService(stores, self.rooms, config.server_name)
        self.upgrades = RoomUpgrader(stores, self.rooms, UpgradeSettings(stores, self.push, self.account_data))
        self.peek = PeekService(stores, self.serializer, self.notifier, self.visibility)
        self.user_directory = UserDirectoryService(stores, config.user_directory_search_all_users)
        self.media = MediaService(stores, config.server_name, config)
        self.shared_secret_registration = SharedSecretRegistration(config.registration_shared_secret,
                                                                   self.accounts, self.profile)
        self.federation = Federation(config.server_name, config.federation, signing_key, self.retired_keys,
                                     stores.server_keys)
        if config.federation.enabled:
            self.profile.remote = self.federation.query_profile
            self.directory.remote = self.federation.query_directory
        # Set when shutdown begins: long-polls answer at once, WebSockets close with 1001.
        self.stopping = asyncio.Event()

    @classmethod
    async def start(cls, config: Config) -> Homeserver:
        create_signing_key(config.signing_key_path)
        key, retired = read_key_file(config.signing_key_path)
        stores = await Stores.open(config.database, config.sqlite_synchronous)
        try:
            seen = await stores.deployment.seen_signing_key(key_id(key), verify_key_b64(key))
            check_against_seen(key, *seen, config.signing_key_path)
        except BaseException:
            await stores.close()
            raise
        hs = cls(config, stores, key, retired)
        await hs.start_background()
        return hs

    def begin_shutdown(self) -> None:
        """First step of a graceful stop, before the HTTP server drains its connections."""
        self.stopping.set()
        self.notifier.close()

    async def health(self) -> tuple[bool, dict[str, str]]:
        """(healthy, details): the database answers; the bus state is reported, not required
        (without it wake-ups fall back to the database poll, nothing is lost)."""
        details = {"bus": "ok" if self.bus.is_connected() else "down"}
        if not self.bus.distributed:
            details["bus"] = "in-process"
        if self.stopping.is_set():
            details["status"] = "stopping"
            return False, details
        try:
            await asyncio.wait_for(self.stores.db.fetchval("SELECT 1"), HEALTH_TIMEOUT_S)
            details["database"] = "ok"
        except Exception as e:  # noqa: BLE001 - any failure means "not healthy"
            log.warning("health check: database unavailable: %s", e)
            details["database"] = "unavailable"
            details["status"] = "unavailable"
            return False, details
        details["status"] = "ok"
        return True, details

    async def start_background(self) -> None:
        self.bus.set_handlers(self._on_bus_message, self._on_bus_reconnect)
        await self.bus.start()
        metrics.watch(self)
        if self.bus.distributed:
            self._spawn(self._head_watch())

    async def close(self) -> None:
        metrics.unwatch(self)
        self.typing.close()
        for t in list(self._tasks):
            t.cancel()
        await self.bus.stop()
        await self.federation.close()
        await self.stores.close()

    # ------------------------------------------------------------------ fan-out

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

    async def _on_bus_reconnect(self) -> None:
        await self.stores.stream.refresh_from_db()
        self.notifier.wake(self.notifier.waiting_users())

    async def _on_bus_message(self, msg: dict[str, Any]) -> None:
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
            self.notifier.wake(msg.get("users") or ())
        elif kind == "typing":
            self.typing.set_typing(str(msg["room"]), str(msg["user"]), bool(msg["typing"]), int(msg["timeout"]))
        elif kind == "presence":
            self.presence.set(str(msg["user"]), str(msg["presence"]),
                              msg["status_msg"] if "status_msg" in msg else ..., local=False)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wake_room(self, room_id: str, extra: tuple[str, ...] = ()) -> None:
        """Wake the room's members here and on every other worker (after a stream write)."""
        await self._wake_room_local(room_id, extra)
        if self.bus.distributed:
            await self.bus.publish({"t": "room", "room": room_id, "pos": self.stores.stream.current()})

    async def wake_users(self, users: list[str]) -> None:
        self.notifier.wake(users)
        if self.bus.distributed:
            await self.bus.publish({"t": "users", "users": list(users), "pos": self.stores.stream.current()})

    async def _wake_room_local(self, room_id: str, extra: tuple[str, ...] = ()) -> None:
        """Wake the waiting syncs of the room's joined and invited members (and `extra`)."""
        waiting = self.notifier.waiting_users()
        if not waiting:
            return
        members = set(await self.stores.state.members(room_id, ("join", "invite")))
        members.update(extra)
        members.add(peek_key(room_id))
        self.notifier.wake(members & waiting)

    async def _on_persisted(self, ev: StoredEvent) -> None:
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

    def _typing_changed(self, room_id: str) -> None:
        self._spawn(self._wake_room_local(room_id))

    def _presence_changed(self, user_id: str, local: bool) -> None:
        self._spawn(self._wake_co_members(user_id))
        if local and self.bus.distributed:
            snap = self.presence.snapshot(user_id)
            self._spawn(self.bus.publish({"t": "presence", "user": user_id, "presence": snap["presence"],
                                          "status_msg": snap["status_msg"]}))

    async def _wake_co_members(self, user_id: str) -> None:
        waiting = self.notifier.waiting_users()
        if not waiting:
            return
        rooms = await self.stores.state.rooms_for_user(user_id)
        targets = {user_id}
        for room_id, (membership, _, _) in rooms.items():
            if membership == "join":
                targets.update(await self.stores.state.members(room_id, ("join",)))
        self.notifier.wake(targets & waiting)

    async def set_typing(self, room_id: str, user_id: str, typing: bool, timeout_ms: int) -> None:
        self.typing.set_typing(room_id, user_id, typing, timeout_ms)
        if self.bus.distributed:
            await self.bus.publish({"t": "typing", "room": room_id, "user": user_id, "typing": typing,
                                    "timeout": timeout_ms})

    async def set_presence(self, user_id: str, presence: Any, status_msg: Any) -> None:
        self.presence.set(user_id, presence, status_msg)
