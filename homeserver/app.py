"""Assembly: config -> stores, keys, services. The HTTP layer gets one `Homeserver`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from federation.intake import FederationEventSource, FederationKeySource
from federation.membership_client import FederationMembershipClient
from federation.service import Federation
from homeserver import metrics
from homeserver.accounts.account_data import AccountDataService
from homeserver.accounts.deactivation import DeactivationService
from homeserver.accounts.filters import FilterService
from homeserver.accounts.openid import OpenIDService
from homeserver.accounts.profile import ProfileService
from homeserver.accounts.service import AccountService, token_secret_from_seed
from homeserver.accounts.shared_secret import SharedSecretRegistration
from homeserver.accounts.uia import UIAService
from homeserver.accounts.user_directory import UserDirectoryService
from homeserver.admin.service import AdminService
from homeserver.ai.service import AIService
from homeserver.appservice.sender import AppServiceSender
from homeserver.appservice.service import AppServices
from homeserver.bus.base import Bus
from homeserver.config import Config
from homeserver.ephemeral.presence import PresenceManager
from homeserver.ephemeral.typing import TypingManager
from homeserver.events.fanout import FanOut
from homeserver.events.members import RoomMembers
from homeserver.events.notifier import Notifier
from homeserver.events.persister import EventPersister
from homeserver.events.receiver import EventReceiver
from homeserver.events.recent import RecentChanges
from homeserver.events.server_reads import ServerReads
from homeserver.events.visibility import VisibilityFilter
from homeserver.keys.backup import KeyBackupService
from homeserver.keys.dehydrated import DehydratedDeviceService
from homeserver.keys.service import KeyService
from homeserver.keys.signing_key import (
    RetiredKey,
    check_against_seen,
    create_signing_key,
    load_or_create_signing_key,
    read_key_file,
    token_key,
)
from homeserver.keys.to_device import ToDeviceService
from homeserver.legacy.service import LegacySyncService
from homeserver.media.service import MediaService
from homeserver.peering.inbound_edus import InboundEdus
from homeserver.peering.outbound import FederationOutbound
from homeserver.peering.sender import FederationSender
from homeserver.peering.wiring import wire_federation_sender
from homeserver.plugins.host import PluginHost
from homeserver.plugins.service import PluginService
from homeserver.plugins.webhooks import WebhookService
from homeserver.protocol.signing import SigningKey, encode_signing_key_seed, key_id, verify_key_b64
from homeserver.push.service import PushService
from homeserver.push.wiring import NotificationParts
from homeserver.ratelimit import Limiter, RateLimiter
from homeserver.rooms.directory import DirectoryService
from homeserver.rooms.federated_invites import FederatedInvites
from homeserver.rooms.hierarchy import SpaceHierarchy
from homeserver.rooms.membership import MembershipService
from homeserver.rooms.peek import PeekService
from homeserver.rooms.reads import RoomReader
from homeserver.rooms.receipts import ReceiptService
from homeserver.rooms.remote_backfill import RemoteBackfill
from homeserver.rooms.remote_joins import RemoteJoins, TransactionHandler
from homeserver.rooms.remote_membership import RemoteMembership
from homeserver.rooms.serialize import EventSerializer
from homeserver.rooms.server_acl import ServerAclService
from homeserver.rooms.service import RoomService
from homeserver.rooms.upgrade import RoomUpgrader
from homeserver.rooms.upgrade_settings import UpgradeSettings
from homeserver.rooms.user_hierarchy import UserHierarchy
from homeserver.search.service import SearchService
from homeserver.storage.stores import Stores
from homeserver.sync.e2ee import DeviceListSource, ToDeviceSource
from homeserver.sync.service import SyncService

log = logging.getLogger("parley")
HEAD_WATCH_S = 1.0
HEALTH_TIMEOUT_S = 2.0

__all__ = ["Homeserver", "load_or_create_signing_key"]


class Homeserver:
    """The composition root: builds every service once, wires their callbacks, and is what the
    HTTP layer gets (handlers take `hs: Homeserver`). Routes call the services below; the
    stores are theirs, not the routes'."""

    config: Config
    server_name: str
    stores: Stores
    signing_key: SigningKey
    notifier: Notifier
    ratelimiter: Limiter
    bus: Bus
    fanout: FanOut
    serializer: EventSerializer
    persister: EventPersister
    accounts: AccountService
    filters: FilterService
    rooms: RoomService
    membership: MembershipService
    deactivation: DeactivationService
    reader: RoomReader
    typing: TypingManager
    presence: PresenceManager
    push: PushService
    sync: SyncService
    account_data: AccountDataService
    receipts: ReceiptService
    profile: ProfileService
    directory: DirectoryService
    media: MediaService
    keys: KeyService
    key_backup: KeyBackupService
    to_device: ToDeviceService
    dehydrated_devices: DehydratedDeviceService
    federation_sender: FederationSender
    federation_outbound: FederationOutbound
    inbound_edus: InboundEdus
    ai: AIService
    search: SearchService

    def __init__(self, config: Config, stores: Stores, signing_key: SigningKey,
                 retired_keys: list[RetiredKey] | None = None) -> None:
        self.config = config
        self.server_name = config.server_name
        self.stores = stores
        self.signing_key = signing_key
        self.notifier = Notifier()
        self.ratelimiter = RateLimiter(config.rate_limits.enabled)
        self.bus = Bus()
        if config.redis_url:
            from homeserver.bus.redis_bus import RedisBus
            from homeserver.ratelimit_redis import RedisRateLimiter

            rbus = RedisBus(config.redis_url, config.server_name)
            self.bus = rbus
            self.ratelimiter = RedisRateLimiter(config.rate_limits.enabled, rbus.redis_client())
        # The shared stream's recent writes, in memory (one worker only: with several, another
        # worker's positions never finish here and every reader goes to the database).
        self.recent = RecentChanges()
        self.recent.enabled = not self.bus.distributed
        self.recent.start(stores.stream.current())
        stores.stream.on_finish = self.recent.finished
        self.members = RoomMembers(stores, self.recent)
        self.fanout = FanOut(stores, self.notifier, self.bus, self.members)
        self.serializer = EventSerializer(stores)
        self.persister = EventPersister(
            stores, config.server_name, signing_key, self.notifier, self.fanout.event_persisted
        )
        self.retired_keys = retired_keys or []
        seed = encode_signing_key_seed(token_key(signing_key, self.retired_keys)).encode()
        self.accounts = AccountService(
            stores, config.server_name, token_secret_from_seed(seed), config.admins,
            config.access_token_lifetime_ms,
        )
        self.uia = UIAService(stores)
        self.filters = FilterService(stores)
        self.rooms = RoomService(
            stores, self.persister, self.serializer, config.server_name, config.default_room_version
        )
        self.membership = MembershipService(stores, self.rooms)
        self.deactivation = DeactivationService(self.accounts, self.membership)
        self.visibility = VisibilityFilter(stores, config.server_name)
        self.reader = RoomReader(stores, self.serializer, self.visibility)
        self.typing = TypingManager(self.fanout.typing_changed)
        self.presence = PresenceManager(config.presence_enabled, self.fanout.presence_changed)
        self.fanout.attach_ephemeral(self.typing, self.presence)
        self.push = PushService(stores, self.fanout.wake_users)
        self.sync = SyncService(stores, self.serializer, self.notifier, self.typing, self.presence, self.push,
                                self.visibility, self.recent, self.members)
        self.fanout.on_users_changed = self.push.invalidate
        self.keys = KeyService(stores, config.server_name, self.fanout.wake_users)
        self.keys.cache_counts = self.recent.enabled
        self.key_backup = KeyBackupService(stores)
        self.to_device = ToDeviceService(stores, config.server_name, self.fanout.wake_users)
        self.sync.add_source(ToDeviceSource(stores.stream, self.to_device))
        self.sync.add_source(DeviceListSource(stores.stream, self.keys))
        self.accounts.on_devices_deleted = self.keys.devices_deleted
        self.accounts.on_device_list_changed = self.keys.device_list_changed
        self.dehydrated_devices = DehydratedDeviceService(stores, self.keys, self.to_device,
                                                          self.accounts.delete_devices)
        self.account_data = AccountDataService(stores, self.fanout.wake_users)
        self.receipts = ReceiptService(stores, self.reader, self.account_data, self.fanout.wake_room,
                                       self.fanout.wake_users)
        self.search = SearchService(stores, self.reader)
        self.ai = AIService(stores, config.ai, seed, self.reader, self.account_data, self.membership,
                            keyword_search=self.search.ranked_event_ids)
        self.legacy = LegacySyncService(self.sync, stores, self.serializer, self.presence, self.reader)
        self.openid = OpenIDService(stores, config.server_name)
        self.admin = AdminService(stores, self.rooms, self.reader)
        self.profile = ProfileService(stores, self.rooms)
        self.directory = DirectoryService(stores, self.rooms, config.server_name)
        self.upgrades = RoomUpgrader(stores, self.rooms, UpgradeSettings(stores, self.push, self.account_data))
        self.peek = PeekService(stores, self.serializer, self.notifier, self.visibility)
        self.user_directory = UserDirectoryService(stores, config.user_directory_search_all_users)
        self.media = MediaService(stores, config.server_name, config)
        self.notifications = NotificationParts(self)
        self.shared_secret_registration = SharedSecretRegistration(config.registration_shared_secret,
                                                                   self.accounts, self.profile)
        self.federation = Federation(config.server_name, config.federation, signing_key, self.retired_keys,
                                     stores.server_keys)
        # Received events: the intake, fed by inbound transactions and joins.
        self.server_reads = ServerReads(stores)
        self.receiver = EventReceiver(stores, self.persister, FederationKeySource(self.federation.keys),
                                      FederationEventSource(self.federation.client))
        self.hierarchy = SpaceHierarchy(stores, self.directory, self.server_reads)
        self.user_hierarchy = UserHierarchy(stores, self.hierarchy)
        self.remote_joins = RemoteJoins(stores, config.server_name, self.receiver, self.server_reads)
        self.server_acls = ServerAclService(stores)
        self.transactions = TransactionHandler(self.receiver, self.server_acls)
        membership_peer = FederationMembershipClient(self.federation.client)
        self.remote_membership = RemoteMembership(
            stores, self.persister, self.receiver, membership_peer, config.server_name, self.rooms, self.directory)
        self.federated_invites = FederatedInvites(stores, config.server_name, signing_key, self.receiver,
                                                  self.remote_membership, membership_peer)
        self.remote_membership.enabled = config.federation.enabled
        self.remote_membership.wake_users = self.fanout.wake_users
        self.membership.remote_leave = self.remote_membership.leave_room
        wire_federation_sender(self)  # outbound queue + sender, EDUs both ways
        if config.federation.enabled:
            self.persister.remote_invite = self.federated_invites.countersigned_by_invitee
            self.reader.backfill = RemoteBackfill(stores, self.receiver, membership_peer, config.server_name).backfill
            self.profile.remote = self.federation.query_profile
            self.directory.remote = self.federation.query_directory
            self.keys.remote.federation = self.federation
            self.media.remote.fetcher = self.federation.media
            self.user_hierarchy.remote = self.federation.hierarchy
        self.plugins = PluginService(stores, config, self.accounts, self.rooms, self.to_device)
        self.notifications.pipeline.on_stored = self.plugins.notifications_stored
        self.appservices = AppServices(config, self.accounts)
        if self.appservices.services:
            self.profile.ask_appservice = self.appservices.query_user
            self.directory.ask_appservice = self.appservices.query_alias
            self.directory.alias_reserved = self.appservices.alias_reserved
        self.plugin_host = PluginHost(self.plugins, stores, self.serializer, config,
                                      AppServiceSender(self.appservices, stores, self.serializer,
                                                       self.typing, self.presence))
        self.webhooks = WebhookService(self.plugins, self.rooms, config)
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
        await self.fanout.start()
        if self.config.federation.enabled:
            self.federation_sender.start()
        self.notifications.start()
        await self.ai.start()
        self.plugin_host.start()
        metrics.watch(self)

    async def close(self) -> None:
        metrics.unwatch(self)
        await self.plugin_host.stop()
        self.typing.close()
        await self.notifications.stop()
        await self.fanout.stop()
        await self.federation_sender.stop()
        await self.federation.close()
        await self.ai.close()
        await self.stores.close()

    # Fan-out entry points kept on the composition root for callers that hold only `hs`.

    async def wake_room(self, room_id: str, extra: tuple[str, ...] = ()) -> None:
        await self.fanout.wake_room(room_id, extra)

    async def wake_users(self, users: list[str]) -> None:
        await self.fanout.wake_users(users)

    async def set_typing(self, room_id: str, user_id: str, typing: bool, timeout_ms: int) -> None:
        await self.fanout.set_typing(room_id, user_id, typing, timeout_ms)

    async def set_presence(self, user_id: str, presence: Any, status_msg: Any) -> None:
        await self.fanout.set_presence(user_id, presence, status_msg)
