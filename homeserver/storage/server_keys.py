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
        expired_ts) and, for each of its verify_keys, the signed JSON if it is the newest seen."""
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
            text = orjson.dumps(key_json).decode()
            for key_id in key_json.get("verify_keys", {}):
                await c.execute(
                    "INSERT INTO remote_server_key_json (server_name, key_id, key_json, valid_until_ts, fetched_ts)"
                    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (server_name, key_id) DO UPDATE SET"
                    " key_json = EXCLUDED.key_json, valid_until_ts = EXCLUDED.valid_until_ts,"
                    " fetched_ts = EXCLUDED.fetched_ts"
                    " WHERE EXCLUDED.valid_until_ts >= remote_server_key_json.valid_until_ts",
                    server_name, key_id, text, valid_until, fetched_ts)

    async def get_responses(self, server_name: str, key_ids: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
        """key_id -> the newest verified key response holding it (all keys when none named)."""
        if key_ids:
            rows = await self._db.fetch(
                "SELECT key_id, key_json FROM remote_server_key_json WHERE server_name = $1 AND key_id IN ("
                + ", ".join(f"${i + 2}" for i in range(len(key_ids))) + ")", server_name, *key_ids)
        else:
            rows = await self._db.fetch(
                "SELECT key_id, key_json FROM remote_server_key_json WHERE server_name = $1", server_name)
        out = {}
        for row in rows:
            value = orjson.loads(row["key_json"])
            if isinstance(value, dict):
                out[str(row["key_id"])] = value
        return out
