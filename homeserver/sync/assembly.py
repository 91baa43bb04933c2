"""Pure sync assembly: which state a room section carries, and the response shapes.

No I/O here: the sync service gathers the inputs (state maps, event lists) and these functions
decide what goes into the response, so the rules can be tested with plain data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

StateKey = tuple[str, str]
StateMap = Mapping[StateKey, str]


def state_for_room_section(
    *,
    full: bool,
    state_at_since: StateMap | None,
    state_at_timeline_start: StateMap,
    state_at_timeline_end: StateMap | None,
    timeline_event_ids: Iterable[str],
    lazy_members: set[str] | None,
) -> dict[StateKey, str]:
    """The `state` block of a joined/left room: (type, state_key) -> event_id.

    - full sync of the room (initial sync, newly joined, full_state): the whole state at the
      start of the timeline;
    - incremental: every state entry at the start or the end of the timeline that the client
      has not seen, i.e. that differs from the state at `since` and is not in the timeline
      itself. This covers the gap of a limited sync and the state events a filtered timeline
      left out. `state_at_timeline_end` None means the timeline holds every event since
      `since` (nothing can be missing after its start).
    With lazy loading (`lazy_members`: timeline senders and the syncing user) member events
    are kept for those users, at the start of the timeline even when unchanged, plus the
    members whose membership changed unseen (joins and leaves in the gap).
    """
    in_timeline = set(timeline_event_ids)
    start = state_at_timeline_start
    if full:
        chosen = {k: v for k, v in start.items() if v not in in_timeline}
        changed: set[StateKey] = set(chosen)
    else:
        since = state_at_since or {}
        end = state_at_timeline_end if state_at_timeline_end is not None else {}
        chosen = {}
        for key in set(start) | set(end):
            seen = since.get(key)
            for candidate in (end.get(key), start.get(key)):
                if candidate is not None and candidate not in in_timeline and candidate != seen:
                    chosen[key] = candidate
                    break
        changed = set(chosen)
    if lazy_members is None:
        return chosen
    out = {}
    for key, eid in chosen.items():
        if key[0] != "m.room.member" or key[1] in lazy_members or (not full and key in changed):
            out[key] = eid
    for user in lazy_members:
        key = ("m.room.member", user)
        if key not in out and key in start and start[key] not in in_timeline:
            out[key] = start[key]
    return out


def joined_room_section(
    timeline: list[dict[str, Any]],
    limited: bool,
    prev_batch: str,
    state: list[dict[str, Any]],
    account_data: list[dict[str, Any]],
    summary: dict[str, Any],
    ephemeral: list[dict[str, Any]] | None = None,
    unread: dict[str, int] | None = None,
) -> dict[str, Any]:
    section: dict[str, Any] = {
        "timeline": {"events": timeline, "limited": limited, "prev_batch": prev_batch},
        "state": {"events": state},
        "account_data": {"events": account_data},
        "ephemeral": {"events": ephemeral or []},
        "summary": summary,
    }
    if unread is not None:
        section["unread_notifications"] = unread
    return section


def left_room_section(
    timeline: list[dict[str, Any]], limited: bool, prev_batch: str,
    state: list[dict[str, Any]], account_data: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "timeline": {"events": timeline, "limited": limited, "prev_batch": prev_batch},
        "state": {"events": state},
        "account_data": {"events": account_data},
    }


def room_summary(
    joined_count: int, invited_count: int, members: list[str], user_id: str, has_name: bool
) -> dict[str, Any]:
    """`m.heroes` (up to 5 other members) only for rooms without a name or alias."""
    summary: dict[str, Any] = {
        "m.joined_member_count": joined_count,
        "m.invited_member_count": invited_count,
    }
    if not has_name:
        summary["m.heroes"] = sorted(u for u in set(members) if u != user_id)[:5]
    return summary


def section_is_empty(section: Mapping[str, Any]) -> bool:
    """A joined room's incremental section that tells the client nothing new (e.g. only
    events its filter or its ignore list removed): left out of the response."""
    if section.get("timeline", {}).get("events") or section.get("state", {}).get("events"):
        return False
    if section.get("ephemeral", {}).get("events") or section.get("account_data", {}).get("events"):
        return False
    return True


def is_empty_response(resp: Mapping[str, Any]) -> bool:
    rooms = resp.get("rooms", {})
    if any(rooms.get(k) for k in ("join", "invite", "leave", "knock")):
        return False
    if resp.get("account_data", {}).get("events"):
        return False
    if resp.get("to_device", {}).get("events"):
        return False
    lists = resp.get("device_lists", {})
    if lists.get("changed") or lists.get("left"):
        return False
    if resp.get("presence", {}).get("events"):
        return False
    return True
