"""The incremental sync of a recent token, built from the per-event log instead of the database.

When a message commits, every member's waiting syncs wake up. For a token whose window
(since, now] is entirely in the recent-changes log (`events/recent.py`) and holds only timeline
events without state and receipts, the answer is: for each of the user's joined rooms with
news, the new events the user may see (the same visibility filter as everywhere, which for a
member joined throughout costs no lookup), typing and receipts from memory, the room summary
and member lists read once per change of the room's state, and unread counts carried forward
(`unread.py`). Each event's client form is built once and shared by every device.

Anything else takes the full pass: an old or unknown window, a state event or redaction in one
of the user's rooms, a change of the user's own membership, a limited timeline, lazy-loaded
members, event fields or the federation format in the filter.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from homeserver.ephemeral.presence import PresenceManager
from homeserver.ephemeral.typing import TypingManager
from homeserver.events.members import RoomMembers
from homeserver.events.recent import EventNote, ReceiptNote, RecentChanges, UserNote
from homeserver.events.visibility import Membership, VisibilityFilter
from homeserver.protocol.filters import SyncFilter
from homeserver.rooms.serialize import EventSerializer
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores
from homeserver.sync.assembly import joined_room_section, room_summary, section_is_empty
from homeserver.sync.rooms import DEFAULT_TIMELINE_LIMIT, RoomSections
from homeserver.sync.sources import SyncPass

#: Client forms of recent events kept (one per event, shared by every device).
FORMS_KEPT = 4096
#: Users whose rooms and ignore lists are kept.
USERS_KEPT = 50_000
NAME_TYPES = ("m.room.name", "m.room.canonical_alias")


class DeltaSync:
    def __init__(self, stores: Stores, serializer: EventSerializer, visibility: VisibilityFilter,
                 typing: TypingManager, presence: PresenceManager, rooms: RoomSections,
                 recent: RecentChanges, members: RoomMembers) -> None:
        self.stores = stores
        self.serializer = serializer
        self.visibility = visibility
        self.typing = typing
        self.presence = presence
        self.rooms = rooms
        self.recent = recent
        self.members = members
        self._forms: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._users: OrderedDict[str, tuple[int, dict[str, Membership], set[str]]] = OrderedDict()
        self._named: dict[str, tuple[int, bool]] = {}

    @staticmethod
    def applies(flt: SyncFilter) -> bool:
        return (flt.event_format == "client" and flt.event_fields is None
                and not flt.state.lazy_load_members)

    async def rooms_part(self, p: SyncPass) -> dict[str, Any] | None:
        """The response without the per-user sources (to-device, device lists), or None.
        May move the typing and presence positions of `p.next` up to what it looked at."""
        user_id, device_id, since, now, flt = p.user_id, p.device_id, p.since, p.now, p.flt
        if since is None or not self.applies(flt):
            return None
        notes = self.recent.window(since.stream, now.stream)
        if notes is None:
            return None
        memberships, ignored = await self._user(user_id)
        joined = {r: m for r, m in memberships.items() if m[0] == "join"}
        events: dict[str, list[StoredEvent]] = {}
        receipts: dict[str, list[dict[str, Any]]] = {}
        for note in notes:
            if isinstance(note, EventNote):
                ev = note.event
                if ev.type == "m.room.member" and ev.state_key == user_id:
                    return None  # the user's own membership changed: sections start afresh
                if ev.room_id not in joined:
                    continue
                if ev.state_key is not None or ev.type == "m.room.redaction":
                    return None
                events.setdefault(ev.room_id, []).append(ev)
            elif isinstance(note, ReceiptNote) and note.room_id in joined:
                receipts.setdefault(note.room_id, []).append(note.row())
            elif isinstance(note, UserNote) and user_id in note.users:
                return None  # the user's own account data or inbox changed
        changed = set(events) | set(receipts)
        # Typing may have changed since `now` was taken (the reads above wait): the token moves
        # to the serial these rooms were checked at, so the same change does not wake us twice.
        p.next = p.next.with_position("typing", max(now.typing, self.typing.serial))
        changed |= {r for r in joined if self.typing.changed_since(r, since.typing)}
        join: dict[str, Any] = {}
        tl = flt.timeline
        limit = tl.limit if tl.limit is not None else DEFAULT_TIMELINE_LIMIT
        for room_id in sorted(changed):
            if not flt.room_allowed(room_id):
                continue
            membership = joined[room_id]
            evs = [e for e in events.get(room_id, ()) if tl.matches(e.type, e.sender, e.pdu.get("content", {}))]
            shown = await self.visibility.filter_for_user(
                user_id, evs, ignored=ignored, memberships={room_id: membership})
            if len(shown) > limit:
                return None  # a limited timeline: the full pass fills the gap's state
            section = joined_room_section(
                [await self._form(ev, user_id, device_id) for ev in shown], False, f"t{since.stream}", [], [],
                await self._summary(room_id, user_id))
            await self.rooms.add_ephemeral(
                section, user_id, room_id, since, _latest_receipts(receipts.get(room_id, [])), flt,
                now.stream, None, membership[2])
            if not section_is_empty(section):
                join[room_id] = section
        return {
            "next_batch": now.encode(),
            "rooms": {"join": join} if join else {},
            "account_data": {"events": []},
            "presence": {"events": await self._presence(p, list(joined))},
        }

    async def _user(self, user_id: str) -> tuple[dict[str, Membership], set[str]]:
        kept = self._users.get(user_id)
        if kept is not None and self.recent.quiet_since(kept[0], user=user_id):
            return kept[1], kept[2]
        pos = self.stores.stream.current()
        memberships = await self.stores.state.rooms_for_user(user_id)
        ignored = await self.visibility.ignored_users(user_id)
        self._users[user_id] = (pos, memberships, ignored)
        self._users.move_to_end(user_id)
        while len(self._users) > USERS_KEPT:
            self._users.popitem(last=False)
        return memberships, ignored

    async def _summary(self, room_id: str, user_id: str) -> dict[str, Any]:
        joined = await self.members.get(room_id, ("join",))
        both = await self.members.get(room_id, ("join", "invite"))
        named = self._named.get(room_id)
        if named is None or not self.recent.quiet_since(named[0], room=room_id):
            pos = self.stores.stream.current()
            named = (pos, room_id in await self.stores.state.rooms_having([room_id], NAME_TYPES))
            self._named[room_id] = named
        has_name = named[1]
        return room_summary(len(joined), len(both) - len(joined), [] if has_name else list(both), user_id, has_name)

    async def _form(self, ev: StoredEvent, user_id: str, device_id: str) -> dict[str, Any]:
        """The event's client form, built once; the sending device's copy adds its transaction ID."""
        form = self._forms.get(ev.event_id)
        if form is None:
            form = (await self.serializer.serialize([ev]))[0]
            self._forms[ev.event_id] = form
            while len(self._forms) > FORMS_KEPT:
                self._forms.popitem(last=False)
        if ev.txn_id and ev.sender == user_id and ev.txn_device == device_id:
            return {**form, "unsigned": {**form.get("unsigned", {}), "transaction_id": ev.txn_id}}
        return form

    async def _presence(self, p: SyncPass, joined: list[str]) -> list[dict[str, Any]]:
        """As the full pass: presence changes of users sharing a room (no one joined meanwhile:
        that would have been a state event)."""
        user_id, flt = p.user_id, p.flt
        if not self.presence.enabled or p.since is None:
            return []
        p.next = p.next.with_position("presence", max(p.now.presence, self.presence.serial))
        changed = {u for u in self.presence.changed_since(p.since.presence) if self.presence.get(u) is not None}
        if not changed:
            return []
        visible = {user_id}
        for room_id in joined:
            visible |= await self.members.get(room_id, ("join",))
        return [{"type": "m.presence", "sender": uid, "content": self.presence.get(uid)}
                for uid in sorted(changed) if uid in visible and flt.presence.matches("m.presence", uid, {})]


def _latest_receipts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A user's later receipt replaces their earlier one of the same kind (as in the table)."""
    latest: dict[tuple[object, ...], dict[str, Any]] = {}
    for r in rows:
        latest[(r["user_id"], r["receipt_type"], r["thread_id"])] = r
    return list(latest.values())
