"""Wakes the waiting /sync requests of exactly the users a change concerns.

A waiter registers *before* it computes its response, so a change that lands between the
computation and the wait still wakes it (no lost wake-ups, no polling).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from homeserver import metrics


class Notifier:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self.closing = False

    def listen(self, user_id: str) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.closing:
            fut.set_result(None)  # shutting down: nobody parks any more
            return fut
        self._waiters.setdefault(user_id, set()).add(fut)
        return fut

    def close(self) -> None:
        """Shutdown: wake every parked waiter and refuse to park new ones, so long-polls answer
        at once and the server need not wait out its grace period."""
        self.closing = True
        self.wake(list(self._waiters))

    def unlisten(self, user_id: str, fut: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(user_id)
        if waiters is not None:
            waiters.discard(fut)
            if not waiters:
                del self._waiters[user_id]
        if not fut.done():
            fut.cancel()

    def waiting_users(self) -> set[str]:
        return set(self._waiters)

    def wake(self, user_ids: Iterable[str]) -> None:
        for uid in user_ids:
            waiters = self._waiters.pop(uid, None)
            if not waiters:
                continue
            woken = 0
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
                    woken += 1
            metrics.SYNC_WAKEUPS.inc(woken)


def peek_key(room_id: str) -> str:
    """The key peekers of a room wait on (GET /events?room_id=); no user ID starts with a space."""
    return " peek " + room_id
