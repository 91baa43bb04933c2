"""The full-text index behind `POST /search` (migration 023).

`event_search` holds one row per searchable event; the index over its text is per dialect:
an FTS5 table whose rowid is the event's stream_ordering on SQLite (kept in step here, in the
same transaction as the row), a generated tsvector column with a GIN index on PostgreSQL.
Neither stems nor drops stop words (FTS5's unicode61 tokenizer, the `simple` text search
configuration): words match as prefixes, so "deploy" finds "deployed" and "deployment", and
both databases find the same messages for the same query. (A stemmer and prefix queries do not
mix: FTS5's porter stems "deploy" to "deploi", which no longer prefixes "deployment"'s "deploy".)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from homeserver.storage.database import Conn, Database, chunks, placeholders

TS_CONFIG = "simple"


@dataclass(frozen=True)
class IndexRow:
    event_id: str
    room_id: str
    sender: str
    type: str
    key: str
    value: str
    stream_ordering: int
    origin_server_ts: int


@dataclass(frozen=True)
class Hit:
    event_id: str
    room_id: str
    stream_ordering: int
    rank: float
    value: str


class SearchStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def _sqlite(self) -> bool:
        return self.db.dialect != "postgres"

    # ------------------------------------------------------------------ writes (inside the event's transaction)

    async def index(self, c: Conn, row: IndexRow) -> None:
        await c.execute(
            "INSERT INTO event_search (event_id, room_id, sender, type, key, value, stream_ordering,"
            " origin_server_ts) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (event_id) DO UPDATE"
            " SET value = excluded.value",
            row.event_id, row.room_id, row.sender, row.type, row.key, row.value, row.stream_ordering,
            row.origin_server_ts)
        if self._sqlite:
            await c.execute("DELETE FROM event_search_fts WHERE rowid = $1", row.stream_ordering)
            await c.execute("INSERT INTO event_search_fts (rowid, value) VALUES ($1, $2)",
                            row.stream_ordering, row.value)

    async def indexed(self, c: Conn, event_id: str) -> tuple[str, int] | None:
        """(sender, stream_ordering) of an indexed event."""
        r = await c.fetchrow("SELECT sender, stream_ordering FROM event_search WHERE event_id = $1", event_id)
        return (r["sender"], int(r["stream_ordering"])) if r else None

    async def set_value(self, c: Conn, event_id: str, value: str) -> None:
        r = await self.indexed(c, event_id)
        if r is None:
            return
        await c.execute("UPDATE event_search SET value = $1 WHERE event_id = $2", value, event_id)
        if self._sqlite:
            await c.execute("DELETE FROM event_search_fts WHERE rowid = $1", r[1])
            await c.execute("INSERT INTO event_search_fts (rowid, value) VALUES ($1, $2)", r[1], value)

    async def remove(self, c: Conn, event_id: str) -> None:
        r = await self.indexed(c, event_id)
        if r is None:
            return
        await c.execute("DELETE FROM event_search WHERE event_id = $1", event_id)
        if self._sqlite:
            await c.execute("DELETE FROM event_search_fts WHERE rowid = $1", r[1])

    # ------------------------------------------------------------------ reads

    def _match(self, query: str, first: int) -> tuple[str, str, str]:
        """(FROM clause, WHERE condition, rank expression) for the dialect."""
        if self._sqlite:
            # CROSS JOIN: SQLite keeps the full-text match as the outer loop (its planner otherwise
            # may walk the room's rows and run the match once per row).
            return ("event_search_fts CROSS JOIN event_search es ON es.stream_ordering = event_search_fts.rowid",
                    f"event_search_fts MATCH ${first}", "-bm25(event_search_fts)")
        return ("event_search es", f"es.vec @@ to_tsquery('{TS_CONFIG}', ${first})",
                f"ts_rank_cd(es.vec, to_tsquery('{TS_CONFIG}', ${first}))")

    async def search(self, query: str, room_ids: Sequence[str], keys: Sequence[str], senders: Sequence[str] | None,
                     order_by: str, after: int | None, limit: int) -> list[Hit]:
        """Matches in the rooms, best first (`rank`) or newest first (`recent`).

        `after`: for `recent`, only rows below that stream position; for `rank`, skip that many
        rows of the ranked list. Rooms beyond one IN list are queried part by part and merged."""
        if not room_ids or not keys or senders == []:
            return []
        parts = chunks(list(room_ids))
        out: list[Hit] = []
        for part in parts:
            frm, cond, rank = self._match(query, 1)
            args: list[object] = [query, *part, *keys]
            n = 2 + len(part)
            sql = (f"SELECT es.event_id, es.room_id, es.stream_ordering, es.value, {rank} AS rank FROM {frm}"
                   f" WHERE {cond} AND es.room_id IN ({placeholders(2, len(part))})"
                   f" AND es.key IN ({placeholders(n, len(keys))})")
            n += len(keys)
            if senders is not None:
                sql += f" AND es.sender IN ({placeholders(n, len(senders))})"
                args.extend(senders)
                n += len(senders)
            if order_by == "recent":
                # On SQLite the FTS rowid is the stream position: FTS5 walks it in order itself.
                pos = "event_search_fts.rowid" if self._sqlite else "es.stream_ordering"
                if after is not None:
                    sql += f" AND {pos} < ${n}"
                    args.append(after)
                sql += f" ORDER BY {pos} DESC"
                sql += f" LIMIT {int(limit)}"
            else:
                # Every part's first (offset + limit) rows: the merged list is cut below.
                sql += f" ORDER BY rank DESC, es.stream_ordering DESC LIMIT {int(limit + (after or 0))}"
            rows = await self.db.fetch(sql, *args)
            out.extend(Hit(r["event_id"], r["room_id"], int(r["stream_ordering"]), float(r["rank"]), r["value"])
                       for r in rows)
        if order_by == "recent":
            out.sort(key=lambda h: -h.stream_ordering)
            return out[:limit]
        out.sort(key=lambda h: (-h.rank, -h.stream_ordering))
        return out[(after or 0):(after or 0) + limit]

    async def count(self, query: str, room_ids: Sequence[str], keys: Sequence[str],
                    senders: Sequence[str] | None) -> int:
        if not room_ids or not keys or senders == []:
            return 0
        total = 0
        for part in chunks(list(room_ids)):
            frm, cond, _ = self._match(query, 1)
            args: list[object] = [query, *part, *keys]
            n = 2 + len(part) + len(keys)
            sql = (f"SELECT COUNT(*) FROM {frm} WHERE {cond} AND es.room_id IN ({placeholders(2, len(part))})"
                   f" AND es.key IN ({placeholders(2 + len(part), len(keys))})")
            if senders is not None:
                sql += f" AND es.sender IN ({placeholders(n, len(senders))})"
                args.extend(senders)
            total += int(await self.db.fetchval(sql, *args) or 0)
        return total
