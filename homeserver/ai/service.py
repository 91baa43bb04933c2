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
from homeserver.ai.embeddings import Embedder, EmbeddingIndex, KeywordSearch
from homeserver.ai.endpoint import Endpoint
from homeserver.ai.jobs import JobQueue, Progress, job_json, now_ms
from homeserver.ai.settings import AISettings
from homeserver.ai.transcript import TranscriptReader
from homeserver.config_ai import AIConfig
from homeserver.lease import LeaderLease
from homeserver.outbound import Resolver, system_resolve
from homeserver.protocol.errors import MatrixError
from homeserver.rooms.membership import MembershipService
from homeserver.rooms.reads import RoomReader
from homeserver.storage.ai import AIStore
from homeserver.storage.ai_jobs import AIJobStore, JobRow
from homeserver.storage.ai_vectors import AIVectorStore
from homeserver.storage.stores import Stores

SUMMARY_MAX_TOKENS = 600
MAX_QUESTION = 2000  # characters of a question about a channel
JOB_LOOPS = 2
TOPICS_REFRESH_MS = 10 * 60 * 1000  # at most one automatic relabelling per channel and user in this time


@dataclass(frozen=True)
class PreparedChat:
    endpoint: Endpoint
    model: str
    messages: list[Message]
    message_count: int


