"""The media repository: uploads (direct and reserved/async), downloads, thumbnails."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any, AsyncIterator

from homeserver.media.backends import LocalBackend, MediaBackend, S3Backend
from homeserver.media.thumbnails import MAX_SOURCE_BYTES, THUMBNAILABLE, choose_size, render
from homeserver.protocol.errors import MatrixError
from homeserver.storage.stores import Stores

MEDIA_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
RESERVATION_MS = 24 * 60 * 60 * 1000
MAX_PENDING_RESERVATIONS = 50


def check_media_id(media_id: str) -> str:
    if not MEDIA_ID.match(media_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid media ID")
    return media_id


class MediaService:
    def __init__(self, stores: Stores, server_name: str, config: Any) -> None:
        self.stores = stores
        self.server_name = server_name
        self.max_upload = config.max_upload_bytes
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

    def _mxc(self, media_id: str) -> str:
        return f"mxc://{self.server_name}/{media_id}"

    async def _spool(self, chunks: AsyncIterator[bytes]) -> tuple[Path, int, str]:
        """Stream the body to a temp file, hashing and counting; 413 past the limit."""
        fd, name = tempfile.mkstemp(dir=self.tmp_dir)
        path = Path(name)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_upload:
                        raise MatrixError(413, "M_TOO_LARGE", f"Uploads are limited to {self.max_upload} bytes")
                    digest.update(chunk)
                    await asyncio.to_thread(f.write, chunk)
                await asyncio.to_thread(f.flush)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path, size, digest.hexdigest()

    async def upload(self, user_id: str, chunks: AsyncIterator[bytes], content_type: str | None,
                     filename: str | None, media_id: str | None = None) -> str:
        if media_id is not None:
            row = await self.stores.media.get(media_id)
            if row is None or (row["expires_ts"] is not None and row["expires_ts"] < _now()):
                raise MatrixError(404, "M_NOT_FOUND", "Unknown or expired media ID")
            if row["uploader"] != user_id:
                raise MatrixError(403, "M_FORBIDDEN", "This media ID was reserved by someone else")
            if not row["reserved"]:
                raise MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded")
        path, size, sha = await self._spool(chunks)
        mid = media_id or secrets.token_urlsafe(18)
        try:
            await self.backend.put(mid, path)
        finally:
            path.unlink(missing_ok=True)
        if not await self.stores.media.complete(mid, user_id, content_type, filename, size, sha, _now()):
            raise MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded")
        return self._mxc(mid)

    async def create(self, user_id: str) -> dict[str, Any]:
        mid = secrets.token_urlsafe(18)
        expires = _now() + RESERVATION_MS
        await self.stores.media.reserve(mid, user_id, _now(), expires)
        return {"content_uri": self._mxc(mid), "unused_expires_at": expires}

    async def get(self, server_name: str, media_id: str) -> dict[str, Any]:
        check_media_id(media_id)
        if server_name != self.server_name:
            raise MatrixError(404, "M_NOT_FOUND", "Remote media is not available yet")
        row = await self.stores.media.get(media_id)
        if row is None or row["reserved"]:
            raise MatrixError(404, "M_NOT_FOUND", "Media not found")
        return row

    def stream(self, key: str) -> AsyncIterator[bytes]:
        return self.backend.stream(key)

    async def thumbnail(self, server_name: str, media_id: str, width: int, height: int,
                        method: str) -> tuple[str, dict[str, Any]]:
        """(storage key, metadata) of a thumbnail, generated on first request and cached."""
        row = await self.get(server_name, media_id)
        if method not in ("crop", "scale"):
            raise MatrixError(400, "M_INVALID_PARAM", "method must be crop or scale")
        if width < 1 or height < 1 or width > 10_000 or height > 10_000:
            raise MatrixError(400, "M_INVALID_PARAM", "width and height must be between 1 and 10000")
        if row["content_type"] not in THUMBNAILABLE or (row["size"] or 0) > MAX_SOURCE_BYTES:
            raise MatrixError(400, "M_UNKNOWN", "Cannot generate a thumbnail for this media")
        w, h, m = choose_size(width, height, method)
        key = f"{media_id}.t{w}x{h}{m}"
        found = await self.stores.media.get_thumbnail(media_id, w, h, m)
        if found is not None:
            return key, found
        lock = self._thumb_locks.setdefault(key, asyncio.Lock())
        async with lock:
            found = await self.stores.media.get_thumbnail(media_id, w, h, m)
            if found is not None:
                return key, found
            data = await self.backend.read_all(media_id, MAX_SOURCE_BYTES)
            try:
                out, ctype, _, _ = await asyncio.to_thread(render, data, w, h, m)
            except Exception:
                raise MatrixError(400, "M_UNKNOWN", "Cannot generate a thumbnail for this media") from None
            fd, name = tempfile.mkstemp(dir=self.tmp_dir)
            with os.fdopen(fd, "wb") as f:
                f.write(out)
            try:
                await self.backend.put(key, Path(name))
            finally:
                Path(name).unlink(missing_ok=True)
            await self.stores.media.add_thumbnail(media_id, w, h, m, ctype, len(out))
        self._thumb_locks.pop(key, None)
        return key, {"content_type": ctype, "size": len(out)}


def _now() -> int:
    return int(time.time() * 1000)
