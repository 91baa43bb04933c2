"""Pushes events to application services (Application Service API §Pushing events): one
ordered queue per AS. A transaction is `PUT {url}/_matrix/app/v1/transactions/{txnId}` with the
`hs_token`; it is retried with backoff (1 s doubling to a minute) until the AS accepts it, and
only then does the next one start, so an outage delays delivery but never reorders or drops it.
The position reached is persisted per AS (at-least-once; an AS de-duplicates by txnId).

Besides `events`, a transaction carries `ephemeral` (typing, receipts, presence: when the
registration has `receive_ephemeral`) and to-device messages for the AS's users under
`de.sorunome.msc2409.to_device` (MSC4203's unstable name); see ephemeral.py."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from homeserver.appservice.ephemeral import EphemeralData, Interest
from homeserver.appservice.registration import AppService
from homeserver.appservice.service import AppServices
from homeserver.ephemeral.presence import PresenceManager
from homeserver.ephemeral.typing import TypingManager
from homeserver.rooms.serialize import EventSerializer
from homeserver.storage.events import StoredEvent
from homeserver.storage.plugins import PluginStore
from homeserver.storage.stores import Stores

log = logging.getLogger("parley.appservice")
BATCH = 100
POLL_S = 0.25
MAX_BACKOFF_S = 60.0
TO_DEVICE_KEY = "de.sorunome.msc2409.to_device"


class AppServiceSender:
    def __init__(self, appservices: AppServices, stores: Stores, serializer: EventSerializer,
                 typing: TypingManager | None = None, presence: PresenceManager | None = None) -> None:
        self.appservices = appservices
        self.stores = stores
        self.store = PluginStore(stores.db)
        self.serializer = serializer
        self.ephemeral = EphemeralData(appservices, stores, self.store, typing, presence)

    async def run(self) -> None:
        await self.appservices.ensure_senders()
        tasks = [asyncio.ensure_future(self._run_one(a)) for a in self.appservices.services if a.url]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()

    async def _run_one(self, a: AppService) -> None:
        name = f"as:{a.id}"
        typing_seen, presence_seen = self.ephemeral.serials()  # ephemeral state is not replayed
        async with httpx.AsyncClient(timeout=30, transport=self.appservices.transport) as http:
            while True:
                upto = self.stores.stream.current()
                cursor = await self.store.cursor(name)
                if cursor is None:
                    await self.store.set_cursor(name, upto)
                    continue
                serials = self.ephemeral.serials()
                interest = Interest(self.appservices, self.stores, a)
                evs = await self.store.all_events_after(cursor, upto, BATCH)
                end = evs[-1].stream_ordering if len(evs) == BATCH else upto
                to_device, delete, end = await self.ephemeral.to_device(interest, cursor, end)
                evs = [ev for ev in evs if ev.stream_ordering <= end]
                mine = [ev for ev in evs if await self._interested(interest, ev)]
                body: dict[str, Any] = {"events": await self.serializer.serialize(mine) if mine else []}
                txn_id = f"{cursor}.{end}"
                if a.receive_ephemeral:
                    edus = await self.ephemeral.receipts(interest, cursor, end)
                    edus += await self.ephemeral.typing_since(interest, typing_seen)
                    edus += await self.ephemeral.presence_since(interest, presence_seen)
                    if edus:
                        body["ephemeral"] = edus
                        txn_id += f".{serials[0]}.{serials[1]}"
                if to_device:
                    body[TO_DEVICE_KEY] = to_device
                if body["events"] or len(body) > 1:
                    await self._push(http, a, txn_id, body)
                    await self.store.delete_to_device(delete)
                typing_seen, presence_seen = serials
                if end > cursor:
                    await self.store.set_cursor(name, end)
                if end == upto:
                    await asyncio.sleep(POLL_S)

    async def _interested(self, interest: Interest, ev: StoredEvent) -> bool:
        if interest.is_ours(ev.sender) or interest.a.is_room(ev.room_id):
            return True
        if ev.type == "m.room.member" and ev.state_key and interest.is_ours(ev.state_key):
            return True
        return await interest.room(ev.room_id)

    async def _push(self, http: httpx.AsyncClient, a: AppService, txn_id: str, body: dict[str, Any]) -> None:
        delay = 1.0
        while True:
            try:
                r = await http.put(f"{a.url}/_matrix/app/v1/transactions/{txn_id}", json=body,
                                   headers={"Authorization": f"Bearer {a.hs_token}"})
                if r.status_code < 300:
                    return
                log.warning("appservice %s: transaction %s answered %d", a.id, txn_id, r.status_code)
            except httpx.HTTPError as e:
                log.warning("appservice %s: transaction %s failed: %s", a.id, txn_id, e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
