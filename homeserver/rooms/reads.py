"""Reading rooms: history visibility, state, members, /messages, /context, relations, threads.

/messages and /context page through a room in topological order, (depth, stream position), so
that history fetched later (backfill, with negative positions) sits in the past where it belongs.
Their tokens: `t<depth>-<stream>` names the point just after that event; a stream token (`t<N>`,
or `s<N>_...` from /sync) names the point just after the last event at or before position N.
Paginating backwards from a point returns events at or before it; forwards, after it.
Relations, threads and membership `at` tokens stay stream positions (`t<N>`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from homeserver.events.visibility import Membership, VisibilityFilter
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.filters import RoomEventFilter
from homeserver.rooms.serialize import EventSerializer
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores

MAX_LIMIT = 1000
#: Events examined per /messages request at most: hidden history is skipped a bounded
#: amount at a time (the response's `end` token lets the client go on).
MAX_SCAN = 2000
#: Thread replies examined for a thread's summary (count and latest visible reply).
THREAD_SCAN = 1000


def parse_token(token: Any) -> int:
    if not isinstance(token, str) or len(token) < 2 or token[0] not in "st":
        raise MatrixError(400, "M_INVALID_PARAM", f"Invalid pagination token {token!r}")
    head = token[1:].split("_", 1)[0]
    if not (head.isascii() and head.isdigit()) or len(head) > 18:
        raise MatrixError(400, "M_INVALID_PARAM", f"Invalid pagination token {token!r}")
    return int(head)


@dataclass(frozen=True)
class PageToken:
    depth: int | None  # None: a stream position (as /sync hands out)
    stream: int

    def encode(self) -> str:
        return f"t{self.stream}" if self.depth is None else f"t{self.depth}-{self.stream}"


TopoKey = tuple[int, int]
BEFORE_ALL: TopoKey = (-(2**62), -(2**62))
AFTER_ALL: TopoKey = (2**62, 2**62)


def parse_page_token(token: Any) -> PageToken:
    if isinstance(token, str) and token.startswith("t") and "-" in token[1:2 + 18]:
        depth, _, stream = token[1:].partition("-")
        digits = stream[1:] if stream.startswith("-") else stream
        if depth.isascii() and depth.isdigit() and digits.isascii() and digits.isdigit() \
                and len(depth) <= 18 and len(digits) <= 18:
            return PageToken(int(depth), int(stream))
        raise MatrixError(400, "M_INVALID_PARAM", f"Invalid pagination token {token!r}")
    return PageToken(None, parse_token(token))


def parse_limit(raw: Any, default: int, maximum: int = MAX_LIMIT) -> int:
    if raw is None:
        return default
    try:
        n = int(raw)
    except (TypeError, ValueError):
        raise MatrixError(400, "M_INVALID_PARAM", "limit must be an integer") from None
    if n < 0:
        raise MatrixError(400, "M_INVALID_PARAM", "limit must not be negative")
    return min(n, maximum)


class RoomReader:
    def __init__(self, stores: Stores, serializer: EventSerializer, visibility: VisibilityFilter) -> None:
        self.stores = stores
        self.serializer = serializer
        self.visibility = visibility
        #: Fetches older history of a room joined over federation (rooms/remote_backfill.py):
        #: (room_id, limit) -> how many events were added.
        self.backfill: Callable[[str, int], Awaitable[int]] | None = None

    async def check_history_access(self, user_id: str, room_id: str) -> Membership | None:
        """403 unless the user is or was in the room, or the room is world-readable now."""
        await self.serializer.room_version(room_id) or _unknown_room()
        return await self.visibility.check_history_access(user_id, room_id)

    async def require_joined(self, user_id: str, room_id: str) -> None:
        await self.serializer.room_version(room_id) or _unknown_room()
        m = await self.stores.state.membership(room_id, user_id)
        if not m or m[0] != "join":
            raise MatrixError(403, "M_FORBIDDEN", "You are not joined to this room")

    async def visible(self, user_id: str, evs: list[StoredEvent],
                      current: Membership | None = None) -> list[StoredEvent]:
        if not evs:
            return []
        return await self.visibility.filter_for_user(
            user_id, evs, memberships={evs[0].room_id: current} if current is not None else None
        )

    # ------------------------------------------------------------------ state

    async def _state_at(self, room_id: str, pos: int) -> dict[tuple[str, str], str]:
        ev = await self.stores.events.last_event_at_or_before(room_id, pos)
        return dict(await self.stores.state.get_state(ev.state_group)) if ev else {}

    async def readable_state(
        self, user_id: str, room_id: str, at: int | None = None
    ) -> dict[tuple[str, str], str]:
        """The room state the user may read: current state while joined (or peeking a
        world-readable room), the state at their departure once they left or were banned.
        A user who never joined sees only the state events visible to them by history
        visibility (a banned stranger learns nothing of the room)."""
        current = await self.check_history_access(user_id, room_id)
        if current is not None and current[0] in ("leave", "ban"):
            at = current[2] if at is None else min(at, current[2])
        state = await self.stores.state.current_all(room_id) if at is None \
            else await self._state_at(room_id, at)
        if current is not None and current[0] != "join" \
                and not await self.visibility.ever_joined(room_id, user_id, current):
            evs = await self.stores.events.get_many(state.values())
            seen = {e.event_id for e in await self.visible(
                user_id, [evs[i] for i in state.values() if i in evs], current)}
            state = {k: v for k, v in state.items() if v in seen}
        return state

    async def room_state(self, user_id: str, room_id: str) -> list[dict[str, Any]]:
        state = await self.readable_state(user_id, room_id)
        evs = await self.stores.events.get_many(state.values())
        return await self.serializer.serialize(evs[e] for e in state.values() if e in evs)

    async def state_event(self, user_id: str, room_id: str, etype: str, state_key: str) -> StoredEvent:
        state = await self.readable_state(user_id, room_id)
        eid = state.get((etype, state_key))
        ev = await self.stores.events.get(eid) if eid else None
        if ev is None:
            raise MatrixError(404, "M_NOT_FOUND", "Event not found")
        return ev

    async def members(
        self, user_id: str, room_id: str, membership: str | None, not_membership: str | None,
        at: int | None,
    ) -> list[dict[str, Any]]:
        full = await self.readable_state(user_id, room_id, at)
        state = {k: v for k, v in full.items() if k[0] == "m.room.member"}
        evs = await self.stores.events.get_many(state.values())
        chosen = []
        for eid in state.values():
            ev = evs.get(eid)
            if ev is None:
                continue
            m = ev.pdu.get("content", {}).get("membership")
            if membership is not None and m != membership:
                continue
            if not_membership is not None and m == not_membership:
                continue
            chosen.append(ev)
        return await self.serializer.serialize(chosen)

    async def joined_members(self, user_id: str, room_id: str) -> dict[str, Any]:
        await self.require_joined(user_id, room_id)
        state = await self.stores.state.current_of_type(room_id, "m.room.member")
        evs = await self.stores.events.get_many(state.values())
        joined: dict[str, Any] = {}
        for ev in evs.values():
            content = ev.pdu.get("content", {})
            if content.get("membership") == "join" and ev.state_key is not None:
                # Both keys always present, null when unset: clients (and SyTest) expect them.
                name, avatar = content.get("displayname"), content.get("avatar_url")
                joined[ev.state_key] = {
                    "display_name": name if isinstance(name, str) else None,
                    "avatar_url": avatar if isinstance(avatar, str) else None,
                }
        return {"joined": joined}

    # ------------------------------------------------------------------ events

    async def event(self, user_id: str, room_id: str, event_id: str) -> StoredEvent:
        try:
            current = await self.check_history_access(user_id, room_id)
        except MatrixError as e:
            if e.status == 403:  # a stranger learns nothing, not even that the event exists
                raise MatrixError(404, "M_NOT_FOUND", "Event not found") from None
            raise
        ev = await self.stores.events.get(event_id)
        # rejected and soft-failed events are held for the room's graph, never shown
        if ev is None or ev.room_id != room_id or ev.rejected or ev.soft_failed:
            raise MatrixError(404, "M_NOT_FOUND", "Event not found")
        if not await self.visible(user_id, [ev], current):
            raise MatrixError(404, "M_NOT_FOUND", "Event not found")
        return ev

    async def _key(self, room_id: str, tok: PageToken) -> TopoKey:
        if tok.depth is not None:
            return (tok.depth, tok.stream)
        ev = await self.stores.events.last_event_at_or_before(room_id, tok.stream)
        return (ev.depth, ev.stream_ordering) if ev is not None else BEFORE_ALL

    async def paginate(
        self, user_id: str, room_id: str, from_tok: PageToken | None, to_tok: PageToken | None,
        backwards: bool, limit: int, flt: RoomEventFilter,
    ) -> tuple[list[StoredEvent], str | None, str]:
        """Returns (events in pagination order, `end` token or None when exhausted, `start`).

        Events the user may not see are skipped; at most MAX_SCAN are examined per call, so a
        long stretch of hidden history ends the page early with an `end` token to go on from.
        """
        current_m = await self.check_history_access(user_id, room_id)
        ignored = await self.visibility.ignored_users(user_id)
        current = self.stores.stream.current()
        if from_tok is None:
            from_tok = PageToken(None, current if backwards else 0)
        start = from_tok.encode()
        cursor = await self._key(room_id, from_tok)
        if from_tok.depth is None and not backwards and from_tok.stream <= 0:
            cursor = BEFORE_ALL
        max_stream = current
        if from_tok.depth is None and backwards:
            # A stream position (now, or a sync's prev_batch): everything written up to it. Where
            # the room has branches, a later position can hold a shallower event, so the newest
            # event by position is no bound on depth.
            cursor, max_stream = AFTER_ALL, min(current, from_tok.stream)
        bound = await self._key(room_id, to_tok) if to_tok is not None else None
        out: list[StoredEvent] = []
        exhausted = False
        scanned = 0
        batch = max(limit, 20)
        may_backfill = backwards and self.backfill is not None
        while len(out) < limit and scanned < MAX_SCAN:
            if backwards:
                evs = await self.stores.events.room_events_topo(room_id, bound, cursor, max_stream, batch, True)
            else:
                evs = await self.stores.events.room_events_topo(room_id, cursor, bound, current, batch, False)
            scanned += len(evs)
            matching = [ev for ev in evs
                        if flt.matches(ev.type, ev.sender, ev.pdu.get("content", {}), ev.room_id)]
            seen = {e.event_id for e in await self.visibility.filter_for_user(
                user_id, matching, ignored=ignored, memberships={room_id: current_m})}
            for ev in evs:
                cursor = (ev.depth, ev.stream_ordering - 1) if backwards else (ev.depth, ev.stream_ordering)
                if ev.event_id in seen:
                    out.append(ev)
                    if len(out) >= limit:
                        break
            if len(evs) < batch and len(out) < limit:
                if may_backfill and self.backfill is not None:
                    may_backfill = False  # once per page: the history a server of the room holds
                    if await self.backfill(room_id, batch):
                        continue
                exhausted = True
                break
        end = PageToken(*cursor).encode()
        if exhausted and (backwards or not out):
            return out, end if out else None, start
        return out, end, start

    async def lazy_members_for(self, room_id: str, evs: list[StoredEvent], at_group: int | None) -> list[StoredEvent]:
        senders = {e.sender for e in evs}
        if at_group is None:
            state = await self.stores.state.current_ids(room_id, [("m.room.member", s) for s in senders])
        else:
            full = await self.stores.state.get_state(at_group)
            state = {("m.room.member", s): full[("m.room.member", s)] for s in senders
                     if ("m.room.member", s) in full}
        got = await self.stores.events.get_many(state.values())
        return [got[e] for e in state.values() if e in got]

    async def context(
        self, user_id: str, room_id: str, event_id: str, limit: int, flt: RoomEventFilter
    ) -> dict[str, Any]:
        await self.check_history_access(user_id, room_id)  # 403 for strangers, as SyTest expects
        ev = await self.event(user_id, room_id, event_id)
        before_n = limit // 2
        after_n = limit - before_n
        before, b_end, _ = await self.paginate(
            user_id, room_id, PageToken(ev.depth, ev.stream_ordering - 1), None, True, before_n, flt
        )
        after, a_end, _ = await self.paginate(
            user_id, room_id, PageToken(ev.depth, ev.stream_ordering), None, False, after_n, flt
        )
        state = await self.lazy_members_for(room_id, [ev, *before, *after], ev.state_group)
        ser = self.serializer.serialize
        return {
            "event": (await ser([ev]))[0],
            "events_before": await ser(before),
            "events_after": await ser(after),
            "start": b_end if b_end is not None else PageToken(*BEFORE_ALL).encode(),
            "end": a_end if a_end is not None else PageToken(ev.depth, ev.stream_ordering).encode(),
            "state": await ser(state),
        }

    async def relations(
        self, user_id: str, room_id: str, event_id: str, rel_type: str | None,
        event_type: str | None, from_pos: int | None, to_pos: int | None, backwards: bool,
        limit: int, recurse: bool,
    ) -> dict[str, Any]:
        await self.event(user_id, room_id, event_id)
        parents = [event_id]
        depth = 0
        if recurse:
            # Collect up to three generations of children (the spec's suggested bound).
            frontier = [event_id]
            for _ in range(3):
                kids = await self.stores.events.relations(
                    room_id, frontier, None, None, -1, 2**62, 10_000, False
                )
                frontier = [k.event_id for k in kids if k.event_id not in parents]
                if not frontier:
                    break
                depth += 1
                parents.extend(frontier)
        hi = 2**62 if from_pos is None or not backwards else from_pos + 1
        lo = -1 if from_pos is None or backwards else from_pos
        if to_pos is not None:
            if backwards:
                lo = max(lo, to_pos)
            else:
                hi = min(hi, to_pos + 1)
        evs = await self.stores.events.relations(
            room_id, parents, rel_type, event_type, lo, hi, limit + 1, backwards
        )
        more = len(evs) > limit
        evs = evs[:limit]
        page_end = evs[-1].stream_ordering if evs else None
        evs = await self.visibility.filter_for_user(user_id, evs)
        out: dict[str, Any] = {"chunk": await self.serializer.serialize(evs)}
        if more and page_end is not None:
            last = page_end
            out["next_batch"] = f"t{last - 1 if backwards else last}"
        if from_pos is not None:
            out["prev_batch"] = f"t{from_pos}"
        if recurse:
            out["recursion_depth"] = depth
        return out

    async def threads(
        self, user_id: str, room_id: str, include: str, from_pos: int | None, limit: int
    ) -> dict[str, Any]:
        current_m = await self.check_history_access(user_id, room_id)
        ignored = await self.visibility.ignored_users(user_id)
        before = from_pos + 1 if from_pos is not None else 2**62
        roots = await self.stores.events.thread_roots(
            room_id, before, limit + 1, user_id if include == "participated" else None
        )
        more = len(roots) > limit
        roots = roots[:limit]
        root_evs = await self.stores.events.get_many(r for r, _ in roots)
        mine = {room_id: current_m}
        visible_roots = {e.event_id for e in await self.visibility.filter_for_user(
            user_id, list(root_evs.values()), ignored=ignored, memberships=mine)}
        chunk = []
        for root_id, _latest in roots:
            ev = root_evs.get(root_id)
            if ev is None or root_id not in visible_roots:
                continue
            ser = (await self.serializer.serialize([ev]))[0]
            # The summary counts only replies the user may see (none sent after they left).
            replies = await self.visibility.filter_for_user(
                user_id, await self.stores.events.thread_replies(room_id, root_id, THREAD_SCAN),
                ignored=ignored, memberships=mine)
            count = len(replies)
            latest_ev = replies[0] if replies else None
            bundle: dict[str, Any] = {"count": count, "current_user_participated": False}
            if latest_ev is not None:
                bundle["latest_event"] = (await self.serializer.serialize([latest_ev]))[0]
            participated = ev.sender == user_id or await self.stores.events.sent_in_thread(
                room_id, root_id, user_id
            )
            bundle["current_user_participated"] = participated
            ser.setdefault("unsigned", {}).setdefault("m.relations", {})["m.thread"] = bundle
            chunk.append(ser)
        out: dict[str, Any] = {"chunk": chunk}
        if more and roots:
            out["next_batch"] = f"t{roots[-1][1] - 1}"
        return out


def _unknown_room() -> NoReturn:
    raise MatrixError(404, "M_NOT_FOUND", "Unknown room")
