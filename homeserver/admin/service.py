"""Administration endpoints open to clients: /admin/whois and content reports
(Client-Server API §"Server Administration" and §"Reporting Content")."""

from __future__ import annotations

import secrets
import time
from typing import Any

from homeserver.accounts.service import Requester
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_user_id
from homeserver.rooms.reads import RoomReader
from homeserver.rooms.service import RoomService
from homeserver.storage.stores import Stores

MAX_REASON = 4096


def _reason(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > MAX_REASON):
        raise MatrixError(400, "M_BAD_JSON", f"'reason' must be a string of at most {MAX_REASON} characters")
    return value


class AdminService:
    def __init__(self, stores: Stores, rooms: RoomService, reader: RoomReader) -> None:
        self.stores = stores
        self.rooms = rooms
        self.reader = reader

    async def whois(self, req: Requester, user_id: str) -> dict[str, Any]:
        """Devices and their last connection. Server admins may ask about anyone, users about themselves."""
        if not is_valid_user_id(user_id):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid user ID")
        if not req.is_admin and req.user_id != user_id:
            raise MatrixError(403, "M_FORBIDDEN", "You are not a server admin")
        if not await self.stores.accounts.user_exists(user_id):
            raise MatrixError(404, "M_NOT_FOUND", "Unknown user")
        devices: dict[str, Any] = {}
        for d in await self.stores.accounts.device_connections(user_id):
            connections = []
            if d.get("last_seen_ts") is not None:
                conn: dict[str, Any] = {"last_seen": d["last_seen_ts"]}
                if d.get("last_seen_ip") is not None:
                    conn["ip"] = d["last_seen_ip"]
                conn["user_agent"] = d.get("last_seen_user_agent") or ""
                connections.append(conn)
            devices[d["device_id"]] = {"sessions": [{"connections": connections}]}
        return {"user_id": user_id, "devices": devices}

    async def _store(self, reporter: str, room_id: str | None, event_id: str | None,
                     target: str | None, reason: str | None, score: int | None) -> None:
        await self.stores.auth.add_report(secrets.token_urlsafe(12), reporter, room_id, event_id, target,
                                          reason, score, int(time.time() * 1000))

    async def report_event(self, reporter: str, room_id: str, event_id: str, body: dict[str, Any]) -> None:
        reason = _reason(body.get("reason"))
        score = body.get("score")
        if score is not None and (not isinstance(score, int) or isinstance(score, bool)
                                  or not -100 <= score <= 0):
            raise MatrixError(400, "M_INVALID_PARAM", "'score' must be an integer from -100 to 0")
        # 404 for events the reporter cannot see, whether or not they exist.
        await self.reader.event(reporter, room_id, event_id)
        await self._store(reporter, room_id, event_id, None, reason, score)

    async def report_room(self, reporter: str, room_id: str, body: dict[str, Any]) -> None:
        reason = _reason(body.get("reason"))
        await self.rooms.version_of(room_id)  # 404 for unknown rooms
        await self._store(reporter, room_id, None, None, reason, None)

    async def report_user(self, reporter: str, user_id: str, body: dict[str, Any]) -> None:
        reason = _reason(body.get("reason"))
        if not is_valid_user_id(user_id):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid user ID")
        if not await self.stores.accounts.user_exists(user_id):
            raise MatrixError(404, "M_NOT_FOUND", "Unknown user")
        await self._store(reporter, None, None, user_id, reason, None)

    async def recent_reports(self, limit: int = 100) -> list[dict[str, Any]]:
        return await self.stores.auth.reports(limit)
