"""Dehydrated devices (MSC3814, `/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device`).

A user keeps at most one device that no client runs: its keys are published like any device's, so
senders share room keys with it while all of the user's clients are offline; its account is
stored on the server encrypted by the client (`device_data`, opaque here). A new login fetches the
data, decrypts it, and reads the device's to-device messages to recover those room keys. Uploading
a new dehydrated device replaces (deletes) the previous one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from homeserver.keys.service import KeyService
from homeserver.keys.to_device import ToDeviceService
from homeserver.protocol.errors import MatrixError
from homeserver.storage.stores import Stores

MAX_DEVICE_ID = 255
#: Bytes of opaque device data a client may store.
MAX_DEVICE_DATA = 256 * 1024

DeleteDevices = Callable[[str, list[str]], Awaitable[None]]


class DehydratedDeviceService:
    def __init__(self, stores: Stores, keys: KeyService, to_device: ToDeviceService,
                 delete_devices: DeleteDevices) -> None:
        self.stores = stores
        self.keys = keys
        self.to_device = to_device
        self._delete_devices = delete_devices

    async def _current(self, user_id: str) -> tuple[str, Any] | None:
        got = await self.stores.dehydrated_devices.get(user_id)
        if got is not None and await self.stores.accounts.get_device(user_id, got[0]) is None:
            return None  # deleted through /devices: no longer there to rehydrate
        return got

    async def get(self, user_id: str) -> dict[str, Any]:
        got = await self._current(user_id)
        if got is None:
            raise MatrixError(404, "M_NOT_FOUND", "No dehydrated device")
        return {"device_id": got[0], "device_data": got[1]}

    async def put(self, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
        device_id, data = body.get("device_id"), body.get("device_data")
        if not isinstance(device_id, str) or not device_id or len(device_id) > MAX_DEVICE_ID:
            raise MatrixError(400, "M_INVALID_PARAM", "device_id must be a non-empty string")
        if not isinstance(data, dict) or len(orjson.dumps(data)) > MAX_DEVICE_DATA:
            raise MatrixError(400, "M_INVALID_PARAM", "device_data must be an object of reasonable size")
        if not isinstance(body.get("device_keys"), dict):
            raise MatrixError(400, "M_INVALID_PARAM", "device_keys are required")
        name = body.get("initial_device_display_name")
        if name is not None and not isinstance(name, str):
            raise MatrixError(400, "M_INVALID_PARAM", "initial_device_display_name must be a string")
        old = await self._current(user_id)
        if (old is None or old[0] != device_id) and await self.stores.accounts.get_device(user_id, device_id):
            raise MatrixError(400, "M_INVALID_PARAM", "A device with this ID already exists")
        # The keys are checked (and refused with a Matrix error) before the device exists.
        await self.keys.upload(user_id, device_id, {k: body[k] for k in ("device_keys", "one_time_keys",
                                                                          "fallback_keys") if k in body})
        async with self.stores.db.transaction() as c:
            await self.stores.accounts.upsert_device(c, user_id, device_id, name, int(time.time() * 1000), None)
            await self.stores.dehydrated_devices.put(c, user_id, device_id, data)
        if old is not None and old[0] != device_id:
            await self._delete_devices(user_id, [old[0]])
        return {"device_id": device_id}

    async def delete(self, user_id: str) -> dict[str, Any]:
        got = await self._current(user_id)
        if got is None:
            raise MatrixError(404, "M_NOT_FOUND", "No dehydrated device")
        async with self.stores.db.transaction() as c:
            await self.stores.dehydrated_devices.delete(c, user_id)
        await self._delete_devices(user_id, [got[0]])
        return {"device_id": got[0]}

    async def events(self, user_id: str, device_id: str, since: str | None) -> dict[str, Any]:
        """The dehydrated device's to-device messages after `since` (a `next_batch` of an earlier
        answer, which also acknowledges what came before it). Without more messages the answer
        has no `next_batch`: the client stops there."""
        got = await self._current(user_id)
        if got is None or got[0] != device_id:
            raise MatrixError(403, "M_FORBIDDEN", "Not your dehydrated device")
        after = 0
        if since is not None:
            if not since.isdigit() or len(since) > 20:
                raise MatrixError(400, "M_INVALID_PARAM", "Unknown next_batch")
            after = int(since)
            await self.to_device.acknowledge(user_id, device_id, after)
        events, upto = await self.to_device.pending(user_id, device_id, after, self.stores.stream.current())
        if not events:
            return {"events": []}
        return {"events": events, "next_batch": str(upto)}
