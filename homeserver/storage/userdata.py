"""Per-user data: filters, account data (global and per room), client transaction IDs,
and the room directory (rooms, aliases, published rooms)."""

from __future__ import annotations

from typing import Any

import orjson

from homeserver.storage.database import Conn, Database, chunks, placeholders
from homeserver.storage.ids import Counter


class UserDataStore:
    def __init__(self, db: Database, filter_ids: Counter) -> None:
        self.db = db
        self._filter_ids = filter_ids

    # ------------------------------------------------------------------ filters

    async def add_filter(self, user_id: str, filter_json: dict[str, Any]) -> int:
        fid = await self._filter_ids.next()
        await self.db.execute(
            "INSERT INTO filters (user_id, filter_id, filter_json) VALUES ($1,$2,$3)",
            user_id, fid, orjson.dumps(filter_json).decode(),
        )
        return fid

    async def get_filter(self, user_id: str, filter_id: int) -> dict[str, Any] | None:
        raw = await self.db.fetchval(
            "SELECT filter_json FROM filters WHERE user_id = $1 AND filter_id = $2",
            user_id, filter_id,
        )
        return orjson.loads(raw) if raw is not None else None

    # ------------------------------------------------------------------ account data

    async def put_account_data(
        self, c: Conn, user_id: str, room_id: str, data_type: str, content: dict[str, Any], pos: int
    ) -> None:
        await c.execute(
            "INSERT INTO account_data (user_id, room_id, type, content, stream_id)"
            " VALUES ($1,$2,$3,$4,$5) ON CONFLICT (user_id, room_id, type) DO UPDATE SET"
            " content = excluded.content, stream_id = excluded.stream_id",
            user_id, room_id, data_type, orjson.dumps(content).decode(), pos,
        )

    async def get_account_data(self, user_id: str, room_id: str, data_type: str) -> dict[str, Any] | None:
        raw = await self.db.fetchval(
            "SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND type = $3",
            user_id, room_id, data_type,
        )
        return orjson.loads(raw) if raw is not None else None

    async def account_data_of_users(self, user_ids: list[str], room_id: str,
                                    data_type: str) -> dict[str, dict[str, Any]]:
        """`get_account_data` for many users at once: user -> content, for those who have it."""
        out: dict[str, dict[str, Any]] = {}
        for chunk in chunks(user_ids):
            rows = await self.db.fetch(
                "SELECT user_id, content FROM account_data WHERE room_id = $1 AND type = $2"
                f" AND user_id IN ({placeholders(3, len(chunk))})", room_id, data_type, *chunk)
            for r in rows:
                out[r["user_id"]] = orjson.loads(r["content"])
        return out

    async def account_data_since(
        self, user_id: str, after: int, upto: int
    ) -> list[tuple[str, str, dict[str, Any]]]:
        rows = await self.db.fetch(
            "SELECT room_id, type, content FROM account_data WHERE user_id = $1"
            " AND stream_id > $2 AND stream_id <= $3 ORDER BY stream_id",
            user_id, after, upto,
        )
        return [(r["room_id"], r["type"], orjson.loads(r["content"])) for r in rows]

    # ------------------------------------------------------------------ transaction ids

    async def get_txn(self, user_id: str, device_id: str, key: str) -> dict[str, Any] | None:
        raw = await self.db.fetchval(
            "SELECT response FROM client_txns WHERE user_id = $1 AND device_id = $2 AND txn_key = $3",
            user_id, device_id, key,
        )
        return orjson.loads(raw) if raw is not None else None

    async def put_txn(
        self, c: Conn, user_id: str, device_id: str, key: str, response: dict[str, Any]
    ) -> None:
        await c.execute(
            "INSERT INTO client_txns (user_id, device_id, txn_key, response) VALUES ($1,$2,$3,$4)"
            " ON CONFLICT (user_id, device_id, txn_key) DO NOTHING",
            user_id, device_id, key, orjson.dumps(response).decode(),
        )

    # ------------------------------------------------------------------ rooms and aliases

    async def add_room(
        self, c: Conn, room_id: str, version: str, creator: str, is_public: bool, now: int
    ) -> None:
        await c.execute(
            "INSERT INTO rooms (room_id, room_version, creator, is_public, created_ts)"
            " VALUES ($1,$2,$3,$4,$5)",
            room_id, version, creator, is_public, now,
        )

    async def room_version(self, room_id: str) -> str | None:
        return await self.db.fetchval("SELECT room_version FROM rooms WHERE room_id = $1", room_id)

    async def set_room_public(self, room_id: str, public: bool) -> None:
        await self.db.execute("UPDATE rooms SET is_public = $1 WHERE room_id = $2", public, room_id)

    async def room_is_public(self, room_id: str) -> bool:
        return bool(await self.db.fetchval("SELECT is_public FROM rooms WHERE room_id = $1", room_id))

    async def public_rooms(self) -> list[str]:
        rows = await self.db.fetch(
            "SELECT room_id FROM rooms WHERE is_public = TRUE ORDER BY created_ts, room_id"
        )
        return [r["room_id"] for r in rows]

    async def add_alias(self, c: Conn | None, alias: str, room_id: str, creator: str) -> bool:
        sql = (
            "INSERT INTO room_aliases (alias, room_id, creator) VALUES ($1,$2,$3)"
            " ON CONFLICT (alias) DO NOTHING RETURNING alias"
        )
        if c is None:
            return bool(await self.db.fetchval(sql, alias, room_id, creator))
        return bool(await c.fetchval(sql, alias, room_id, creator))

    async def get_alias(self, alias: str) -> tuple[str, str] | None:
        r = await self.db.fetchrow("SELECT room_id, creator FROM room_aliases WHERE alias = $1", alias)
        return (r["room_id"], r["creator"]) if r else None

    async def delete_alias(self, alias: str) -> None:
        await self.db.execute("DELETE FROM room_aliases WHERE alias = $1", alias)

    async def aliases_for_room(self, room_id: str) -> list[str]:
        rows = await self.db.fetch(
            "SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias", room_id
        )
        return [r["alias"] for r in rows]

    async def move_aliases(self, old_room_id: str, new_room_id: str) -> list[str]:
        """Point every local alias of one room at another (a room upgrade); returns them."""
        async with self.db.transaction() as c:
            rows = await c.fetch("SELECT alias FROM room_aliases WHERE room_id = $1", old_room_id)
            await c.execute(
                "UPDATE room_aliases SET room_id = $1 WHERE room_id = $2", new_room_id, old_room_id
            )
        return sorted(r["alias"] for r in rows)
