"""Read receipts."""

from __future__ import annotations

from typing import Any

from homeserver.storage.database import Conn, Database, chunks, placeholders


class ReceiptStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def upsert(
        self, c: Conn, room_id: str, user_id: str, rtype: str, thread_id: str, event_id: str,
        event_stream: int, ts: int, pos: int,
    ) -> bool:
        """Store a receipt unless the user already has one at or after that event."""
        current = await c.fetchval(
            "SELECT event_stream FROM receipts WHERE room_id = $1 AND user_id = $2"
            " AND receipt_type = $3 AND thread_id = $4",
            room_id, user_id, rtype, thread_id,
        )
        if current is not None and current >= event_stream:
            return False
        await c.execute(
            "INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, event_stream,"
            " ts, stream_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (room_id, user_id,"
            " receipt_type, thread_id) DO UPDATE SET event_id = excluded.event_id,"
            " event_stream = excluded.event_stream, ts = excluded.ts, stream_id = excluded.stream_id",
            room_id, user_id, rtype, thread_id, event_id, event_stream, ts, pos,
        )
        return True

    async def changed(self, room_ids: list[str], after: int, upto: int) -> list[dict[str, Any]]:
        if not room_ids or after >= upto:
            return []
        # (also used with after=-1 for "every receipt of these rooms")
        out: list[dict[str, Any]] = []
        for chunk in chunks(room_ids):
            out += await self.db.fetch(
                "SELECT room_id, user_id, receipt_type, thread_id, event_id, ts FROM receipts"
                f" WHERE stream_id > $1 AND stream_id <= $2 AND room_id IN ({placeholders(3, len(chunk))})",
                after, upto, *chunk,
            )
        return out

    async def all_for_rooms(self, room_ids: list[str]) -> list[dict[str, Any]]:
        return await self.changed(room_ids, -1, 2**62)

    async def read_positions_for_user(self, room_ids: list[str], user_id: str) -> dict[str, dict[str, int]]:
        """room -> thread_id -> stream position of the user's newest m.read / m.read.private."""
        out: dict[str, dict[str, int]] = {}
        for chunk in chunks(room_ids):
            rows = await self.db.fetch(
                "SELECT room_id, thread_id, MAX(event_stream) AS pos FROM receipts WHERE user_id = $1"
                f" AND receipt_type IN ('m.read', 'm.read.private') AND room_id IN ({placeholders(2, len(chunk))})"
                " GROUP BY room_id, thread_id",
                user_id, *chunk,
            )
            for r in rows:
                out.setdefault(r["room_id"], {})[r["thread_id"]] = int(r["pos"])
        return out

    async def last_read_positions(self, room_id: str, user_id: str) -> dict[str, int]:
        """thread_id -> stream position of the user's newest m.read / m.read.private there."""
        rows = await self.db.fetch(
            "SELECT thread_id, MAX(event_stream) AS pos FROM receipts WHERE room_id = $1"
            " AND user_id = $2 AND receipt_type IN ('m.read', 'm.read.private') GROUP BY thread_id",
            room_id, user_id,
        )
        return {r["thread_id"]: int(r["pos"]) for r in rows}
