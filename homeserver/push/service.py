"""Push rules API and unread counts (notification_count / highlight_count) per room and thread."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from homeserver.events.recent import UserNote
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.power_levels import parse_level, user_power_level
from homeserver.protocol.push_rules import (
    KINDS,
    PushContext,
    default_ruleset,
    evaluate,
    is_highlight,
    is_notify,
    merged_ruleset,
    valid_actions,
)
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores

STORE_TYPE = "org.parley.push_rules"  # user changes; m.push_rules is the merged view clients read
UNREAD_SCAN_LIMIT = 500
#: Users whose merged rulesets are kept in memory (rebuilt only when their rules change).
RULESET_CACHE = 50_000

Ruleset = dict[str, list[dict[str, Any]]]


@dataclass
class UnreadState:
    """A user's unread counts in one room as of stream position `pos`, with what it takes to
    extend them by newer events without reading the database again."""

    pos: int
    threaded: bool
    main: dict[str, int]
    threads: dict[str, dict[str, int]]
    scanned: int  # events examined after the read position (the full count stops at UNREAD_SCAN_LIMIT)
    ctx_base: dict[str, Any] | None = None
    users_rules: Ruleset | None = field(default=None, repr=False)


class PushService:
    def __init__(self, stores: Stores, wake_users: Callable[[list[str]], Awaitable[None]]) -> None:
        self.stores = stores
        self._wake_users = wake_users
        # Merged rulesets (defaults + the user's changes), built once per change of the user's
        # rules: changes here drop the entry, other workers' changes arrive as `invalidate`.
        self._rulesets: dict[str, Ruleset] = {}

    def invalidate(self, user_ids: Iterable[str] | None) -> None:
        """Per-user data changed (maybe on another worker): forget their cached rulesets; None:
        everyone's (the bus reconnected, a message may have been lost)."""
        if user_ids is None:
            self._rulesets.clear()
            return
        for u in user_ids:
            self._rulesets.pop(u, None)

    def _remember(self, user_id: str, rules: Ruleset) -> None:
        if len(self._rulesets) >= RULESET_CACHE:
            self._rulesets.pop(next(iter(self._rulesets)))
        self._rulesets[user_id] = rules

    async def _stored(self, user_id: str) -> dict[str, Any]:
        return await self.stores.userdata.get_account_data(user_id, "", STORE_TYPE) or {}

    async def ruleset(self, user_id: str) -> Ruleset:
        """The user's merged rules; callers must not modify them (they are shared)."""
        rules = self._rulesets.get(user_id)
        if rules is None:
            rules = merged_ruleset(user_id, await self._stored(user_id))
            self._remember(user_id, rules)
        return rules

    async def rulesets(self, user_ids: list[str]) -> dict[str, Ruleset]:
        """`ruleset` for many users, with one read of the stored rules of those not cached."""
        out = {u: r for u in user_ids if (r := self._rulesets.get(u)) is not None}
        missing = [u for u in user_ids if u not in out]
        if missing:
            stored = await self.stores.userdata.account_data_of_users(missing, "", STORE_TYPE)
            for u in missing:
                out[u] = merged_ruleset(u, stored.get(u, {}))
                self._remember(u, out[u])
        return out

    async def _save(self, user_id: str, stored: dict[str, Any]) -> None:
        merged = merged_ruleset(user_id, stored)
        self._rulesets.pop(user_id, None)
        try:
            async with self.stores.stream.write() as (c, pos):
                await self.stores.userdata.put_account_data(c, user_id, "", STORE_TYPE, stored, pos)
                await self.stores.userdata.put_account_data(c, user_id, "", "m.push_rules",
                                                            {"global": merged}, pos)
                self.stores.stream.note(pos, UserNote((user_id,)))
        finally:
            self._rulesets.pop(user_id, None)  # a read racing the write may have cached the old rules
        await self._wake_users([user_id])

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in KINDS:
            raise MatrixError(400, "M_INVALID_PARAM", f"Unknown rule kind {kind!r}")

    async def get_rule(self, user_id: str, kind: str, rule_id: str) -> dict[str, Any]:
        self._check_kind(kind)
        for r in (await self.ruleset(user_id))[kind]:
            if r["rule_id"] == rule_id:
                return r
        raise MatrixError(404, "M_NOT_FOUND", "Unknown push rule")

    async def put_rule(self, user_id: str, kind: str, rule_id: str, body: dict[str, Any],
                       before: str | None, after: str | None) -> None:
        self._check_kind(kind)
        if rule_id.startswith("."):
            raise MatrixError(400, "M_INVALID_PARAM", "Rule IDs starting with '.' are reserved")
        actions = body.get("actions")
        if not valid_actions(actions):
            raise MatrixError(400, "M_BAD_JSON", "'actions' must be a list of valid actions")
        rule: dict[str, Any] = {"rule_id": rule_id, "enabled": True, "actions": actions}
        if kind in ("override", "underride"):
            conds = body.get("conditions", [])
            if not isinstance(conds, list) or not all(
                    isinstance(c, dict) and isinstance(c.get("kind"), str) for c in conds):
                raise MatrixError(400, "M_BAD_JSON", "'conditions' must be a list of conditions")
            rule["conditions"] = conds
        if kind == "content":
            if not isinstance(body.get("pattern"), str):
                raise MatrixError(400, "M_BAD_JSON", "content rules need a 'pattern'")
            rule["pattern"] = body["pattern"]
        stored = copy.deepcopy(await self._stored(user_id))
        rules = stored.setdefault("rules", {}).setdefault(kind, [])
        existing = [r for r in rules if r["rule_id"] == rule_id]
        if existing:
            rule["enabled"] = existing[0].get("enabled", True)
        rules[:] = [r for r in rules if r["rule_id"] != rule_id]
        anchor = before or after
        if anchor is not None:
            ids = [r["rule_id"] for r in rules]
            if anchor not in ids:
                raise MatrixError(400, "M_UNKNOWN", f"No user rule {anchor!r} to place this rule next to")
            i = ids.index(anchor) + (0 if before else 1)
            rules.insert(i, rule)
        else:
            rules.insert(0, rule)
        await self._save(user_id, stored)

    async def delete_rule(self, user_id: str, kind: str, rule_id: str) -> None:
        self._check_kind(kind)
        stored = copy.deepcopy(await self._stored(user_id))
        rules = stored.setdefault("rules", {}).setdefault(kind, [])
        if not any(r["rule_id"] == rule_id for r in rules):
            raise MatrixError(404, "M_NOT_FOUND", "Unknown push rule")
        rules[:] = [r for r in rules if r["rule_id"] != rule_id]
        await self._save(user_id, stored)

    async def set_attr(self, user_id: str, kind: str, rule_id: str, attr: str, value: Any) -> None:
        await self.get_rule(user_id, kind, rule_id)  # 404 if unknown
        if attr == "enabled" and not isinstance(value, bool):
            raise MatrixError(400, "M_BAD_JSON", "'enabled' must be a boolean")
        if attr == "actions" and not valid_actions(value):
            raise MatrixError(400, "M_BAD_JSON", "'actions' must be a list of valid actions")
        stored = copy.deepcopy(await self._stored(user_id))
        user_rules = stored.setdefault("rules", {}).setdefault(kind, [])
        for r in user_rules:
            if r["rule_id"] == rule_id:
                r[attr] = value
                break
        else:
            stored.setdefault("default_overrides", {}).setdefault(f"{kind}/{rule_id}", {})[attr] = value
        await self._save(user_id, stored)

    # ------------------------------------------------------------------ unread counts

    async def unread_counts(
        self, user_id: str, room_id: str, upto: int, threaded: bool,
        read: dict[str, int] | None = None, joined_at: int | None = None,
    ) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """Counts of notifying / highlighting events after the user's read receipts.
        `read` and `joined_at` may be passed in when the caller fetched them for many rooms."""
        state = await self.unread_state(user_id, room_id, upto, threaded, read, joined_at)
        return state.main, state.threads

    async def unread_state(
        self, user_id: str, room_id: str, upto: int, threaded: bool,
        read: dict[str, int] | None = None, joined_at: int | None = None,
    ) -> UnreadState:
        """`unread_counts` read from the database, in a form `extend_unread` can carry on from."""
        if read is None:
            read = await self.stores.receipts.last_read_positions(room_id, user_id)
        unthreaded = read.get("", -1)
        floor = min([unthreaded, *read.values()]) if read else -1
        if joined_at is None:
            membership = await self.stores.state.membership(room_id, user_id)
            joined_at = membership[2] if membership is not None else None
        if joined_at is not None:
            floor = max(floor, joined_at)  # nothing before the user joined counts
        evs = await self.stores.events.room_events_between(room_id, floor, upto, UNREAD_SCAN_LIMIT, True)
        state = UnreadState(upto, threaded, {"notification_count": 0, "highlight_count": 0}, {}, len(evs))
        evs = [e for e in evs if e.sender != user_id]
        if not evs:
            return state
        ruleset = await self.ruleset(user_id)
        ctx_base = state.ctx_base = await self._context_parts(room_id, user_id)
        state.users_rules = ruleset
        for ev in evs:
            thread = _thread_of(ev)
            read_pos = max(unthreaded, read.get(thread if thread else "main", -1))
            if ev.stream_ordering <= read_pos:
                continue
            self._count(state, ruleset, ctx_base, ev, thread)
        return state

    async def extend_unread(self, state: UnreadState, user_id: str, room_id: str, newer: list[StoredEvent],
                            upto: int) -> bool:
        """Carry `state` forward over `newer`: the room's timeline events after `state.pos` up to
        `upto`, none of them before a read receipt of the user's (no receipt of theirs in the
        room and no change of the room's state since `state.pos`; the caller checks that).
        False when the result would differ from a fresh count (it stops at UNREAD_SCAN_LIMIT
        events): the caller counts afresh."""
        if state.scanned + len(newer) > UNREAD_SCAN_LIMIT:
            return False
        for ev in newer:
            if ev.sender == user_id:
                continue
            if state.users_rules is None:
                state.users_rules = await self.ruleset(user_id)
            if state.ctx_base is None:
                state.ctx_base = await self._context_parts(room_id, user_id)
            self._count(state, state.users_rules, state.ctx_base, ev, _thread_of(ev))
        state.scanned += len(newer)
        state.pos = upto
        return True

    def _count(self, state: UnreadState, ruleset: Ruleset, ctx_base: dict[str, Any], ev: StoredEvent,
               thread: str | None) -> None:
        actions = evaluate(ruleset, _push_view(ev), self._ctx(ctx_base, ev))
        if not is_notify(actions):
            return
        bucket = state.main if (not state.threaded or thread is None) else state.threads.setdefault(
            thread, {"notification_count": 0, "highlight_count": 0})
        bucket["notification_count"] += 1
        if is_highlight(actions):
            bucket["highlight_count"] += 1

    async def _context_parts(self, room_id: str, user_id: str) -> dict[str, Any]:
        ids = await self.stores.state.current_ids(
            room_id, [("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.member", user_id)]
        )
        evs = await self.stores.events.get_many(ids.values())
        get = lambda k: evs.get(ids.get(k, ""))  # noqa: E731
        member = get(("m.room.member", user_id))
        pl = get(("m.room.power_levels", ""))
        create = get(("m.room.create", ""))
        return {
            "display_name": member.pdu.get("content", {}).get("displayname") if member else None,
            "count": len(await self.stores.state.members(room_id, ("join",))),
            "pl": pl.pdu.get("content", {}) if pl else None,
            "create": create.pdu if create else {},
            "version": KNOWN_ROOM_VERSIONS.get(
                str((create.pdu.get("content", {}) if create else {}).get("room_version", "12")),
                KNOWN_ROOM_VERSIONS["12"]),
            "user_id": user_id,
        }

    def _ctx(self, base: dict[str, Any], ev: StoredEvent) -> PushContext:
        pl = base["pl"]
        notif = pl.get("notifications", {}) if isinstance(pl, dict) else {}
        # parse_level: rooms v1-v9 allow integer strings ("50") here too
        levels = {k: lv for k, v in notif.items() if (lv := parse_level(v)) is not None} \
            if isinstance(notif, dict) else {}
        return PushContext(
            user_id=base["user_id"],
            display_name=base["display_name"] if isinstance(base["display_name"], str) else None,
            member_count=base["count"],
            sender_power=user_power_level(base["version"], base["create"], pl, ev.sender),
            notification_levels=levels,
        )


def _thread_of(ev: StoredEvent) -> str | None:
    rel = ev.pdu.get("content", {}).get("m.relates_to")
    if isinstance(rel, dict) and rel.get("rel_type") == "m.thread" and isinstance(rel.get("event_id"), str):
        return rel["event_id"]
    return None


def _push_view(ev: StoredEvent) -> dict[str, Any]:
    view = {k: v for k, v in ev.pdu.items() if k in ("type", "sender", "content", "state_key", "room_id")}
    view["room_id"] = ev.room_id
    return view


push_view = _push_view  # the event as push rules see it, for the notification pipeline

__all__ = ["PushService", "default_ruleset", "push_view"]
