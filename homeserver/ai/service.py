"""The AI service: summaries, reply suggestions and model lists for one user at a time.

Each request first gathers what the user may read (transcript.py), then calls their
inference server (client.py). Errors that can be known before any text is generated (no
endpoint, encrypted room, endpoint down, missing model) are raised before the first piece, so
an HTTP handler can still answer with a Matrix error instead of a broken stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import httpx

from homeserver.accounts.account_data import AccountDataService
from homeserver.ai import prompts
from homeserver.ai.client import InferenceClient, Message
from homeserver.ai.endpoint import Endpoint
from homeserver.ai.settings import AISettings
from homeserver.ai.transcript import TranscriptReader
from homeserver.config_ai import AIConfig
from homeserver.outbound import Resolver, system_resolve
from homeserver.protocol.errors import MatrixError
from homeserver.rooms.reads import RoomReader
from homeserver.storage.ai import AIStore
from homeserver.storage.database import Database

SUMMARY_MAX_TOKENS = 600


@dataclass(frozen=True)
class PreparedChat:
    endpoint: Endpoint
    model: str
    messages: list[Message]
    message_count: int


class AIService:
    def __init__(self, db: Database, cfg: AIConfig, seed: bytes, reader: RoomReader,
                 account_data: AccountDataService, transport: httpx.AsyncBaseTransport | None = None,
                 resolver: Resolver = system_resolve) -> None:
        self.cfg = cfg
        self.store = AIStore(db)
        self.settings = AISettings(self.store, cfg, seed, resolver)
        self.client = InferenceClient(cfg, transport)
        self.transcripts = TranscriptReader(reader, account_data)

    async def close(self) -> None:
        await self.client.close()

    async def models(self, user_id: str) -> list[str]:
        ep, _ = await self.settings.endpoint_for(user_id, "summary")
        return await self.client.models(ep)

    async def prepare_summary(self, user_id: str, room_id: str, *, since_ts: int | None = None,
                              since_read_marker: bool = False, thread_id: str | None = None) -> PreparedChat:
        ep, model = await self.settings.endpoint_for(user_id, "summary")
        if thread_id is not None:
            lines = await self.transcripts.thread(user_id, room_id, thread_id)
        elif since_read_marker:
            lines = await self.transcripts.since_read_marker(user_id, room_id)
        else:
            lines = await self.transcripts.channel(user_id, room_id, since_ts=since_ts)
        if not lines:
            raise MatrixError(400, "ORG.PARLEY.AI_NOTHING_TO_SUMMARIZE", "There are no messages to summarize")
        return PreparedChat(ep, model, prompts.summary_prompt(lines, thread_id is not None), len(lines))

    async def stream(self, chat: PreparedChat) -> AsyncGenerator[str, None]:
        """The answer piece by piece. Cancelling the consumer closes the upstream request."""
        async for piece in self.client.chat_stream(chat.endpoint, chat.model, chat.messages, SUMMARY_MAX_TOKENS):
            yield piece

    async def first_and_rest(self, chat: PreparedChat) -> tuple[str, AsyncGenerator[str, None]]:
        """Wait for the first piece (so upstream errors surface as errors), then the rest."""
        it = self.stream(chat)
        try:
            first = await it.__anext__()
        except StopAsyncIteration:
            first = ""
        except BaseException:
            await it.aclose()
            raise
        return first, it

    async def summarize(self, user_id: str, room_id: str, *, since_ts: int | None = None,
                        since_read_marker: bool = False, thread_id: str | None = None) -> str:
        chat = await self.prepare_summary(user_id, room_id, since_ts=since_ts,
                                          since_read_marker=since_read_marker, thread_id=thread_id)
        return "".join([p async for p in self.stream(chat)])

    async def suggest_replies(self, user_id: str, room_id: str, event_id: str) -> list[str]:
        ep, model = await self.settings.endpoint_for(user_id, "suggest")
        target, before = await self.transcripts.around(user_id, room_id, event_id)
        text = await asyncio.wait_for(
            self.client.chat(ep, model, prompts.suggest_prompt(target, before), 200), self.cfg.request_timeout_s)
        return prompts.short_lines(text, 3)
