"""Reads behind the user directory: which rooms are public, which users match a search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from homeserver.storage.database import Database, chunks, placeholders


def like_escape(term: str) -> str:
    """The term with LIKE's own wildcards escaped (for LIKE ... ESCAPE '\\')."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class UserDirectoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def public_room_ids(self) -> set[str]:
        """Rooms anyone may join or read: join rule `public` or history `world_readable`."""
        rows = await self.db.fetch(
            "SELECT cs.room_id, cs.type, e.json FROM current_state cs"
            " JOIN events e ON e.event_id = cs.event_id"
            " WHERE cs.type IN ('m.room.join_rules', 'm.room.history_visibility')"
            " AND cs.state_key = ''"
        )
        out: set[str] = set()
        for r in rows:
            content = orjson.loads(r["json"]).get("content")
            if not isinstance(content, dict):
                continue
            if (r["type"] == "m.room.join_rules" and content.get("join_rule") == "public") or (
                    r["type"] == "m.room.history_visibility"
                    and content.get("history_visibility") == "world_readable"):
                out.add(r["room_id"])
        return out

    async def search(self, id_pattern: str, name_pattern: str, room_ids: Sequence[str] | None,
                     limit: int, exclude: str = "") -> list[dict[str, Any]]:
        """Active users other than `exclude` whose lower-cased ID matches `id_pattern` or display
        name matches `name_pattern` (LIKE patterns), at most `limit`, ordered by user ID. With
        `room_ids`, only users joined to one of those rooms."""
        base = (
            "SELECT u.user_id, u.displayname, u.avatar_url FROM users u WHERE u.deactivated = FALSE"
            " AND u.user_id != $4"
            " AND (LOWER(u.user_id) LIKE $1 ESCAPE '\\' OR LOWER(u.displayname) LIKE $2 ESCAPE '\\')"
        )
        if room_ids is None:
            return await self.db.fetch(base + " ORDER BY u.user_id LIMIT $3", id_pattern,
                                       name_pattern, limit, exclude)
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunks(list(room_ids)):
            rows = await self.db.fetch(
                base + " AND EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = u.user_id"
                f" AND m.membership = 'join' AND m.room_id IN ({placeholders(5, len(chunk))}))"
                " ORDER BY u.user_id LIMIT $3",
                id_pattern, name_pattern, limit, exclude, *chunk,
            )
            for r in rows:
                found[r["user_id"]] = r
        return [found[u] for u in sorted(found)][:limit]
