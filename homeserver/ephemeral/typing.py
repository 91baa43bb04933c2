"""Typing notifications: who is typing in which room, with per-user timeouts.

Each worker keeps the state in memory; changes travel between workers on the bus (every worker
applies the same change and the same timeout), so any worker can answer /sync.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

MAX_TIMEOUT_MS = 120_000
DEFAULT_TIMEOUT_MS = 30_000


class TypingManager:
    def __init__(self, on_change: Callable[[str], None]) -> None:
        self.serial = 0
        self._rooms: dict[str, dict[str, float]] = {}
        self._room_serial: dict[str, int] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._on_change = on_change

    def _bump(self, room_id: str) -> None:
        # Millisecond-based serials order changes the same way on every worker.
        self.serial = max(self.serial + 1, int(time.time() * 1000))
        self._room_serial[room_id] = self.serial
        self._on_change(room_id)

    def set_typing(self, room_id: str, user_id: str, typing: bool, timeout_ms: int) -> None:
        users = self._rooms.setdefault(room_id, {})
        key = (room_id, user_id)
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        if typing:
            timeout_ms = max(0, min(timeout_ms, MAX_TIMEOUT_MS))
            was = user_id in users
            users[user_id] = time.monotonic() + timeout_ms / 1000
            self._timers[key] = asyncio.get_running_loop().call_later(
                timeout_ms / 1000, self._expire, room_id, user_id
            )
            if not was:
                self._bump(room_id)
        elif users.pop(user_id, None) is not None:
            self._bump(room_id)

    def _expire(self, room_id: str, user_id: str) -> None:
        self._timers.pop((room_id, user_id), None)
        users = self._rooms.get(room_id, {})
        if users.pop(user_id, None) is not None:
            self._bump(room_id)

    def typing_users(self, room_id: str) -> list[str]:
        return sorted(self._rooms.get(room_id, {}))

    def changed_since(self, room_id: str, serial: int) -> bool:
        return self._room_serial.get(room_id, 0) > serial

    def rooms_changed_since(self, serial: int) -> list[str]:
        return [r for r, s in self._room_serial.items() if s > serial]

    def close(self) -> None:
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()
