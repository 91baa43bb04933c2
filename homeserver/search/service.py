"""`POST /search` (Client-Server API, "Server Side Search"), room events only.

The rooms searched are those the user is in or was in (joined, invited, left, banned; not
forgotten), narrowed by the request's filter. The index answers in pages; each page's events
pass the request's filter and then the history-visibility filter (events/visibility.py), so a
user never finds what they could not read: history from before a `joined` join, anything sent
after they left, a room they were never in. Hidden hits are skipped, not counted, and the
`next_batch` cursor moves past them.

`count` is exact when every match was examined, otherwise the visible share of the examined
matches applied to the index's total (the spec asks for an approximate count; an exact total of
hidden hits would tell a user how much they cannot read).
"""

from __future__ import annotations

from typing import Any

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.filters import RoomEventFilter
from homeserver.protocol.search import (
    MAX_TERM,
    Batch,
    Criteria,
    fts5_query,
    highlights,
    parse_batch,
    parse_query,
    parse_request,
    tsquery,
)
from homeserver.rooms.reads import PageToken, RoomReader
from homeserver.storage.events import StoredEvent
from homeserver.storage.search import Hit
from homeserver.storage.stores import Stores

SEARCHED_MEMBERSHIPS = ("join", "invite", "leave", "ban")
#: Index rows examined per request at most; a page cut short by hidden rows still has a
#: `next_batch` to go on from.
MAX_SCAN = 1000


