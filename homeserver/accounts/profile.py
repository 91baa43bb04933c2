"""Profiles: displayname and avatar_url, mirrored into every joined room's member event."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import server_name_of
from homeserver.rooms.service import RoomService
from homeserver.storage.stores import Stores

PROFILE_FIELDS = ("displayname", "avatar_url")
MAX_FIELD_LENGTH = 1024


class ProfileService:
    def __init__(self, stores: Stores, rooms: RoomService) -> None:
        self.stores = stores
        self.rooms = rooms
        # Profiles of other servers' users, over federation (wired in app.py).
        self.remote: Callable[[str], Awaitable[dict[str, Any]]] | None = None
        # Asks the application service whose namespace holds an unknown user (wired in app.py).
        self.ask_appservice: Callable[[str], Awaitable[bool]] | None = None

    async def get(self, user_id: str) -> dict[str, Any]:
        if self.remote is not None and server_name_of(user_id) != self.rooms.server_name:
            return await self.remote(user_id)
        user = await self.stores.accounts.get_user(user_id)
        if user is None and self.ask_appservice is not None and await self.ask_appservice(user_id):
            user = await self.stores.accounts.get_user(user_id)
        if user is None:
            raise MatrixError(404, "M_NOT_FOUND", "Profile not found")
        out = {}
        for f in PROFILE_FIELDS:
            if user[f] is not None:
                out[f] = user[f]
        return out

    async def set(self, user_id: str, field: str, value: Any) -> None:
        if field not in PROFILE_FIELDS:
            raise MatrixError(400, "M_INVALID_PARAM", f"Unsupported profile field {field!r}")
        if value is not None and not isinstance(value, str):
            raise MatrixError(400, "M_BAD_JSON", f"'{field}' must be a string")
        if value is not None and len(value) > MAX_FIELD_LENGTH:
            raise MatrixError(400, "M_TOO_LARGE", f"'{field}' is too long")
        # avatar_url should be an mxc:// URI, but Synapse stores any string and clients and
        # SyTest rely on that; clients only fetch mxc:// ones.
        await self.stores.accounts.set_profile_field(user_id, field, value)
        rooms = await self.stores.state.rooms_for_user(user_id)
        for room_id, (membership, event_id, _) in rooms.items():
            if membership != "join":
                continue
            ev = await self.stores.events.get(event_id)
            content = dict(ev.pdu.get("content", {})) if ev else {"membership": "join"}
            if value is None:
                content.pop(field, None)
            else:
                content[field] = value
            rv = await self.rooms.version_of(room_id)
            try:
                await self.rooms.persister.send(rv, room_id, "m.room.member", user_id, content, user_id)
            except MatrixError:
                continue  # e.g. a room that no longer lets us send; the profile itself is set
