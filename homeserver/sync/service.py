"""/sync: gathers what changed for a user since a token and long-polls through the notifier.

The token holds one position per stream (`token.py`); each stream is a source (`sources.py`).
The room sections (timeline, state, ephemeral) come from `rooms.py`; the per-user streams
(to-device, device lists) fill their own parts of the response through `UserSource.fill`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from homeserver import metrics
from homeserver.ephemeral.presence import PresenceManager
from homeserver.ephemeral.typing import TypingManager
from homeserver.events.members import RoomMembers
from homeserver.events.notifier import Notifier
from homeserver.events.recent import RecentChanges
from homeserver.events.visibility import VisibilityFilter
from homeserver.protocol.filters import SyncFilter
from homeserver.push.service import PushService
from homeserver.rooms.serialize import EventSerializer
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores
from homeserver.sync.assembly import is_empty_response, section_is_empty
from homeserver.sync.delta import DeltaSync
from homeserver.sync.rooms import DEFAULT_TIMELINE_LIMIT, RoomSections
from homeserver.sync.sources import (
    PresenceSource,
    SharedStreamSource,
    Source,
    SyncPass,
    TypingSource,
    UserSource,
    current_token,
)
from homeserver.sync.token import SyncToken
from homeserver.sync.unread import UnreadCounter


class SyncService:
    def __init__(self, stores: Stores, serializer: EventSerializer, notifier: Notifier,
                 typing: TypingManager, presence: PresenceManager, push: PushService,
                 visibility: VisibilityFilter, recent: RecentChanges, members: RoomMembers) -> None:
        self.stores = stores
        self.visibility = visibility
        self.serializer = serializer
        self.notifier = notifier
        self.typing = typing
        self.presence = presence
        self.push = push
        self.rooms = RoomSections(stores, serializer, typing, push, visibility)
        self.recent = recent
        self.members = members
        self.unread = UnreadCounter(push, recent)
        self.rooms.unread_counts = self.unread.counts
        self.delta = DeltaSync(stores, serializer, visibility, typing, presence, self.rooms, recent, members)
        self.sources: list[Source] = [
            SharedStreamSource(stores.stream), TypingSource(typing), PresenceSource(presence)]
        self.user_sources: list[UserSource] = []

    def add_source(self, source: UserSource) -> None:
        """A per-user stream (to-device, device lists): its position joins the token (unless it
        shares one already there) and its `fill` runs on every sync."""
        if all(s.key != source.key for s in self.sources):
            self.sources.append(source)
        self.user_sources.append(source)

    def current_token(self) -> SyncToken:
        return current_token(self.sources)

    async def sync(
        self, user_id: str, device_id: str, since: SyncToken | None, flt: SyncFilter,
        full_state: bool, timeout_ms: int, *, ack_since: bool = True, acked: SyncToken | None = None,
    ) -> dict[str, Any]:
        """On /sync, asking from `since` acknowledges it (`ack_since`). The WebSocket syncs from
        the last frame sent but only the frames the client acked count: it passes `acked`."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            fut = self.notifier.listen(user_id)
            try:
                now = self.current_token()
                if since is not None:
                    since = since.clamp(now)
                ack = since if ack_since else (acked.clamp(now) if acked is not None else None)
                p = SyncPass(user_id, device_id, since, now, flt, ack)
                if not await self._quick(p, full_state):
                    p = SyncPass(user_id, device_id, since, now, flt, ack)
                    p.response = await self._sync_once(user_id, device_id, since, now, flt, full_state)
                    for source in self.user_sources:
                        await source.fill(p)
                    metrics.SYNC_PASSES.labels("full").inc()
                resp = p.response
                resp["next_batch"] = p.next.encode()
                empty = is_empty_response(resp) and not any(s.has_news(resp) for s in self.user_sources)
                remaining = deadline - time.monotonic()
                if since is None or full_state or not empty or remaining <= 0 or self.notifier.closing:
                    return resp
                try:
                    await asyncio.wait_for(asyncio.shield(fut), remaining)
                except TimeoutError:
                    if self.current_token() == now:
                        return resp
            finally:
                self.notifier.unlisten(user_id, fut)

    async def _quick(self, p: SyncPass, full_state: bool) -> bool:
        """The answer from the recent-changes log (`delta.py`), when the window allows it."""
        if p.since is None or full_state:
            return False
        part = await self.delta.rooms_part(p)
        if part is None:
            return False
        p.response = part
        for source in self.user_sources:
            if not await source.fill_quiet(p):
                return False
        metrics.SYNC_PASSES.labels("delta").inc()
        return True

    async def _sync_once(
        self, user_id: str, device_id: str, since_tok: SyncToken | None, now_tok: SyncToken,
        flt: SyncFilter, full_state: bool,
    ) -> dict[str, Any]:
        since = since_tok.stream if since_tok is not None else None
        now = now_tok.stream
        memberships = await self.stores.state.rooms_for_user(user_id)
        after = since if since is not None else 0
        ignored = await self.visibility.ignored_users(user_id)
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
        newly_joined = await self.rooms.newly_joined(
            user_id, [r for r in included if since is not None and memberships[r][2] > after], after)
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
                for rid in rest:
                    prefetched.setdefault(rid, [])
        for room_id in included:
            member_pos = memberships[room_id][2]
            newly = room_id in newly_joined
            section = await self.rooms.joined_room(
                user_id, device_id, room_id, None if (newly or since is None) else since,
                now, flt, full_state or newly, room_acct.get(room_id, []),
                counts.get(room_id, {}), room_id in named, prefetched.pop(room_id, None),
                memberships[room_id], ignored, initial=since is None,
            )
            await self.rooms.add_ephemeral(
                section, user_id, room_id, since_tok if not newly else None,
                receipts_by_room.get(room_id), flt, now, read_positions.get(room_id, {}), member_pos,
            )
            if since is None or newly or full_state or not section_is_empty(section):
                join[room_id] = section
        for room_id, (membership, member_eid, member_pos) in memberships.items():
            if not flt.room_allowed(room_id):
                continue
            membership_changed = since is None or member_pos > after
            if membership == "invite":
                if membership_changed and member_pos <= now:
                    invited = await self.rooms.invited_room(member_eid, ignored)
                    if invited is not None:
                        invite[room_id] = invited
            elif membership == "knock":
                if membership_changed and member_pos <= now:
                    knocked = await self.rooms.invited_room(member_eid, set())
                    if knocked is not None:
                        knock[room_id] = {"knock_state": knocked["invite_state"]}
            elif membership in ("leave", "ban"):
                if member_pos > now:
                    continue
                if (since is None and flt.include_leave) or (since is not None and member_pos > after):
                    # Joined and left since the last sync (or never joined): the client has not
                    # seen this room's state, so the section starts afresh.
                    fresh_leave = since is not None and bool(await self.rooms.newly_joined(user_id, [room_id], after))
                    leave[room_id] = await self.rooms.left_room(
                        user_id, device_id, room_id, None if fresh_leave else since, member_pos, flt,
                        room_acct.get(room_id, []), memberships[room_id], ignored,
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
            "presence": {"events": await self._presence(
                user_id, since_tok, joined_ids, flt, newly_joined, after)},
        }

    async def _presence(
        self, user_id: str, since: SyncToken | None, joined: list[str], flt: SyncFilter,
        newly_joined: set[str], after: int,
    ) -> list[dict[str, Any]]:
        if not self.presence.enabled:
            return []
        changed = set(self.presence.changed_since(since.presence if since else 0))
        if since is not None:
            # Users the syncing user newly shares a room with: their (older) presence is news.
            changed |= set(await self.stores.state.joined_since(joined, after))
            for room_id in newly_joined:
                changed.update(await self.stores.state.members(room_id, ("join",)))
            changed = {u for u in changed if self.presence.get(u) is not None}
        if not changed:
            return []
        visible = {user_id}
        for room_id in joined:
            visible.update(await self.stores.state.members(room_id, ("join",)))
        out = []
        for uid in sorted(changed):
            if uid in visible and flt.presence.matches("m.presence", uid, {}):
                out.append({"type": "m.presence", "sender": uid, "content": self.presence.get(uid)})
        return out

