"""Unread counts kept per user and room, carried forward event by event.

A count is read from the database once (`PushService.unread_state`) and then extended by the
room's newer events from the recent-changes log, as long as nothing that could change the
answer came in between: a read receipt of the user in the room, a change of the room's state
(membership, power levels, display names), an unknown write (push rules are account data).
Every device of a user shares the one entry, so a message costs one push-rule evaluation per
member, not one database scan per device. Anything else counts afresh from the database.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

from homeserver.events.recent import EventNote, RecentChanges
from homeserver.push.service import PushService, UnreadState

#: (user, room, threaded) entries kept.
ENTRIES_KEPT = 100_000

Counts = tuple[dict[str, int], dict[str, dict[str, int]]]


class UnreadCounter:
    def __init__(self, push: PushService, recent: RecentChanges) -> None:
        self.push = push
        self.recent = recent
        self._kept: OrderedDict[tuple[str, str, bool], UnreadState] = OrderedDict()

    async def counts(self, user_id: str, room_id: str, upto: int, threaded: bool,
                     read: dict[str, int] | None = None, joined_at: int | None = None) -> Counts:
        key = (user_id, room_id, threaded)
        kept = self._kept.get(key)
        if kept is not None and kept.pos <= upto and self.recent.quiet_since(
                kept.pos, room=room_id, user=user_id, receipt=(user_id, room_id)):
            if kept.pos == upto:
                return _copy(kept)
            notes = self.recent.window(kept.pos, upto)
            if notes is not None:
                newer = [n.event for n in notes if isinstance(n, EventNote) and n.event.room_id == room_id]
                # Extended on a copy: another device of the user may be extending the same entry
                # meanwhile (the rules and context are read lazily, so this may wait).
                step = copy.copy(kept)
                step.main, step.threads = _copy(kept)
                if await self.push.extend_unread(step, user_id, room_id, newer, upto):
                    self._keep(key, step)
                    return _copy(step)
        state = await self.push.unread_state(user_id, room_id, upto, threaded, read, joined_at)
        if self.recent.enabled:
            self._keep(key, state)
        return _copy(state)

    def _keep(self, key: tuple[str, str, bool], state: UnreadState) -> None:
        old = self._kept.get(key)
        if old is not None and old.pos > state.pos:
            return  # a later count got there first
        self._kept[key] = state
        self._kept.move_to_end(key)
        while len(self._kept) > ENTRIES_KEPT:
            self._kept.popitem(last=False)


def _copy(state: UnreadState) -> Counts:
    return dict(state.main), {t: dict(c) for t, c in state.threads.items()}
