"""Global and per-room account data (incl. tags), written on the shared stream."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from homeserver.events.recent import UserNote
from homeserver.protocol.errors import MatrixError
from homeserver.storage.stores import Stores

MAX_ACCOUNT_DATA_BYTES = 65536


class AccountDataService:
    def __init__(self, stores: Stores, wake_users: Callable[[list[str]], Awaitable[None]]) -> None:
        self.stores = stores
        self._wake_users = wake_users

    async def put(self, user_id: str, room_id: str, data_type: str, content: dict[str, Any]) -> None:
        if not data_type or len(data_type.encode()) > 255:
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid account data type")
        if data_type == "m.push_rules" and room_id == "":
            raise MatrixError(400, "M_BAD_JSON", "Use the push rules API to change push rules")
        if len(orjson.dumps(content)) > MAX_ACCOUNT_DATA_BYTES:
            raise MatrixError(413, "M_TOO_LARGE", "Account data too large")
        async with self.stores.stream.write() as (c, pos):
            await self.stores.userdata.put_account_data(c, user_id, room_id, data_type, content, pos)
            self.stores.stream.note(pos, UserNote((user_id,)))
        await self._wake_users([user_id])

    async def get(self, user_id: str, room_id: str, data_type: str) -> dict[str, Any]:
        content = await self.stores.userdata.get_account_data(user_id, room_id, data_type)
        if content is None:
            raise MatrixError(404, "M_NOT_FOUND", "Account data not found")
        return content

    async def tags(self, user_id: str, room_id: str) -> dict[str, Any]:
        content = await self.stores.userdata.get_account_data(user_id, room_id, "m.tag")
        tags = (content or {}).get("tags", {})
        return tags if isinstance(tags, dict) else {}

    async def set_tag(self, user_id: str, room_id: str, tag: str, body: dict[str, Any]) -> None:
        if not tag or len(tag.encode()) > 255:
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid tag")
        order = body.get("order")
        if order is not None and (not isinstance(order, (int, float)) or isinstance(order, bool)):
            raise MatrixError(400, "M_INVALID_PARAM", "Tag order must be a number")
        tags = dict(await self.tags(user_id, room_id))
        tags[tag] = body
        await self.put(user_id, room_id, "m.tag", {"tags": tags})

    async def delete_tag(self, user_id: str, room_id: str, tag: str) -> None:
        tags = dict(await self.tags(user_id, room_id))
        tags.pop(tag, None)
        await self.put(user_id, room_id, "m.tag", {"tags": tags})
