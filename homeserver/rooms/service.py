"""Rooms: creation, membership, sending messages and state, redaction."""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.events.persister import EventPersister, TxnInfo, redaction_target
from homeserver.protocol.errors import AuthError, MatrixError
from homeserver.protocol.ids import is_valid_room_alias, is_valid_user_id
from homeserver.protocol.power_levels import named_level, user_power_level
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.rooms.restricted import restricted_join_authoriser
from homeserver.rooms.serialize import EventSerializer
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores

PRESETS = ("private_chat", "trusted_private_chat", "public_chat")
MEMBERSHIP_ACTIONS = ("invite", "join", "leave", "ban", "knock")


def _require_str(body: dict[str, Any], key: str, *, optional: bool = True, max_len: int = 65536) -> str | None:
    v = body.get(key)
    if v is None:
        if optional:
            return None
        raise MatrixError(400, "M_MISSING_PARAM", f"Missing '{key}'")
    if not isinstance(v, str):
        raise MatrixError(400, "M_BAD_JSON", f"'{key}' must be a string")
    if len(v) > max_len:
        raise MatrixError(400, "M_BAD_JSON", f"'{key}' is too long")
    return v


class RoomService:
    def __init__(self, stores: Stores, persister: EventPersister, serializer: EventSerializer,
                 server_name: str, default_room_version: str) -> None:
        self.stores = stores
        self.persister = persister
        self.serializer = serializer
        self.server_name = server_name
        self.default_room_version = default_room_version
        # Called after a user's join (room upgrades carry the user's settings over).
        self.after_join: Callable[[str, str], Awaitable[None]] | None = None

    async def version_of(self, room_id: str) -> RoomVersion:
        rv = await self.serializer.room_version(room_id)
        if rv is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown room")
        return rv

    # ------------------------------------------------------------------ create

    async def create_room(self, user_id: str, body: dict[str, Any]) -> str:
        preset = body.get("preset")
        visibility = body.get("visibility", "private")
        if visibility not in ("public", "private"):
            raise MatrixError(400, "M_INVALID_PARAM", "visibility must be 'public' or 'private'")
        if preset is None:
            preset = "public_chat" if visibility == "public" else "private_chat"
        if preset not in PRESETS:
            raise MatrixError(400, "M_INVALID_PARAM", f"Unknown preset {preset!r}")
        version = body.get("room_version", self.default_room_version)
        if not isinstance(version, str):  # e.g. 1 for "1": a type error, not an unknown version
            raise MatrixError(400, "M_BAD_JSON", "'room_version' must be a string")
        if version not in KNOWN_ROOM_VERSIONS:
            raise MatrixError(400, "M_UNSUPPORTED_ROOM_VERSION", f"Unsupported room version {version!r}")
        rv = KNOWN_ROOM_VERSIONS[version]
        name = _require_str(body, "name", max_len=255)
        topic = _require_str(body, "topic", max_len=4096)
        alias_name = _require_str(body, "room_alias_name", max_len=200)
        is_direct = body.get("is_direct", False)
        if not isinstance(is_direct, bool):
            raise MatrixError(400, "M_BAD_JSON", "'is_direct' must be a boolean")
        invites = body.get("invite", [])
        if not isinstance(invites, list) or not all(isinstance(u, str) and is_valid_user_id(u) for u in invites):
            raise MatrixError(400, "M_INVALID_PARAM", "'invite' must be a list of user IDs")
        initial_state = body.get("initial_state", [])
        if not isinstance(initial_state, list):
            raise MatrixError(400, "M_BAD_JSON", "'initial_state' must be a list")
        for item in initial_state:
            if (not isinstance(item, dict) or not isinstance(item.get("type"), str)
                    or not isinstance(item.get("content"), dict)
                    or not isinstance(item.get("state_key", ""), str)):
                raise MatrixError(400, "M_BAD_JSON", "initial_state entries need type and content")
            if "\x00" in item["type"] + item.get("state_key", "") or len(item["type"].encode()) > 255 \
                    or len(item.get("state_key", "").encode()) > 255:
                raise MatrixError(400, "M_INVALID_PARAM", "Invalid initial_state type or state_key")
        creation_content = body.get("creation_content", {})
        if not isinstance(creation_content, dict):
            raise MatrixError(400, "M_BAD_JSON", "'creation_content' must be an object")
        pl_override = body.get("power_level_content_override", {})
        if not isinstance(pl_override, dict):
            raise MatrixError(400, "M_BAD_JSON", "'power_level_content_override' must be an object")

        alias: str | None = None
        if alias_name is not None:
            alias = f"#{alias_name}:{self.server_name}"
            if ":" in alias_name or not is_valid_room_alias(alias):
                raise MatrixError(400, "M_INVALID_PARAM", "Invalid room_alias_name")
            if await self.stores.userdata.get_alias(alias) is not None:
                raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken")

        create_content = {k: v for k, v in creation_content.items() if k != "room_version"}
        room_id = await self.new_room(rv, create_content, user_id, visibility == "public")

        async def send_state(etype: str, content: dict[str, Any], state_key: str = "") -> StoredEvent:
            return await self.persister.send(rv, room_id, etype, user_id, content, state_key)

        await send_state("m.room.member", await self._member_content(user_id, "join"), user_id)

        users: dict[str, int] = {} if rv.creators_infinite_pl else {user_id: 100}
        if preset == "trusted_private_chat":
            for invitee in invites:
                users[invitee] = 100
        pl: dict[str, Any] = {
            "users": users,
            "users_default": 0,
            "events": {
                "m.room.name": 50,
                "m.room.power_levels": 100,
                "m.room.history_visibility": 100,
                "m.room.canonical_alias": 50,
                "m.room.avatar": 50,
                "m.room.tombstone": 150 if rv.creators_infinite_pl else 100,
                "m.room.server_acl": 100,
                "m.room.encryption": 100,
            },
            "events_default": 0,
            "state_default": 50,
            "ban": 50,
            "kick": 50,
            "redact": 50,
            "invite": 0 if preset != "public_chat" else 50,
        }
        for k, v in pl_override.items():
            pl[k] = v
        if rv.creators_infinite_pl and isinstance(pl.get("users"), dict):
            pl["users"] = {u: lvl for u, lvl in pl["users"].items() if u != user_id}
        await send_state("m.room.power_levels", pl)
        if alias is not None:
            await send_state("m.room.canonical_alias", {"alias": alias})
        join_rule = "public" if preset == "public_chat" else "invite"
        await send_state("m.room.join_rules", {"join_rule": join_rule})
        await send_state("m.room.history_visibility", {"history_visibility": "shared"})
        if preset != "public_chat":  # as Synapse: private presets let guests join
            await send_state("m.room.guest_access", {"guest_access": "can_join"})
        for item in initial_state:
            await send_state(item["type"], item["content"], item.get("state_key", ""))
        if name is not None:
            await send_state("m.room.name", {"name": name})
        if topic is not None:
            await send_state(
                "m.room.topic",
                {"topic": topic, "m.topic": [{"mimetype": "text/plain", "body": topic}]},
            )
        if alias is not None:
            if not await self.stores.userdata.add_alias(None, alias, room_id, user_id):
                raise MatrixError(400, "M_ROOM_IN_USE", "Room alias already taken")
        for invitee in invites:
            content = await self._member_content(invitee, "invite")
            if is_direct:
                content["is_direct"] = True
            await send_state("m.room.member", content, invitee)
        return room_id

    def new_room_id(self, rv: RoomVersion) -> str | None:
        """A fresh room ID for versions that do not derive it from the create event."""
        if rv.room_id_from_create:
            return None
        return f"!{secrets.token_urlsafe(18)}:{self.server_name}"

    async def new_room(self, rv: RoomVersion, create_content: dict[str, Any], user_id: str,
                       is_public: bool, room_id_hint: str | None = None) -> str:
        """Persist the create event of a new room and register the room; returns its ID."""
        create_content = dict(create_content)
        create_content["room_version"] = rv.identifier
        if rv.create_has_creator:
            create_content["creator"] = user_id
        if room_id_hint is None:
            room_id_hint = self.new_room_id(rv)
        create_ev = await self.persister.create_room_event(rv, create_content, user_id, room_id_hint)
        room_id = create_ev.room_id
        async with self.stores.db.transaction() as c:
            await self.stores.userdata.add_room(
                c, room_id, rv.identifier, user_id, is_public, int(time.time() * 1000)
            )
        self.serializer._versions[room_id] = rv
        return room_id

    async def _member_content(self, user_id: str, membership: str) -> dict[str, Any]:
        content: dict[str, Any] = {"membership": membership}
        user = await self.stores.accounts.get_user(user_id)
        if user is not None:
            if user["displayname"] is not None:
                content["displayname"] = user["displayname"]
            if user["avatar_url"] is not None:
                content["avatar_url"] = user["avatar_url"]
        return content

    # ------------------------------------------------------------------ membership

    async def resolve_room(self, room_id_or_alias: str) -> str:
        if room_id_or_alias.startswith("#"):
            found = await self.stores.userdata.get_alias(room_id_or_alias)
            if found is None:
                raise MatrixError(404, "M_NOT_FOUND", "Room alias not found")
            return found[0]
        if not room_id_or_alias.startswith("!"):
            raise MatrixError(400, "M_INVALID_PARAM", "Expected a room ID or alias")
        return room_id_or_alias

    async def update_membership(
        self, sender: str, room_id: str, target: str, membership: str,
        reason: str | None = None, extra: dict[str, Any] | None = None,
    ) -> StoredEvent:
        if not is_valid_user_id(target):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid user ID")
        rv = await self.version_of(room_id)
        current = await self.stores.state.membership(room_id, target)
        current_membership = current[0] if current else "leave"
        if membership == "join" and current_membership == "join":
            ev = await self.stores.events.get(current[1]) if current else None
            if ev is not None:
                return ev
        if sender != target and membership == "leave" and current_membership not in ("join", "invite", "knock", "ban"):
            raise MatrixError(403, "M_FORBIDDEN", "The user is not in the room")
        if membership == "join" and sender == target and await self.stores.accounts.is_guest(target):
            await self._check_guest_can_join(room_id)
        if membership in ("join", "invite", "knock"):
            content = await self._member_content(target, membership)
        else:
            content = {"membership": membership}
        if reason is not None:
            content["reason"] = reason
        if extra:
            content.update(extra)
        if membership == "join" and sender == target and current_membership not in ("join", "invite"):
            via = await restricted_join_authoriser(self.stores, self.server_name, rv, room_id, target)
            if via is not None:
                content["join_authorised_via_users_server"] = via
        ev = await self.persister.send(rv, room_id, "m.room.member", sender, content, target)
        if membership == "join" and current_membership != "join" and self.after_join is not None:
            await self.after_join(target, room_id)
        return ev

    async def _guest_access(self, room_id: str) -> str | None:
        ids = await self.stores.state.current_ids(room_id, [("m.room.guest_access", "")])
        ev = await self.stores.events.get(ids[("m.room.guest_access", "")]) \
            if ("m.room.guest_access", "") in ids else None
        value = ev.pdu.get("content", {}).get("guest_access") if ev else None
        return value if isinstance(value, str) else None

    async def _check_guest_can_join(self, room_id: str) -> None:
        """Guests join only rooms whose m.room.guest_access is can_join (§Guest access)."""
        if await self._guest_access(room_id) != "can_join":
            raise MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN", "Guests may not join this room")

    async def remove_guests(self, rv: RoomVersion, room_id: str) -> None:
        """After guest access was revoked, every joined guest leaves (§Guest access)."""
        if await self._guest_access(room_id) == "can_join":
            return
        joined = await self.stores.state.members(room_id, ("join",))
        for guest in sorted(await self.stores.accounts.guests_among(joined)):
            try:
                await self.persister.send(rv, room_id, "m.room.member", guest, {"membership": "leave"}, guest)
            except MatrixError:
                continue

    async def knock(self, user_id: str, room_id_or_alias: str, reason: str | None) -> str:
        """POST /knock: only rooms this server takes part in (no federation yet)."""
        room_id = await self.resolve_room(room_id_or_alias)
        await self.version_of(room_id)
        await self.update_membership(user_id, room_id, user_id, "knock", reason)
        return room_id

    async def invite(
        self, sender: str, room_id: str, target: str, reason: str | None, extra: dict[str, Any],
    ) -> None:
        """Invite `target`; inviting an already-invited user changes nothing, but only after the
        sender has been checked as one who may invite (else the answer is a membership oracle)."""
        if not is_valid_user_id(target):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid user ID")
        rv = await self.version_of(room_id)
        current = await self.stores.state.membership(room_id, target)
        if current is None or current[0] != "invite":
            await self.update_membership(sender, room_id, target, "invite", reason, extra)
            return
        mine = await self.stores.state.membership(room_id, sender)
        if mine is None or mine[0] != "join":
            raise MatrixError(403, "M_FORBIDDEN", "You are not in this room")
        ids = await self.stores.state.current_ids(
            room_id, [("m.room.create", ""), ("m.room.power_levels", "")])
        evs = await self.stores.events.get_many(ids.values())
        create = evs.get(ids.get(("m.room.create", ""), ""))
        pl = evs.get(ids.get(("m.room.power_levels", ""), ""))
        pl_content = pl.pdu.get("content") if pl else None
        if create is None or user_power_level(rv, _pdu(create), pl_content, sender) \
                < named_level(pl_content, "invite"):
            raise MatrixError(403, "M_FORBIDDEN", "You may not invite users to this room")

    async def forget(self, user_id: str, room_id: str) -> None:
        current = await self.stores.state.membership(room_id, user_id)
        if current is not None and current[0] in ("join", "invite", "knock"):
            raise MatrixError(400, "M_UNKNOWN", "The user is still in the room; leave it first")
        await self.stores.state.forget(room_id, user_id)

    # ------------------------------------------------------------------ sending

    async def send_event(
        self, user_id: str, device_id: str, room_id: str, event_type: str,
        content: dict[str, Any], txn_id: str | None, txn_key: str | None,
    ) -> StoredEvent:
        """Send a message event; without a transaction ID (legacy POST) it is not idempotent."""
        rv = await self.version_of(room_id)
        _check_tombstone(room_id, event_type, content)
        check = None
        if event_type == "m.room.redaction":
            check = self._redaction_check(rv, room_id, user_id)
        txn = TxnInfo(device_id, txn_key, txn_id) if txn_id is not None and txn_key is not None else None
        return await self.persister.send(rv, room_id, event_type, user_id, content, None, txn, check)

    def _redaction_check(self, rv: RoomVersion, room_id: str, user_id: str) -> Any:
        async def check(pdu: dict[str, Any], auth_state: dict[tuple[str, str], StoredEvent]) -> None:
            target_id = redaction_target(pdu)
            if target_id is None:
                raise MatrixError(400, "M_BAD_JSON", "Redaction needs 'redacts'")
            target = await self.stores.events.get(target_id)
            if target is None:
                raise MatrixError(404, "M_NOT_FOUND", "Event not found in this room")
            if target.room_id != room_id:
                raise MatrixError(400, "M_INVALID_PARAM", "The event belongs to another room")
            if target.sender == user_id:
                return
            create = auth_state[("m.room.create", "")]
            pl = auth_state.get(("m.room.power_levels", ""))
            pl_content = pl.pdu.get("content") if pl else None
            mine = user_power_level(rv, _pdu(create), pl_content, user_id)
            if mine < named_level(pl_content, "redact"):
                raise MatrixError(403, "M_FORBIDDEN", "You may not redact other users' events")
        return check

    async def redact(
        self, user_id: str, device_id: str, room_id: str, event_id: str,
        reason: str | None, txn_id: str, txn_key: str,
    ) -> StoredEvent:
        content: dict[str, Any] = {"redacts": event_id}
        if reason is not None:
            content["reason"] = reason
        rv = await self.version_of(room_id)
        return await self.persister.send(
            rv, room_id, "m.room.redaction", user_id, content, None,
            TxnInfo(device_id, txn_key, txn_id), self._redaction_check(rv, room_id, user_id),
        )

    async def set_state(
        self, user_id: str, room_id: str, event_type: str, state_key: str, content: dict[str, Any]
    ) -> StoredEvent:
        rv = await self.version_of(room_id)
        # An identical state event changes nothing: answer with the existing one.
        current = await self.stores.state.current_ids(room_id, [(event_type, state_key)])
        existing_id = current.get((event_type, state_key))
        if existing_id is not None:
            existing = await self.stores.events.get(existing_id)
            if existing is not None and existing.sender == user_id and existing.pdu.get("content") == content \
                    and not existing.redacted_by:
                return existing
        _check_tombstone(room_id, event_type, content)
        if event_type == "m.room.canonical_alias":
            await self._check_canonical_alias(room_id, content)
        if event_type == "m.room.member":
            membership = content.get("membership")
            if not isinstance(membership, str):
                raise MatrixError(400, "M_BAD_JSON", "m.room.member needs a membership")
            if membership == "join" and state_key == user_id and await self.stores.accounts.is_guest(user_id):
                await self._check_guest_can_join(room_id)
        ev = await self.persister.send(rv, room_id, event_type, user_id, content, state_key)
        if event_type == "m.room.guest_access" and state_key == "":
            await self.remove_guests(rv, room_id)
        return ev

    async def _check_canonical_alias(self, room_id: str, content: dict[str, Any]) -> None:
        aliases = []
        if "alias" in content:
            aliases.append(content["alias"])
        alt = content.get("alt_aliases", [])
        if not isinstance(alt, list):
            raise MatrixError(400, "M_BAD_JSON", "alt_aliases must be a list")
        aliases.extend(alt)
        for a in aliases:
            if not isinstance(a, str) or not is_valid_room_alias(a):
                raise MatrixError(400, "M_INVALID_PARAM", f"Invalid alias {a!r}")
            found = await self.stores.userdata.get_alias(a)
            if found is None or found[0] != room_id:
                raise MatrixError(400, "M_BAD_ALIAS", f"Alias {a} does not point to this room")


def _check_tombstone(room_id: str, event_type: str, content: dict[str, Any]) -> None:
    if event_type == "m.room.tombstone" and content.get("replacement_room") == room_id:
        raise MatrixError(400, "M_BAD_JSON", "A room cannot be replaced by itself")


def _pdu(ev: StoredEvent) -> dict[str, Any]:
    d = dict(ev.pdu)
    d["event_id"] = ev.event_id
    return d


__all__ = ["RoomService", "AuthError", "MEMBERSHIP_ACTIONS"]
