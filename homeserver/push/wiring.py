"""Assembly of the notification parts (pushers API, pipeline, delivery queue, email), kept out
of app.py so the composition root only builds, starts and stops one object."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeserver.outbound import AddressPolicy
from homeserver.push.delivery import PushDelivery
from homeserver.push.email import EmailNotifier
from homeserver.push.outbound_http import PushHttp
from homeserver.push.pipeline import NotificationPipeline
from homeserver.push.pushers import PusherService
from homeserver.storage.events import StoredEvent

if TYPE_CHECKING:
    from homeserver.app import Homeserver


class NotificationParts:
    def __init__(self, hs: Homeserver) -> None:
        cfg = hs.config
        self.email = EmailNotifier(hs.stores, cfg.email, cfg.public_baseurl)
        http = PushHttp(AddressPolicy(cfg.push.ip_range_allowlist), cfg.push.http_timeout_s)
        self.delivery = PushDelivery(hs.stores, cfg.push, cfg.push.vapid_contact or cfg.public_baseurl, http,
                                     [self._email_round] if cfg.email.enabled else [])
        self.pushers = PusherService(hs.stores, hs.serializer, on_change=self.delivery.wake)
        self.pipeline = NotificationPipeline(hs.stores, hs.push, cfg.server_name, hs.members,
                                             on_queued=self.delivery.wake)
        # Chain onto the hooks already wired (fan-out, device keys, ...), never replace them.
        persisted, deleted = hs.persister.on_persisted, hs.accounts.on_devices_deleted

        async def on_persisted(ev: StoredEvent) -> None:
            if persisted is not None:
                await persisted(ev)
            await self.pipeline.event_persisted(ev)

        async def on_devices_deleted(user_id: str, device_ids: list[str] | None) -> None:
            if deleted is not None:
                await deleted(user_id, device_ids)
            await self.pushers.devices_deleted(user_id, device_ids)

        hs.persister.on_persisted = on_persisted
        hs.accounts.on_devices_deleted = on_devices_deleted
        hs.accounts.on_password_changed = self.pushers.password_changed
        hs.receipts.on_read = self.pipeline.user_read

    async def _email_round(self) -> None:
        await self.email.run_once()

    def start(self) -> None:
        self.delivery.start()

    async def stop(self) -> None:
        await self.delivery.stop()
