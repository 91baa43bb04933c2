"""The recent-changes log (homeserver/events/recent.py): which windows it can answer alone and
which facts it lets callers keep. Plain data, no server."""

from __future__ import annotations

import pytest

from homeserver.events import recent
from homeserver.events.recent import EventNote, NothingNote, ReceiptNote, RecentChanges, UserNote
from homeserver.storage.events import StoredEvent


def _ev(pos: int, room: str = "!r:x", etype: str = "m.room.message", state_key: str | None = None,
        soft_failed: bool = False) -> StoredEvent:
    return StoredEvent(f"$e{pos}", pos, room, etype, state_key, "@a:x", 1, 0, {}, 1, None, None, None,
                       soft_failed=soft_failed)


def _log(head: int = 10) -> RecentChanges:
    log = RecentChanges()
    log.start(head)
    return log


def test_window_needs_every_position_noted() -> None:
    log = _log()
    log.finished(11, EventNote(_ev(11)))
    log.finished(13, ReceiptNote("!r:x", "@b:x", "m.read", "", "$e11", 5))
    assert log.window(10, 11) is not None
    assert log.window(10, 13) is None  # 12 has not finished
    log.finished(12, NothingNote())
    got = log.window(10, 13)
    assert got is not None and [type(n) for n in got] == [EventNote, NothingNote, ReceiptNote]
    log.finished(14, None)  # a write that noted nothing
    assert log.window(10, 14) is None
    assert log.window(9, 11) is None  # from before the log started
    assert log.window(13, 13) == []


def test_events_outside_the_timeline_are_unknown() -> None:
    log = _log()
    log.finished(11, EventNote(_ev(11, soft_failed=True)))
    assert log.window(10, 11) is None
    assert not log.quiet_since(10)


def test_quiet_since_tracks_rooms_users_and_receipts() -> None:
    log = _log()
    log.finished(11, EventNote(_ev(11)))
    assert log.quiet_since(10, room="!r:x", user="@b:x", receipt=("@b:x", "!r:x"))
    log.finished(12, EventNote(_ev(12, etype="m.room.member", state_key="@b:x")))
    assert not log.quiet_since(11, room="!r:x")
    assert not log.quiet_since(11, user="@b:x")
    assert log.quiet_since(11, room="!other:x", user="@c:x")
    assert log.quiet_since(12, room="!r:x", user="@b:x")
    log.finished(13, ReceiptNote("!r:x", "@b:x", "m.read", "", "$e11", 5))
    assert not log.quiet_since(12, receipt=("@b:x", "!r:x"))
    assert log.quiet_since(12, room="!r:x", receipt=("@c:x", "!r:x"))
    log.finished(14, UserNote(("@c:x",)))
    assert not log.quiet_since(13, user="@c:x") and log.quiet_since(13, user="@b:x", room="!r:x")
    log.finished(15, EventNote(_ev(15, etype="m.room.redaction")))
    assert not log.quiet_since(14, room="!r:x")
    log.finished(16, None)
    assert not log.quiet_since(15) and log.quiet_since(16)
    log.enabled = False  # several workers: nothing is kept
    assert not log.quiet_since(16) and log.window(16, 16) is None


def test_forgotten_positions_cannot_be_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recent, "RING", 4)
    log = _log(0)
    for pos in range(1, 9):
        log.finished(pos, EventNote(_ev(pos)))
    assert log.window(3, 8) is None
    assert log.window(4, 8) is not None
    assert log.quiet_since(2, room="!r:x")  # facts need the maxima only, not the ring
