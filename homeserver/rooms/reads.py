"""Reading rooms: history visibility, state, members, /messages, /context, relations, threads.

Stream tokens: `t<N>` names the point just after stream position N ("s<N>" from /sync is read
the same way). Paginating backwards from N returns events at or below N; forwards, above N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.filters import RoomEventFilter
from homeserver.rooms.serialize import EventSerializer
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores

MAX_LIMIT = 1000


def parse_token(token: Any) -> int:
    if not isinstance(token, str) or len(token) < 2 or token[0] not in "st":
        raise MatrixError(400, "M_INVALID_PARAM", f"Invalid pagination token {token!r}")
    head = token[1:].split("_", 1)[0]
    if not (head.isascii() and head.isdigit()) or len(head) > 18:
        raise MatrixError(400, "M_INVALID_PARAM", f"Invalid pagination token {token!r}")
    return int(head)


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


@dataclass
class Visibility:
    low: int  # events with low < pos <= high are visible
    high: float

    def contains(self, pos: int) -> bool:
        return self.low < pos <= self.high


class RoomReader:
    def __init__(self, stores: Stores, serializer: EventSerializer) -> None:
        self.stores = stores
        self.serializer = serializer

    async def _history_visibility(self, room_id: str) -> str:
        ids = await self.stores.state.current_ids(room_id, [("m.room.history_visibility", "")])
        eid = ids.get(("m.room.history_visibility", ""))
        if eid is None:
            return "shared"
        ev = await self.stores.events.get(eid)
        hv = ev.pdu.get("content", {}).get("history_visibility") if ev else None
        return hv if isinstance(hv, str) else "shared"

    async def visibility(self, user_id: str, room_id: str) -> Visibility:
        """What part of the room's history the user may read (403 if none)."""
        await self.serializer.room_version(room_id) or _unknown_room()
        hv = await self._history_visibility(room_id)
        m = await self.stores.state.membership(room_id, user_id)
        membership, pos = (m[0], m[2]) if m else ("leave", -1)
        if membership == "join":
            low = 0 if hv in ("shared", "world_readable") else pos - 1
            return Visibility(low, math.inf)
        if hv == "world_readable":
            return Visibility(0, math.inf)
        if membership in ("leave", "ban") and m is not None:
            return Visibility(0, pos)
        raise MatrixError(403, "M_FORBIDDEN", "You are not a member of this room")

    async def require_joined(self, user_id: str, room_id: str) -> None:
        await self.serializer.room_version(room_id) or _unknown_room()
        m = await self.stores.state.membership(room_id, user_id)
        if not m or m[0] != "join":
            raise MatrixError(403, "M_FORBIDDEN", "You are not joined to this room")

    # ------------------------------------------------------------------ state

    async def state_at_visible_end(self, user_id: str, room_id: str) -> dict[tuple[str, str], str]:
        vis = await self.visibility(user_id, room_id)
        if vis.high == math.inf:
            return await self.stores.state.current_all(room_id)
        ev = await self.stores.events.last_event_at_or_before(room_id, int(vis.high))
        return dict(await self.stores.state.get_state(ev.state_group)) if ev else {}

    async def room_state(self, user_id: str, room_id: str) -> list[dict[str, Any]]:
        state = await self.state_at_visible_end(user_id, room_id)
        evs = await self.stores.events.get_many(state.values())
        return await self.serializer.serialize(evs[e] for e in state.values() if e in evs)

    async def state_event(self, user_id: str, room_id: str, etype: str, state_key: str) -> StoredEvent:
        state = await self.state_at_visible_end(user_id, room_id)
        eid = state.get((etype, state_key))
        ev = await self.stores.events.get(eid) if eid else None
        if ev is None:
            raise MatrixError(404, "M_NOT_FOUND", "Event not found")
        return ev

    async def members(
        self, user_id: str, room_id: str, membership: str | None, not_membership: str | None,
        at: int | None,
    ) -> list[dict[str, Any]]:
        vis = await self.visibility(user_id, room_id)
        if at is not None or vis.high != math.inf:
            limit = min(at if at is not None else vis.high, vis.high)
            ev = await self.stores.events.last_event_at_or_before(room_id, int(min(limit, 2**62)))
            state = dict(await self.stores.state.get_state(ev.state_group)) if ev else {}
            state = {k: v for k, v in state.items() if k[0] == "m.room.member"}
        else:
            state = await self.stores.state.current_of_type(room_id, "m.room.member")
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
        vis = await self.visibility(user_id, room_id)
        ev = await self.stores.events.get(event_id)
        if ev is None or ev.room_id != room_id or not vis.contains(ev.stream_ordering):
            raise MatrixError(404, "M_NOT_FOUND", "Event not found")
        return ev

    async def paginate(
        self, user_id: str, room_id: str, from_pos: int | None, to_pos: int | None,
        backwards: bool, limit: int, flt: RoomEventFilter,
    ) -> tuple[list[StoredEvent], int | None, int]:
        """Returns (events in pagination order, end position or None when exhausted, start)."""
        vis = await self.visibility(user_id, room_id)
        current = self.stores.stream.current()
        if from_pos is None:
            from_pos = current if backwards else 0
        start = from_pos
        out: list[StoredEvent] = []
        cursor = from_pos
        exhausted = False
        batch = max(limit, 20)
        while len(out) < limit:
            if backwards:
                lo = max(vis.low, to_pos if to_pos is not None else -1)
                hi = min(cursor, vis.high)
                if hi <= lo:
                    exhausted = True
                    break
                evs = await self.stores.events.room_events_between(room_id, int(lo), int(hi), batch, True)
            else:
                lo = max(cursor, vis.low)
                hi = min(to_pos if to_pos is not None else current, vis.high, current)
                if hi <= lo:
                    exhausted = True
                    break
                evs = await self.stores.events.room_events_between(room_id, int(lo), int(hi), batch, False)
            for ev in evs:
                cursor = ev.stream_ordering - 1 if backwards else ev.stream_ordering
                if flt.matches(ev.type, ev.sender, ev.pdu.get("content", {}), ev.room_id):
                    out.append(ev)
                    if len(out) >= limit:
                        break
            if len(evs) < batch and len(out) < limit:
                exhausted = True
                break
        if not out and limit > 0:
            return [], None, start
        if exhausted and backwards:
            return out, None if not out else cursor, start
        return out, cursor, start

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
        ev = await self.event(user_id, room_id, event_id)
        before_n = limit // 2
        after_n = limit - before_n
        before, b_end, _ = await self.paginate(
            user_id, room_id, ev.stream_ordering - 1, None, True, before_n, flt
        )
        after, a_end, _ = await self.paginate(
            user_id, room_id, ev.stream_ordering, None, False, after_n, flt
        )
        state = await self.lazy_members_for(room_id, [ev, *before, *after], ev.state_group)
        ser = self.serializer.serialize
        return {
            "event": (await ser([ev]))[0],
            "events_before": await ser(before),
            "events_after": await ser(after),
            "start": f"t{b_end if b_end is not None else 0}",
            "end": f"t{a_end if a_end is not None else ev.stream_ordering}",
            "state": await ser(state),
        }

    async def relations(
        self, user_id: str, room_id: str, event_id: str, rel_type: str | None,
        event_type: str | None, from_pos: int | None, to_pos: int | None, backwards: bool,
        limit: int, recurse: bool,
    ) -> dict[str, Any]:
        await self.event(user_id, room_id, event_id)
        vis = await self.visibility(user_id, room_id)
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
        evs = [e for e in evs if vis.contains(e.stream_ordering)]
        more = len(evs) > limit
        evs = evs[:limit]
        out: dict[str, Any] = {"chunk": await self.serializer.serialize(evs)}
        if more and evs:
            last = evs[-1].stream_ordering
            out["next_batch"] = f"t{last - 1 if backwards else last}"
        if from_pos is not None:
            out["prev_batch"] = f"t{from_pos}"
        if recurse:
            out["recursion_depth"] = depth
        return out

    async def threads(
        self, user_id: str, room_id: str, include: str, from_pos: int | None, limit: int
    ) -> dict[str, Any]:
        vis = await self.visibility(user_id, room_id)
        before = from_pos + 1 if from_pos is not None else 2**62
        roots = await self.stores.events.thread_roots(
            room_id, before, limit + 1, user_id if include == "participated" else None
        )
        more = len(roots) > limit
        roots = roots[:limit]
        root_evs = await self.stores.events.get_many(r for r, _ in roots)
        chunk = []
        for root_id, _latest in roots:
            ev = root_evs.get(root_id)
            if ev is None or not vis.contains(ev.stream_ordering):
                continue
            ser = (await self.serializer.serialize([ev]))[0]
            count, latest_id = await self.stores.events.thread_summary(room_id, root_id)
            latest_ev = await self.stores.events.get(latest_id) if latest_id else None
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


def _unknown_room() -> None:
    raise MatrixError(404, "M_NOT_FOUND", "Unknown room")
