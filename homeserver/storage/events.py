"""Events, the event graph (edges, forward extremities) and stream-ordered reads."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from homeserver.storage.database import Conn, Database, chunks, placeholders


@dataclass
class StoredEvent:
    event_id: str
    stream_ordering: int
    room_id: str
    type: str
    state_key: str | None
    sender: str
    depth: int
    origin_server_ts: int
    pdu: dict[str, Any]
    state_group: int
    redacted_by: str | None
    txn_device: str | None
    txn_id: str | None
    state_before: int | None = None  # None: the empty state (a create event), or an outlier
    outlier: bool = False
    rejected: str | None = None
    soft_failed: bool = False

    @property
    def in_timeline(self) -> bool:
        return not (self.outlier or self.rejected or self.soft_failed)

    @property
    def is_state(self) -> bool:
        return self.state_key is not None


_COLS = (
    "event_id, stream_ordering, room_id, type, state_key, sender, depth, origin_server_ts, json,"
    " state_group, redacted_by, txn_device, txn_id, state_before, outlier, rejected, soft_failed"
)
#: Only events that are part of the room's history as clients see it (not outliers, rejected
#: or soft-failed events).
LIVE = "in_timeline = TRUE"
#: The state group of an outlier: the state at it is not known.
UNKNOWN_STATE = -1


def _row_to_event(r: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        event_id=r["event_id"],
        stream_ordering=r["stream_ordering"],
        room_id=r["room_id"],
        type=r["type"],
        state_key=r["state_key"],
        sender=r["sender"],
        depth=r["depth"],
        origin_server_ts=r["origin_server_ts"],
        pdu=orjson.loads(r["json"]),
        state_group=r["state_group"],
        redacted_by=r["redacted_by"],
        txn_device=r["txn_device"],
        txn_id=r["txn_id"],
        state_before=r["state_before"],
        outlier=bool(r["outlier"]),
        rejected=r["rejected"],
        soft_failed=bool(r["soft_failed"]),
    )


class EventStore:
    def __init__(self, db: Database, cache_size: int = 10_000) -> None:
        self.db = db
        self._cache: OrderedDict[str, StoredEvent] = OrderedDict()
        self._cache_size = cache_size

    # ------------------------------------------------------------------ cache

    def _remember(self, ev: StoredEvent) -> None:
        self._cache[ev.event_id] = ev
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def invalidate(self, event_id: str) -> None:
        self._cache.pop(event_id, None)

    # ------------------------------------------------------------------ writes

    async def insert(
        self,
        c: Conn,
        ev: StoredEvent,
        prev_events: Iterable[str],
        rel_type: str | None,
        relates_to: str | None,
        thread_root: str | None,
        moves_extremities: bool = True,
    ) -> None:
        """Store one event; a timeline event also moves the room's forward extremities (unless
        it is history from the past)."""
        live = ev.in_timeline
        if not live:  # hidden events take no part in relations and threads
            rel_type = relates_to = thread_root = None
        await c.execute(
            "INSERT INTO events (stream_ordering, event_id, room_id, type, state_key, sender, depth,"
            " origin_server_ts, json, state_group, rel_type, relates_to, thread_root, txn_device,"
            " txn_id, state_before, outlier, rejected, soft_failed, in_timeline)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)",
            ev.stream_ordering, ev.event_id, ev.room_id, ev.type, ev.state_key, ev.sender,
            ev.depth, ev.origin_server_ts, orjson.dumps(ev.pdu).decode(), ev.state_group,
            rel_type, relates_to, thread_root, ev.txn_device, ev.txn_id,
            ev.state_before, ev.outlier, ev.rejected, ev.soft_failed, live,
        )
        prevs = list(dict.fromkeys(prev_events))
        if prevs:
            await c.executemany(
                "INSERT INTO event_edges (event_id, prev_event_id) VALUES ($1, $2)",
                [(ev.event_id, p) for p in prevs],
            )
        if not live or not moves_extremities:
            return
        if prevs:
            await c.executemany(
                "DELETE FROM forward_extremities WHERE room_id = $1 AND event_id = $2",
                [(ev.room_id, p) for p in prevs],
            )
        # An event that arrives after a later one citing it is no extremity.
        cited = await c.fetchval(
            "SELECT 1 FROM event_edges ed JOIN events e ON e.event_id = ed.event_id"
            f" WHERE ed.prev_event_id = $1 AND e.{LIVE} LIMIT 1",
            ev.event_id,
        )
        if not cited:
            await c.execute(
                "INSERT INTO forward_extremities (room_id, event_id) VALUES ($1, $2)",
                ev.room_id, ev.event_id,
            )

    async def drop_outlier(self, c: Conn, event_id: str) -> None:
        """An outlier that now takes its place in the timeline is stored anew."""
        if await c.fetchval("SELECT 1 FROM events WHERE event_id = $1 AND outlier = TRUE", event_id):
            await c.execute("DELETE FROM event_edges WHERE event_id = $1", event_id)
            await c.execute("DELETE FROM events WHERE event_id = $1", event_id)
            self.invalidate(event_id)

    def remember_committed(self, ev: StoredEvent) -> None:
        self._remember(ev)

    async def mark_redacted(self, c: Conn, event_id: str, redaction_id: str) -> None:
        await c.execute(
            "UPDATE events SET redacted_by = $1, rel_type = NULL, relates_to = NULL,"
            " thread_root = NULL WHERE event_id = $2 AND redacted_by IS NULL",
            redaction_id, event_id,
        )
        self.invalidate(event_id)

    # ------------------------------------------------------------------ reads

    async def get(self, event_id: str) -> StoredEvent | None:
        ev = self._cache.get(event_id)
        if ev is not None:
            return ev
        r = await self.db.fetchrow(f"SELECT {_COLS} FROM events WHERE event_id = $1", event_id)
        if r is None:
            return None
        ev = _row_to_event(r)
        self._remember(ev)
        return ev

    async def get_many(self, event_ids: Iterable[str]) -> dict[str, StoredEvent]:
        out: dict[str, StoredEvent] = {}
        missing = []
        for eid in event_ids:
            ev = self._cache.get(eid)
            if ev is not None:
                out[eid] = ev
            else:
                missing.append(eid)
        for chunk in chunks(missing):
            rows = await self.db.fetch(
                f"SELECT {_COLS} FROM events WHERE event_id IN ({placeholders(1, len(chunk))})", *chunk
            )
            for r in rows:
                ev = _row_to_event(r)
                self._remember(ev)
                out[ev.event_id] = ev
        return out

    async def forward_extremities(self, c: Conn | None, room_id: str) -> list[StoredEvent]:
        """The room's forward extremities (committed state when `c` is None)."""
        rows = await (c or self.db).fetch(
            f"SELECT {', '.join('e.' + col.strip() for col in _COLS.split(','))}"
            " FROM forward_extremities f JOIN events e ON e.event_id = f.event_id"
            " WHERE f.room_id = $1",
            room_id,
        )
        return [_row_to_event(r) for r in rows]

    async def room_events_between(
        self, room_id: str, after: int, upto: int, limit: int, newest_first: bool
    ) -> list[StoredEvent]:
        """Events of a room with after < stream_ordering <= upto."""
        order = "DESC" if newest_first else "ASC"
        rows = await self.db.fetch(
            f"SELECT {_COLS} FROM events WHERE room_id = $1 AND stream_ordering > $2"
            f" AND stream_ordering <= $3 AND {LIVE} ORDER BY stream_ordering {order} LIMIT $4",
            room_id, after, upto, limit,
        )
        evs = [_row_to_event(r) for r in rows]
        for ev in evs:
            self._remember(ev)
        return evs

    async def room_events_topo(
        self, room_id: str, after: tuple[int, int] | None, upto: tuple[int, int] | None,
        max_stream: int, limit: int, newest_first: bool,
    ) -> list[StoredEvent]:
        """Events of a room in topological order, (depth, stream) in (after, upto]."""
        params: list[Any] = [room_id, max_stream, limit]
        sql = f"SELECT {_COLS} FROM events WHERE room_id = $1 AND stream_ordering <= $2 AND {LIVE}"
        if after is not None:
            params += list(after)
            sql += f" AND (depth, stream_ordering) > (${len(params) - 1}, ${len(params)})"
        if upto is not None:
            params += list(upto)
            sql += f" AND (depth, stream_ordering) <= (${len(params) - 1}, ${len(params)})"
        order = "DESC" if newest_first else "ASC"
        sql += f" ORDER BY depth {order}, stream_ordering {order} LIMIT $3"
        evs = [_row_to_event(r) for r in await self.db.fetch(sql, *params)]
        for ev in evs:
            self._remember(ev)
        return evs

    async def recent_for_rooms(
        self, room_ids: list[str], after: int, upto: int, per_room: int
    ) -> dict[str, list[StoredEvent]]:
        """The newest `per_room` events (after < pos <= upto) of each room, newest first."""
        out: dict[str, list[StoredEvent]] = {}
        for chunk in chunks(room_ids, 200):
            marks = placeholders(4, len(chunk))
            rows = await self.db.fetch(
                f"SELECT {_COLS} FROM (SELECT {_COLS}, ROW_NUMBER() OVER (PARTITION BY room_id"
                f" ORDER BY stream_ordering DESC) AS rn FROM events WHERE {LIVE} AND stream_ordering > $1"
                f" AND stream_ordering <= $2 AND room_id IN ({marks})) AS t WHERE rn <= $3"
                " ORDER BY stream_ordering DESC",
                after, upto, per_room, *chunk,
            )
            for r in rows:
                ev = _row_to_event(r)
                self._remember(ev)
                out.setdefault(ev.room_id, []).append(ev)
        return out

    async def rooms_with_events_between(self, room_ids: list[str], after: int, upto: int) -> set[str]:
        if not room_ids or after >= upto:
            return set()
        out: set[str] = set()
        for chunk in chunks(room_ids):
            rows = await self.db.fetch(
                f"SELECT DISTINCT room_id FROM events WHERE {LIVE} AND stream_ordering > $1"
                f" AND stream_ordering <= $2 AND room_id IN ({placeholders(3, len(chunk))})",
                after, upto, *chunk,
            )
            out.update(r["room_id"] for r in rows)
        return out

    async def last_event_at_or_before(self, room_id: str, pos: int) -> StoredEvent | None:
        r = await self.db.fetchrow(
            f"SELECT {_COLS} FROM events WHERE room_id = $1 AND stream_ordering <= $2 AND {LIVE}"
            " ORDER BY stream_ordering DESC LIMIT 1",
            room_id, pos,
        )
        return _row_to_event(r) if r else None

    async def relations(
        self,
        room_id: str,
        parent_ids: list[str],
        rel_type: str | None,
        event_type: str | None,
        after: int,
        before: int,
        limit: int,
        newest_first: bool,
    ) -> list[StoredEvent]:
        if not parent_ids:
            return []
        params: list[Any] = [room_id, after, before]
        marks = []
        for pid in parent_ids:
            params.append(pid)
            marks.append(f"${len(params)}")
        sql = (
            f"SELECT {_COLS} FROM events WHERE room_id = $1 AND stream_ordering > $2"
            f" AND stream_ordering < $3 AND relates_to IN ({','.join(marks)})"
        )
        if rel_type is not None:
            params.append(rel_type)
            sql += f" AND rel_type = ${len(params)}"
        if event_type is not None:
            params.append(event_type)
            sql += f" AND type = ${len(params)}"
        params.append(limit)
        sql += f" ORDER BY stream_ordering {'DESC' if newest_first else 'ASC'} LIMIT ${len(params)}"
        return [_row_to_event(r) for r in await self.db.fetch(sql, *params)]

    async def thread_roots(
        self, room_id: str, before: int, limit: int, participant: str | None
    ) -> list[tuple[str, int]]:
        """Thread roots ordered by their latest reply (newest first): (root_id, latest_pos)."""
        params: list[Any] = [room_id, before]
        sql = (
            "SELECT thread_root, MAX(stream_ordering) AS latest FROM events"
            " WHERE room_id = $1 AND thread_root IS NOT NULL"
        )
        if participant is not None:
            params.append(participant)
            sql += (
                f" AND thread_root IN (SELECT thread_root FROM events WHERE room_id = $1"
                f" AND thread_root IS NOT NULL AND sender = ${len(params)}"
                f" UNION SELECT event_id FROM events WHERE room_id = $1"
                f" AND sender = ${len(params)})"
            )
        params.append(limit)
        sql += (
            f" GROUP BY thread_root HAVING MAX(stream_ordering) < $2"
            f" ORDER BY latest DESC LIMIT ${len(params)}"
        )
        return [(r["thread_root"], r["latest"]) for r in await self.db.fetch(sql, *params)]

    async def thread_replies(self, room_id: str, root_id: str, limit: int) -> list[StoredEvent]:
        """A thread's newest `limit` replies, newest first."""
        rows = await self.db.fetch(
            f"SELECT {_COLS} FROM events WHERE room_id = $1 AND thread_root = $2"
            " ORDER BY stream_ordering DESC LIMIT $3",
            room_id, root_id, limit,
        )
        return [_row_to_event(r) for r in rows]

    async def sent_in_thread(self, room_id: str, root_id: str, user_id: str) -> bool:
        return bool(await self.db.fetchval(
            "SELECT 1 FROM events WHERE room_id = $1 AND thread_root = $2 AND sender = $3 LIMIT 1",
            room_id, root_id, user_id,
        ))
