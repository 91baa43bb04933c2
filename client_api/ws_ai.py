"""`ai.*` frames on the WebSocket (spec/ai.md): summaries streamed token by token, reply
suggestions, and cancel. Each summary runs as its own task so the socket keeps reading (and
can receive `ai.cancel`); frames are queued with backpressure, so a slow reader slows the
upstream stream instead of dropping tokens."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError

Send = Callable[[dict[str, Any]], Awaitable[None]]
MAX_RUNNING = 4


class AIFrames:
    def __init__(self, hs: Homeserver, send: Send) -> None:
        self.hs = hs
        self.send = send
        self.running: dict[Any, asyncio.Task[None]] = {}

    def close(self) -> None:
        for t in self.running.values():
            t.cancel()
        self.running.clear()

    async def handle(self, user_id: str, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        kind = msg["type"]
        if kind == "ai.cancel":
            task = self.running.pop(rid, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.send({"type": "ai.cancelled", "id": rid, "found": task is not None})
            return
        room_id = msg.get("room_id")
        if not isinstance(room_id, str):
            raise MatrixError(400, "M_BAD_JSON", "'room_id' is required")
        if kind == "ai.suggest":
            event_id = msg.get("event_id")
            if not isinstance(event_id, str):
                raise MatrixError(400, "M_BAD_JSON", "'event_id' is required")
            out = await self.hs.ai.suggest_replies(user_id, room_id, event_id)
            await self.send({"type": "ai.suggestions", "id": rid, "suggestions": out})
            return
        if kind not in ("ai.summarize", "ai.ask"):
            raise MatrixError(400, "M_UNRECOGNIZED", f"Unknown frame type {kind!r}")
        if rid is None or rid in self.running:
            raise MatrixError(400, "M_BAD_JSON", f"{kind} needs an 'id' not already streaming")
        if len(self.running) >= MAX_RUNNING:
            raise MatrixError(429, "M_LIMIT_EXCEEDED", "Too many AI streams on this socket")
        since_ts, thread_id = msg.get("since_ts"), msg.get("thread_id")
        if since_ts is not None and (not isinstance(since_ts, int) or isinstance(since_ts, bool)):
            raise MatrixError(400, "M_BAD_JSON", "'since_ts' must be an integer")
        if thread_id is not None and not isinstance(thread_id, str):
            raise MatrixError(400, "M_BAD_JSON", "'thread_id' must be an event ID")
        if kind == "ai.ask":
            question = msg.get("question")
            if not isinstance(question, str):
                raise MatrixError(400, "M_BAD_JSON", "'question' must be a string")
            chat = await self.hs.ai.prepare_ask(user_id, room_id, question, since_ts=since_ts)
        else:
            chat = await self.hs.ai.prepare_summary(user_id, room_id, since_ts=since_ts,
                                                    since_read_marker=msg.get("since") == "read_marker",
                                                    thread_id=thread_id)
        self.running[rid] = asyncio.create_task(self._stream(rid, chat))

    async def _stream(self, rid: Any, chat: Any) -> None:
        parts: list[str] = []
        try:
            await self.send({"type": "ai.start", "id": rid, "model": chat.model,
                             "message_count": chat.message_count})
            async for piece in self.hs.ai.stream(chat):
                parts.append(piece)
                await self.send({"type": "ai.token", "id": rid, "text": piece})
            await self.send({"type": "ai.done", "id": rid, "text": "".join(parts)})
        except MatrixError as e:
            await self.send({"type": "ai.error", "id": rid, **e.to_dict()})
        finally:
            self.running.pop(rid, None)
