"""The room sections of a sync response: timelines, state blocks, ephemeral events, invites
and left rooms, for one room at a time. The sync service decides which rooms to include."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.ephemeral.typing import TypingManager
from homeserver.events.visibility import Membership, VisibilityFilter
from homeserver.protocol.filters import RoomEventFilter, SyncFilter
from homeserver.push.service import PushService
from homeserver.rooms.serialize import EventSerializer, project_fields, stripped_state
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores
from homeserver.sync.assembly import joined_room_section, left_room_section, room_summary, state_for_room_section
from homeserver.sync.token import SyncToken

UnreadCounts = Callable[[str, str, int, bool, dict[str, int] | None, int | None],
                        Awaitable[tuple[dict[str, int], dict[str, dict[str, int]]]]]

DEFAULT_TIMELINE_LIMIT = 10
#: Events examined for one room's timeline at most (hidden history is not scanned forever).
MAX_TIMELINE_SCAN = 500
#: (user, device, room) entries remembered for lazy-loaded members.
LL_CACHE_ROOMS = 20_000
INVITE_STATE_TYPES = (
    "m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar",
    "m.room.canonical_alias", "m.room.encryption", "m.room.topic",
)


class RoomSections:
    def __init__(self, stores: Stores, serializer: EventSerializer, typing: TypingManager, push: PushService,
                 visibility: VisibilityFilter) -> None:
        self.stores = stores
        self.serializer = serializer
        self.typing = typing
        self.push = push
        self.visibility = visibility
        self._ll_sent: OrderedDict[tuple[str, str, str], dict[str, str]] = OrderedDict()
        #: Where unread counts come from (the sync service hands in its incremental counter).
        self.unread_counts: UnreadCounts = push.unread_counts

    async def add_ephemeral(
        self, section: dict[str, Any], user_id: str, room_id: str, since: SyncToken | None,
        receipts: list[dict[str, Any]] | None, flt: SyncFilter, now: int,
        read: dict[str, int] | None, joined_at: int,
    ) -> None:
        events: list[dict[str, Any]] = []
        if since is None or self.typing.changed_since(room_id, since.typing):
            users = self.typing.typing_users(room_id)
            if since is not None or users:
                events.append({"type": "m.typing", "content": {"user_ids": users}})
        content: dict[str, Any] = {}
        for r in receipts or ():
            if r["receipt_type"] == "m.read.private" and r["user_id"] != user_id:
                continue
            data: dict[str, Any] = {"ts": r["ts"]}
            if r["thread_id"]:
                data["thread_id"] = r["thread_id"]
            content.setdefault(r["event_id"], {}).setdefault(r["receipt_type"], {})[r["user_id"]] = data
        if content:
            events.append({"type": "m.receipt", "content": content})
        section["ephemeral"] = {"events": [e for e in events if flt.ephemeral.matches(e["type"], "", {})]}
        threaded = flt.timeline_unread_threads
        main, threads = await self.unread_counts(user_id, room_id, now, threaded, read, joined_at)
        section["unread_notifications"] = main
        if threaded:
            section["unread_thread_notifications"] = threads

    async def newly_joined(self, user_id: str, candidates: list[str], after: int) -> set[str]:
        """Rooms the user joined since `after` (not a join -> join change such as a new
        display name): their sections start afresh with full state."""
        out = set()
        for room_id in candidates:
            history = await self.stores.state.membership_history(room_id, user_id)
            before = [m for pos, m in history if pos <= after]
            if not before or before[-1] != "join":
                out.add(room_id)
        return out

    async def _timeline(
        self, user_id: str, room_id: str, after: int, upto: int, tl: RoomEventFilter,
        membership: Membership | None, ignored: set[str], pre: list[StoredEvent] | None = None,
        current_state_visible: bool = False,
    ) -> tuple[list[StoredEvent], bool, bool]:
        """Newest `limit` visible matching events in (after, upto], oldest first; whether more
        exist; and whether the list holds every event of that range (nothing filtered out).

        With `current_state_visible` (joined rooms) events that are part of the room's current
        state are shown even when sent while the user could not see the room: a member may read
        the current state anyway, and clients build their member lists from the timeline."""
        limit = tl.limit if tl.limit is not None else DEFAULT_TIMELINE_LIMIT
        mine = {room_id: membership}
        current_ids: set[str] | None = None
        if pre is not None:
            evs = [e for e in pre if after < e.stream_ordering <= upto]
            shown = await self.visibility.filter_for_user(user_id, evs, ignored=ignored, memberships=mine)
            if len(shown) == len(evs):
                return list(reversed(evs[:limit])), len(evs) > limit, len(evs) <= limit
        out: list[StoredEvent] = []
        cursor = upto
        batch = limit + 1
        limited = False
        complete = True
        scanned = 0
        while True:
            evs = await self.stores.events.room_events_between(room_id, after, cursor, batch, True)
            scanned += len(evs)
            matching = [e for e in evs if tl.matches(e.type, e.sender, e.pdu.get("content", {}))]
            seen = {e.event_id for e in await self.visibility.filter_for_user(
                user_id, matching, ignored=ignored, memberships=mine)}
            hidden_state = [e for e in matching if e.event_id not in seen and e.state_key is not None]
            if current_state_visible and hidden_state:
                if current_ids is None:
                    current_ids = set((await self.stores.state.current_all(room_id)).values())
                seen.update(e.event_id for e in hidden_state if e.event_id in current_ids)
            for ev in evs:
                if ev.event_id in seen:
                    if len(out) >= limit:
                        limited = True
                        break
                    out.append(ev)
                else:
                    complete = False
                cursor = ev.stream_ordering - 1
            if limited or len(evs) < batch:
                break
            if scanned >= MAX_TIMELINE_SCAN:
                # A long run of hidden or filtered-out events: stop here, the client pages on.
                limited = True
                break
        out.reverse()
        return out, limited, complete and not limited

    async def _state_at(self, room_id: str, pos: int) -> dict[tuple[str, str], str]:
        ev = await self.stores.events.last_event_at_or_before(room_id, pos)
        if ev is None:
            return {}
        return dict(await self.stores.state.get_state(ev.state_group))

    async def _room_state_block(
        self, user_id: str, device_id: str, room_id: str, timeline: list[StoredEvent],
        since: int | None, upto: int, flt: SyncFilter, full: bool, complete: bool,
    ) -> list[StoredEvent]:
        if timeline and timeline[0].state_key is None:
            # A message event's state group is the state before it: no lookup needed.
            state_start = dict(await self.stores.state.get_state(timeline[0].state_group))
        elif timeline and timeline[0].state_before is not None:
            # The state before the event as stored with it: also right for the first event of a
            # room joined over federation, whose earlier state has no stream positions here.
            state_start = dict(await self.stores.state.get_state(timeline[0].state_before))
        else:
            start_pos = timeline[0].stream_ordering - 1 if timeline else upto
            state_start = await self._state_at(room_id, start_pos)
        incremental = since is not None and not full
        state_since = await self._state_at(room_id, since) if incremental and since is not None else None
        state_end = None
        if incremental and not complete:
            state_end = await self._state_at(room_id, upto)
        elif incremental:
            state_since = state_start  # the timeline holds every change since `since`
        lazy = None
        cache_key = (user_id, device_id, room_id)
        if flt.state.lazy_load_members:
            # The syncing user's own member event comes with a first look at the room only.
            lazy = {e.sender for e in timeline} | ({user_id} if not incremental else set())
            sent = self._ll_sent.get(cache_key, {}) if incremental else {}
            if not flt.state.include_redundant_members:
                # Members this device already received (and that have not changed since).
                lazy = {u for u in lazy if sent.get(u) is None or sent.get(u) != state_start.get(("m.room.member", u))}
        chosen = state_for_room_section(
            full=not incremental, state_at_since=state_since,
            state_at_timeline_start=state_start, state_at_timeline_end=state_end,
            timeline_event_ids=[e.event_id for e in timeline], lazy_members=lazy,
        )
        evs = await self.stores.events.get_many(chosen.values())
        out = [
            evs[e] for e in chosen.values()
            if e in evs and flt.state.matches(evs[e].type, evs[e].sender, evs[e].pdu.get("content", {}))
        ]
        if lazy is not None:
            self._remember_members(cache_key, not incremental,
                                   [e for e in (*out, *timeline) if e.type == "m.room.member"])
        return out

    def _remember_members(self, key: tuple[str, str, str], reset: bool, members: list[StoredEvent]) -> None:
        """The lazy-loading memory of which member events a device has received in a room (in
        process; after a restart or on another worker a member is merely sent again)."""
        sent = {} if reset else dict(self._ll_sent.get(key, {}))
        for ev in members:
            if ev.state_key is not None:
                sent[ev.state_key] = ev.event_id
        self._ll_sent[key] = sent
        self._ll_sent.move_to_end(key)
        while len(self._ll_sent) > LL_CACHE_ROOMS:
            self._ll_sent.popitem(last=False)

    async def joined_room(
        self, user_id: str, device_id: str, room_id: str, since: int | None, now: int,
        flt: SyncFilter, full: bool, account_data: list[dict[str, Any]],
        counts: dict[str, int], has_name: bool, prefetched: list[StoredEvent] | None,
        membership: Membership, ignored: set[str], initial: bool = False,
    ) -> dict[str, Any]:
        timeline, limited, complete = await self._timeline(
            user_id, room_id, since or 0, now, flt.timeline, membership, ignored, prefetched,
            current_state_visible=True)
        if since is None and full and not initial:
            # A room joined since the last sync: limited unless the timeline reaches back to the
            # room's start (the client has none of the earlier history).
            limited = not (timeline and timeline[0].type == "m.room.create" and timeline[0].state_key == "")
        state = await self._room_state_block(
            user_id, device_id, room_id, timeline, since, now, flt, full, complete)
        heroes_from = [] if has_name else await self.stores.state.members(room_id, ("join", "invite"))
        return joined_room_section(
            await self._serialize(timeline, flt, (user_id, device_id)), limited,
            _prev_batch(timeline, limited, since, now), await self._serialize(state, flt),
            account_data,
            room_summary(counts.get("join", 0), counts.get("invite", 0), heroes_from, user_id, has_name),
        )

    async def _serialize(self, evs: list[StoredEvent], flt: SyncFilter,
                         device: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        out = await self.serializer.serialize(evs, device, format_=flt.event_format)
        if flt.event_fields is not None:
            out = [project_fields(e, flt.event_fields) for e in out]
        return out

    async def invited_room(self, invite_event_id: str, ignored: set[str]) -> dict[str, Any] | None:
        ev = await self.stores.events.get(invite_event_id)
        if ev is None:
            return {"invite_state": {"events": []}}
        if ev.sender in ignored:
            return None  # invites from ignored users are not shown
        if ev.outlier:  # a room this server is not in: the state that came with the invite
            stripped = await self.stores.membership_state.get(ev.event_id) or []
            return {"invite_state": {"events": [*stripped, stripped_state(ev)]}}
        state = await self.stores.state.get_state(ev.state_group)
        ids = [state[(t, "")] for t in INVITE_STATE_TYPES if (t, "") in state]
        evs = await self.stores.events.get_many(ids)
        events = [stripped_state(evs[i]) for i in ids if i in evs]
        events.append(stripped_state(ev))
        return {"invite_state": {"events": events}}

    async def left_room(
        self, user_id: str, device_id: str, room_id: str, since: int | None, leave_pos: int,
        flt: SyncFilter, account_data: list[dict[str, Any]], membership: Membership, ignored: set[str],
    ) -> dict[str, Any]:
        timeline, limited, complete = await self._timeline(
            user_id, room_id, since or 0, leave_pos, flt.timeline, membership, ignored)
        full = since is None
        state = await self._room_state_block(
            user_id, device_id, room_id, timeline, since, leave_pos, flt, full, complete)
        if not await self.visibility.ever_joined(room_id, user_id, membership):
            # Never a member (a rejected invite, a banned stranger): only what they may see.
            state = await self.visibility.filter_for_user(
                user_id, state, ignored=set(), memberships={room_id: membership})
        return left_room_section(
            await self._serialize(timeline, flt), limited, _prev_batch(timeline, limited, since, leave_pos),
            await self._serialize(state, flt), account_data)


def _prev_batch(timeline: list[StoredEvent], limited: bool, since: int | None, upto: int) -> str:
    """Where /messages continues backwards: just before the timeline when events were left
    out; otherwise the previous sync's position, or (a whole room's history at hand) the end,
    so that paging back from it starts with the events the timeline showed."""
    if limited and timeline:
        return f"t{timeline[0].depth}-{timeline[0].stream_ordering - 1}"  # a topological point
    if since is not None:
        return f"t{since}"
    return f"t{upto}"
