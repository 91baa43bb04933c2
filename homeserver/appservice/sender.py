"""Pushes events to application services (Application Service API §Pushing events): one
ordered queue per AS. A transaction is `PUT {url}/_matrix/app/v1/transactions/{txnId}` with the
`hs_token`; it is retried with backoff (1 s doubling to a minute) until the AS accepts it, and
only then does the next one start, so an outage delays delivery but never reorders or drops it.
The position reached is persisted per AS (at-least-once; an AS de-duplicates by txnId)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from homeserver.appservice.registration import AppService
from homeserver.appservice.service import AppServices
from homeserver.rooms.serialize import EventSerializer
from homeserver.storage.events import StoredEvent
from homeserver.storage.plugins import PluginStore
from homeserver.storage.stores import Stores

log = logging.getLogger("parley.appservice")
BATCH = 100
POLL_S = 0.25
MAX_BACKOFF_S = 60.0


class AppServiceSender:
    def __init__(self, appservices: AppServices, stores: Stores, serializer: EventSerializer) -> None:
        self.appservices = appservices
        self.stores = stores
        self.store = PluginStore(stores.db)
        self.serializer = serializer

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
        async with httpx.AsyncClient(timeout=30, transport=self.appservices.transport) as http:
            while True:
                upto = self.stores.stream.current()
                cursor = await self.store.cursor(name)
                if cursor is None:
                    await self.store.set_cursor(name, upto)
                    continue
                evs = await self.store.all_events_after(cursor, upto, BATCH)
                mine = [ev for ev in evs if await self._interested(a, ev)]
                if mine:
                    await self._push(http, a, f"{cursor}.{evs[-1].stream_ordering}", mine)
                if evs:
                    await self.store.set_cursor(name, evs[-1].stream_ordering)
                elif upto > cursor:
                    await self.store.set_cursor(name, upto)
                if len(evs) < BATCH:
                    await asyncio.sleep(POLL_S)

    async def _interested(self, a: AppService, ev: StoredEvent) -> bool:
        if a.is_user(ev.sender) or ev.sender == self.appservices.sender(a) or a.is_room(ev.room_id):
            return True
        if ev.type == "m.room.member" and ev.state_key and (a.is_user(ev.state_key)
                                                            or ev.state_key == self.appservices.sender(a)):
            return True
        members = await self.stores.state.members(ev.room_id, ("join", "invite"))
        return any(a.is_user(m) or m == self.appservices.sender(a) for m in members)

    async def _push(self, http: httpx.AsyncClient, a: AppService, txn_id: str, evs: list[StoredEvent]) -> None:
        events: list[dict[str, Any]] = await self.serializer.serialize(evs)
        delay = 1.0
        while True:
            try:
                r = await http.put(f"{a.url}/_matrix/app/v1/transactions/{txn_id}", json={"events": events},
                                   headers={"Authorization": f"Bearer {a.hs_token}"})
                if r.status_code < 300:
                    return
                log.warning("appservice %s: transaction %s answered %d", a.id, txn_id, r.status_code)
            except httpx.HTTPError as e:
                log.warning("appservice %s: transaction %s failed: %s", a.id, txn_id, e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
