"""After an event persists: evaluate each local member's push rules once, store the
notifications (GET /notifications, email digests) and queue deliveries to their HTTP and Web
Push pushers in the database. Nothing here talks to a gateway: `delivery.py` does, in the
background, on one worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.events.members import RoomMembers
from homeserver.protocol.power_levels import parse_level, user_power_level
from homeserver.protocol.push_rules import PushContext, evaluate, is_highlight, is_notify
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.push.pushers import KIND_HTTP, KIND_WEBPUSH
from homeserver.push.service import PushService, push_view
from homeserver.storage.database import chunks
from homeserver.storage.events import StoredEvent
from homeserver.storage.pushers import COUNTS_ONLY
from homeserver.storage.stores import Stores

log = logging.getLogger("parley.push")


class NotificationPipeline:
    def __init__(self, stores: Stores, push: PushService, server_name: str,
                 members: RoomMembers, on_queued: Callable[[], None] | None = None) -> None:
        self.stores = stores
        self.members = members  # the room's members read once per change, shared with the fan-out
        self.push = push
        self.suffix = ":" + server_name
        self.on_queued = on_queued
        # Called with the notifications just stored (plugins' notification hooks queue them).
        self.on_stored: Callable[[list[tuple[str, int, str, str, list[Any], bool, int]]], Awaitable[None]] | None = None

    async def event_persisted(self, ev: StoredEvent) -> None:
        """The persister's hook: never raises (the event is committed whatever happens here)."""
        if not ev.in_timeline or ev.stream_ordering <= 0:
            return
        try:
            await self._process(ev)
        except Exception:
            log.exception("push rules for %s failed", ev.event_id)

    def _recipients(self, ev: StoredEvent, joined: list[str]) -> list[str]:
        users = {u for u in joined if u.endswith(self.suffix)}
        content = ev.pdu.get("content", {})
        if ev.type == "m.room.member" and isinstance(content, dict) and content.get("membership") == "invite" \
                and isinstance(ev.state_key, str) and ev.state_key.endswith(self.suffix):
            users.add(ev.state_key)
        users.discard(ev.sender)
        return sorted(users)

    async def _process(self, ev: StoredEvent) -> None:
        st = self.stores
        joined = sorted(await self.members.get(ev.room_id, ("join",)))
        users = self._recipients(ev, joined)
        if not users:
            return
        base = await st.state.current_ids(ev.room_id, [("m.room.create", ""), ("m.room.power_levels", "")])
        got = await st.events.get_many(base.values())
        create = got.get(base.get(("m.room.create", ""), ""))
        pl_ev = got.get(base.get(("m.room.power_levels", ""), ""))
        create_pdu = create.pdu if create else {}
        rv = KNOWN_ROOM_VERSIONS.get(str(create_pdu.get("content", {}).get("room_version", "12")),
                                     KNOWN_ROOM_VERSIONS["12"])
        pl = pl_ev.pdu.get("content", {}) if pl_ev else None
        notif = pl.get("notifications", {}) if isinstance(pl, dict) else {}
        levels = {k: lv for k, v in notif.items() if (lv := parse_level(v)) is not None} \
            if isinstance(notif, dict) else {}
        sender_power = user_power_level(rv, create_pdu, pl, ev.sender)
        names = await self._display_names(ev.room_id, users)
        view = push_view(ev)
        now = int(time.time() * 1000)
        rows: list[tuple[str, int, str, str, list[Any], bool, int]] = []
        notified: list[str] = []
        rulesets = await self.push.rulesets(users)
        for user in users:
            ctx = PushContext(user_id=user, display_name=names.get(user), member_count=len(joined),
                              sender_power=sender_power, notification_levels=levels)
            actions = evaluate(rulesets[user], view, ctx)
            if is_notify(actions):
                rows.append((user, ev.stream_ordering, ev.room_id, ev.event_id, actions, is_highlight(actions), now))
                notified.append(user)
        if not rows:
            return
        pushers = await st.pushers.users_with_pushers(notified, (KIND_HTTP, KIND_WEBPUSH))
        deliveries = [(p.user_id, p.app_id, p.pushkey, ev.stream_ordering, now)
                      for ps in pushers.values() for p in ps if p.since_stream < ev.stream_ordering]
        await st.pushers.add_notifications(rows, deliveries)
        if deliveries and self.on_queued is not None:
            self.on_queued()
        if self.on_stored is not None:
            await self.on_stored(rows)

    async def _display_names(self, room_id: str, users: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for chunk in chunks(users, 200):
            ids = await self.stores.state.current_ids(room_id, [("m.room.member", u) for u in chunk])
            evs = await self.stores.events.get_many(ids.values())
            for (_, user), eid in ids.items():
                ev = evs.get(eid)
                name = ev.pdu.get("content", {}).get("displayname") if ev else None
                if isinstance(name, str) and name:
                    out[user] = name
        return out

    async def user_read(self, user_id: str) -> None:
        """A read receipt moved: queue a counts-only update (the badge) to the user's HTTP pushers."""
        try:
            pushers = (await self.stores.pushers.users_with_pushers([user_id], (KIND_HTTP,))).get(user_id, [])
            if not pushers:
                return
            now = int(time.time() * 1000)
            await self.stores.pushers.add_notifications(
                [], [(p.user_id, p.app_id, p.pushkey, COUNTS_ONLY, now) for p in pushers])
            if self.on_queued is not None:
                self.on_queued()
        except Exception:
            log.exception("queueing a badge update for %s failed", user_id)