class AIService:
    def __init__(self, stores: Stores, cfg: AIConfig, seed: bytes, reader: RoomReader,
                 account_data: AccountDataService, membership: MembershipService,
                 keyword_search: KeywordSearch,
                 transport: httpx.AsyncBaseTransport | None = None, resolver: Resolver = system_resolve) -> None:
        self.cfg = cfg
        self.db = stores.db
        db = stores.db
        self.store = AIStore(db)
        self.settings = AISettings(self.store, cfg, seed, resolver)
        self.client = InferenceClient(cfg, transport)
        self.transcripts = TranscriptReader(reader, account_data)
        self.jobs = JobQueue(AIJobStore(db), lease_s=cfg.job_lease_s)
        self.jobs.register("topics", self._topics_job)
        self.jobs.register("summary", self._summary_job)
        self.jobs.register("ask", self._ask_job)
        self._tasks: list[asyncio.Task[None]] = []
        self.vectors = AIVectorStore(db)
        self.index = EmbeddingIndex(self.store, self.vectors, Embedder(cfg, self.settings, self.client),
                                    stores.stream.current,
                                    reader.visibility, membership, reader.serializer, stores.events.get_many,
                                    keyword_search)

    async def start(self) -> None:
        if self.cfg.enabled:
            # Two job loops per worker, so one job stuck on a slow endpoint does not hold up the rest.
            for i in range(JOB_LOOPS):
                self._tasks.append(asyncio.create_task(self.jobs.run(), name=f"ai-jobs-{i}"))
        if self.cfg.enabled:
            await self.vectors.open()  # detect the vector scorer once, at start
        if self.cfg.enabled and self.cfg.index_embeddings:
            lease = LeaderLease(self.db, "ai-embedding-indexer")
            self._tasks.append(asyncio.create_task(lease.run_forever(self.index.run), name="ai-index"))

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.client.close()
        await self.vectors.close()

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

    async def prepare_ask(self, user_id: str, room_id: str, question: str, *,
                          since_ts: int | None = None) -> PreparedChat:
        """A question about a channel, answered from the newest messages the user may read."""
        question = question.strip()
        if not question or len(question) > MAX_QUESTION:
            raise MatrixError(400, "M_INVALID_PARAM",
                              f"'question' must be a non-empty string of at most {MAX_QUESTION} characters")
        ep, model = await self.settings.endpoint_for(user_id, "summary")
        lines = await self.transcripts.channel(user_id, room_id, since_ts=since_ts)
        if not lines:
            raise MatrixError(400, "ORG.PARLEY.AI_NOTHING_TO_SUMMARIZE", "There are no messages to answer from")
        return PreparedChat(ep, model, prompts.ask_prompt(lines, question), len(lines))

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

    # ------------------------------------------------------------------ jobs

    async def submit_topics(self, user_id: str, room_id: str) -> str:
        await self.settings.endpoint_for(user_id, "topics")  # fail now when nothing can serve it
        await self.transcripts.refuse_encrypted(user_id, room_id)
        return await self.jobs.submit("topics", user_id, room_id, {})

    async def submit_summary(self, user_id: str, room_id: str, params: dict[str, object]) -> str:
        await self.settings.endpoint_for(user_id, "summary")
        await self.transcripts.refuse_encrypted(user_id, room_id)
        return await self.jobs.submit("summary", user_id, room_id, params)

    async def submit_ask(self, user_id: str, room_id: str, question: str, since_ts: int | None) -> str:
        await self.prepare_ask(user_id, room_id, question, since_ts=since_ts)  # refuse now what would fail
        params: dict[str, object] = {"question": question}
        if since_ts is not None:
            params["since_ts"] = since_ts
        return await self.jobs.submit("ask", user_id, room_id, params)

    async def topics(self, user_id: str, room_id: str) -> dict[str, object]:
        """The newest topic labels computed for this user and room, and the newest job."""
        await self.transcripts.reader.check_history_access(user_id, room_id)
        done = await self.jobs.store.latest_done(user_id, room_id, "topics")
        latest = await self.jobs.store.latest(user_id, room_id, "topics")
        if done is not None and latest is not None and latest.status not in ("queued", "running") \
                and now_ms() - done.updated_ts >= TOPICS_REFRESH_MS:
            # Refreshed as the channel grows: relabel once newer messages exist than the labels saw.
            newest = await self.transcripts.channel(user_id, room_id, limit=1)
            seen = (done.result or {}).get("newest_ts")
            if newest and isinstance(seen, int) and newest[-1].ts > seen:
                await self.jobs.submit("topics", user_id, room_id, {})
                latest = await self.jobs.store.latest(user_id, room_id, "topics")
        out: dict[str, object] = {"labels": (done.result or {}).get("labels", []) if done else []}
        if done is not None:
            out["updated_ts"] = done.updated_ts
        if latest is not None:
            out["job"] = job_json(latest)
        return out

    async def _topics_job(self, job: JobRow, progress: Progress) -> dict[str, object]:
        assert job.room_id is not None
        ep, model = await self.settings.endpoint_for(job.user_id, "topics")
        lines = await self.transcripts.channel(job.user_id, job.room_id, limit=200)
        progress(30)
        if not lines:
            return {"labels": [], "message_count": 0}
        text = await self.client.chat(ep, model, prompts.topics_prompt(lines), 100)
        return {"labels": prompts.short_lines(text, 5, 60), "message_count": len(lines),
                "newest_ts": max(line.ts for line in lines)}

    async def _summary_job(self, job: JobRow, progress: Progress) -> dict[str, object]:
        assert job.room_id is not None
        p = job.params
        since_ts = p.get("since_ts")
        thread_id = p.get("thread_id")
        chat = await self.prepare_summary(
            job.user_id, job.room_id, since_ts=since_ts if isinstance(since_ts, int) else None,
            since_read_marker=p.get("since") == "read_marker",
            thread_id=thread_id if isinstance(thread_id, str) else None)
        progress(20)
        text = "".join([piece async for piece in self.stream(chat)])
        return {"summary": text, "message_count": chat.message_count, "model": chat.model}

    async def _ask_job(self, job: JobRow, progress: Progress) -> dict[str, object]:
        assert job.room_id is not None
        since_ts = job.params.get("since_ts")
        chat = await self.prepare_ask(job.user_id, job.room_id, str(job.params.get("question", "")),
                                      since_ts=since_ts if isinstance(since_ts, int) else None)
        progress(20)
        text = "".join([piece async for piece in self.stream(chat)])
        return {"answer": text, "message_count": chat.message_count, "model": chat.model}

    async def search(self, user_id: str, term: str, room_ids: list[str] | None, limit: int) -> list[dict[str, object]]:
        if not self.cfg.enabled:
            raise MatrixError(403, "M_FORBIDDEN", "AI features are disabled on this server")
        return await self.index.search(user_id, term, room_ids, limit)
