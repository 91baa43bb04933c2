"""Power levels (Client-Server API §m.room.power_levels; room v12 creators)."""

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
    out = {create_event.get("sender")}
    if room_version.creators_infinite_pl:
        extra = create_event.get("content", {}).get("additional_creators", [])
        if isinstance(extra, list):
            out.update(u for u in extra if isinstance(u, str))
    return {u for u in out if isinstance(u, str)}


def named_level(power_levels_content: dict[str, Any] | None, name: str) -> int:
    """ban/kick/redact/invite/state_default/events_default/users_default with spec defaults.

    With no power-levels event at all, state_default is 0 (auth rules: "If there is no
    m.room.power_levels event in the room, ... state_default is 0")."""
    if power_levels_content is None:
        return 0 if name == "state_default" else _DEFAULTS[name]
    return _int(power_levels_content.get(name), _DEFAULTS[name])


def user_power_level(
    room_version: RoomVersion, create_event: dict[str, Any], power_levels_content: dict[str, Any] | None,
    user_id: str,
) -> int | float:
    """A user's level: v12 creators are infinite; without a PL event the creator has 100."""
    if room_version.creators_infinite_pl and user_id in creators(room_version, create_event):
        return math.inf
    if power_levels_content is None:
        return 100 if user_id == create_event.get("sender") else 0
    users = power_levels_content.get("users")
    if isinstance(users, dict) and user_id in users:
        return _int(users[user_id], named_level(power_levels_content, "users_default"))
    return named_level(power_levels_content, "users_default")


def event_required_level(power_levels_content: dict[str, Any] | None, event_type: str, is_state: bool) -> int:
    if power_levels_content is not None:
        events = power_levels_content.get("events")
        if isinstance(events, dict) and event_type in events:
            return _int(events[event_type], 0)
    return named_level(power_levels_content, "state_default" if is_state else "events_default")
