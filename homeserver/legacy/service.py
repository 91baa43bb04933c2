"""The pre-/sync APIs that bots and older clients still call: `GET /initialSync`,
`GET /rooms/{roomId}/initialSync` and the `GET /events` stream (Client-Server API, deprecated
sections "Syncing (legacy)").

They are views over the sync service's public `sync()` call: an initial sync reshaped into the
old room list, and an incremental sync flattened into one chunk of events.
"""

from __future__ import annotations

from typing import Any

from homeserver.ephemeral.presence import PresenceManager
from homeserver.protocol.filters import RoomEventFilter, SyncFilter
from homeserver.rooms.reads import RoomReader
from homeserver.rooms.serialize import EventSerializer
from homeserver.storage.stores import Stores
from homeserver.sync.service import SyncService
from homeserver.sync.token import SyncToken

# /events catches up on everything since `from` in one response, up to this many per room.
STREAM_ROOM_LIMIT = 1000
DEFAULT_INITIAL_LIMIT = 10


def _events(section: dict[str, Any], key: str) -> list[dict[str, Any]]:
    block = section.get(key)
    return list(block.get("events", [])) if isinstance(block, dict) else []


def v1_event(ev: dict[str, Any]) -> dict[str, Any]:
    """The pre-r0 event shape these APIs answered with: `user_id` beside `sender`, and the
    unsigned `age`, `prev_content` and `replaces_state` also at the top level."""
    if "sender" not in ev:
        return ev
    out = dict(ev)
    out["user_id"] = ev["sender"]
    unsigned = ev.get("unsigned") or {}
    for key in ("age", "prev_content", "replaces_state", "redacted_because"):
        if key in unsigned:
            out[key] = unsigned[key]
    return out


def _v1_all(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v1_event(e) for e in evs]


def _visibility(state: list[dict[str, Any]]) -> str:
    for ev in state:
        if ev.get("type") == "m.room.join_rules" and ev.get("state_key") == "":
            return "public" if ev.get("content", {}).get("join_rule") == "public" else "private"
    return "private"


