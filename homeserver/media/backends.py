"""Where media bytes live: a local directory (default) or S3-compatible object storage.

Both take a finished temp file (already streamed to disk, hashed and size-checked) and hand
bytes back as an async iterator of chunks, so no whole file is ever held in memory.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, AsyncIterator

CHUNK = 256 * 1024


class MediaBackend:
    async def put(self, key: str, src: Path) -> None:
        raise NotImplementedError

    def stream(self, key: str) -> AsyncIterator[bytes]:
        raise NotImplementedError

    async def read_all(self, key: str, limit: int) -> bytes:
        chunks, size = [], 0
        async for chunk in self.stream(key):
            size += len(chunk)
            if size > limit:
                raise ValueError("media too large to load")
            chunks.append(chunk)
        return b"".join(chunks)

    async def close(self) -> None:
        return None


class LocalBackend(MediaBackend):
    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        # Keys are server-generated ([A-Za-z0-9_-] plus '/'-separated thumbnail suffixes).
        return self.root / key[:2] / key[2:4] / key

    async def put(self, key: str, src: Path) -> None:
        dest = self._path(key)

        def move() -> None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(src, "rb") as f:
                os.fsync(f.fileno())
            os.replace(src, dest)
            dir_fd = os.open(dest.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

        await asyncio.to_thread(move)

    async def stream(self, key: str) -> AsyncIterator[bytes]:  # type: ignore[override]
        f = await asyncio.to_thread(open, self._path(key), "rb")
        try:
            while True:
                chunk = await asyncio.to_thread(f.read, CHUNK)
                if not chunk:
                    return
                yield chunk
        finally:
            f.close()


class S3Backend(MediaBackend):
    """boto3 on worker threads: multipart upload from the temp file, ranged streaming reads."""

    def __init__(self, endpoint: str | None, bucket: str, access_key: str | None, secret_key: str | None,
                 region: str) -> None:
        import boto3
        from botocore.config import Config as BotoConfig

        self.bucket = bucket
        self.client: Any = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            region_name=region, config=BotoConfig(retries={"max_attempts": 3, "mode": "standard"}),
        )

    async def put(self, key: str, src: Path) -> None:
        await asyncio.to_thread(self.client.upload_file, str(src), self.bucket, key)
        os.unlink(src)

    async def stream(self, key: str) -> AsyncIterator[bytes]:  # type: ignore[override]
        obj = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=key)
        body = obj["Body"]
        try:
            while True:
                chunk = await asyncio.to_thread(body.read, CHUNK)
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()
