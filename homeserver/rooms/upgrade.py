"""Room upgrades (client-server API §Room Upgrades, "Server behaviour").

1. check the user may send `m.room.tombstone` in the old room;
2. create the replacement room: `predecessor`, the new `room_version`, the old `type` and
   `m.federate`; for versions with additional creators, the ones named in the request;
3. copy the transferable state (and bans) into it;
4. move the local aliases (and the canonical alias, and the directory listing);
5. send the tombstone to the old room;
6. restrict the old room's power levels so nobody sends or invites any more.

Order: for v12 targets the room ID is the create event's hash, so the new room is created first
and `predecessor.event_id` is left out (the spec allows that from v12). For older targets the
room ID is chosen up front, so the tombstone goes first and `predecessor.event_id` names it.
"""

from __future__ import annotations

import asyncio
import copy
import math
from typing import Any

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_user_id
from homeserver.protocol.power_levels import (
    event_required_level,
    named_level,
    user_power_level,
)
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.rooms.service import RoomService
from homeserver.rooms.upgrade_settings import UpgradeSettings
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores

TRANSFERABLE = (
    "m.room.join_rules", "m.room.history_visibility", "m.room.guest_access", "m.room.name",
    "m.room.topic", "m.room.avatar", "m.room.encryption", "m.room.server_acl",
)
TOMBSTONE_BODY = "This room has been replaced"


def _levels_in(pl: dict[str, Any]) -> list[int]:
    """Every level named in a power-levels content (for "the highest level anything needs")."""
    out = [named_level(pl, n) for n in ("ban", "kick", "redact", "invite", "state_default",
                                        "events_default", "users_default")]
    for key in ("events", "users", "notifications"):
        v = pl.get(key)
        if isinstance(v, dict):
            out.extend(x for x in v.values() if isinstance(x, int) and not isinstance(x, bool))
    return out


