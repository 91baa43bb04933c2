"""The media repository: uploads (direct and reserved/async), downloads, thumbnails.

A 200 on upload means durable: the body is streamed to a temp file while hashed and counted,
fsynced, handed to the backend (local rename + directory fsync, or an S3 upload that has
completed), and only then is the metadata row committed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from homeserver.media.backends import LocalBackend, MediaBackend, S3Backend
from homeserver.media.preview import UrlPreviewer
from homeserver.media.remote import RemoteMediaCache
from homeserver.media.thumbnails import (
    MAX_SOURCE_BYTES,
    THUMBNAILABLE,
    CannotThumbnail,
    choose_size,
    render,
)
from homeserver.protocol.errors import MatrixError
from homeserver.storage.media import claim_token
from homeserver.storage.stores import Stores

MEDIA_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
RESERVATION_MS = 24 * 60 * 60 * 1000
MAX_PENDING_RESERVATIONS = 50
STALE_CLAIM_MS = 60 * 60 * 1000
DEFAULT_WAIT_MS = 20_000
MAX_WAIT_MS = 60_000
WAIT_POLL_S = 0.5
WRITE_BUFFER = 1024 * 1024


def check_media_id(media_id: str) -> str:
    """Media IDs are `[A-Za-z0-9_-]+`: this is also what keeps them out of storage paths."""
    if not MEDIA_ID.fullmatch(media_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid media ID")
    return media_id


def _now() -> int:
    return int(time.time() * 1000)


def base_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


class MediaService:
    def __init__(self, stores: Stores, server_name: str, config: Any) -> None:
        self.stores = stores
        self.server_name = server_name
        self.max_upload: int = config.max_upload_bytes
        self.tmp_dir = Path(config.media_dir) / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        if config.media_backend == "s3":
            self.backend: MediaBackend = S3Backend(
                config.s3_endpoint, config.s3_bucket, config.s3_access_key, config.s3_secret_key,
                config.s3_region,
            )
        else:
            self.backend = LocalBackend(config.media_dir)
        self._thumb_locks: dict[str, asyncio.Lock] = {}
        self._uploaded: dict[str, asyncio.Event] = {}
        self.remote = RemoteMediaCache(stores, self.backend, self._spool, self._store)
        self.previewer = UrlPreviewer(config.url_preview_enabled, config.url_preview_ip_allowlist,
                                      self._store_preview_image)

    def _mxc(self, media_id: str) -> str:
        return f"mxc://{self.server_name}/{media_id}"

    # ------------------------------------------------------------------ uploads

    async def _spool(self, chunks: AsyncIterator[bytes], too_large: int = 413) -> tuple[Path, int, str]:
        """Stream the body to an fsynced temp file, hashing and counting; 413 (or `too_large`)
        past the limit (and then nothing is kept)."""
        fd, name = tempfile.mkstemp(dir=self.tmp_dir, prefix="up-")
        path = Path(name)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as f:
                pending: list[bytes] = []
                pending_size = 0
                async for chunk in chunks:
                    if not chunk:
                        continue
                    size += len(chunk)
                    if size > self.max_upload:
                        raise MatrixError(too_large, "M_TOO_LARGE",
                                          f"Media is limited to {self.max_upload} bytes on this server")
                    digest.update(chunk)
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= WRITE_BUFFER:  # one thread hop per MiB, not per chunk
                        await asyncio.to_thread(f.write, b"".join(pending))
                        pending, pending_size = [], 0
                if pending:
                    await asyncio.to_thread(f.write, b"".join(pending))

                def sync() -> None:
                    f.flush()
                    os.fsync(f.fileno())

                await asyncio.to_thread(sync)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path, size, digest.hexdigest()

    async def _store(self, key: str, path: Path) -> None:
        try:
            await self.backend.put(key, path)
        finally:
            path.unlink(missing_ok=True)

    async def upload(self, user_id: str, chunks: AsyncIterator[bytes], content_type: str | None,
                     filename: str | None) -> str:
        """`POST /_matrix/media/v3/upload`: a new media ID; returns its mxc:// URI."""
        return (await self._upload(user_id, chunks, content_type, filename))[0]

    async def _store_preview_image(self, user_id: str, chunks: AsyncIterator[bytes],
                                   content_type: str) -> tuple[str, int]:
        return await self._upload(user_id, chunks, content_type, None)

    async def preview_url(self, url: str, user_id: str) -> dict[str, Any]:
        return await self.previewer.preview(url, user_id)

    async def _upload(self, user_id: str, chunks: AsyncIterator[bytes], content_type: str | None,
                      filename: str | None) -> tuple[str, int]:
        path, size, sha = await self._spool(chunks)
        media_id = secrets.token_urlsafe(18)  # 24 chars of [A-Za-z0-9_-]
        await self._store(media_id, path)
        try:
            await self.stores.media.insert(media_id, user_id, content_type, filename, size, sha, _now())
        except BaseException:
            await _quietly(self.backend.delete(media_id))
            raise
        return self._mxc(media_id), size

    async def upload_reserved(self, user_id: str, media_id: str, chunks: AsyncIterator[bytes],
                              content_type: str | None, filename: str | None) -> None:
        """`PUT /_matrix/media/v3/upload/{server}/{id}`: fill a reservation, once, by its creator."""
        check_media_id(media_id)
        now = _now()
        row = await self.stores.media.get(media_id)
        if row is None or (row["reserved"] and (row["expires_ts"] or 0) < now):
            raise MatrixError(404, "M_NOT_FOUND", "Unknown or expired media ID")
        if row["uploader"] != user_id:
            raise MatrixError(403, "M_FORBIDDEN", "This media ID was reserved by someone else")
        if not row["reserved"]:
            raise MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded")
        claim = claim_token(now, secrets.token_hex(8))
        if not await self.stores.media.claim(media_id, user_id, claim, now,
                                             claim_token(now - STALE_CLAIM_MS, "")):
            raise MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded or being uploaded")
        try:
            path, size, sha = await self._spool(chunks)
            await self._store(media_id, path)
            if not await self.stores.media.complete(media_id, claim, content_type, filename, size, sha):
                raise MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded")
        except BaseException:
            await _quietly(self.stores.media.release(media_id, claim))
            raise
        event = self._uploaded.pop(media_id, None)
        if event is not None:
            event.set()

    async def create(self, user_id: str) -> dict[str, Any]:
        """`POST /_matrix/media/v1/create`: reserve an mxc:// URI for a later upload."""
        now = _now()
        if await self.stores.media.pending_reservations(user_id, now) >= MAX_PENDING_RESERVATIONS:
            raise MatrixError(429, "M_LIMIT_EXCEEDED", "Too many pending media uploads",
                              retry_after_ms=60_000)
        media_id = secrets.token_urlsafe(18)
        expires = now + RESERVATION_MS
        await self.stores.media.reserve(media_id, user_id, now, expires)
        return {"content_uri": self._mxc(media_id), "unused_expires_at": expires}

    # ------------------------------------------------------------------ downloads

    async def get(self, server_name: str, media_id: str, timeout_ms: int = DEFAULT_WAIT_MS) -> dict[str, Any]:
        """The metadata of uploaded local media; waits up to `timeout_ms` for a reserved ID to be
        filled (then 504 M_NOT_YET_UPLOADED), 404 for unknown, expired or remote media."""
        check_media_id(media_id)
        if server_name != self.server_name:
            return await self.remote.get(server_name, media_id, min(max(timeout_ms, 0), MAX_WAIT_MS))
        deadline = time.monotonic() + min(max(timeout_ms, 0), MAX_WAIT_MS) / 1000
        waited = False
        try:
            while True:
                row = await self.stores.media.get(media_id)
                if row is None or (row["reserved"] and (row["expires_ts"] or 0) < _now()):
                    raise MatrixError(404, "M_NOT_FOUND", "Media not found")
                if not row["reserved"]:
                    return row
                left = deadline - time.monotonic()
                if left <= 0:
                    raise MatrixError(504, "M_NOT_YET_UPLOADED", "Content has not yet been uploaded")
                # Woken at once by an upload on this worker; polling covers the other workers.
                event = self._uploaded.setdefault(media_id, asyncio.Event())
                waited = True
                try:
                    await asyncio.wait_for(event.wait(), min(left, WAIT_POLL_S))
                except TimeoutError:
                    pass
        finally:
            if waited:  # other waiters still poll; this only keeps the dict from growing
                self._uploaded.pop(media_id, None)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        return await self.backend.open(key)

    async def thumbnail(self, server_name: str, media_id: str, width: int, height: int,
                        method: str, timeout_ms: int = DEFAULT_WAIT_MS) -> tuple[str, dict[str, Any]]:
        """(storage key, metadata) of a thumbnail, generated on first request and cached."""
        if method not in ("crop", "scale"):
            raise MatrixError(400, "M_INVALID_PARAM", "method must be crop or scale")
        if width < 1 or height < 1 or width > 10_000 or height > 10_000:
            raise MatrixError(400, "M_INVALID_PARAM", "width and height must be between 1 and 10000")
        row = await self.get(server_name, media_id, timeout_ms)
        media_id = row["media_id"]  # the backend key: differs from the ID for cached remote media
        if base_type(row["content_type"]) not in THUMBNAILABLE:
            raise MatrixError(400, "M_UNKNOWN", "Cannot generate thumbnails for the requested content")
        if (row["size"] or 0) > MAX_SOURCE_BYTES:
            raise MatrixError(413, "M_TOO_LARGE", "Content is too large to thumbnail")
        w, h, m = choose_size(width, height, method)
        key = f"{media_id}.t{w}x{h}{m}"
        found = await self.stores.media.get_thumbnail(media_id, w, h, m)
        if found is not None:
            return key, found
        lock = self._thumb_locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                found = await self.stores.media.get_thumbnail(media_id, w, h, m)
                if found is not None:
                    return key, found
                return key, await self._generate(media_id, key, w, h, m)
        finally:
            if not lock.locked():
                self._thumb_locks.pop(key, None)

    async def _generate(self, media_id: str, key: str, w: int, h: int, m: str) -> dict[str, Any]:
        data = await self.backend.read_all(media_id, MAX_SOURCE_BYTES)
        try:
            out, ctype, _, _ = await asyncio.to_thread(render, data, w, h, m)
        except CannotThumbnail:
            raise MatrixError(400, "M_UNKNOWN", "Cannot generate thumbnails for the requested content") from None
        fd, name = tempfile.mkstemp(dir=self.tmp_dir, prefix="th-")
        with os.fdopen(fd, "wb") as f:
            f.write(out)
            f.flush()
            os.fsync(f.fileno())
        await self._store(key, Path(name))
        await self.stores.media.add_thumbnail(media_id, w, h, m, ctype, len(out))
        return {"width": w, "height": h, "method": m, "content_type": ctype, "size": len(out)}


async def _quietly(coro: Any) -> None:
    try:
        await coro
    except Exception:
        pass
