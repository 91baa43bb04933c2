"""The outbound federation queue (migration 013): rows per destination, and per destination the
transaction in flight and its retry state; and the watermark of local events queued (migration 020)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson

from homeserver.storage.database import Database, chunks, placeholders
from homeserver.storage.events import LIVE
from homeserver.storage.ids import Counter


@dataclass(frozen=True)
class QueueItem:
    """One thing a destination must receive: a PDU (by event ID) or an EDU (type + content)."""

    destination: str
    kind: str  # "pdu" | "edu"
    room_id: str | None = None
    event_id: str | None = None
    edu_type: str | None = None
    content: dict[str, Any] | None = None


@dataclass(frozen=True)
class QueuedRow:
    id: int
    kind: str
    room_id: str | None
    event_id: str | None
    edu_type: str | None
    content: dict[str, Any] | None
    created_ts: int


@dataclass(frozen=True)
class DestinationState:
    txn_id: str | None
    txn_body: dict[str, Any] | None
    txn_queue_ids: list[int]
    failures: int
    retry_at_ts: int


class FederationQueueStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._ids = Counter(db, "federation_queue_seq", "SELECT MAX(id) FROM federation_queue")
        self._opened = False
        self._open_lock = asyncio.Lock()

    async def _next_id(self) -> int:
        if not self._opened:
            async with self._open_lock:
                if not self._opened:
                    await self._ids.open()
                    self._opened = True
        return await self._ids.next()

    async def add(self, items: list[QueueItem], now_ms: int, watermark: int | None = None) -> None:
        """Queue `items`; with `watermark`, also record (in the same transaction) that local
        events up to that stream position are queued."""
        if not items and watermark is None:
            return
        rows = []
        for it in items:
            content = orjson.dumps(it.content).decode() if it.content is not None else None
            rows.append((await self._next_id(), it.destination, it.kind, it.room_id, it.event_id, it.edu_type,
                         content, now_ms))
        async with self.db.transaction() as c:
            if rows:
                await c.executemany(
                    "INSERT INTO federation_queue (id, destination, kind, room_id, event_id, edu_type, content_json,"
                    " created_ts) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)", rows)
            if watermark is not None:
                await c.execute("UPDATE federation_watermark SET stream_pos = $1 WHERE id = 1 AND stream_pos < $1",
                                watermark)

    async def watermark(self) -> int:
        """The stream position up to which local events are known to be queued."""
        return int(await self.db.fetchval("SELECT stream_pos FROM federation_watermark WHERE id = 1") or 0)

    async def events_after(self, stream_pos: int, server_name: str, limit: int) -> list[tuple[int, str]]:
        """(stream position, event ID) of timeline events after `stream_pos` whose sender's ID
        ends in `:server_name` (a superset of the local ones: the caller checks), oldest first."""
        rows = await self.db.fetch(
            f"SELECT stream_ordering, event_id FROM events WHERE stream_ordering > $1 AND {LIVE}"
            f" AND sender LIKE $2 ORDER BY stream_ordering LIMIT {int(limit)}", stream_pos, f"%:{server_name}")
        return [(int(r["stream_ordering"]), str(r["event_id"])) for r in rows]

    async def destinations_with_work(self) -> list[str]:
        rows = await self.db.fetch(
            "SELECT DISTINCT destination FROM federation_queue UNION"
            " SELECT destination FROM federation_destinations WHERE txn_id IS NOT NULL")
        return sorted(str(r["destination"]) for r in rows)

    async def pending(self, destination: str, kind: str, limit: int) -> list[QueuedRow]:
        rows = await self.db.fetch(
            "SELECT id, kind, room_id, event_id, edu_type, content_json, created_ts FROM federation_queue"
            f" WHERE destination = $1 AND kind = $2 ORDER BY id LIMIT {int(limit)}", destination, kind)
        return [QueuedRow(int(r["id"]), r["kind"], r["room_id"], r["event_id"], r["edu_type"],
                          orjson.loads(r["content_json"]) if r["content_json"] is not None else None,
                          int(r["created_ts"])) for r in rows]

    async def count(self, destination: str, kind: str) -> int:
        return int(await self.db.fetchval(
            "SELECT COUNT(*) FROM federation_queue WHERE destination = $1 AND kind = $2", destination, kind) or 0)

    async def keep_newest_pdu_per_room(self, destination: str) -> int:
        """Catch-up: drop every queued PDU but the newest of each room (the destination fetches
        the rest with get_missing_events / backfill). Returns how many were dropped."""
        async with self.db.transaction() as c:
            before = int(await c.fetchval(
                "SELECT COUNT(*) FROM federation_queue WHERE destination = $1 AND kind = 'pdu'", destination) or 0)
            await c.execute(
                "DELETE FROM federation_queue WHERE destination = $1 AND kind = 'pdu' AND id NOT IN"
                " (SELECT MAX(id) FROM federation_queue WHERE destination = $1 AND kind = 'pdu' GROUP BY room_id)",
                destination)
            after = int(await c.fetchval(
                "SELECT COUNT(*) FROM federation_queue WHERE destination = $1 AND kind = 'pdu'", destination) or 0)
        return before - after

    async def delete(self, ids: list[int]) -> None:
        for chunk in chunks(ids):
            await self.db.execute(f"DELETE FROM federation_queue WHERE id IN ({placeholders(1, len(chunk))})",
                                  *chunk)

    async def state(self, destination: str) -> DestinationState:
        r = await self.db.fetchrow(
            "SELECT txn_id, txn_json, txn_queue_ids, failures, retry_at_ts FROM federation_destinations"
            " WHERE destination = $1", destination)
        if r is None:
            return DestinationState(None, None, [], 0, 0)
        return DestinationState(
            r["txn_id"], orjson.loads(r["txn_json"]) if r["txn_json"] else None,
            [int(i) for i in orjson.loads(r["txn_queue_ids"])] if r["txn_queue_ids"] else [],
            int(r["failures"]), int(r["retry_at_ts"]))

    async def start_txn(self, destination: str, prefix: str, body: dict[str, Any], queue_ids: list[int]) -> str:
        """Record the next transaction to `destination` before it is sent: a retry (after a
        failure or a restart) sends this same ID and body. Returns the transaction ID."""
        async with self.db.transaction() as c:
            await c.execute("INSERT INTO federation_destinations (destination) VALUES ($1)"
                            " ON CONFLICT (destination) DO NOTHING", destination)
            seq = int(await c.fetchval(
                "UPDATE federation_destinations SET txn_seq = txn_seq + 1 WHERE destination = $1 RETURNING txn_seq",
                destination))
            txn_id = f"{prefix}.{seq}"
            await c.execute(
                "UPDATE federation_destinations SET txn_id = $2, txn_json = $3, txn_queue_ids = $4"
                " WHERE destination = $1",
                destination, txn_id, orjson.dumps(body).decode(), orjson.dumps(queue_ids).decode())
        return txn_id

    async def finish_txn(self, destination: str, queue_ids: list[int]) -> None:
        """The destination took the transaction: its rows leave the queue, the retry state resets."""
        async with self.db.transaction() as c:
            for chunk in chunks(queue_ids):
                await c.execute(f"DELETE FROM federation_queue WHERE id IN ({placeholders(1, len(chunk))})",
                                *chunk)
            await c.execute(
                "UPDATE federation_destinations SET txn_id = NULL, txn_json = NULL, txn_queue_ids = NULL,"
                " failures = 0, retry_at_ts = 0 WHERE destination = $1", destination)

    async def record_failure(self, destination: str, failures: int, retry_at_ts: int) -> None:
        await self.db.execute(
            "INSERT INTO federation_destinations (destination, failures, retry_at_ts) VALUES ($1,$2,$3)"
            " ON CONFLICT (destination) DO UPDATE SET failures = excluded.failures,"
            " retry_at_ts = excluded.retry_at_ts", destination, failures, retry_at_ts)

    async def reset_backoff(self, destination: str) -> None:
        await self.db.execute(
            "UPDATE federation_destinations SET failures = 0, retry_at_ts = 0 WHERE destination = $1", destination)
