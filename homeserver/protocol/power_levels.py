"""Power levels (client-server API §m.room.power_levels; rooms/v12.md creators)."""

from __future__ import annotations

import math
from typing import Any

from homeserver.protocol.room_versions import RoomVersion

_DEFAULTS = {
    "ban": 50, "kick": 50, "redact": 50, "invite": 0, "state_default": 50,
    "events_default": 0, "users_default": 0,
}


def _int(v: Any, default: int) -> int:
    if isinstance(v, bool):
        return default
    if isinstance(v, int):
        return v
    if isinstance(v, str):  # room versions < 10 allowed stringy levels
        try:
            return int(v.strip())
        except ValueError:
            return default
    return default


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
