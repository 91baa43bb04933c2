"""Push rules: the spec's predefined rules and their evaluation (Client-Server API §"Push Rules").

Pure: the caller supplies the event, the room's member count, the user's display name and the
sender's power level.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

KINDS = ("override", "content", "room", "sender", "underride")
NOTIFY_SOUND = ["notify", {"set_tweak": "sound", "value": "default"}]
HIGHLIGHT = ["notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"}]


def default_ruleset(user_id: str) -> dict[str, list[dict[str, Any]]]:
    """The server-default rules, in the spec's order, for one user."""
    localpart = user_id[1:].split(":", 1)[0]

    def rule(rule_id: str, conditions: list[dict[str, Any]], actions: list[Any],
             enabled: bool = True) -> dict[str, Any]:
        return {"rule_id": rule_id, "default": True, "enabled": enabled, "conditions": conditions, "actions": actions}

    def match(key: str, pattern: str) -> dict[str, Any]:
        return {"kind": "event_match", "key": key, "pattern": pattern}

    return {
        "override": [
            rule(".m.rule.master", [], [], enabled=False),
            rule(".m.rule.suppress_notices", [match("content.msgtype", "m.notice")], []),
            rule(".m.rule.invite_for_me", [match("type", "m.room.member"), match("content.membership", "invite"),
                                           match("state_key", user_id)], NOTIFY_SOUND),
            rule(".m.rule.member_event", [match("type", "m.room.member")], []),
            rule(".m.rule.is_user_mention", [{"kind": "event_property_contains",
                                              "key": "content.m\\.mentions.user_ids", "value": user_id}], HIGHLIGHT),
            rule(".m.rule.is_room_mention", [{"kind": "event_property_is", "key": "content.m\\.mentions.room",
                                              "value": True},
                                             {"kind": "sender_notification_permission", "key": "room"}],
                 ["notify", {"set_tweak": "highlight"}]),
            rule(".m.rule.tombstone", [match("type", "m.room.tombstone"), match("state_key", "")],
                 ["notify", {"set_tweak": "highlight"}]),
            rule(".m.rule.reaction", [match("type", "m.reaction")], []),
            rule(".m.rule.room.server_acl", [match("type", "m.room.server_acl"), match("state_key", "")], []),
            rule(".m.rule.suppress_edits", [{"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type",
                                             "value": "m.replace"}], []),
        ],
        "content": [
            {"rule_id": ".m.rule.contains_user_name", "default": True, "enabled": True, "pattern": localpart,
             "actions": HIGHLIGHT},
        ],
        "room": [],
        "sender": [],
        "underride": [
            rule(".m.rule.call", [match("type", "m.call.invite")],
                 ["notify", {"set_tweak": "sound", "value": "ring"}]),
            rule(".m.rule.encrypted_room_one_to_one", [{"kind": "room_member_count", "is": "2"},
                                                       match("type", "m.room.encrypted")], NOTIFY_SOUND),
            rule(".m.rule.room_one_to_one", [{"kind": "room_member_count", "is": "2"},
                                             match("type", "m.room.message")], NOTIFY_SOUND),
            rule(".m.rule.message", [match("type", "m.room.message")], ["notify"]),
            rule(".m.rule.encrypted", [match("type", "m.room.encrypted")], ["notify"]),
        ],
    }


def merged_ruleset(user_id: str, stored: dict[str, Any] | None) -> dict[str, list[dict[str, Any]]]:
    """Defaults with the user's changes applied; user rules before defaults within a kind,
    except underride where defaults come last too (the spec's evaluation order)."""
    base = default_ruleset(user_id)
    if not stored:
        return base
    out: dict[str, list[dict[str, Any]]] = {}
    overrides = stored.get("default_overrides", {}) if isinstance(stored, dict) else {}
    user_rules = stored.get("rules", {}) if isinstance(stored, dict) else {}
    for kind in KINDS:
        defaults = []
        for r in base[kind]:
            r = copy.deepcopy(r)
            ov = overrides.get(f"{kind}/{r['rule_id']}", {})
            if "enabled" in ov:
                r["enabled"] = ov["enabled"]
            if "actions" in ov:
                r["actions"] = ov["actions"]
            defaults.append(r)
        mine = [dict(r, default=False) for r in user_rules.get(kind, [])]
        # .m.rule.master stays first of all overrides.
        if kind == "override":
            out[kind] = defaults[:1] + mine + defaults[1:]
        else:
            out[kind] = mine + defaults
    return out


# ---------------------------------------------------------------------- evaluation


