"""Room aliases and the public room directory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_room_alias, is_valid_room_id, server_name_of
from homeserver.protocol.power_levels import named_level, user_power_level
from homeserver.rooms.service import RoomService
from homeserver.storage.stores import Stores

PUBLIC_ROOMS_MAX = 500


class DirectoryService:
    def __init__(self, stores: Stores, rooms: RoomService, server_name: str) -> None:
        self.stores = stores
        self.rooms = rooms
        self.server_name = server_name
        # Aliases of other servers, over federation (wired in app.py).
        self.remote: Callable[[str], Awaitable[dict[str, Any]]] | None = None
        # Application services: asked about unknown aliases in their namespaces; exclusive
        # alias namespaces refused to everyone else (wired in app.py).
        self.ask_appservice: Callable[[str], Awaitable[bool]] | None = None
        self.alias_reserved: Callable[[str, str], bool] | None = None

    def _check_alias(self, alias: str) -> None:
        if not is_valid_room_alias(alias):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid room alias")
        if server_name_of(alias) != self.server_name:
            raise MatrixError(400, "M_INVALID_PARAM", "Room alias is not on this server")

    async def create_alias(self, user_id: str, alias: str, room_id: Any) -> None:
        self._check_alias(alias)
        if not isinstance(room_id, str) or not is_valid_room_id(room_id):
            raise MatrixError(400, "M_INVALID_PARAM", "room_id must be a room ID")
        if self.alias_reserved is not None and self.alias_reserved(alias, user_id):
            raise MatrixError(400, "M_EXCLUSIVE", "This alias is reserved by an application service")
        await self.rooms.version_of(room_id)
        membership = await self.stores.state.membership(room_id, user_id)
        if not membership or membership[0] != "join":
            raise MatrixError(403, "M_FORBIDDEN", "You must be joined to the room")
        if not await self.stores.userdata.add_alias(None, alias, room_id, user_id):
            raise MatrixError(409, "M_UNKNOWN", "Room alias already exists")

    async def resolve(self, alias: str) -> dict[str, Any]:
        if not is_valid_room_alias(alias):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid room alias")
        if self.remote is not None and server_name_of(alias) != self.server_name:
            return await self.remote(alias)
        found = await self.stores.userdata.get_alias(alias)
        if found is None and self.ask_appservice is not None and await self.ask_appservice(alias):
            found = await self.stores.userdata.get_alias(alias)
        if found is None:
            raise MatrixError(404, "M_NOT_FOUND", "Room alias not found")
        return {"room_id": found[0], "servers": [self.server_name]}

    async def delete_alias(self, user_id: str, is_admin: bool, alias: str) -> None:
        self._check_alias(alias)
        found = await self.stores.userdata.get_alias(alias)
        if found is None:
            raise MatrixError(404, "M_NOT_FOUND", "Room alias not found")
        room_id, creator = found
        if creator != user_id and not is_admin and not await self._is_room_admin(user_id, room_id):
            raise MatrixError(403, "M_FORBIDDEN", "You may not delete this alias")
        await self.stores.userdata.delete_alias(alias)
        await self._drop_from_canonical(user_id, room_id, alias)

    async def _drop_from_canonical(self, user_id: str, room_id: str, alias: str) -> None:
        """A deleted alias no longer names the room: take it out of m.room.canonical_alias,
        as the deleting user (when they may not change that state, it stays as it was)."""
        ids = await self.stores.state.current_ids(room_id, [("m.room.canonical_alias", "")])
        ev = await self.stores.events.get(ids[("m.room.canonical_alias", "")]) \
            if ("m.room.canonical_alias", "") in ids else None
        if ev is None:
            return
        content = dict(ev.pdu.get("content") or {})
        alt = content.get("alt_aliases")
        changed = False
        if content.get("alias") == alias:
            del content["alias"]
            changed = True
        if isinstance(alt, list) and alias in alt:
            content["alt_aliases"] = [a for a in alt if a != alias]
            changed = True
        if not changed:
            return
        try:
            await self.rooms.set_state(user_id, room_id, "m.room.canonical_alias", "", content)
        except MatrixError:
            pass  # best effort: the alias itself is gone either way

    async def _is_room_admin(self, user_id: str, room_id: str) -> bool:
        rv = await self.rooms.version_of(room_id)
        ids = await self.stores.state.current_ids(
            room_id, [("m.room.create", ""), ("m.room.power_levels", "")]
        )
        evs = await self.stores.events.get_many(ids.values())
        create = evs.get(ids.get(("m.room.create", ""), ""))
        pl = evs.get(ids.get(("m.room.power_levels", ""), ""))
        if create is None:
            return False
        pl_content = pl.pdu.get("content") if pl else None
        return user_power_level(rv, create.pdu, pl_content, user_id) >= named_level(pl_content, "state_default")

    async def aliases(self, room_id: str) -> list[str]:
        return await self.stores.userdata.aliases_for_room(room_id)

    async def set_visibility(self, user_id: str, room_id: str, visibility: Any) -> None:
        if visibility not in ("public", "private"):
            raise MatrixError(400, "M_INVALID_PARAM", "visibility must be 'public' or 'private'")
        await self.rooms.version_of(room_id)
        if not await self._is_room_admin(user_id, room_id):
            raise MatrixError(403, "M_FORBIDDEN", "You may not change this room's visibility")
        await self.stores.userdata.set_room_public(room_id, visibility == "public")

    async def get_visibility(self, room_id: str) -> str:
        await self.rooms.version_of(room_id)
        return "public" if await self.stores.userdata.room_is_public(room_id) else "private"

    async def public_rooms_query(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /publicRooms` (client and federation): the body's limit, since and filter."""
        limit = body.get("limit")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise MatrixError(400, "M_BAD_JSON", "'limit' must be a non-negative integer")
        since = body.get("since")
        if since is not None and not isinstance(since, str):
            raise MatrixError(400, "M_BAD_JSON", "'since' must be a string")
        flt = body.get("filter") or {}
        if not isinstance(flt, dict):
            raise MatrixError(400, "M_BAD_JSON", "'filter' must be an object")
        term = flt.get("generic_search_term")
        if term is not None and not isinstance(term, str):
            raise MatrixError(400, "M_BAD_JSON", "'generic_search_term' must be a string")
        return await self.public_rooms(limit or None, since, term)

    async def public_rooms(self, limit: int | None, since: str | None, term: str | None) -> dict[str, Any]:
        room_ids = await self.stores.userdata.public_rooms()
        entries = []
        for room_id in room_ids:
            entry = await self._entry(room_id)
            if term:
                hay = " ".join(str(entry.get(k, "")) for k in ("name", "topic", "canonical_alias")).lower()
                if term.lower() not in hay:
                    continue
            entries.append(entry)
        entries.sort(key=lambda e: (-e["num_joined_members"], e["room_id"]))
        offset = 0
        if since:
            if not since.startswith("p") or not (since[1:].isascii() and since[1:].isdigit()):
                raise MatrixError(400, "M_INVALID_PARAM", "Invalid since token")
            offset = int(since[1:])
        limit = min(limit or PUBLIC_ROOMS_MAX, PUBLIC_ROOMS_MAX)
        chunk = entries[offset:offset + limit]
        out: dict[str, Any] = {"chunk": chunk, "total_room_count_estimate": len(entries)}
        if offset + limit < len(entries):
            out["next_batch"] = f"p{offset + limit}"
        if offset > 0:
            out["prev_batch"] = f"p{max(0, offset - limit)}"
        return out

    async def summary(self, room_id: str) -> dict[str, Any]:
        """A room's public-rooms chunk (also what space hierarchies show of it)."""
        return await self._entry(room_id)

    async def _entry(self, room_id: str) -> dict[str, Any]:
        keys = [(t, "") for t in ("m.room.name", "m.room.topic", "m.room.canonical_alias",
                                  "m.room.avatar", "m.room.join_rules", "m.room.history_visibility",
                                  "m.room.guest_access", "m.room.create")]
        ids = await self.stores.state.current_ids(room_id, keys)
        evs = await self.stores.events.get_many(ids.values())

        def content(t: str) -> dict[str, Any]:
            eid = ids.get((t, ""))
            ev = evs.get(eid) if eid else None
            return ev.pdu.get("content", {}) if ev else {}

        joined = await self.stores.state.members(room_id, ("join",))
        entry: dict[str, Any] = {
            "room_id": room_id,
            "num_joined_members": len(joined),
            "world_readable": content("m.room.history_visibility").get("history_visibility") == "world_readable",
            "guest_can_join": content("m.room.guest_access").get("guest_access") == "can_join",
            "join_rule": content("m.room.join_rules").get("join_rule", "invite"),
        }
        for key, t, field in (("name", "m.room.name", "name"), ("topic", "m.room.topic", "topic"),
                              ("canonical_alias", "m.room.canonical_alias", "alias"),
                              ("avatar_url", "m.room.avatar", "url")):
            v = content(t).get(field)
            if isinstance(v, str):
                entry[key] = v
        rtype = content("m.room.create").get("type")
        if isinstance(rtype, str):
            entry["room_type"] = rtype
        return entry
