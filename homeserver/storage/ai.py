"""AI settings per user and the embedding indexer's position (migration 018); the vectors
themselves are in ai_vectors.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from homeserver.storage.database import Database


@dataclass(frozen=True)
class UserAISettings:
    endpoint: str | None
    api_style: str
    token_sealed: str | None
    models: dict[str, str]


class AIStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ settings

    async def get_settings(self, user_id: str) -> UserAISettings | None:
        row = await self.db.fetchrow(
            "SELECT endpoint, api_style, token_sealed, models FROM ai_user_settings WHERE user_id = $1", user_id)
        if row is None:
            return None
        return UserAISettings(row["endpoint"], row["api_style"], row["token_sealed"], orjson.loads(row["models"]))

    async def put_settings(self, user_id: str, s: UserAISettings, ts: int) -> None:
        await self.db.execute(
            "INSERT INTO ai_user_settings (user_id, endpoint, api_style, token_sealed, models, updated_ts)"
            " VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (user_id) DO UPDATE SET endpoint = excluded.endpoint,"
            " api_style = excluded.api_style, token_sealed = excluded.token_sealed, models = excluded.models,"
            " updated_ts = excluded.updated_ts",
            user_id, s.endpoint, s.api_style, s.token_sealed, orjson.dumps(s.models).decode(), ts)

    async def delete_settings(self, user_id: str) -> None:
        await self.db.execute("DELETE FROM ai_user_settings WHERE user_id = $1", user_id)

    # ------------------------------------------------------------------ indexer position

    async def index_position(self, name: str) -> int | None:
        v = await self.db.fetchval("SELECT stream_ordering FROM ai_index_position WHERE name = $1", name)
        return int(v) if v is not None else None

    async def set_index_position(self, name: str, pos: int) -> None:
        await self.db.execute(
            "INSERT INTO ai_index_position (name, stream_ordering) VALUES ($1,$2) ON CONFLICT (name)"
            " DO UPDATE SET stream_ordering = excluded.stream_ordering", name, pos)

    # ------------------------------------------------------------------ indexer input

    async def messages_after(self, after: int, upto: int, limit: int) -> list[dict[str, Any]]:
        """Messages and redactions in stream order after `after`, up to the committed `upto`."""
        rows = await self.db.fetch(
            "SELECT event_id, room_id, stream_ordering, type, json, redacted_by FROM events"
            " WHERE stream_ordering > $1 AND stream_ordering <= $2"
            " AND type IN ('m.room.message', 'm.room.redaction') ORDER BY stream_ordering LIMIT $3",
            after, upto, limit)
        return [{**dict(r), "json": orjson.loads(r["json"])} for r in rows]
