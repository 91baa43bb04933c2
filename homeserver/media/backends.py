"""Where media bytes live: a local directory (default) or S3-compatible object storage.

Both take a finished temp file (already streamed to disk, hashed, size-checked and fsynced) and
hand bytes back as an async iterator of chunks, so no whole file is ever held in memory. `open`
does the I/O that can fail (missing object, unreachable store) *before* it returns, so a route
can still answer with a JSON error instead of a truncated 200.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from homeserver.protocol.errors import MatrixError

CHUNK = 256 * 1024


class MediaBackend:
    async def put(self, key: str, src: Path) -> None:
        """Store `src` under `key` durably; `src` may be consumed (moved) by the call."""
        raise NotImplementedError

    async def open(self, key: str) -> AsyncIterator[bytes]:
        """An iterator over the stored bytes; MatrixError 404 if they are gone."""
        raise NotImplementedError

    async def delete(self, key: str) -> None:
        raise NotImplementedError

    async def read_all(self, key: str, limit: int) -> bytes:
        chunks, size = [], 0
        async for chunk in await self.open(key):
            size += len(chunk)
            if size > limit:
                raise MatrixError(413, "M_TOO_LARGE", "Content is too large to thumbnail")
            chunks.append(chunk)
        return b"".join(chunks)

    async def close(self) -> None:
        return None


def _missing() -> MatrixError:
    return MatrixError(404, "M_NOT_FOUND", "Media content is missing from storage")


class LocalBackend(MediaBackend):
    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        # Keys are server-generated ([A-Za-z0-9_-] plus a '.t<w>x<h><method>' thumbnail suffix),
        # never taken from a request unchecked; fan out so no directory grows huge.
        return self.root / key[:2] / key[2:4] / key

    async def put(self, key: str, src: Path) -> None:
        dest = self._path(key)

        def move() -> None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            # The file's data was fsynced by the writer; the rename must be durable too.
            os.replace(src, dest)
            dir_fd = os.open(dest.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

        await asyncio.to_thread(move)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        try:
            f = await asyncio.to_thread(open, self._path(key), "rb")
        except FileNotFoundError:
            raise _missing() from None

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    chunk = await asyncio.to_thread(f.read, CHUNK)
                    if not chunk:
                        return
                    yield chunk
            finally:
                f.close()

        return chunks()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, True)


class S3Backend(MediaBackend):
    """boto3 on worker threads: (multipart) upload from the temp file, streaming reads.

    boto3 is AWS's own, well-kept client; its calls block, so each runs in a thread. The
    transfer manager switches to a multipart upload for large files by itself.
    """

    def __init__(self, endpoint: str | None, bucket: str, access_key: str | None, secret_key: str | None,
                 region: str) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config as BotoConfig

        self.bucket = bucket
        self.client: Any = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            region_name=region,
            config=BotoConfig(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10,
                              read_timeout=60, max_pool_connections=20),
        )
        self.transfer = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024,
                                       max_concurrency=4)

    async def put(self, key: str, src: Path) -> None:
        await asyncio.to_thread(self.client.upload_file, str(src), self.bucket, key, Config=self.transfer)
        src.unlink(missing_ok=True)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        from botocore.exceptions import ClientError

        try:
            obj = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=key)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise _missing() from None
            raise
        body = obj["Body"]

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    chunk = await asyncio.to_thread(body.read, CHUNK)
                    if not chunk:
                        return
                    yield chunk
            finally:
                body.close()

        return chunks()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=key)
