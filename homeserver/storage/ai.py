"""AI settings per user and message embeddings (migration 018)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from homeserver.storage.database import Database, chunks, placeholders


@dataclass(frozen=True)
class UserAISettings:
    endpoint: str | None
    api_style: str
    token_sealed: str | None
    models: dict[str, str]


def pack_vector(v: np.ndarray) -> str:
    return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()


def unpack_vectors(rows: list[str], dim: int) -> np.ndarray:
    if not rows:
        return np.zeros((0, dim), dtype=np.float32)
    buf = b"".join(base64.b64decode(r) for r in rows)
    return np.frombuffer(buf, dtype="<f4").reshape(len(rows), dim)


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

    # ------------------------------------------------------------------ embeddings

    async def put_embeddings(self, rows: list[tuple[str, str, int, str, np.ndarray, str]]) -> None:
        """(event_id, room_id, stream_ordering, model, vector, body); replaces earlier vectors."""
        if not rows:
            return
        async with self.db.transaction() as c:
            await c.executemany(
                "INSERT INTO ai_embeddings (event_id, room_id, stream_ordering, model, dim, vector, body)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (event_id) DO UPDATE SET model = excluded.model,"
                " dim = excluded.dim, vector = excluded.vector, body = excluded.body",
                [(e, r, s, m, int(v.shape[0]), pack_vector(v), b) for e, r, s, m, v, b in rows])

    async def delete_embeddings(self, event_ids: list[str]) -> None:
        for part in chunks(event_ids):
            await self.db.execute(
                f"DELETE FROM ai_embeddings WHERE event_id IN ({placeholders(1, len(part))})", *part)

    async def embeddings_in_rooms(self, room_ids: list[str], model: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for part in chunks(room_ids):
            rows = await self.db.fetch(
                "SELECT event_id, room_id, stream_ordering, dim, vector FROM ai_embeddings"
                f" WHERE model = $1 AND room_id IN ({placeholders(2, len(part))})", model, *part)
            out.extend(dict(r) for r in rows)
        return out

    async def count_embeddings(self) -> int:
        return int(await self.db.fetchval("SELECT COUNT(*) FROM ai_embeddings") or 0)

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
