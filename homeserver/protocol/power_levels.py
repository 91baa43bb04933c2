"""Power levels (client-server API §m.room.power_levels; rooms/v12.md creators) and the
authorization rule for m.room.power_levels events (rule 10 in rooms v1-v5, rule 9 from v6)."""

from __future__ import annotations

import math
import re
from typing import Any

from homeserver.protocol.errors import AuthError
from homeserver.protocol.ids import is_valid_user_id
from homeserver.protocol.room_versions import RoomVersion

_STRINGY_INT = re.compile(r"\s*[+-]?[0-9]+\s*", re.ASCII)
_NAMED = ("users_default", "events_default", "state_default", "ban", "redact", "kick", "invite")

_DEFAULTS = {
    "ban": 50, "kick": 50, "redact": 50, "invite": 0, "state_default": 50,
    "events_default": 0, "users_default": 0,
}


def parse_level(v: Any) -> int | None:
    """A power level value as an integer, or None if it is not one. Besides integers, accepts the
    deprecated forms rooms v1-v9 allow (their auth rules keep v10+ events free of them): strings
    holding a base-10 integer with an optional sign, leading zeros and surrounding whitespace
    (rooms/fragments/v1-stringy-power-levels.md), and finite floats truncated toward zero
    (v1-floaty-power-levels.md; v6+ canonical JSON has no floats)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        return int(v) if _STRINGY_INT.fullmatch(v) else None
    if isinstance(v, float) and math.isfinite(v):
        return int(v)
    return None


def _int(v: Any, default: int) -> int:
    parsed = parse_level(v)
    return default if parsed is None else parsed


def creators(room_version: RoomVersion, create_event: dict[str, Any]) -> set[str]:
    """The room creators: v12 the create `sender` plus `content.additional_creators`
    (rooms/v12.md §Authorization rules); v11 the `sender`; v10 `content.creator`."""
    content = create_event.get("content")
    content = content if isinstance(content, dict) else {}
    if room_version.create_has_creator:
        out = {content.get("creator", create_event.get("sender"))}
    else:
        out = {create_event.get("sender")}
    if room_version.creators_infinite_pl:
        extra = content.get("additional_creators", [])
        if isinstance(extra, list):
            out.update(u for u in extra if isinstance(u, str))
    return {u for u in out if isinstance(u, str)}


def named_level(power_levels_content: dict[str, Any] | None, name: str) -> int:
    """The level named `name` (ban, kick, redact, invite, state_default, events_default,
    users_default) with the defaults of client-server API §m.room.power_levels: ban, kick, redact
    and state_default 50; invite, events_default and users_default 0. The defaults are the same
    whether the key is absent or there is no power-levels event at all (the current schema text
    says so explicitly for state_default; r0 used 0 there, Synapse uses 50)."""
    if power_levels_content is None or not isinstance(power_levels_content, dict):
        return _DEFAULTS[name]
    return _int(power_levels_content.get(name), _DEFAULTS[name])


def user_power_level(
    room_version: RoomVersion, create_event: dict[str, Any], power_levels_content: dict[str, Any] | None,
    user_id: str,
) -> int | float:
    """A user's power level (client-server API §m.room.power_levels; rooms/v12.md): v12 creators
    are `math.inf`; with no power-levels event the creator has 100 and everyone else 0; otherwise
    `users[user_id]`, else `users_default`."""
    if room_version.creators_infinite_pl and user_id in creators(room_version, create_event):
        return math.inf
    if power_levels_content is None or not isinstance(power_levels_content, dict):
        return 100 if user_id in creators(room_version, create_event) else 0
    users = power_levels_content.get("users")
    default = named_level(power_levels_content, "users_default")
    if isinstance(users, dict) and user_id in users:
        return _int(users[user_id], default)
    return default


def event_required_level(power_levels_content: dict[str, Any] | None, event_type: str, is_state: bool) -> int:
    """The level needed to send `event_type`: `events[event_type]`, else `state_default` for state
    events or `events_default` for others (client-server API §m.room.power_levels)."""
    if isinstance(power_levels_content, dict):
        events = power_levels_content.get("events")
        if isinstance(events, dict) and event_type in events:
            return _int(events[event_type], named_level(power_levels_content,
                                                         "state_default" if is_state else "events_default"))
    return named_level(power_levels_content, "state_default" if is_state else "events_default")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_format(rv: RoomVersion, new: dict[str, Any]) -> None:
    """Rule 9.1-9.3 (v10+) / 10.1 (v1-v9): in v10+ every level is an integer; before, only
    `users` is checked and its values may also be integer strings (or floats in v1-v5)."""
    if rv.integer_power_levels:
        for name in _NAMED:
            if name in new and not _is_int(new[name]):
                raise AuthError(f"'{name}' must be an integer")
        for name in ("events", "notifications"):
            if name in new and (not isinstance(new[name], dict)
                                or not all(_is_int(v) for v in new[name].values())):
                raise AuthError(f"'{name}' must map to integers")
    users = new.get("users", {})
    ok = _is_int if rv.integer_power_levels else (lambda v: parse_level(v) is not None)
    if not isinstance(users, dict) or not all(is_valid_user_id(u) and ok(v) for u, v in users.items()):
        raise AuthError("'users' must map user IDs to integers")


def check_power_levels_event(
    rv: RoomVersion, event: dict[str, Any], create: dict[str, Any], old: dict[str, Any] | None,
    sender_level: int | float,
) -> None:
    """The authorization rule for m.room.power_levels (rooms/v10.md, v11.md rule 9; v12.md rule 10;
    rooms/fragments/v1-auth-rules.md and v3-auth-rules.md rule 10; rooms/v6.md rule 9, which
    adds `notifications`). `old` is the current power levels content (None: no such event).
    Levels are compared as parsed integers, so `"50"` and `50` are the same level in v1-v9."""
    new = event["content"]
    _check_format(rv, new)
    users = new.get("users", {})
    if rv.creators_infinite_pl and creators(rv, create) & set(users):
        raise AuthError("Room creators cannot be listed in users")
    if old is None:
        return

    def level(section: dict[str, Any], key: str) -> int | None:
        if key not in section:
            return None
        parsed = parse_level(section[key])
        if parsed is None:
            raise AuthError(f"{section[key]!r} is not a valid power level")
        return parsed

    def changed(o: dict[str, Any], n: dict[str, Any], key: str) -> tuple[int | None, int | None] | None:
        before, after = level(o, key), level(n, key)
        return None if before == after else (before, after)

    for name in _NAMED:
        diff = changed(old, new, name)
        if diff is not None and any(v is not None and v > sender_level for v in diff):
            raise AuthError(f"Cannot change '{name}' beyond your own level")
    sections = ("events", "notifications") if rv.limit_notifications_power_levels else ("events",)
    for name in sections:
        raw_old, raw_new = old.get(name), new.get(name)
        o = raw_old if isinstance(raw_old, dict) else {}
        n = raw_new if isinstance(raw_new, dict) else {}
        for k in set(o) | set(n):
            diff = changed(o, n, k)
            if diff is None:
                continue
            if diff[0] is not None and diff[0] > sender_level:
                raise AuthError(f"Cannot change {name}.{k}: its old level is above yours")
            if diff[1] is not None and diff[1] > sender_level:
                raise AuthError(f"Cannot set {name}.{k} above your own level")
    raw_old_users = old.get("users")
    o_users = raw_old_users if isinstance(raw_old_users, dict) else {}
    sender = event["sender"]
    for u in set(o_users) | set(users):
        diff = changed(o_users, users, u)
        if diff is None:
            continue
        if u != sender and diff[0] is not None and diff[0] >= sender_level:
            raise AuthError(f"Cannot change the level of {u}: it is not below yours")
        if diff[1] is not None and diff[1] > sender_level:
            raise AuthError(f"Cannot give {u} a level above your own")
