"""The user directory (client-server API §User directory): who a user may find by name.

By default a searcher finds the users who share a room with them and the users in public rooms
(join rule `public` or history `world_readable`); `user_directory_search_all_users` widens it to
every active local user. Nothing is cached: results follow profile and membership changes at
once. (A server with very many rooms would want a maintained table instead of the per-search
scan of public rooms.)
"""

from __future__ import annotations

from typing import Any

from homeserver.protocol.errors import MatrixError
from homeserver.storage.stores import Stores
from homeserver.storage.user_directory import like_escape

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
MAX_TERM = 512


class UserDirectoryService:
    def __init__(self, stores: Stores, search_all_users: bool) -> None:
        self.stores = stores
        self.search_all_users = search_all_users

    async def search(self, user_id: str, term: Any, limit: Any = None) -> dict[str, Any]:
        if not isinstance(term, str):
            raise MatrixError(400, "M_BAD_JSON", "'search_term' must be a string")
        if limit is None:
            limit = DEFAULT_LIMIT
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise MatrixError(400, "M_BAD_JSON", "'limit' must be a non-negative integer")
        limit = min(limit, MAX_LIMIT)
        term = term.strip().lower()[:MAX_TERM]
        if not term or limit == 0:
            return {"results": [], "limited": False}
        escaped = like_escape(term)
        # A full or partial user ID matches from the start; a bare word matches inside the
        # localpart (before the first ':', which a localpart never contains).
        id_pattern = f"{escaped}%" if term.startswith("@") else f"@%{escaped}%:%"
        name_pattern = f"%{escaped}%"
        store = self.stores.user_directory
        if self.search_all_users:
            rows = await store.search(id_pattern, name_pattern, None, limit + 1)
        else:
            # Members of public rooms (the searcher too), and the others sharing a room with
            # the searcher: a user alone in private rooms does not even find themselves.
            public = sorted(await store.public_room_ids())
            mine = await self.stores.state.rooms_for_user(user_id)
            shared = sorted(r for r, (m, _, _) in mine.items() if m == "join")
            found = {}
            if public:
                found.update({r["user_id"]: r for r in await store.search(
                    id_pattern, name_pattern, public, limit + 1)})
            if shared:
                found.update({r["user_id"]: r for r in await store.search(
                    id_pattern, name_pattern, shared, limit + 1, exclude=user_id)})
            rows = [found[u] for u in sorted(found)]
        results = []
        for r in rows[:limit]:
            item: dict[str, Any] = {"user_id": r["user_id"]}
            if r["displayname"] is not None:
                item["display_name"] = r["displayname"]
            if r["avatar_url"] is not None:
                item["avatar_url"] = r["avatar_url"]
            results.append(item)
        return {"results": results, "limited": len(rows) > limit}
