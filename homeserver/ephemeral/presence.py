"""Presence: online / unavailable / offline, status messages and last activity.

Cheap by design: a change of state or status message is what wakes other users; mere activity
only refreshes `last_active_ts`. Idle users read as `unavailable` after IDLE_MS.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeserver.protocol.errors import MatrixError

STATES = ("online", "unavailable", "offline")
IDLE_MS = 5 * 60 * 1000


@dataclass
class UserPresence:
    presence: str = "offline"
    status_msg: str | None = None
    last_active_ts: int = 0
    serial: int = 0
    #: When the newest update applied was made, at its source (this worker, another worker, or
    #: received from the user's server): an update made before it arrives too late.
    updated_ts: int = 0


class PresenceManager:
    def __init__(self, enabled: bool, on_change: Callable[[str, bool], None]) -> None:
        self.enabled = enabled
        self.serial = 0
        self._users: dict[str, UserPresence] = {}
        self._on_change = on_change

    def set(self, user_id: str, presence: str, status_msg: Any = ..., now_ms: int | None = None,
            local: bool = True, at_ms: int | None = None, last_active_ts: int | None = None) -> None:
        """Apply a change. A change made here always applies; one from elsewhere (another worker,
        another server) made at `at_ms` applies only if no later change was applied already
        (updates can overtake each other on the way): the latest wins."""
        if presence not in STATES:
            raise MatrixError(400, "M_INVALID_PARAM", f"presence must be one of {', '.join(STATES)}")
        if status_msg is not ... and status_msg is not None and not isinstance(status_msg, str):
            raise MatrixError(400, "M_BAD_JSON", "status_msg must be a string")
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        at = at_ms if at_ms is not None else now_ms
        p = self._users.setdefault(user_id, UserPresence())
        if not local and at < p.updated_ts:
            return
        p.updated_ts = max(p.updated_ts, at)
        changed = p.presence != presence or (status_msg is not ... and status_msg != p.status_msg)
        p.presence = presence
        if status_msg is not ...:
            p.status_msg = status_msg
        if last_active_ts is not None:
            p.last_active_ts = max(0, min(last_active_ts, now_ms))
        elif presence == "online":
            p.last_active_ts = now_ms
        if changed:
            self.serial = max(self.serial + 1, now_ms)
            p.serial = self.serial
            self._on_change(user_id, local)

    def touch(self, user_id: str, set_presence: str | None) -> None:
        """A sync call: counts as activity and applies `set_presence` (default online)."""
        if not self.enabled:
            return
        self.set(user_id, set_presence or "online", ...)

    def get(self, user_id: str, now_ms: int | None = None) -> dict[str, Any]:
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        p = self._users.get(user_id, UserPresence())
        ago = now_ms - p.last_active_ts if p.last_active_ts else None
        state = p.presence
        if state == "online" and ago is not None and ago > IDLE_MS:
            state = "unavailable"
        out: dict[str, Any] = {"presence": state, "currently_active": state == "online"}
        if ago is not None:
            out["last_active_ago"] = max(0, ago)
        if p.status_msg is not None:
            out["status_msg"] = p.status_msg
        return out

    def known(self, user_id: str) -> bool:
        """Whether any presence was ever set for the user (here or by their server)."""
        return user_id in self._users

    def changed_since(self, serial: int) -> list[str]:
        return [u for u, p in self._users.items() if p.serial > serial]

    def snapshot(self, user_id: str) -> dict[str, Any]:
        p = self._users.get(user_id, UserPresence())
        return {"presence": p.presence, "status_msg": p.status_msg, "last_active_ts": p.last_active_ts,
                "updated_ts": p.updated_ts}
