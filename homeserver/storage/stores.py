"""The store bundle: one database, migrations applied, id generators seeded."""

from __future__ import annotations

from homeserver.storage.accounts import AccountStore
from homeserver.storage.auth import AuthStore
from homeserver.storage.cross_signing import CrossSigningStore
from homeserver.storage.database import Database, open_database
from homeserver.storage.dehydrated_devices import DehydratedDeviceStore
from homeserver.storage.deployment import DeploymentStore
from homeserver.storage.e2e_keys import E2EKeyStore
from homeserver.storage.events import EventStore
from homeserver.storage.federation_queue import FederationQueueStore
from homeserver.storage.ids import Counter, StreamTracker
from homeserver.storage.key_backup import KeyBackupStore
from homeserver.storage.media import MediaStore
from homeserver.storage.membership_state import MembershipStateStore
from homeserver.storage.migrate import migrate
from homeserver.storage.pushers import PusherStore
from homeserver.storage.receipts import ReceiptStore
from homeserver.storage.remote_caches import RemoteDeviceListStore, RemoteMediaStore
from homeserver.storage.search import SearchStore
from homeserver.storage.server_keys import ServerKeyStore
from homeserver.storage.state import StateStore
from homeserver.storage.to_device import ToDeviceStore
from homeserver.storage.user_directory import UserDirectoryStore
from homeserver.storage.userdata import UserDataStore


class Stores:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.stream = StreamTracker(
            db,
            "stream_seq",
            "SELECT MAX(m) FROM (SELECT MAX(stream_ordering) AS m FROM events"
            " UNION ALL SELECT MAX(stream_id) AS m FROM account_data"
            " UNION ALL SELECT MAX(stream_id) AS m FROM receipts"
            " UNION ALL SELECT MAX(stream_id) AS m FROM device_list_changes"
            " UNION ALL SELECT MAX(stream_id) AS m FROM to_device_txns) AS t",
        )
        self._group_ids = Counter(db, "state_group_seq", "SELECT MAX(id) FROM state_groups")
        self._filter_ids = Counter(db, "filter_seq", "SELECT MAX(filter_id) FROM filters")
        # Outliers take negative positions, below every timeline event: never new to a sync.
        self.outlier_ids = Counter(
            db, "outlier_seq", "SELECT -MIN(stream_ordering) FROM events WHERE stream_ordering < 0")
        self.events = EventStore(db)
        self.state = StateStore(db, self._group_ids)
        self.accounts = AccountStore(db)
        self.auth = AuthStore(db)
        self.userdata = UserDataStore(db, self._filter_ids)
        self.receipts = ReceiptStore(db)
        self.media = MediaStore(db)
        self.deployment = DeploymentStore(db)
        self.user_directory = UserDirectoryStore(db)
        self.server_keys = ServerKeyStore(db)
        self.e2e_keys = E2EKeyStore(db)
        self.to_device = ToDeviceStore(db)
        self.cross_signing = CrossSigningStore(db)
        self.key_backup = KeyBackupStore(db)
        self.dehydrated_devices = DehydratedDeviceStore(db)
        self.membership_state = MembershipStateStore(db)
        self.federation_queue = FederationQueueStore(db)
        self.remote_device_lists = RemoteDeviceListStore(db)
        self.remote_media = RemoteMediaStore(db)
        self.pushers = PusherStore(db)
        self.search = SearchStore(db)

    @classmethod
    async def open(cls, url: str, sqlite_synchronous: str = "full") -> Stores:
        db = open_database(url, sqlite_synchronous)
        await db.open()
        try:
            await migrate(db)
            stores = cls(db)
            await stores.stream.open()
            await stores._group_ids.open()
            await stores._filter_ids.open()
            await stores.outlier_ids.open()
        except BaseException:
            await db.close()
            raise
        return stores

    async def close(self) -> None:
        await self.db.close()
