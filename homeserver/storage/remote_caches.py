"""What this server caches of other servers: remote users' device lists and remote media.

Both tables are caches: a row can always be dropped and fetched again from its origin.
"""

from __future__ import annotations

from typing import Any

import orjson

from homeserver.storage.database import Database, chunks, placeholders


class RemoteDeviceListStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def fresh(self, user_ids: list[str]) -> dict[str, dict[str, Any]]:
        """user -> cached keys answer, for the users whose cached list is not stale."""
        out: dict[str, dict[str, Any]] = {}
        for chunk in chunks(user_ids):
            rows = await self.db.fetch(
                "SELECT user_id, keys_json FROM remote_device_lists WHERE stale = FALSE"
                f" AND user_id IN ({placeholders(1, len(chunk))})", *chunk)
            for r in rows:
                out[r["user_id"]] = orjson.loads(r["keys_json"])
        return out

    async def put(self, user_id: str, keys: dict[str, Any], now: int) -> None:
        await self.db.execute(
            "INSERT INTO remote_device_lists (user_id, keys_json, stream_id, stale, updated_ts)"
            " VALUES ($1,$2,0,FALSE,$3) ON CONFLICT (user_id) DO UPDATE SET keys_json = excluded.keys_json,"
            " stale = FALSE, updated_ts = excluded.updated_ts",
            user_id, orjson.dumps(keys).decode(), now)

    async def mark_stale(self, user_id: str, stream_id: int) -> bool:
        """Mark a cached list stale; False when the user's list is not cached at all."""
        got = await self.db.fetchval(
            "UPDATE remote_device_lists SET stale = TRUE,"
            " stream_id = CASE WHEN stream_id > $2 THEN stream_id ELSE $2 END"
            " WHERE user_id = $1 RETURNING user_id", user_id, stream_id)
        return got is not None

    async def forget(self, user_ids: list[str]) -> None:
        for chunk in chunks(user_ids):
            await self.db.execute(
                f"DELETE FROM remote_device_lists WHERE user_id IN ({placeholders(1, len(chunk))})", *chunk)

    async def shares_room_with_local(self, user_id: str, server_name: str) -> bool:
        """Whether a user of this server is joined to a room the (remote) user is joined to."""
        n = await self.db.fetchval(
            "SELECT COUNT(*) FROM memberships m JOIN memberships o ON o.room_id = m.room_id"
            " WHERE m.user_id = $1 AND m.membership = 'join' AND o.membership = 'join'"
            " AND o.user_id LIKE $2", user_id, f"%:{server_name}")
        return bool(n)


class RemoteMediaStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, origin: str, media_id: str) -> dict[str, Any] | None:
        row = await self.db.fetchrow(
            "SELECT origin, media_id, storage_key, content_type, filename, size, sha256, created_ts"
            " FROM remote_media WHERE origin = $1 AND media_id = $2", origin, media_id)
        return dict(row) if row is not None else None

    async def insert(self, origin: str, media_id: str, storage_key: str, content_type: str | None,
                     filename: str | None, size: int, sha256: str, now: int) -> None:
        await self.db.execute(
            "INSERT INTO remote_media (origin, media_id, storage_key, content_type, filename, size, sha256,"
            " created_ts) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (origin, media_id) DO NOTHING",
            origin, media_id, storage_key, content_type, filename, size, sha256, now)
