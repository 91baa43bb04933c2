"""Stripped room state that came with an invite or knock of a room this server is not in."""

from __future__ import annotations

from typing import Any

import orjson

from homeserver.storage.database import Conn, Database


class MembershipStateStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, c: Conn, event_id: str, room_id: str, stripped: list[dict[str, Any]]) -> None:
        await c.execute(
            "INSERT INTO membership_room_state (event_id, room_id, stripped_state) VALUES ($1,$2,$3)"
            " ON CONFLICT (event_id) DO UPDATE SET stripped_state = excluded.stripped_state",
            event_id, room_id, orjson.dumps(stripped).decode())

    async def get(self, event_id: str) -> list[dict[str, Any]] | None:
        raw = await self.db.fetchval(
            "SELECT stripped_state FROM membership_room_state WHERE event_id = $1", event_id)
        if raw is None:
            return None
        got = orjson.loads(raw)
        return [e for e in got if isinstance(e, dict)] if isinstance(got, list) else []
