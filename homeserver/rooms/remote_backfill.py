"""History from before the earliest event this server holds of a room it joined over federation
(server-server API "Backfilling and retrieving missing events"), for `/messages` paging back.

The backward extremities are the prev events of our oldest timeline events that we do not hold in
the timeline; a server of the room is asked for `/backfill` from them, and what comes back runs
through the receiver as backfilled: placed in the past by depth, never new to a sync.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from homeserver.events.receiver import EventReceiver
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.events import event_refs
from homeserver.protocol.ids import server_name_of
from homeserver.storage.stores import Stores

log = logging.getLogger("parley.federation")
#: Oldest timeline events whose prev events are looked at.
EDGE_SCAN = 20
MAX_SERVERS = 5
#: After a backfill that brought nothing, the same gap is not asked about again for this long.
FRUITLESS_S = 60.0


class BackfillPeer(Protocol):
    async def backfill(self, destination: str, room_id: str, from_ids: list[str],
                       limit: int) -> list[dict[str, Any]]: ...


class RemoteBackfill:
    def __init__(self, stores: Stores, receiver: EventReceiver, peer: BackfillPeer, server_name: str) -> None:
        self.stores = stores
        self.receiver = receiver
        self.peer = peer
        self.server_name = server_name
        self._fruitless: dict[tuple[str, tuple[str, ...]], float] = {}

    async def backward_extremities(self, room_id: str) -> list[str]:
        oldest = await self.stores.events.room_events_topo(room_id, None, None, self.stores.stream.current(),
                                                           EDGE_SCAN, False)
        prevs = list(dict.fromkeys(p for ev in oldest for p in event_refs(ev.pdu.get("prev_events"))))
        have = await self.stores.events.get_many(prevs)
        return [p for p in prevs if p not in have or have[p].outlier]

    async def _servers(self, room_id: str) -> list[str]:
        joined = await self.stores.state.members(room_id, ("join",))
        servers = [server_name_of(u) for u in sorted(joined)]
        if ":" in room_id:
            servers.insert(0, server_name_of(room_id))
        return [s for s in dict.fromkeys(servers) if s != self.server_name][:MAX_SERVERS]

    async def backfill(self, room_id: str, limit: int) -> int:
        """Fetch up to `limit` older events; how many new timeline events were stored."""
        extremities = await self.backward_extremities(room_id)
        if not extremities:
            return 0
        key = (room_id, tuple(sorted(extremities)))
        if time.monotonic() < self._fruitless.get(key, 0.0):
            return 0
        got = await self._backfill_from_servers(room_id, extremities, limit)
        if got == 0:
            if len(self._fruitless) > 10_000:
                self._fruitless.clear()
            self._fruitless[key] = time.monotonic() + FRUITLESS_S
        return got

    async def _backfill_from_servers(self, room_id: str, extremities: list[str], limit: int) -> int:
        for server in await self._servers(room_id):
            try:
                pdus = await self.peer.backfill(server, room_id, extremities[:20], limit)
            except MatrixError as e:
                log.info("backfill of %s from %s failed: %s", room_id, server, e.error)
                continue
            stored = 0
            for pdu in sorted(pdus, key=lambda p: p.get("depth", 0) if isinstance(p.get("depth"), int) else 0):
                got = await self.receiver.receive(server, pdu, backfilled=True)
                if got.outcome in ("persisted", "soft_failed"):
                    stored += 1
            return stored
        return 0
