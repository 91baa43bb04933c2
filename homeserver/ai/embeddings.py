"""Smart search: message embeddings indexed in the background, queried by meaning.

The indexer follows the event stream (only positions below which everything has committed),
embeds each new `m.room.message` (an edit re-embeds the message it edits with the new text; a
redaction drops the vector) and stores float32 vectors in `ai_vectors`. It runs on one
worker at a time (LeaderLease "ai-embedding-indexer"). Vectors come from the organization's
endpoint when `[ai] embedding_model` is set, else from the bundled MiniLM run locally.

A query is embedded the same way and scored by cosine similarity against the vectors of the rooms
the user is in (in the database with sqlite-vec or pgvector when present, else numpy:
storage/ai_vectors.py); a keyword match over the same indexed text is merged in by
reciprocal-rank fusion; every hit then passes the history-visibility filter, so a user never
finds a message they could not read. The keyword half is the server's full-text search
(homeserver/search/: FTS5 or tsvector, stemmed, ranked), handed in as `keyword_search`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from homeserver.ai.client import InferenceClient
from homeserver.ai.local_embed import DIM, MODEL_NAME, LocalEmbedder, LocalModelMissing, shared_embedder
from homeserver.ai.ranking import fuse
from homeserver.ai.settings import AISettings
from homeserver.config_ai import AIConfig
from homeserver.events.visibility import VisibilityFilter
from homeserver.protocol.errors import MatrixError
from homeserver.rooms.membership import MembershipService
from homeserver.rooms.serialize import EventSerializer
from homeserver.storage.ai import AIStore
from homeserver.storage.ai_vectors import AIVectorStore
from homeserver.storage.events import StoredEvent

log = logging.getLogger("parley.ai.index")
POSITION = "messages"
BATCH = 64
MAX_TEXT = 2000
#: (user_id, search term, room IDs, limit) -> event IDs by full-text rank, best first.
KeywordSearch = Callable[[str, str, list[str], int], Awaitable[list[str]]]


def _text_of(content: dict[str, Any]) -> str | None:
    body = content.get("body")
    return body[:MAX_TEXT] if isinstance(body, str) and body.strip() else None


class Embedder:
    """Embeds with the organization's endpoint when `[ai] embedding_model` is set, else with the
    local MiniLM. The local model (about 90 MB of weights) is loaded lazily, at the first text
    to embed, in a worker thread: the event loop goes on serving requests meanwhile, and a
    server whose users never post a message never loads it."""

    def __init__(self, cfg: AIConfig, settings: AISettings, client: InferenceClient,
                 load: Callable[[], LocalEmbedder] = shared_embedder) -> None:
        self.cfg = cfg
        self.settings = settings
        self.client = client
        self._load = load
        self._local: LocalEmbedder | None = None
        self._loading: asyncio.Lock | None = None

    @property
    def model(self) -> str:
        return self.cfg.embedding_model if self.cfg.embedding_model and self.cfg.endpoint else MODEL_NAME

    async def local(self) -> LocalEmbedder:
        """The local model, loaded once (in a worker thread) by whichever caller comes first."""
        if self._local is None:
            if self._loading is None:
                self._loading = asyncio.Lock()
            async with self._loading:
                if self._local is None:
                    t0 = time.perf_counter()
                    self._local = await asyncio.to_thread(self._load)
                    log.info("local embedding model loaded in %.1f s", time.perf_counter() - t0)
        return self._local

    async def embed(self, texts: list[str]) -> np.ndarray:
        ep = self.settings.server_endpoint()
        if self.cfg.embedding_model and ep is not None:
            vecs = np.asarray(await self.client.embed(ep, self.cfg.embedding_model, texts), dtype=np.float32)
            norms = np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
            return vecs / norms
        embedder = await self.local()
        return await asyncio.to_thread(embedder.embed, texts)


class EmbeddingIndex:
    def __init__(self, store: AIStore, vectors: AIVectorStore, embedder: Embedder, committed: Callable[[], int],
                 visibility: VisibilityFilter, membership: MembershipService, serializer: EventSerializer,
                 get_events: Callable[[list[str]], Any], keyword_search: KeywordSearch,
                 poll_s: float = 1.0) -> None:
        self.store = store
        self.vectors = vectors
        self.embedder = embedder
        self.committed = committed
        self.visibility = visibility
        self.membership = membership
        self.serializer = serializer
        self.get_events = get_events
        self.keyword_search = keyword_search
        self.poll_s = poll_s

    async def index_once(self) -> int:
        """Index one batch; how many stream rows it consumed (0: caught up)."""
        pos = await self.store.index_position(POSITION) or 0
        rows = await self.store.messages_after(pos, self.committed(), BATCH)
        if not rows:
            return 0
        todo: dict[str, tuple[str, int, str]] = {}  # event_id -> (room, stream, text)
        drop: list[str] = []
        for r in rows:
            pdu = r["json"]
            content = pdu.get("content") or {}
            if r["type"] == "m.room.redaction":
                target = content.get("redacts") or pdu.get("redacts")
                if isinstance(target, str):
                    drop.append(target)
                    todo.pop(target, None)
                continue
            rel = content.get("m.relates_to") or {}
            if isinstance(rel, dict) and rel.get("rel_type") == "m.replace":
                new = _text_of(content.get("m.new_content") or {})
                target = rel.get("event_id")
                if new is not None and isinstance(target, str):
                    todo[target] = (r["room_id"], -1, new)  # stream filled in below
                continue
            text = _text_of(content)
            if text is not None and r["redacted_by"] is None:
                todo[r["event_id"]] = (r["room_id"], r["stream_ordering"], text)
        edits = [e for e, (_, s, _) in todo.items() if s < 0]
        if edits:
            originals = await self.get_events(edits)
            for e in edits:
                ev = originals.get(e)
                if ev is None or ev.redacted_by or ev.pdu.get("sender") != _edit_sender(rows, e):
                    todo.pop(e)  # only the sender may edit; a redacted message stays dropped
                else:
                    room, _, text = todo[e]
                    todo[e] = (room, ev.stream_ordering, text)
        if todo:
            ids = list(todo)
            vecs = await self.embedder.embed([todo[i][2] for i in ids])
            await self.vectors.put(
                [(i, todo[i][0], todo[i][1], self.embedder.model, vecs[n], todo[i][2]) for n, i in enumerate(ids)])
        if drop:
            await self.vectors.delete(drop)
        await self.store.set_index_position(POSITION, rows[-1]["stream_ordering"])
        return len(rows)

    async def run(self) -> None:
        while True:
            try:
                n = await self.index_once()
            except MatrixError as e:
                log.warning("embedding endpoint failed: %s", e.to_dict())
                n = 0
            except LocalModelMissing as e:
                log.warning("smart search indexing is off: %s and no embedding endpoint is set", e)
                return
            if n == 0:
                await asyncio.sleep(self.poll_s)

    async def search(self, user_id: str, term: str, room_ids: list[str] | None, limit: int) -> list[dict[str, Any]]:
        joined = await self.membership.joined_rooms(user_id)
        rooms = [r for r in joined if room_ids is None or r in room_ids]
        if not rooms:
            return []
        model = self.embedder.model
        q = (await self.embedder.embed([term]))[0]
        nearest = await self.vectors.nearest(rooms, model, q, limit * 4)
        scores = dict(nearest)
        keyword = await self.keyword_search(user_id, term, rooms, limit * 4)  # POST /search's index
        fused = fuse([[e for e, _ in nearest], keyword])[: limit * 2]
        ranked = dict(fused)
        best = [e for e, _ in fused]
        evs = await self.get_events(best)
        visible = await self.visibility.filter_for_user(user_id, [evs[e] for e in best if e in evs])
        keep = {e.event_id for e in visible if not e.redacted_by}
        out: list[dict[str, Any]] = []
        for eid in best:
            if eid in keep and len(out) < limit:
                ser = (await self.serializer.serialize([evs[eid]]))[0]
                out.append({"rank": ranked[eid], "similarity": scores.get(eid), "result": ser})
        return out


def _edit_sender(rows: list[dict[str, Any]], target: str) -> str | None:
    for r in reversed(rows):
        rel = (r["json"].get("content") or {}).get("m.relates_to") or {}
        if isinstance(rel, dict) and rel.get("rel_type") == "m.replace" and rel.get("event_id") == target:
            return str(r["json"].get("sender"))
    return None


__all__ = ["DIM", "EmbeddingIndex", "Embedder", "StoredEvent"]