class LegacySyncService:
    def __init__(self, sync: SyncService, stores: Stores, serializer: EventSerializer,
                 presence: PresenceManager, reader: RoomReader) -> None:
        self.sync = sync
        self.stores = stores
        self.serializer = serializer
        self.presence = presence
        self.reader = reader

    def _presence_of(self, user_ids: set[str]) -> list[dict[str, Any]]:
        """Current presence of these users, as m.presence events (content carries user_id)."""
        if not self.presence.enabled:
            return []
        return [{"type": "m.presence", "sender": u, "content": {**self.presence.get(u), "user_id": u}}
                for u in sorted(user_ids)]

    async def _invite_events(self, user_id: str, room_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The full invite member events (the old API shows the event, not stripped state)."""
        memberships = await self.stores.state.rooms_for_user(user_id)
        ids = {memberships[r][1]: r for r in room_ids if r in memberships}
        evs = await self.stores.events.get_many(list(ids))
        found = [evs[i] for i in ids if i in evs]
        return {ev["room_id"]: ev for ev in await self.serializer.serialize(found)}

    def current_token(self) -> SyncToken:
        return self.sync.current_token()

    async def _full(self, user_id: str, device_id: str, limit: int, archived: bool,
                    room_id: str | None = None) -> dict[str, Any]:
        flt = SyncFilter(
            timeline=RoomEventFilter(limit=limit), include_leave=archived,
            rooms=(room_id,) if room_id is not None else None,
        )
        return await self.sync.sync(user_id, device_id, None, flt, False, 0)

    @staticmethod
    def _room_info(room_id: str, membership: str, section: dict[str, Any], end: str) -> dict[str, Any]:
        timeline = section.get("timeline", {})
        chunk = list(timeline.get("events", []))
        state = _events(section, "state")
        # The old API's state is the room's state at the end of `messages`, timeline included.
        keyed = {(e["type"], e.get("state_key")): e for e in state}
        for ev in chunk:
            if "state_key" in ev:
                keyed[(ev["type"], ev["state_key"])] = ev
        full_state = list(keyed.values())
        return {
            "room_id": room_id,
            "membership": membership,
            "messages": {"chunk": _v1_all(chunk), "start": timeline.get("prev_batch", end), "end": end},
            "state": _v1_all(full_state),
            "visibility": _visibility(full_state),
            "account_data": _events(section, "account_data"),
        }

    @staticmethod
    def _joined_members(info: dict[str, Any]) -> set[str]:
        return {e["state_key"] for e in info.get("state", [])
                if e.get("type") == "m.room.member" and e.get("content", {}).get("membership") == "join"}

    async def initial_sync(self, user_id: str, device_id: str, limit: int | None,
                           archived: bool) -> dict[str, Any]:
        """`GET /initialSync`: every room of the user with recent messages and current state."""
        resp = await self._full(user_id, device_id, DEFAULT_INITIAL_LIMIT if limit is None else limit,
                                archived)
        end = resp["next_batch"]
        rooms: list[dict[str, Any]] = []
        receipts: list[dict[str, Any]] = []
        sections = resp.get("rooms", {})
        for room_id, section in sections.get("join", {}).items():
            rooms.append(self._room_info(room_id, "join", section, end))
            for ev in _events(section, "ephemeral"):
                if ev.get("type") == "m.receipt":
                    receipts.append({**ev, "room_id": room_id})
        for room_id, section in sections.get("leave", {}).items():
            membership = "leave"
            for ev in reversed(section.get("timeline", {}).get("events", [])):
                if ev.get("type") == "m.room.member" and ev.get("state_key") == user_id:
                    membership = ev.get("content", {}).get("membership", "leave")
                    break
            rooms.append(self._room_info(room_id, membership, section, end))
        invites = await self._invite_events(user_id, list(sections.get("invite", {})))
        for room_id, section in sections.get("invite", {}).items():
            info: dict[str, Any] = {"room_id": room_id, "membership": "invite",
                                    "invite_state": _events(section, "invite_state")}
            if room_id in invites:
                info["invite"] = v1_event(invites[room_id])
            rooms.append(info)
        people = {user_id}
        for info in rooms:
            if info["membership"] == "join":
                people |= self._joined_members(info)
        return {
            "end": end,
            "rooms": rooms,
            "presence": self._presence_of(people),
            # Push rules have their own API here; this list is the user's own account data.
            "account_data": [e for e in _events(resp, "account_data") if e.get("type") != "m.push_rules"],
            "receipts": receipts,
        }

    async def room_initial_sync(self, user_id: str, device_id: str, room_id: str,
                                limit: int | None) -> dict[str, Any]:
        """`GET /rooms/{roomId}/initialSync`: one room the user is or was a member of."""
        resp = await self._full(user_id, device_id, DEFAULT_INITIAL_LIMIT if limit is None else limit,
                                True, room_id)
        sections = resp.get("rooms", {})
        end = resp["next_batch"]
        if room_id in sections.get("join", {}):
            section, membership = sections["join"][room_id], "join"
        elif room_id in sections.get("leave", {}):
            section, membership = sections["leave"][room_id], "leave"
            for ev in _events(section, "state") + section.get("timeline", {}).get("events", []):
                if ev.get("type") == "m.room.member" and ev.get("state_key") == user_id:
                    membership = ev.get("content", {}).get("membership", "leave")
        else:
            return await self._peek(user_id, device_id, room_id, limit, end)
        info = self._room_info(room_id, membership, section, end)
        info["presence"] = self._presence_of(self._joined_members(info)) if membership == "join" else []
        info["receipts"] = [{**e, "room_id": room_id} for e in _events(section, "ephemeral")
                            if e.get("type") == "m.receipt"]
        return info

    async def _first_events(self, user_id: str, device_id: str, since: SyncToken,
                            limit: int) -> tuple[list[dict[str, Any]], str] | None:
        """With a `limit`, /events pages forward: the first `limit` room events after `since`
        and a token just after them. None when fewer exist (the caller then syncs to now)."""
        now = self.current_token().stream
        after = min(since.stream, now)
        rooms = await self.stores.state.rooms_for_user(user_id)
        found = []
        for rid, (membership, _, _) in rooms.items():
            if membership == "join":
                found += await self.stores.events.room_events_between(rid, after, now, limit + 1, False)
        if len(found) <= limit:
            return None
        found.sort(key=lambda e: e.stream_ordering)
        page = found[:limit]
        end = SyncToken(page[-1].stream_ordering, since.typing, since.presence)
        return await self.serializer.serialize(page, (user_id, device_id)), end.encode()

    async def _peek(self, user_id: str, device_id: str, room_id: str, limit: int | None,
                    end: str) -> dict[str, Any]:
        """A room the user never joined: readable only if its history is (world_readable);
        the room reader decides, and answers 403 otherwise."""
        state = await self.reader.room_state(user_id, room_id)
        evs, _, _ = await self.reader.paginate(
            user_id, room_id, None, None, True, DEFAULT_INITIAL_LIMIT if limit is None else limit,
            RoomEventFilter())
        evs.reverse()
        chunk = await self.serializer.serialize(evs, (user_id, device_id))
        start = f"t{evs[0].stream_ordering - 1}" if evs else end
        members = {e["state_key"] for e in state
                   if e.get("type") == "m.room.member" and e.get("content", {}).get("membership") == "join"}
        return {
            "room_id": room_id,
            "messages": {"chunk": _v1_all(chunk), "start": start, "end": end},
            "state": _v1_all(state),
            "visibility": _visibility(state),
            "presence": self._presence_of(members),
            "account_data": [],
            "receipts": [],
        }

    async def events(self, user_id: str, device_id: str, from_token: str | None, timeout_ms: int,
                     room_id: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """`GET /events`: everything that happened in the user's rooms after `from`, as one list."""
        since = SyncToken.parse(from_token) if from_token else self.current_token()
        start = since.encode() if from_token is None else from_token
        if limit is not None and room_id is None:
            page = await self._first_events(user_id, device_id, since, limit)
            if page is not None:
                return {"start": start, "end": page[1], "chunk": _v1_all(page[0])}
        flt = SyncFilter(timeline=RoomEventFilter(limit=STREAM_ROOM_LIMIT if limit is None else limit),
                         rooms=(room_id,) if room_id is not None else None)
        # The legacy stream carries no to-device messages: it must not acknowledge any either.
        resp = await self.sync.sync(user_id, device_id, since, flt, False, timeout_ms, ack_since=False)
        chunk: list[dict[str, Any]] = list(_events(resp, "presence"))
        chunk += _events(resp, "account_data")
        sections = resp.get("rooms", {})
        for rid, section in sections.get("join", {}).items():
            chunk += section.get("timeline", {}).get("events", [])
            for ev in _events(section, "ephemeral") + _events(section, "account_data"):
                chunk.append({**ev, "room_id": rid})
        for section in sections.get("leave", {}).values():
            chunk += section.get("timeline", {}).get("events", [])
        chunk += (await self._invite_events(user_id, list(sections.get("invite", {})))).values()
        return {"start": start, "end": resp["next_batch"], "chunk": _v1_all(chunk)}