def _split_key(key: str) -> list[str]:
    parts, cur, i = [], "", 0
    while i < len(key):
        ch = key[i]
        if ch == "\\" and i + 1 < len(key) and key[i + 1] in ".\\":
            cur += key[i + 1]
            i += 2
            continue
        if ch == ".":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    parts.append(cur)
    return parts


def _lookup(event: dict[str, Any], key: str) -> Any:
    v: Any = event
    for part in _split_key(key):
        if not isinstance(v, dict) or part not in v:
            return None
        v = v[part]
    return v


@lru_cache(maxsize=2048)
def _glob(pattern: str, words: bool) -> re.Pattern[str]:
    rx = fnmatch.translate(pattern.lower())
    rx = rx[4:-3] if rx.startswith("(?s:") and rx.endswith(")\\Z") else rx
    if words:
        return re.compile(r"(?:^|\W)" + rx + r"(?:\W|\Z)", re.S)
    return re.compile("^" + rx + r"\Z", re.S)


@dataclass(frozen=True)
class PushContext:
    user_id: str
    display_name: str | None
    member_count: int
    sender_power: int | float
    notification_levels: dict[str, int]


def _condition(cond: dict[str, Any], event: dict[str, Any], ctx: PushContext) -> bool:
    kind = cond.get("kind")
    if kind == "event_match":
        value = _lookup(event, str(cond.get("key", "")))
        pattern = cond.get("pattern")
        if not isinstance(value, str) or not isinstance(pattern, str):
            return False
        return bool(_glob(pattern, cond.get("key") == "content.body").search(value.lower()))
    if kind == "event_property_is":
        return _lookup(event, str(cond.get("key", ""))) == cond.get("value") and \
            type(_lookup(event, str(cond.get("key", "")))) is type(cond.get("value"))
    if kind == "event_property_contains":
        value = _lookup(event, str(cond.get("key", "")))
        return isinstance(value, list) and cond.get("value") in value
    if kind == "contains_display_name":
        body = _lookup(event, "content.body")
        name = ctx.display_name
        if not name or not isinstance(body, str):
            return False
        return bool(re.search(r"(?:^|\W)" + re.escape(name.lower()) + r"(?:\W|$)", body.lower()))
    if kind == "room_member_count":
        m = re.fullmatch(r"(==|<=|>=|<|>)?(\d+)", str(cond.get("is", "")))
        if not m:
            return False
        op, n = m.group(1) or "==", int(m.group(2))
        c = ctx.member_count
        return {"==": c == n, "<": c < n, ">": c > n, "<=": c <= n, ">=": c >= n}[op]
    if kind == "sender_notification_permission":
        key = cond.get("key")
        need = ctx.notification_levels.get(str(key), 50)
        return ctx.sender_power >= need
    return False  # unknown conditions never match


def evaluate(ruleset: dict[str, list[dict[str, Any]]], event: dict[str, Any], ctx: PushContext) -> list[Any]:
    """The actions of the first matching enabled rule (empty list: no notification)."""
    for kind in KINDS:
        for rule in ruleset.get(kind, []):
            if not rule.get("enabled", True):
                continue
            if kind == "override" and rule.get("rule_id") == ".m.rule.master":
                if rule.get("enabled"):
                    return []
                continue
            if kind == "content":
                conds = [{"kind": "event_match", "key": "content.body", "pattern": rule.get("pattern", "")}]
            elif kind == "room":
                conds = [{"kind": "event_match", "key": "room_id", "pattern": rule.get("rule_id", "")}]
            elif kind == "sender":
                conds = [{"kind": "event_match", "key": "sender", "pattern": rule.get("rule_id", "")}]
            else:
                conds = rule.get("conditions", [])
            if all(_condition(c, event, ctx) for c in conds):
                return list(rule.get("actions", []))
    return []


def is_notify(actions: list[Any]) -> bool:
    return "notify" in actions


def is_highlight(actions: list[Any]) -> bool:
    for a in actions:
        if isinstance(a, dict) and a.get("set_tweak") == "highlight":
            return a.get("value", True) is not False
    return False


LEGACY_ACTIONS = ("dont_notify", "coalesce")  # still accepted; they mean "no notification"


def valid_actions(actions: Any) -> bool:
    """A rule's `actions`: "notify", the legacy no-ops, or `{"set_tweak": name, "value": ...}`
    objects (Client-Server API §"Push Rules: Actions")."""
    if not isinstance(actions, list):
        return False
    for action in actions:
        if isinstance(action, str):
            if action != "notify" and action not in LEGACY_ACTIONS:
                return False
        elif isinstance(action, dict):
            if not isinstance(action.get("set_tweak"), str) or not action["set_tweak"]:
                return False
        else:
            return False
    return True
