"""MSC3814 dehydrated devices: one per user, with the client's opaque (encrypted) device data."""

from __future__ import annotations

from typing import Any

import orjson

from homeserver.storage.database import Conn, Database


class DehydratedDeviceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, user_id: str, c: Conn | None = None) -> tuple[str, Any] | None:
        """(device ID, device data) of the user's dehydrated device, or None."""
        row = await (c or self.db).fetchrow(
            "SELECT device_id, device_data FROM dehydrated_devices WHERE user_id = $1", user_id)
        return (str(row["device_id"]), orjson.loads(row["device_data"])) if row else None

    async def put(self, c: Conn, user_id: str, device_id: str, data: Any) -> None:
        await c.execute(
            "INSERT INTO dehydrated_devices (user_id, device_id, device_data) VALUES ($1,$2,$3)"
            " ON CONFLICT (user_id) DO UPDATE SET device_id = excluded.device_id,"
            " device_data = excluded.device_data", user_id, device_id, orjson.dumps(data).decode())

    async def delete(self, c: Conn, user_id: str) -> None:
        await c.execute("DELETE FROM dehydrated_devices WHERE user_id = $1", user_id)
