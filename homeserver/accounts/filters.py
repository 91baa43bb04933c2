"""Stored sync filters: created by clients, named by an ID in /sync and the WebSocket stream."""

from __future__ import annotations

from typing import Any

import orjson

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.filters import SyncFilter
from homeserver.storage.stores import Stores

MAX_FILTER_ID_DIGITS = 18  # filter IDs are positive 64-bit integers


class FilterService:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    async def create(self, user_id: str, body: dict[str, Any]) -> str:
        """Validate and store a filter definition; its new ID as a string."""
        SyncFilter.parse(body)
        return str(await self.stores.userdata.add_filter(user_id, body))

    async def get(self, user_id: str, filter_id: str) -> dict[str, Any] | None:
        """The user's filter definition, or None for an unknown or malformed ID."""
        if not (filter_id.isascii() and filter_id.isdigit()) or len(filter_id) > MAX_FILTER_ID_DIGITS:
            return None
        return await self.stores.userdata.get_filter(user_id, int(filter_id))

    async def for_sync(self, user_id: str, raw: str | None) -> SyncFilter:
        """The `filter` parameter of /sync: absent, an inline JSON definition, or a stored ID.
        Every problem is M_INVALID_PARAM (400)."""
        if raw is None or raw == "":
            return SyncFilter()
        obj: Any
        if raw.lstrip().startswith("{"):
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise MatrixError(400, "M_INVALID_PARAM", "filter is not valid JSON") from None
        else:
            obj = await self.get(user_id, raw)
            if obj is None:
                raise MatrixError(400, "M_INVALID_PARAM", "Unknown filter ID")
        try:
            return SyncFilter.parse(obj)
        except MatrixError as e:
            raise MatrixError(400, "M_INVALID_PARAM", e.error) from None
