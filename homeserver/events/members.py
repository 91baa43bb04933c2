"""A room's members, read once and shared until the room's state changes.

After each event three hooks want the room's members (the fan-out wake-up, the push pipeline,
the federation queue's destinations) and every woken sync wants them again (presence, room
summaries). Each answer is kept with the stream position it was read at and reused while
`RecentChanges.quiet_since` says nothing that could change it (a state event of the room, an
unknown write) came after; with several workers the log is off and every call reads the database.
"""

from __future__ import annotations

from collections import OrderedDict

from homeserver.events.recent import RecentChanges
from homeserver.storage.stores import Stores

#: (room, membership kinds) answers kept.
ROOMS_KEPT = 20_000


class RoomMembers:
    def __init__(self, stores: Stores, recent: RecentChanges) -> None:
        self.stores = stores
        self.recent = recent
        self._kept: OrderedDict[tuple[str, tuple[str, ...]], tuple[int, frozenset[str]]] = OrderedDict()

    async def get(self, room_id: str, memberships: tuple[str, ...] = ("join",)) -> frozenset[str]:
        key = (room_id, memberships)
        hit = self._kept.get(key)
        if hit is not None and self.recent.quiet_since(hit[0], room=room_id):
            return hit[1]
        pos = self.stores.stream.current()
        users = frozenset(await self.stores.state.members(room_id, memberships))
        if self.recent.enabled:
            self._kept[key] = (pos, users)
            self._kept.move_to_end(key)
            while len(self._kept) > ROOMS_KEPT:
                self._kept.popitem(last=False)
        return users
