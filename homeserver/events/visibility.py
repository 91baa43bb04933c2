"""The one history-visibility filter every read path uses (sync, /messages, /event, /context,
/relations, /threads, room state for departed users, and later federation backfill and AI).

The rule itself is pure (`protocol/visibility.py`); this module gathers its inputs: for each
event the `m.room.history_visibility` and the user's `m.room.member` in the state after the event
(two keys of the event's state group), and, for `shared` history, whether the user joined later.

Fast path: a user who is joined now sees every event built by this server after their join (a
local event's state is built on the extremities that already hold the join), so steady-state sync
costs no state lookups. Everything else is judged by its own state.
"""

from __future__ import annotations

from collections.abc import Sequence

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.visibility import EventFacts, visibility_for, visible_to_user
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores

HV_KEY = ("m.room.history_visibility", "")
IGNORED_USERS = "m.ignored_user_list"

Membership = tuple[str, str, int]  # (membership, event_id, stream position)


class VisibilityFilter:
    def __init__(self, stores: Stores, server_name: str) -> None:
        self.stores = stores
        self._local_suffix = ":" + server_name

    async def ignored_users(self, user_id: str) -> set[str]:
        content = await self.stores.userdata.get_account_data(user_id, "", IGNORED_USERS)
        ignored = (content or {}).get("ignored_users")
        return {u for u in ignored if isinstance(u, str)} if isinstance(ignored, dict) else set()

    async def filter_for_user(
        self, user_id: str, events: Sequence[StoredEvent], *, ignored: set[str] | None = None,
        memberships: dict[str, Membership | None] | None = None,
    ) -> list[StoredEvent]:
        """The events `user_id` may see, in their original order.

        Messages from users in the `m.ignored_user_list` are dropped too (their state events
        stay: the room's state must remain whole). `memberships` may carry the user's current
        membership per room when the caller already has it.
        """
        if not events:
            return []
        if ignored is None:
            ignored = await self.ignored_users(user_id)
        by_room: dict[str, list[StoredEvent]] = {}
        for ev in events:
            if ev.state_key is None and ev.sender in ignored:
                continue
            by_room.setdefault(ev.room_id, []).append(ev)
        visible: set[str] = set()
        for room_id, evs in by_room.items():
            if memberships is not None and room_id in memberships:
                current = memberships[room_id]
            else:
                current = await self.stores.state.membership(room_id, user_id)
            visible |= await self._visible_in_room(user_id, room_id, evs, current)
        return [ev for ev in events if ev.event_id in visible]

    async def _visible_in_room(
        self, user_id: str, room_id: str, evs: list[StoredEvent], current: Membership | None,
    ) -> set[str]:
        out: set[str] = set()
        need: list[StoredEvent] = []
        joined_at = current[2] if current is not None and current[0] == "join" else None
        for ev in evs:
            if joined_at is not None and ev.stream_ordering > joined_at \
                    and ev.sender.endswith(self._local_suffix):
                out.add(ev.event_id)
            else:
                need.append(ev)
        if not need:
            return out
        member_key = ("m.room.member", user_id)
        at = await self.stores.state.values_at_groups({e.state_group for e in need}, [HV_KEY, member_key])
        state_evs = await self.stores.events.get_many({eid for m in at.values() for eid in m.values()})

        def content_of(eid: str | None) -> dict[str, object]:
            ev = state_evs.get(eid) if eid else None
            c = ev.pdu.get("content") if ev is not None else None
            return c if isinstance(c, dict) else {}

        history: list[tuple[int, str]] | None = None
        for ev in need:
            keys = at.get(ev.state_group, {})
            unsigned = ev.pdu.get("unsigned")
            prev = unsigned.get("prev_content") if isinstance(unsigned, dict) else None
            facts = EventFacts(
                type=ev.type, state_key=ev.state_key, content=ev.pdu.get("content") or {},
                prev_content=prev if isinstance(prev, dict) else None,
                visibility_at_event=content_of(keys.get(HV_KEY)).get("history_visibility")
                if HV_KEY in keys else None,
                membership_at_event=content_of(keys.get(member_key)).get("membership")
                if member_key in keys else None,
            )
            joined_later = False
            if visibility_for(facts) == "shared":
                if joined_at is not None and joined_at > ev.stream_ordering:
                    joined_later = True
                else:
                    if history is None:
                        history = await self.stores.state.membership_history(room_id, user_id)
                    joined_later = any(m == "join" and pos > ev.stream_ordering for pos, m in history)
            if visible_to_user(facts, user_id, joined_later):
                out.add(ev.event_id)
        return out

    async def ever_joined(self, room_id: str, user_id: str, current: Membership | None) -> bool:
        if current is not None and current[0] == "join":
            return True
        history = await self.stores.state.membership_history(room_id, user_id)
        return any(m == "join" for _, m in history)

    async def current_visibility(self, room_id: str) -> str | None:
        ids = await self.stores.state.current_ids(room_id, [HV_KEY])
        ev = await self.stores.events.get(ids[HV_KEY]) if HV_KEY in ids else None
        hv = ev.pdu.get("content", {}).get("history_visibility") if ev is not None else None
        return hv if isinstance(hv, str) else None

    async def check_history_access(self, user_id: str, room_id: str) -> Membership | None:
        """Gate for reading a room's history: members past or present, or a world-readable room.

        Returns the user's current membership (None for a peeking stranger); raises 403 for users
        who never had a membership and cannot peek. Per-event filtering still applies after.
        """
        current = await self.stores.state.membership(room_id, user_id)
        if current is not None and current[0] in ("join", "leave", "ban"):
            return current
        if await self.current_visibility(room_id) == "world_readable":
            return current
        raise MatrixError(403, "M_FORBIDDEN", "You are not a member of this room")

