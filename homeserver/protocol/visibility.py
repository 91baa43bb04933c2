"""History visibility of one event, for a user or for a server (pure: no I/O).

Client-Server API, "History visibility" (m.room.history_visibility): whether a user may see an
event is decided from the room's `history_visibility` and the user's membership *in the state at
that event*, not from the room's current settings:

1. `world_readable` at the event: visible.
2. The user's membership at the event was `join`: visible.
3. `shared` at the event, and the user joined the room at some point after the event: visible.
4. `invited` at the event, and the user's membership at the event was `invite`: visible.
5. Otherwise hidden.

"The state at the event" is the state after it (so a user sees their own join). At the two kinds
of boundary the more open reading wins, so that a client sees the events that open or close its
window: a `m.room.history_visibility` event is judged by the less restrictive of its old and new
setting (the room's first setting has no old one to widen it), and a user's own membership
event by the "more joined" of the old and new membership (and a user always sees their own
leave from `join`, `invite` or `knock`, e.g. a rejected invite).

Server-Server API, "Retrieving events" / backfill: a server may see an event when the setting is
`world_readable` or `shared`, or when one of its users was joined (`joined`) or invited or joined
(`invited`) at the event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Most open first.
VISIBILITY_ORDER = ("world_readable", "shared", "invited", "joined")
#: "Most joined" first.
MEMBERSHIP_ORDER = ("join", "invite", "knock", "leave", "ban")
DEFAULT_VISIBILITY = "shared"


def effective_visibility(value: Any) -> str:
    """An unknown or missing setting counts as `shared` (the spec's default)."""
    return value if value in VISIBILITY_ORDER else DEFAULT_VISIBILITY


def _membership(value: Any) -> str:
    return value if value in MEMBERSHIP_ORDER else "leave"


@dataclass(frozen=True)
class EventFacts:
    """What the rule needs to know about one event and the state after it."""

    type: str
    state_key: str | None
    content: Mapping[str, Any]
    prev_content: Mapping[str, Any] | None
    #: `history_visibility` in the state after the event (None: no such state event).
    visibility_at_event: Any
    #: The user's membership in the state after the event (None: no member event).
    membership_at_event: Any


def visibility_for(ev: EventFacts) -> str:
    vis = effective_visibility(ev.visibility_at_event)
    if ev.type == "m.room.history_visibility" and ev.state_key == "" and ev.prev_content:
        old = effective_visibility(ev.prev_content.get("history_visibility"))
        if VISIBILITY_ORDER.index(old) < VISIBILITY_ORDER.index(vis):
            vis = old
    return vis


def visible_to_user(ev: EventFacts, user_id: str, joined_later: bool) -> bool:
    """May `user_id` see the event? `joined_later`: the user has a join after the event."""
    membership = _membership(ev.membership_at_event)
    if ev.type == "m.room.member" and ev.state_key == user_id:
        new = _membership(ev.content.get("membership"))
        old = _membership((ev.prev_content or {}).get("membership"))
        if new == "leave" and old in ("join", "invite", "knock"):
            return True
        membership = new if MEMBERSHIP_ORDER.index(new) <= MEMBERSHIP_ORDER.index(old) else old
    vis = visibility_for(ev)
    if vis == "world_readable" or membership == "join":
        return True
    if vis == "shared":
        return joined_later
    if vis == "invited":
        return membership == "invite"
    return False


def visible_to_server(visibility_at_event: Any, memberships_of_its_users: Iterable[Any]) -> bool:
    """May a server see the event, given its users' memberships in the state at the event?"""
    vis = effective_visibility(visibility_at_event)
    if vis in ("world_readable", "shared"):
        return True
    allowed = ("join", "invite") if vis == "invited" else ("join",)
    return any(m in allowed for m in memberships_of_its_users)
