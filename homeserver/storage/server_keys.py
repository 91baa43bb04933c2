"""Other servers' signing keys, cached after verification (migration 009)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from homeserver.storage.database import Database


@dataclass(frozen=True)
class CachedKey:
    verify_key: str  # unpadded base64 ed25519 public key
    valid_until_ts: int
    expired_ts: int | None


class ServerKeyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_key(self, server_name: str, key_id: str) -> CachedKey | None:
        row = await self._db.fetchrow(
            "SELECT verify_key, valid_until_ts, expired_ts FROM remote_server_keys"
            " WHERE server_name = $1 AND key_id = $2", server_name, key_id)
        if row is None:
            return None
        expired = row["expired_ts"]
        return CachedKey(str(row["verify_key"]), int(row["valid_until_ts"]),
                         int(expired) if expired is not None else None)

    async def store_response(self, server_name: str, key_json: dict[str, Any],
                             keys: list[tuple[str, str, int, int | None]], fetched_ts: int) -> None:
        """Remember a verified key response: its keys (key_id, verify_key, valid_until_ts,
        expired_ts) and, if it is the newest seen, the signed JSON itself."""
        valid_until = int(key_json.get("valid_until_ts", 0))
        async with self._db.transaction() as c:
            for key_id, verify_key, until, expired in keys:
                await c.execute(
                    "INSERT INTO remote_server_keys (server_name, key_id, verify_key, valid_until_ts,"
                    " expired_ts, fetched_ts) VALUES ($1, $2, $3, $4, $5, $6)"
                    " ON CONFLICT (server_name, key_id) DO UPDATE SET verify_key = EXCLUDED.verify_key,"
                    " valid_until_ts = EXCLUDED.valid_until_ts, expired_ts = EXCLUDED.expired_ts,"
                    " fetched_ts = EXCLUDED.fetched_ts",
                    server_name, key_id, verify_key, until, expired, fetched_ts)
            await c.execute(
                "INSERT INTO remote_server_key_json (server_name, key_json, valid_until_ts, fetched_ts)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (server_name) DO UPDATE SET"
                " key_json = EXCLUDED.key_json, valid_until_ts = EXCLUDED.valid_until_ts,"
                " fetched_ts = EXCLUDED.fetched_ts"
                " WHERE EXCLUDED.valid_until_ts >= remote_server_key_json.valid_until_ts",
                server_name, orjson.dumps(key_json).decode(), valid_until, fetched_ts)

    async def get_response(self, server_name: str) -> dict[str, Any] | None:
        """The newest verified key response of `server_name`, as it signed it."""
        text = await self._db.fetchval(
            "SELECT key_json FROM remote_server_key_json WHERE server_name = $1", server_name)
        if text is None:
            return None
        value = orjson.loads(text)
        return value if isinstance(value, dict) else None
