"""The streams a sync covers, one source object each.

Every source owns one position of the sync token (`key`, see `token.KEYS`) and answers two
questions: where its stream is now (`current`), and what changed for a user since a token
(`fill`, which writes its part of the response and may move its own position in the next
token, e.g. when only part of a backlog fit). Several sources may share a position generator:
events, receipts, account data and device-list changes all live on the shared stream.

A new stream is a new source here plus a key in the token, not a new branch in the service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from homeserver.ephemeral.presence import PresenceManager
from homeserver.ephemeral.typing import TypingManager
from homeserver.protocol.filters import SyncFilter
from homeserver.storage.ids import StreamTracker
from homeserver.sync.token import SyncToken


@dataclass
class SyncPass:
    """One computation of a sync response for one device."""

    user_id: str
    device_id: str
    since: SyncToken | None
    now: SyncToken
    flt: SyncFilter
    #: The newest token the device has confirmed receiving (the WebSocket's ack; on /sync the
    #: `since` itself). Data a source deletes once delivered is deleted up to here only.
    acked: SyncToken | None
    next: SyncToken = field(init=False)
    response: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.next = self.now


class Source(Protocol):
    key: str

    def current(self) -> int: ...


class UserSource(Source, Protocol):
    """A source whose changes are per user (or device) and go to the top of the response."""

    async def fill(self, p: SyncPass) -> None: ...

    def has_news(self, response: dict[str, Any]) -> bool:
        """Whether what `fill` wrote is worth answering a long-poll for."""
        ...

    async def fill_quiet(self, p: SyncPass) -> bool:
        """`fill` for a window known to hold no write of this stream (nothing but events and
        receipts: `sync/delta.py`); False when that is not enough to answer (the full pass runs)."""
        ...


class SharedStreamSource:
    """Events, receipts and account data: the shared persistent stream (the room sections are
    assembled by the sync service, which reads this position)."""

    key = "stream"

    def __init__(self, stream: StreamTracker) -> None:
        self._stream = stream

    def current(self) -> int:
        return self._stream.current()


class TypingSource:
    key = "typing"

    def __init__(self, typing: TypingManager) -> None:
        self.typing = typing

    def current(self) -> int:
        return self.typing.serial


class PresenceSource:
    key = "presence"

    def __init__(self, presence: PresenceManager) -> None:
        self.presence = presence

    def current(self) -> int:
        return self.presence.serial


def current_token(sources: list[Source]) -> SyncToken:
    token = SyncToken(0)
    for s in sources:
        token = token.with_position(s.key, s.current())
    return token