def new_room_power_levels(
    old_pl: dict[str, Any], old_level: float, user_id: str, new_rv: RoomVersion,
    new_creators: set[str],
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(final power levels, bootstrap power levels or None) for the replacement room.

    v12 creators hold infinite power and must not appear in `users`. In older versions the
    upgrading user needs an explicit level: their old one, or (coming from a room where they were
    an infinite-power creator) the highest level in use. When that level is too low to copy the
    state, the room starts with a bootstrap event raising it, and the final event restores it."""
    final = copy.deepcopy(old_pl)
    users = final.get("users")
    users = dict(users) if isinstance(users, dict) else {}
    top = max(_levels_in(final) + [100])
    if new_rv.creators_infinite_pl:
        for u in new_creators:
            users.pop(u, None)
        final["users"] = users
        return final, None
    if math.isinf(old_level):
        users[user_id] = top
    final["users"] = users
    mine = users.get(user_id, named_level(final, "users_default"))
    if mine >= top:
        return final, None
    bootstrap = copy.deepcopy(final)
    bootstrap["users"] = dict(users)
    bootstrap["users"][user_id] = top
    return final, bootstrap


class RoomUpgrader:
    def __init__(self, stores: Stores, rooms: RoomService, settings: UpgradeSettings) -> None:
        self.stores = stores
        self.rooms = rooms
        self.settings = settings
        self._locks: dict[str, asyncio.Lock] = {}
        rooms.after_join = settings.on_join

    async def upgrade(self, user_id: str, room_id: str, new_version: Any,
                      additional_creators: Any = None) -> str:
        if additional_creators is not None and (
                not isinstance(additional_creators, list)
                or not all(isinstance(u, str) and is_valid_user_id(u) for u in additional_creators)):
            raise MatrixError(400, "M_INVALID_PARAM", "'additional_creators' must be a list of user IDs")
        old_rv = await self.rooms.version_of(room_id)
        lock = self._locks.setdefault(room_id, asyncio.Lock())
        try:
            async with lock:
                return await self._upgrade(user_id, room_id, old_rv, new_version, additional_creators or [])
        finally:
            if not lock.locked():
                self._locks.pop(room_id, None)

    async def _state(self, room_id: str) -> dict[tuple[str, str], StoredEvent]:
        ids = await self.stores.state.current_all(room_id)
        evs = await self.stores.events.get_many(ids.values())
        return {k: evs[e] for k, e in ids.items() if e in evs}

    async def _upgrade(self, user_id: str, room_id: str, old_rv: RoomVersion, new_version: Any,
                       extra_creators: list[str]) -> str:
        state = await self._state(room_id)
        create = state.get(("m.room.create", ""))
        if create is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown room")
        membership = state.get(("m.room.member", user_id))
        if membership is None or membership.pdu.get("content", {}).get("membership") != "join":
            raise MatrixError(403, "M_FORBIDDEN", "You are not joined to this room")
        pl_ev = state.get(("m.room.power_levels", ""))
        old_pl = dict(pl_ev.pdu.get("content", {})) if pl_ev else {}
        create_pdu = dict(create.pdu, event_id=create.event_id)
        old_level = user_power_level(old_rv, create_pdu, old_pl if pl_ev else None, user_id)
        if old_level < event_required_level(old_pl if pl_ev else None, "m.room.tombstone", True):
            raise MatrixError(403, "M_FORBIDDEN", "You may not upgrade this room")
        # Checked after the room and the permission: an unknown room or a missing permission
        # gets the same answer whatever version was asked for.
        if not isinstance(new_version, str) or new_version not in KNOWN_ROOM_VERSIONS:
            raise MatrixError(400, "M_UNSUPPORTED_ROOM_VERSION",
                              f"This server does not support room version {new_version!r}")
        new_rv = KNOWN_ROOM_VERSIONS[new_version]

        old_create = create.pdu.get("content", {})
        create_content: dict[str, Any] = {"predecessor": {"room_id": room_id}}
        for key in ("type", "m.federate"):
            if key in old_create:
                create_content[key] = old_create[key]
        new_creators = {user_id}
        if new_rv.creators_infinite_pl and extra_creators:
            create_content["additional_creators"] = list(dict.fromkeys(extra_creators))
            new_creators.update(extra_creators)
        is_public = await self.stores.userdata.room_is_public(room_id)

        if new_rv.room_id_from_create:
            new_room = await self.rooms.new_room(new_rv, create_content, user_id, is_public)
            await self._tombstone(old_rv, room_id, user_id, new_room)
        else:
            new_room_hint = self.rooms.new_room_id(new_rv)
            assert new_room_hint is not None
            tombstone = await self._tombstone(old_rv, room_id, user_id, new_room_hint)
            create_content["predecessor"]["event_id"] = tombstone.event_id
            new_room = await self.rooms.new_room(new_rv, create_content, user_id, is_public,
                                                 new_room_hint)
        await self.stores.userdata.move_aliases(room_id, new_room)
        await self._fill_new_room(new_rv, new_room, user_id, state, old_pl, old_level, new_creators)
        await self._retire_old_room(old_rv, room_id, user_id, state, old_pl, new_room, is_public)
        await self.settings.transfer(user_id, room_id, new_room)
        return new_room

    async def _tombstone(self, rv: RoomVersion, room_id: str, user_id: str, new_room: str) -> StoredEvent:
        content = {"body": TOMBSTONE_BODY, "replacement_room": new_room}
        return await self.rooms.persister.send(rv, room_id, "m.room.tombstone", user_id, content, "")

    async def _fill_new_room(
        self, rv: RoomVersion, room_id: str, user_id: str, old_state: dict[tuple[str, str], StoredEvent],
        old_pl: dict[str, Any], old_level: float, new_creators: set[str],
    ) -> None:
        send = self.rooms.persister.send
        await send(rv, room_id, "m.room.member", user_id,
                   await self.rooms._member_content(user_id, "join"), user_id)
        final_pl, bootstrap = new_room_power_levels(old_pl, old_level, user_id, rv, new_creators)
        await send(rv, room_id, "m.room.power_levels", user_id, bootstrap or final_pl, "")
        for etype in TRANSFERABLE:
            ev = old_state.get((etype, ""))
            if ev is not None and ev.pdu.get("content"):
                await send(rv, room_id, etype, user_id, dict(ev.pdu["content"]), "")
            elif etype == "m.room.guest_access":
                # Stated explicitly in the new room, as Synapse does (absent means forbidden).
                await send(rv, room_id, etype, user_id, {"guest_access": "forbidden"}, "")
        # The aliases moved with the room, so the canonical alias now belongs to the new one.
        alias_ev = old_state.get(("m.room.canonical_alias", ""))
        if alias_ev is not None and alias_ev.pdu.get("content"):
            await send(rv, room_id, "m.room.canonical_alias", user_id, dict(alias_ev.pdu["content"]), "")
        for (etype, target), ev in old_state.items():
            if etype == "m.room.member" and ev.pdu.get("content", {}).get("membership") == "ban":
                try:
                    await send(rv, room_id, "m.room.member", user_id, {"membership": "ban"}, target)
                except MatrixError:
                    continue  # e.g. a banned user with more power than the upgrader
        if bootstrap is not None:
            await send(rv, room_id, "m.room.power_levels", user_id, final_pl, "")

    async def _retire_old_room(
        self, rv: RoomVersion, room_id: str, user_id: str, old_state: dict[tuple[str, str], StoredEvent],
        old_pl: dict[str, Any], new_room: str, is_public: bool,
    ) -> None:
        """Steps 4 (the old room's side) and 6."""
        send = self.rooms.persister.send
        alias_ev = old_state.get(("m.room.canonical_alias", ""))
        if alias_ev is not None and alias_ev.pdu.get("content"):
            try:
                await send(rv, room_id, "m.room.canonical_alias", user_id, {}, "")
            except MatrixError:
                pass  # not allowed to change it: the aliases themselves have moved anyway
        if is_public:
            await self.stores.userdata.set_room_public(new_room, True)
            await self.stores.userdata.set_room_public(room_id, False)
        # Step 6: nobody below the moderators may send or invite in the old room any more.
        restricted = max(50, named_level(old_pl, "users_default") + 1)
        new_pl = dict(old_pl)
        changed = False
        for key in ("events_default", "invite"):
            if named_level(old_pl, key) < restricted:
                new_pl[key] = restricted
                changed = True
        if changed:
            try:
                await send(rv, room_id, "m.room.power_levels", user_id, new_pl, "")
            except MatrixError:
                pass  # the upgrader may send tombstones but not power levels: leave them
