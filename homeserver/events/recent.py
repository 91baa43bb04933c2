"""What the last few thousand positions of the shared stream hold, in memory.

Every write on the shared stream (`storage/ids.py:StreamTracker.write`) is reported here when it
finishes, with the note its writer attached: an event (the persister) or a receipt (the receipt
service). A position that finished without a note (account data, to-device, device lists, push
rules, a failed write) is *unknown*: whoever needs to know what changed across it must ask the
database. That is what makes the log safe to use as a shortcut: a sync from a recent token whose
whole window (since, now] is noted can be built from these notes alone (`sync/delta.py`), and an
in-memory fact read at position p (a room's members, a user's rooms, unread counts) is still true
at `now` when nothing that could change it was written after p (`quiet_since`).

With several workers another worker's positions never finish here, so the log is switched off
(`enabled = False`) and every reader falls back to the database.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from homeserver.storage.events import StoredEvent

#: Positions remembered; a sync token older than that takes the full pass.
RING = 8192
#: Longest window (since, now] a caller may ask for in one go.
MAX_WINDOW = 2048


@dataclass(frozen=True, slots=True)
class EventNote:
    event: StoredEvent


@dataclass(frozen=True, slots=True)
class ReceiptNote:
    room_id: str
    user_id: str
    receipt_type: str
    thread_id: str
    event_id: str
    ts: int

    def row(self) -> dict[str, object]:
        """The shape `ReceiptStore.changed` returns."""
        return {"room_id": self.room_id, "user_id": self.user_id, "receipt_type": self.receipt_type,
                "thread_id": self.thread_id, "event_id": self.event_id, "ts": self.ts}


@dataclass(frozen=True, slots=True)
class UserNote:
    """Per-user data of these users changed (account data, push rules, to-device messages):
    their own syncs read the database, everyone else's need not."""

    users: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NothingNote:
    """A write that turned out to change nothing visible (a receipt older than the stored one)."""


Note = EventNote | ReceiptNote | UserNote | NothingNote


class RecentChanges:
    def __init__(self) -> None:
        self.enabled = True
        self._ring: dict[int, Note | None] = {}
        self._order: deque[int] = deque()
        self._start: int | None = None  # positions up to here were written before we listened
        self._floor = 0  # and up to here have been forgotten
        #: Highest position finished without a note (or with an event outside the timeline).
        self.last_unknown = 0
        self._room_state: dict[str, int] = {}  # room -> last state event, redaction
        self._member: dict[str, int] = {}  # user -> last m.room.member event about them
        self._receipt: dict[tuple[str, str], int] = {}  # (user, room) -> last receipt
        self._user_data: dict[str, int] = {}  # user -> last change of their account data, inbox

    def start(self, head: int) -> None:
        self._start = self._floor = head

    def finished(self, pos: int, note: object | None) -> None:
        """StreamTracker.on_finish."""
        kept: Note | None = note if isinstance(note, EventNote | ReceiptNote | UserNote | NothingNote) else None
        if isinstance(kept, EventNote):
            ev = kept.event
            if not ev.in_timeline:
                kept = None
            else:
                if ev.state_key is not None or ev.type == "m.room.redaction":
                    self._room_state[ev.room_id] = max(pos, self._room_state.get(ev.room_id, 0))
                if ev.type == "m.room.member" and ev.state_key is not None:
                    self._member[ev.state_key] = max(pos, self._member.get(ev.state_key, 0))
        elif isinstance(kept, ReceiptNote):
            key = (kept.user_id, kept.room_id)
            self._receipt[key] = max(pos, self._receipt.get(key, 0))
        elif isinstance(kept, UserNote):
            for user in kept.users:
                self._user_data[user] = max(pos, self._user_data.get(user, 0))
        if kept is None:
            self.last_unknown = max(self.last_unknown, pos)
        self._ring[pos] = kept
        self._order.append(pos)
        while len(self._order) > RING:
            old = self._order.popleft()
            self._ring.pop(old, None)
            self._floor = max(self._floor, old)

    def window(self, since: int, now: int) -> list[Note] | None:
        """Every change in (since, now], in position order, or None when one of them is unknown
        or forgotten (the caller then reads the database)."""
        if not self.enabled or self._start is None or since < self._floor or now - since > MAX_WINDOW:
            return None
        out: list[Note] = []
        ring = self._ring
        for pos in range(since + 1, now + 1):
            note = ring.get(pos)
            if note is None:
                return None
            out.append(note)
        return out

    def quiet_since(self, pos: int, *, room: str | None = None, user: str | None = None,
                    receipt: tuple[str, str] | None = None) -> bool:
        """Whether nothing unknown, and nothing about `room`'s state, `user`'s memberships or
        `receipt` = (user, room)'s read receipts, was written after `pos`; with `user`, nothing of
        their account data or push rules either. A fact read from the database at `pos` still holds."""
        if not self.enabled or self._start is None or pos < self._start or self.last_unknown > pos:
            return False
        if room is not None and self._room_state.get(room, 0) > pos:
            return False
        if user is not None and max(self._member.get(user, 0), self._user_data.get(user, 0)) > pos:
            return False
        if receipt is not None and self._receipt.get(receipt, 0) > pos:
            return False
        return True
