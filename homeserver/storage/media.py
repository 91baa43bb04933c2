"""Media metadata: one row per media ID (reserved or uploaded) and one per cached thumbnail.

A reservation (`POST /media/v1/create`) is a row with `reserved = TRUE`. Filling it is a claim
then a completion: the claim stamps `sha256` with `claim:<ms>:<token>` (a reserved row has no
real hash yet) so that two concurrent PUTs cannot both write the bytes; the completion only
succeeds for the claim holder. A claim older than `stale_ms` (a crashed upload) can be re-taken.
"""

from __future__ import annotations

from typing import Any

from homeserver.storage.database import Database

_COLUMNS = "media_id, uploader, content_type, filename, size, sha256, created_ts, reserved, expires_ts"


def claim_token(now: int, token: str) -> str:
    return f"claim:{now:016d}:{token}"


class MediaStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def reserve(self, media_id: str, uploader: str, now: int, expires: int) -> None:
        await self.db.execute(
            "INSERT INTO media (media_id, uploader, created_ts, reserved, expires_ts)"
            " VALUES ($1,$2,$3,TRUE,$4)",
            media_id, uploader, now, expires,
        )

    async def pending_reservations(self, uploader: str, now: int) -> int:
        n = await self.db.fetchval(
            "SELECT COUNT(*) FROM media WHERE uploader = $1 AND reserved = TRUE AND expires_ts >= $2",
            uploader, now,
        )
        return int(n or 0)

    async def insert(
        self, media_id: str, uploader: str, content_type: str | None, filename: str | None,
        size: int, sha256: str, now: int,
    ) -> None:
        """A finished direct upload (fresh, server-generated media ID)."""
        await self.db.execute(
            "INSERT INTO media (media_id, uploader, content_type, filename, size, sha256,"
            " created_ts, reserved) VALUES ($1,$2,$3,$4,$5,$6,$7,FALSE)",
            media_id, uploader, content_type, filename, size, sha256, now,
        )

    async def claim(self, media_id: str, uploader: str, claim: str, now: int, stale_before: str) -> bool:
        """Take the reservation for one upload; False if it is taken, filled or expired."""
        async with self.db.transaction() as c:
            got = await c.fetchval(
                "UPDATE media SET sha256 = $1 WHERE media_id = $2 AND uploader = $3 AND reserved = TRUE"
                " AND expires_ts >= $4 AND (sha256 IS NULL OR sha256 < $5) RETURNING media_id",
                claim, media_id, uploader, now, stale_before,
            )
        return got is not None

    async def release(self, media_id: str, claim: str) -> None:
        await self.db.execute(
            "UPDATE media SET sha256 = NULL WHERE media_id = $1 AND reserved = TRUE AND sha256 = $2",
            media_id, claim,
        )

    async def complete(
        self, media_id: str, claim: str, content_type: str | None, filename: str | None,
        size: int, sha256: str,
    ) -> bool:
        """Fill a claimed reservation; False if the claim was lost (taken over as stale)."""
        async with self.db.transaction() as c:
            got = await c.fetchval(
                "UPDATE media SET content_type = $1, filename = $2, size = $3, sha256 = $4,"
                " reserved = FALSE, expires_ts = NULL"
                " WHERE media_id = $5 AND reserved = TRUE AND sha256 = $6 RETURNING media_id",
                content_type, filename, size, sha256, media_id, claim,
            )
        return got is not None

    async def get(self, media_id: str) -> dict[str, Any] | None:
        return await self.db.fetchrow(f"SELECT {_COLUMNS} FROM media WHERE media_id = $1", media_id)

    async def add_thumbnail(self, media_id: str, w: int, h: int, method: str, ctype: str, size: int) -> None:
        await self.db.execute(
            "INSERT INTO media_thumbnails (media_id, width, height, method, content_type, size)"
            " VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (media_id, width, height, method) DO NOTHING",
            media_id, w, h, method, ctype, size,
        )

    async def get_thumbnail(self, media_id: str, w: int, h: int, method: str) -> dict[str, Any] | None:
        return await self.db.fetchrow(
            "SELECT width, height, method, content_type, size FROM media_thumbnails"
            " WHERE media_id = $1 AND width = $2 AND height = $3 AND method = $4",
            media_id, w, h, method,
        )
