"""Remote media: fetched once from its origin over federation, then served from the local cache.

The bytes go through the same spool as uploads (streamed to an fsynced temp file, hashed,
counted and cut off at the size limit: 502 M_TOO_LARGE, as the spec's download answer for
content too large to serve), then into the media backend under a key derived from the origin
and media ID, and only then is the cache row (migration 016) written. Concurrent downloads of
the same media on one worker share one fetch.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

from homeserver.media.backends import MediaBackend
from homeserver.protocol.errors import MatrixError
from homeserver.storage.stores import Stores

Spool = Callable[[AsyncIterator[bytes], int], Awaitable[tuple[Path, int, str]]]
Store = Callable[[str, Path], Awaitable[None]]
#: The shortest wait for a remote server, whatever `timeout_ms` the client gave.
MIN_REMOTE_TIMEOUT_S = 5.0


class FetchedMedia(Protocol):
    content_type: str | None
    filename: str | None
    chunks: AsyncIterator[bytes]


class MediaFetcher(Protocol):
    """federation/media_client.py:RemoteMediaFetcher."""

    def download(self, origin: str, media_id: str, timeout_s: float) -> AbstractAsyncContextManager[Any]: ...


def storage_key(origin: str, media_id: str) -> str:
    """The backend key of a remote media item: `rm` + hex, so never a local media ID (24 chars)."""
    return "rm" + hashlib.sha256(f"{origin}/{media_id}".encode()).hexdigest()[:40]


def _as_row(cached: dict[str, Any]) -> dict[str, Any]:
    """A cache row in the shape of a local media row (`media_id` is the backend key)."""
    return {"media_id": cached["storage_key"], "content_type": cached["content_type"],
            "filename": cached["filename"], "size": cached["size"], "sha256": cached["sha256"],
            "reserved": False, "expires_ts": None, "origin": cached["origin"]}


class RemoteMediaCache:
    def __init__(self, stores: Stores, backend: MediaBackend, spool: Spool, store: Store) -> None:
        self.stores = stores
        self.backend = backend
        self._spool = spool
        self._store = store
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        #: Set by homeserver/app.py when federation is enabled.
        self.fetcher: MediaFetcher | None = None

    async def get(self, origin: str, media_id: str, timeout_ms: int) -> dict[str, Any]:
        cached = await self.stores.remote_media.get(origin, media_id)
        if cached is not None:
            return _as_row(cached)
        if self.fetcher is None:
            raise MatrixError(404, "M_NOT_FOUND", "Remote media is not available: federation is disabled")
        key = (origin, media_id)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                cached = await self.stores.remote_media.get(origin, media_id)
                if cached is None:
                    await self._fetch(origin, media_id, max(timeout_ms / 1000, MIN_REMOTE_TIMEOUT_S))
                    cached = await self.stores.remote_media.get(origin, media_id)
        finally:
            if not lock.locked():
                self._locks.pop(key, None)
        if cached is None:
            raise MatrixError(404, "M_NOT_FOUND", "Media not found")
        return _as_row(cached)

    async def _fetch(self, origin: str, media_id: str, timeout_s: float) -> None:
        assert self.fetcher is not None
        async with self.fetcher.download(origin, media_id, timeout_s) as media:
            path, size, sha = await self._spool(media.chunks, 502)
            content_type, filename = media.content_type, media.filename
        key = storage_key(origin, media_id)
        await self._store(key, path)
        await self.stores.remote_media.insert(origin, media_id, key, content_type, filename, size, sha,
                                              int(time.time() * 1000))