class SearchService:
    def __init__(self, stores: Stores, reader: RoomReader) -> None:
        self.stores = stores
        self.reader = reader
        self.visibility = reader.visibility
        self.serializer = reader.serializer

    def _query(self, c: Criteria) -> str:
        return tsquery(c.query) if self.stores.db.dialect == "postgres" else fts5_query(c.query)


    async def rooms_of(self, user_id: str) -> dict[str, tuple[str, str, int]]:
        mine = await self.stores.state.rooms_for_user(user_id)
        return {r: m for r, m in mine.items() if m[0] in SEARCHED_MEMBERSHIPS}

    async def search(self, user_id: str, body: Any, next_batch: str | None) -> dict[str, Any]:
        criteria = parse_request(body)
        if criteria is None:
            return {"search_categories": {}}
        batch = parse_batch(next_batch, criteria) if next_batch is not None else None
        return {"search_categories": {"room_events": await self.room_events(user_id, criteria, batch)}}

    async def room_events(self, user_id: str, c: Criteria, batch: Batch | None) -> dict[str, Any]:
        memberships = await self.rooms_of(user_id)
        rooms = [r for r in memberships if c.filter.room_allowed(r)]
        senders = list(c.filter.senders) if c.filter.senders is not None else None
        if batch is not None and batch.group is not None:
            kind, value = batch.group
            if kind == "room_id":
                rooms = [r for r in rooms if r == value]
            else:
                senders = [s for s in (senders if senders is not None else [value]) if s == value]
        empty: dict[str, Any] = {"results": [], "count": 0, "highlights": []}
        if c.query.empty or not rooms:
            return empty
        query = self._query(c)
        ignored = await self.visibility.ignored_users(user_id)
        after = batch.after if batch is not None else None
        found: list[tuple[Hit, StoredEvent]] = []
        scanned = visible_seen = 0
        exhausted = False
        cursor = after if after is not None else (None if c.order_by == "recent" else 0)
        while True:
            page = max(2 * (c.limit - len(found)), 20)
            hits = await self.stores.search.search(query, rooms, c.keys, senders, c.order_by, cursor, page)
            scanned += len(hits)
            evs = await self.stores.events.get_many([h.event_id for h in hits])
            cands = [evs[h.event_id] for h in hits if h.event_id in evs]
            cands = [e for e in cands if not e.redacted_by and c.filter.matches(
                e.type, e.sender, e.pdu.get("content") or {}, e.room_id)]
            seen = {e.event_id for e in await self.visibility.filter_for_user(
                user_id, cands, ignored=ignored, memberships=dict(memberships))}
            visible_seen += len(seen)
            consumed = 0
            for h in hits:
                consumed += 1
                cursor = h.stream_ordering if c.order_by == "recent" else (cursor or 0) + 1
                if h.event_id in seen:
                    found.append((h, evs[h.event_id]))
                    if len(found) >= c.limit:
                        break
            if len(hits) < page and consumed == len(hits):
                exhausted = True
                break
            if len(found) >= c.limit or scanned >= MAX_SCAN:
                break
        total = await self.stores.search.count(query, rooms, c.keys, senders)
        if exhausted and after is None:
            count = visible_seen
        else:
            count = round(total * visible_seen / scanned) if scanned else 0
        out: dict[str, Any] = {
            "results": [await self._result(user_id, h, ev, c) for h, ev in found],
            "count": max(count, len(found)),
            "highlights": highlights(c.query, [h.value for h, _ in found]),
        }
        group = batch.group if batch is not None else None
        more = not exhausted and cursor is not None
        if more and cursor is not None:
            out["next_batch"] = Batch(c.order_by, cursor, c.term, group).encode()
        if c.group_by:
            out["groups"] = self._groups(c, found, out.get("next_batch"), cursor if more else None)
        if c.include_state:
            out["state"] = {}
            for room in dict.fromkeys(ev.room_id for _, ev in found):
                try:
                    out["state"][room] = await self.reader.room_state(user_id, room)
                except MatrixError as e:
                    if e.status != 403:  # an invitee may find invite-visible history, not read the state
                        raise
        return out

    async def _result(self, user_id: str, hit: Hit, ev: StoredEvent, c: Criteria) -> dict[str, Any]:
        res: dict[str, Any] = {"rank": hit.rank, "result": (await self.serializer.serialize([ev]))[0]}
        if c.context is not None:
            res["context"] = await self._context(user_id, ev, *c.context)
        return res

    async def _context(self, user_id: str, ev: StoredEvent, before_n: int, after_n: int,
                       include_profile: bool) -> dict[str, Any]:
        flt = RoomEventFilter()
        before: list[StoredEvent] = []
        after: list[StoredEvent] = []
        b_end = a_end = None
        try:
            if before_n:
                before, b_end, _ = await self.reader.paginate(
                    user_id, ev.room_id, PageToken(ev.depth, ev.stream_ordering - 1), None, True, before_n, flt)
            if after_n:
                after, a_end, _ = await self.reader.paginate(
                    user_id, ev.room_id, PageToken(ev.depth, ev.stream_ordering), None, False, after_n, flt)
        except MatrixError as e:
            if e.status != 403:  # an invitee reads no history through /messages: no context then
                raise
        ser = self.serializer.serialize
        ctx: dict[str, Any] = {
            "events_before": await ser(before),
            "events_after": await ser(after),
            "start": b_end or PageToken(ev.depth, ev.stream_ordering - 1).encode(),
            "end": a_end or PageToken(ev.depth, ev.stream_ordering).encode(),
        }
        if include_profile:
            members = await self.reader.lazy_members_for(ev.room_id, [ev, *before, *after], ev.state_group)
            profiles: dict[str, dict[str, str]] = {}
            for m in members:
                content = m.pdu.get("content") or {}
                p = {k: content[k] for k in ("displayname", "avatar_url") if isinstance(content.get(k), str)}
                if m.state_key is not None:
                    profiles[m.state_key] = p
            ctx["profile_info"] = profiles
        return ctx

    def _groups(self, c: Criteria, found: list[tuple[Hit, StoredEvent]], next_batch: str | None,
                cursor: int | None) -> dict[str, Any]:
        groups: dict[str, Any] = {}
        for key in c.group_by:
            by: dict[str, dict[str, Any]] = {}
            for h, ev in found:
                value = ev.room_id if key == "room_id" else ev.sender
                g = by.setdefault(value, {"order": len(by) + 1, "results": []})
                g["results"].append(h.event_id)
            if cursor is not None and next_batch is not None:
                for value, g in by.items():
                    g["next_batch"] = Batch(c.order_by, cursor, c.term, (key, value)).encode()
            groups[key] = by
        return groups

    async def ranked_event_ids(self, user_id: str, term: str, room_ids: list[str], limit: int) -> list[str]:
        """Full-text matches for the AI's smart search (its keyword half), best first. The
        caller applies the visibility filter to whatever it keeps."""
        q = parse_query(term[:MAX_TERM])
        if q.empty:
            return []
        query = tsquery(q) if self.stores.db.dialect == "postgres" else fts5_query(q)
        hits = await self.stores.search.search(query, room_ids, ("content.body",), None, "rank", None, limit)
        return [h.event_id for h in hits]
