"""Media metadata."""

from __future__ import annotations

from typing import Any

from homeserver.storage.database import Database


class MediaStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def reserve(self, media_id: str, uploader: str, now: int, expires: int) -> None:
        await self.db.execute(
            "INSERT INTO media (media_id, uploader, created_ts, reserved, expires_ts)"
            " VALUES ($1,$2,$3,TRUE,$4)",
            media_id, uploader, now, expires,
        )

    async def complete(
        self, media_id: str, uploader: str, content_type: str | None, filename: str | None,
        size: int, sha256: str, now: int,
    ) -> bool:
        """Insert a finished upload, or fill a reservation; False if the reservation was taken."""
        async with self.db.transaction() as c:
            row = await c.fetchrow("SELECT reserved FROM media WHERE media_id = $1", media_id)
            if row is None:
                await c.execute(
                    "INSERT INTO media (media_id, uploader, content_type, filename, size, sha256,"
                    " created_ts, reserved) VALUES ($1,$2,$3,$4,$5,$6,$7,FALSE)",
                    media_id, uploader, content_type, filename, size, sha256, now,
                )
                return True
            if not row["reserved"]:
                return False
            await c.execute(
                "UPDATE media SET content_type = $1, filename = $2, size = $3, sha256 = $4,"
                " reserved = FALSE, expires_ts = NULL WHERE media_id = $5 AND reserved = TRUE",
                content_type, filename, size, sha256, media_id,
            )
            return True

    async def get(self, media_id: str) -> dict[str, Any] | None:
        return await self.db.fetchrow(
            "SELECT media_id, uploader, content_type, filename, size, sha256, created_ts, reserved,"
            " expires_ts FROM media WHERE media_id = $1",
            media_id,
        )

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
