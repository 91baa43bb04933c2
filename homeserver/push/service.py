"""Push rules API and unread counts (notification_count / highlight_count) per room and thread."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

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


class PushService:
    def __init__(self, stores: Stores, wake_users: Callable[[list[str]], Awaitable[None]]) -> None:
        self.stores = stores
        self._wake_users = wake_users

    async def _stored(self, user_id: str) -> dict[str, Any]:
        return await self.stores.userdata.get_account_data(user_id, "", STORE_TYPE) or {}

    async def ruleset(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
        return merged_ruleset(user_id, await self._stored(user_id))

    async def rulesets(self, user_ids: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """`ruleset` for many users, with one read of their stored rules."""
        stored = await self.stores.userdata.account_data_of_users(user_ids, "", STORE_TYPE)
        return {u: merged_ruleset(u, stored.get(u, {})) for u in user_ids}

    async def _save(self, user_id: str, stored: dict[str, Any]) -> None:
        merged = merged_ruleset(user_id, stored)
        async with self.stores.stream.write() as (c, pos):
            await self.stores.userdata.put_account_data(c, user_id, "", STORE_TYPE, stored, pos)
            await self.stores.userdata.put_account_data(c, user_id, "", "m.push_rules",
                                                        {"global": merged}, pos)
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
        evs = [e for e in evs if e.sender != user_id]
        main = {"notification_count": 0, "highlight_count": 0}
        threads: dict[str, dict[str, int]] = {}
        if not evs:
            return main, threads
        ruleset = await self.ruleset(user_id)
        ctx_base = await self._context_parts(room_id, user_id)
        for ev in evs:
            thread = _thread_of(ev)
            read_pos = max(unthreaded, read.get(thread if thread else "main", -1))
            if ev.stream_ordering <= read_pos:
                continue
            actions = evaluate(ruleset, _push_view(ev), await self._ctx(ctx_base, ev))
            if not is_notify(actions):
                continue
            bucket = main if (not threaded or thread is None) else threads.setdefault(
                thread, {"notification_count": 0, "highlight_count": 0})
            bucket["notification_count"] += 1
            if is_highlight(actions):
                bucket["highlight_count"] += 1
        return main, threads

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

    async def _ctx(self, base: dict[str, Any], ev: StoredEvent) -> PushContext:
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
