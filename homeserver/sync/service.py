"""/sync: gathers what changed for a user since a token and long-polls through the notifier."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from homeserver.ephemeral.presence import PresenceManager
from homeserver.ephemeral.typing import TypingManager
from homeserver.events.notifier import Notifier
from homeserver.protocol.filters import RoomEventFilter, SyncFilter
from homeserver.push.service import PushService
from homeserver.rooms.serialize import EventSerializer, stripped_state
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores
from homeserver.sync.token import SyncToken
from homeserver.sync.assembly import (
    is_empty_response,
    joined_room_section,
    left_room_section,
    room_summary,
    state_for_room_section,
)

DEFAULT_TIMELINE_LIMIT = 10
INVITE_STATE_TYPES = (
    "m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar",
    "m.room.canonical_alias", "m.room.encryption", "m.room.topic",
)


class SyncService:
    def __init__(self, stores: Stores, serializer: EventSerializer, notifier: Notifier,
                 typing: TypingManager, presence: PresenceManager, push: PushService) -> None:
        self.stores = stores
        self.serializer = serializer
        self.notifier = notifier
        self.typing = typing
        self.presence = presence
        self.push = push

    def current_token(self) -> SyncToken:
        return SyncToken(self.stores.stream.current(), self.typing.serial, self.presence.serial)

    async def sync(
        self, user_id: str, device_id: str, since: SyncToken | None, flt: SyncFilter,
        full_state: bool, timeout_ms: int,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            fut = self.notifier.listen(user_id)
            try:
                now = self.current_token()
                if since is not None:
                    # A token from the future (another worker, a restart) is clamped, never trusted.
                    since = SyncToken(min(since.stream, now.stream), min(since.typing, now.typing),
                                      min(since.presence, now.presence))
                resp = await self._sync_once(user_id, device_id, since, now, flt, full_state)
                remaining = deadline - time.monotonic()
                if since is None or full_state or not is_empty_response(resp) or remaining <= 0:
                    return resp
                try:
                    await asyncio.wait_for(asyncio.shield(fut), remaining)
                except asyncio.TimeoutError:
                    if self.current_token() == now:
                        return resp
            finally:
                self.notifier.unlisten(user_id, fut)

    async def _sync_once(
        self, user_id: str, device_id: str, since_tok: SyncToken | None, now_tok: SyncToken,
        flt: SyncFilter, full_state: bool,
    ) -> dict[str, Any]:
        since = since_tok.stream if since_tok is not None else None
        now = now_tok.stream
        memberships = await self.stores.state.rooms_for_user(user_id)
        after = since if since is not None else 0
        joined_ids = [r for r, (m, _, _) in memberships.items() if m == "join"]
        changed_rooms: set[str] | None = None
        receipts_by_room: dict[str, list[dict[str, Any]]] = {}
        if since is not None:
            changed_rooms = await self.stores.events.rooms_with_events_between(joined_ids, since, now)
            for r in await self.stores.receipts.changed(joined_ids, since, now):
                receipts_by_room.setdefault(r["room_id"], []).append(r)
            for room_id in joined_ids:
                if self.typing.changed_since(room_id, since_tok.typing if since_tok else 0):
                    changed_rooms.add(room_id)
            changed_rooms |= set(receipts_by_room)
        acct = await self.stores.userdata.account_data_since(user_id, after, now) if since is not None \
            else await self.stores.userdata.account_data_since(user_id, -1, now)
        room_acct: dict[str, list[dict[str, Any]]] = {}
        global_acct: list[dict[str, Any]] = []
        if since is None and not any(rid == "" and t == "m.push_rules" for rid, t, _ in acct):
            acct.append(("", "m.push_rules", {"global": await self.push.ruleset(user_id)}))
        for room_id, dtype, content in acct:
            item = {"type": dtype, "content": content}
            if room_id:
                if flt.room_account_data.matches(dtype, "", content):
                    room_acct.setdefault(room_id, []).append(item)
            elif flt.account_data.matches(dtype, "", content):
                global_acct.append(item)

        join: dict[str, Any] = {}
        invite: dict[str, Any] = {}
        knock: dict[str, Any] = {}
        leave: dict[str, Any] = {}
        included = [
            room_id for room_id, (membership, _, member_pos) in memberships.items()
            if membership == "join" and flt.room_allowed(room_id) and (
                since is None or full_state or member_pos > after
                or room_id in (changed_rooms or set()) or room_id in room_acct)
        ]
        # Per-room facts fetched for all included rooms at once (a query per room adds up fast).
        counts = await self.stores.state.member_counts(included)
        named = await self.stores.state.rooms_having(included, ("m.room.name", "m.room.canonical_alias"))
        newly_joined = {r for r in included if since is not None and memberships[r][2] > after}
        fresh = [r for r in included if since is None or r in newly_joined]
        if fresh:
            for r in await self.stores.receipts.all_for_rooms(fresh):
                receipts_by_room.setdefault(r["room_id"], []).append(r)
        read_positions = await self.stores.receipts.read_positions_for_user(included, user_id)
        prefetched: dict[str, list[StoredEvent]] = {}
        tl = flt.timeline
        if len(included) > 1 and tl.types is None and tl.senders is None and not tl.not_types \
                and not tl.not_senders and tl.contains_url is None:
            # Unfiltered timelines: one query for every room (the common case at start-up).
            limit = tl.limit if tl.limit is not None else DEFAULT_TIMELINE_LIMIT
            fresh_set = set(fresh)
            if fresh_set:
                prefetched.update(await self.stores.events.recent_for_rooms(
                    [r for r in included if r in fresh_set], 0, now, limit + 1))
            rest = [r for r in included if r not in fresh_set]
            if rest and since is not None:
                got = await self.stores.events.recent_for_rooms(rest, since, now, limit + 1)
                prefetched.update(got)
                for r in rest:
                    prefetched.setdefault(r, [])
        for room_id in included:
            member_pos = memberships[room_id][2]
            newly = room_id in newly_joined
            section = await self._joined_room(
                user_id, device_id, room_id, None if (newly or since is None) else since,
                now, flt, full_state or newly, room_acct.get(room_id, []),
                counts.get(room_id, {}), room_id in named, prefetched.pop(room_id, None),
            )
            join[room_id] = section
            await self._add_ephemeral(
                section, user_id, room_id, since_tok if not newly else None,
                receipts_by_room.get(room_id), flt, now, read_positions.get(room_id, {}), member_pos,
            )
        for room_id, (membership, member_eid, member_pos) in memberships.items():
            if not flt.room_allowed(room_id):
                continue
            membership_changed = since is None or member_pos > after
            if membership == "invite":
                if membership_changed and member_pos <= now:
                    invite[room_id] = await self._invited_room(member_eid)
            elif membership == "knock":
                if membership_changed and member_pos <= now:
                    knock[room_id] = {"knock_state": (await self._invited_room(member_eid))["invite_state"]}
            elif membership in ("leave", "ban"):
                if member_pos > now:
                    continue
                if (since is None and flt.include_leave) or (since is not None and member_pos > after):
                    leave[room_id] = await self._left_room(
                        user_id, room_id, since, member_pos, flt, room_acct.get(room_id, [])
                    )
        rooms: dict[str, Any] = {}
        if join:
            rooms["join"] = join
        if invite:
            rooms["invite"] = invite
        if knock:
            rooms["knock"] = knock
        if leave:
            rooms["leave"] = leave
        return {
            "next_batch": now_tok.encode(),
            "rooms": rooms,
            "account_data": {"events": global_acct},
            "presence": {"events": await self._presence(user_id, since_tok, joined_ids, flt)},
            "to_device": {"events": []},
            "device_lists": {"changed": [], "left": []},
            "device_one_time_keys_count": {},
        }

    async def _add_ephemeral(
        self, section: dict[str, Any], user_id: str, room_id: str, since: SyncToken | None,
        receipts: list[dict[str, Any]] | None, flt: SyncFilter, now: int,
        read: dict[str, int], joined_at: int,
    ) -> None:
        events: list[dict[str, Any]] = []
        if since is None or self.typing.changed_since(room_id, since.typing):
            users = self.typing.typing_users(room_id)
            if since is not None or users:
                events.append({"type": "m.typing", "content": {"user_ids": users}})
        content: dict[str, Any] = {}
        for r in receipts or ():
            if r["receipt_type"] == "m.read.private" and r["user_id"] != user_id:
                continue
            data: dict[str, Any] = {"ts": r["ts"]}
            if r["thread_id"]:
                data["thread_id"] = r["thread_id"]
            content.setdefault(r["event_id"], {}).setdefault(r["receipt_type"], {})[r["user_id"]] = data
        if content:
            events.append({"type": "m.receipt", "content": content})
        section["ephemeral"] = {"events": [e for e in events if flt.ephemeral.matches(e["type"], "", {})]}
        threaded = flt.timeline_unread_threads
        main, threads = await self.push.unread_counts(user_id, room_id, now, threaded, read, joined_at)
        section["unread_notifications"] = main
        if threaded:
            section["unread_thread_notifications"] = threads

    async def _presence(
        self, user_id: str, since: SyncToken | None, joined: list[str], flt: SyncFilter
    ) -> list[dict[str, Any]]:
        if not self.presence.enabled:
            return []
        changed = self.presence.changed_since(since.presence if since else 0)
        if not changed:
            return []
        visible = {user_id}
        for room_id in joined:
            visible.update(await self.stores.state.members(room_id, ("join",)))
        out = []
        for uid in changed:
            if uid in visible and flt.presence.matches("m.presence", uid, {}):
                out.append({"type": "m.presence", "sender": uid, "content": self.presence.get(uid)})
        return out

    async def _timeline(
        self, room_id: str, after: int, upto: int, tl: RoomEventFilter,
        pre: list[StoredEvent] | None = None,
    ) -> tuple[list[StoredEvent], bool]:
        """Newest `limit` matching events in (after, upto], oldest first, and whether more exist."""
        limit = tl.limit if tl.limit is not None else DEFAULT_TIMELINE_LIMIT
        if pre is not None:
            evs = [e for e in pre if after < e.stream_ordering <= upto]
            return list(reversed(evs[:limit])), len(evs) > limit
        out: list[StoredEvent] = []
        cursor = upto
        batch = limit + 1
        limited = False
        while True:
            evs = await self.stores.events.room_events_between(room_id, after, cursor, batch, True)
            for ev in evs:
                if tl.matches(ev.type, ev.sender, ev.pdu.get("content", {})):
                    if len(out) >= limit:
                        limited = True
                        break
                    out.append(ev)
                cursor = ev.stream_ordering - 1
            if limited or len(evs) < batch:
                break
        out.reverse()
        return out, limited

    async def _state_at(self, room_id: str, pos: int) -> dict[tuple[str, str], str]:
        ev = await self.stores.events.last_event_at_or_before(room_id, pos)
        if ev is None:
            return {}
        return dict(await self.stores.state.get_state(ev.state_group))

    async def _room_state_block(
        self, user_id: str, room_id: str, timeline: list[StoredEvent], since: int | None,
        upto: int, flt: SyncFilter, full: bool, limited: bool,
    ) -> list[StoredEvent]:
        if timeline and timeline[0].state_key is None:
            # A message event's state group is the state before it: no lookup needed.
            state_start = dict(await self.stores.state.get_state(timeline[0].state_group))
        else:
            start_pos = timeline[0].stream_ordering - 1 if timeline else upto
            state_start = await self._state_at(room_id, start_pos)
        state_since = await self._state_at(room_id, since) if (since is not None and not full) else None
        lazy = None
        if flt.state.lazy_load_members:
            lazy = {e.sender for e in timeline} | {user_id}
        chosen = state_for_room_section(
            full=full, limited=limited, state_at_since=state_since,
            state_at_timeline_start=state_start,
            timeline_event_ids=[e.event_id for e in timeline], lazy_members=lazy,
        )
        evs = await self.stores.events.get_many(chosen.values())
        return [
            evs[e] for e in chosen.values()
            if e in evs and flt.state.matches(evs[e].type, evs[e].sender, evs[e].pdu.get("content", {}))
        ]

    async def _joined_room(
        self, user_id: str, device_id: str, room_id: str, since: int | None, now: int,
        flt: SyncFilter, full: bool, account_data: list[dict[str, Any]],
        counts: dict[str, int], has_name: bool, prefetched: list[StoredEvent] | None,
    ) -> dict[str, Any]:
        timeline, limited = await self._timeline(room_id, since or 0, now, flt.timeline, prefetched)
        if since is None:
            limited = limited or bool(timeline and timeline[0].type != "m.room.create" and limited)
        state = await self._room_state_block(user_id, room_id, timeline, since, now, flt, full, limited)
        prev_batch = f"t{timeline[0].stream_ordering - 1}" if timeline else f"t{now}"
        heroes_from = [] if has_name else await self.stores.state.members(room_id, ("join", "invite"))
        ser = self.serializer.serialize
        return joined_room_section(
            await ser(timeline, (user_id, device_id)), limited, prev_batch, await ser(state),
            account_data,
            room_summary(counts.get("join", 0), counts.get("invite", 0), heroes_from, user_id, has_name),
        )

    async def _invited_room(self, invite_event_id: str) -> dict[str, Any]:
        ev = await self.stores.events.get(invite_event_id)
        if ev is None:
            return {"invite_state": {"events": []}}
        state = await self.stores.state.get_state(ev.state_group)
        ids = [state[(t, "")] for t in INVITE_STATE_TYPES if (t, "") in state]
        evs = await self.stores.events.get_many(ids)
        events = [stripped_state(evs[i]) for i in ids if i in evs]
        events.append(stripped_state(ev))
        return {"invite_state": {"events": events}}

    async def _left_room(
        self, user_id: str, room_id: str, since: int | None, leave_pos: int, flt: SyncFilter,
        account_data: list[dict[str, Any]],
    ) -> dict[str, Any]:
        timeline, limited = await self._timeline(room_id, since or 0, leave_pos, flt.timeline)
        full = since is None
        state = await self._room_state_block(user_id, room_id, timeline, since, leave_pos, flt, full, limited)
        prev_batch = f"t{timeline[0].stream_ordering - 1}" if timeline else f"t{leave_pos}"
        ser = self.serializer.serialize
        return left_room_section(await ser(timeline), limited, prev_batch, await ser(state), account_data)
