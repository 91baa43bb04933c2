"""`GET /_matrix/client/v1/rooms/{roomId}/hierarchy` (client-server API §Spaces): the space
tree below a room, breadth first, as the user may see it.

A room this server knows is shown when the user is joined or invited, or could peek or join it
(world-readable history, a public or knock join rule, or restricted to a room the user is in).
Rooms this server does not know are asked of the servers their `m.space.child` event names
(`via`), over `GET /_matrix/federation/v1/hierarchy/{roomId}`; what a remote server answers is
used as it is (that server judged it for us) and its children are followed the same way.

Pagination is by position in the walk (`from` = `h<offset>`), recomputed per page: the walk is
bounded (MAX_ROOMS), so a page never costs more than one bounded walk.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.protocol.errors import MatrixError
from homeserver.rooms.hierarchy import RESTRICTED_RULES, SpaceHierarchy
from homeserver.storage.stores import Stores

log = logging.getLogger("parley.rooms")

#: The most rooms one walk visits.
MAX_ROOMS = 200
DEFAULT_LIMIT = 50
#: (server, room ID, suggested_only) -> that server's federation /hierarchy answer.
RemoteHierarchy = Callable[[str, str, bool], Awaitable[dict[str, Any]]]


class UserHierarchy:
    def __init__(self, stores: Stores, spaces: SpaceHierarchy) -> None:
        self.stores = stores
        self.spaces = spaces
        #: Set by homeserver/app.py when federation is enabled.
        self.remote: RemoteHierarchy | None = None

    async def _may_see(self, user_id: str, room_id: str, entry: dict[str, Any]) -> bool:
        mine = await self.stores.state.membership(room_id, user_id)
        if mine is not None and mine[0] in ("join", "invite"):
            return True
        rule = entry.get("join_rule")
        if entry.get("world_readable") or rule in ("public", "knock"):
            return True
        if rule in RESTRICTED_RULES:
            for allowed in entry.get("allowed_room_ids", []):
                theirs = await self.stores.state.membership(allowed, user_id)
                if theirs is not None and theirs[0] == "join":
                    return True
        return False

    async def _local(self, user_id: str, room_id: str, suggested_only: bool) -> dict[str, Any] | None:
        # Judged as the space hierarchy judges it for servers, then for this user.
        entry = await self.spaces.summary(room_id)
        if entry is None or not await self._may_see(user_id, room_id, entry):
            return None
        entry["children_state"] = await self.spaces.children_state(room_id, suggested_only)
        return entry

    async def _remote(self, room_id: str, via: list[str], suggested_only: bool
                      ) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
        """(the room with its children_state, summaries of its children) from the first `via`
        server that answers."""
        if self.remote is None:
            return None, {}
        for server in via[:3]:
            try:
                answer = await self.remote(server, room_id, suggested_only)
            except MatrixError as e:
                log.info("hierarchy of %s from %s: %s", room_id, server, e.error)
                continue
            room = answer.get("room")
            if not isinstance(room, dict) or room.get("room_id") != room_id \
                    or not isinstance(room.get("children_state"), list):
                continue
            children = {c["room_id"]: c for c in answer.get("children") or []
                        if isinstance(c, dict) and isinstance(c.get("room_id"), str)}
            return room, children
        return None, {}

    async def walk(self, user_id: str, room_id: str, suggested_only: bool, max_depth: int | None) -> list[Any]:
        root_known = await self.spaces.known(room_id)
        if root_known:
            root = await self._local(user_id, room_id, suggested_only)
            if root is None:
                raise MatrixError(403, "M_FORBIDDEN", "You cannot see this room")
            hints: dict[str, dict[str, Any]] = {}
        else:
            server = room_id.partition(":")[2]
            root, hints = await self._remote(room_id, [server] if server else [], suggested_only)
            if root is None:
                raise MatrixError(404, "M_NOT_FOUND", "Unknown room")
        rooms = [root]
        seen = {room_id}
        queue: list[tuple[dict[str, Any], int]] = [(root, 0)]
        while queue and len(rooms) < MAX_ROOMS:
            parent, depth = queue.pop(0)
            if max_depth is not None and depth >= max_depth:
                continue
            for child in parent.get("children_state", []):
                child_id = child.get("state_key") if isinstance(child, dict) else None
                content = child.get("content") if isinstance(child, dict) else None
                if not isinstance(child_id, str) or child_id in seen or not isinstance(content, dict):
                    continue
                seen.add(child_id)
                if await self.spaces.known(child_id):
                    entry = await self._local(user_id, child_id, suggested_only)
                else:
                    via = [v for v in content.get("via") or [] if isinstance(v, str)]
                    entry, more = await self._remote(child_id, via, suggested_only)
                    if entry is None and child_id in hints:
                        entry = {**hints[child_id], "children_state": []}
                    hints.update(more)
                if entry is None:
                    continue
                rooms.append(entry)
                queue.append((entry, depth + 1))
                if len(rooms) >= MAX_ROOMS:
                    break
        return rooms

    async def page(self, user_id: str, room_id: str, suggested_only: bool, max_depth: int | None,
                   limit: int | None, from_token: str | None) -> dict[str, Any]:
        offset = 0
        if from_token is not None:
            if not from_token.startswith("h") or not from_token[1:].isdigit():
                raise MatrixError(400, "M_INVALID_PARAM", "Unknown pagination token")
            offset = int(from_token[1:])
        if limit is not None and limit < 1:
            raise MatrixError(400, "M_INVALID_PARAM", "'limit' must be positive")
        if max_depth is not None and max_depth < 0:
            raise MatrixError(400, "M_INVALID_PARAM", "'max_depth' must not be negative")
        size = min(limit or DEFAULT_LIMIT, MAX_ROOMS)
        rooms = await self.walk(user_id, room_id, suggested_only, max_depth)
        out: dict[str, Any] = {"rooms": rooms[offset:offset + size]}
        if offset + size < len(rooms):
            out["next_batch"] = f"h{offset + size}"
        return out
