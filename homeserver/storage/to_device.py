"""To-device messages: a per-device inbox on the shared stream, deleted once acknowledged."""

from __future__ import annotations

from typing import Any

import orjson

from homeserver.storage.database import Conn, Database


class ToDeviceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim_txn(self, c: Conn, user_id: str, device_id: str, txn_id: str, pos: int) -> bool:
        """Record a sender's transaction ID; False if it was already used (a retry)."""
        got = await c.fetchval(
            "INSERT INTO to_device_txns (user_id, device_id, txn_id, stream_id) VALUES ($1,$2,$3,$4)"
            " ON CONFLICT (user_id, device_id, txn_id) DO NOTHING RETURNING 1",
            user_id, device_id, txn_id, pos)
        return got is not None

    async def add(self, c: Conn, pos: int, messages: list[tuple[str, str, dict[str, Any]]]) -> None:
        """(recipient user, recipient device, message) at stream position `pos`."""
        await c.executemany(
            "INSERT INTO to_device_inbox (user_id, device_id, stream_id, message_json) VALUES ($1,$2,$3,$4)"
            " ON CONFLICT DO NOTHING",
            [(u, d, pos, orjson.dumps(m).decode()) for u, d, m in messages])

    async def delete_upto(self, user_id: str, device_id: str, upto: int) -> None:
        """The device has acknowledged everything up to `upto`."""
        await self.db.execute(
            "DELETE FROM to_device_inbox WHERE user_id = $1 AND device_id = $2 AND stream_id <= $3",
            user_id, device_id, upto)

    async def pending(
        self, user_id: str, device_id: str, after: int, upto: int, limit: int,
    ) -> list[tuple[int, dict[str, Any]]]:
        rows = await self.db.fetch(
            "SELECT stream_id, message_json FROM to_device_inbox WHERE user_id = $1 AND device_id = $2"
            f" AND stream_id > $3 AND stream_id <= $4 ORDER BY stream_id LIMIT {int(limit)}",
            user_id, device_id, after, upto)
        return [(int(r["stream_id"]), orjson.loads(r["message_json"])) for r in rows]

    async def delete_for_devices(self, c: Conn, user_id: str, device_ids: list[str] | None) -> None:
        if device_ids is None:
            await c.execute("DELETE FROM to_device_inbox WHERE user_id = $1", user_id)
            return
        await c.executemany("DELETE FROM to_device_inbox WHERE user_id = $1 AND device_id = $2",
                            [(user_id, d) for d in device_ids])
