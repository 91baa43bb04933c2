"""The end-to-end encryption streams of a sync: to-device messages and device lists (with the
device's one-time key counts and unused fallback key types)."""

from __future__ import annotations

from typing import Any

from homeserver.keys.service import KeyService
from homeserver.keys.to_device import ToDeviceService
from homeserver.storage.ids import StreamTracker
from homeserver.sync.sources import SyncPass


class ToDeviceSource:
    """`to_device.events`: the device's pending messages after its token's to-device position.
    Messages up to the acknowledged position are deleted first: they have reached the device."""

    key = "to_device"

    def __init__(self, stream: StreamTracker, to_device: ToDeviceService) -> None:
        self._stream = stream
        self.to_device = to_device
        # device -> (first, last) stream positions its delivered, not yet deleted messages may
        # hold: quiet syncs delete only when the acknowledged token reaches into that range,
        # not (nothing) on every wake-up
        self._delivered: dict[tuple[str, str], tuple[int, int]] = {}

    def current(self) -> int:
        return self._stream.current()

    async def fill(self, p: SyncPass) -> None:
        if p.acked is not None:
            await self.to_device.acknowledge(p.user_id, p.device_id, p.acked.to_device)
        after = p.since.to_device if p.since is not None else 0
        events, upto = await self.to_device.pending(p.user_id, p.device_id, after, p.now.to_device)
        p.response["to_device"] = {"events": events}
        p.next = p.next.with_position(self.key, upto)
        key = (p.user_id, p.device_id)
        if p.acked is not None and key in self._delivered and p.acked.to_device >= self._delivered[key][1]:
            del self._delivered[key]  # all acknowledged just above
        if events:
            low, high = self._delivered.get(key, (after + 1, upto))
            self._delivered[key] = (min(low, after + 1), max(high, upto))

    async def fill_quiet(self, p: SyncPass) -> bool:
        # Nothing was sent to the device in the window, so only a token that had everything up
        # to its stream position can skip the query.
        if p.since is None or p.since.to_device != p.since.stream:
            return False
        key = (p.user_id, p.device_id)
        delivered = self._delivered.get(key)
        if delivered is not None and p.acked is not None and p.acked.to_device >= delivered[0]:
            await self.to_device.acknowledge(p.user_id, p.device_id, p.acked.to_device)
            if p.acked.to_device >= delivered[1]:
                del self._delivered[key]
            else:
                self._delivered[key] = (p.acked.to_device + 1, delivered[1])
        p.response["to_device"] = {"events": []}
        return True

    def has_news(self, response: dict[str, Any]) -> bool:
        return bool(response.get("to_device", {}).get("events"))


class DeviceListSource:
    """`device_lists.changed/left` (on the shared stream), `device_one_time_keys_count` and
    `device_unused_fallback_key_types` (always the current counts)."""

    key = "stream"

    def __init__(self, stream: StreamTracker, keys: KeyService) -> None:
        self._stream = stream
        self.keys = keys

    def current(self) -> int:
        return self._stream.current()

    async def fill(self, p: SyncPass) -> None:
        changed: list[str] = []
        left: list[str] = []
        if p.since is not None:
            changed, left = await self.keys.changes(p.user_id, p.since.stream, p.now.stream)
        p.response["device_lists"] = {"changed": changed, "left": left}
        p.response["device_one_time_keys_count"] = await self.keys.one_time_key_counts(p.user_id, p.device_id)
        p.response["device_unused_fallback_key_types"] = await self.keys.unused_fallback_key_types(
            p.user_id, p.device_id)

    def has_news(self, response: dict[str, Any]) -> bool:
        lists = response.get("device_lists", {})
        return bool(lists.get("changed") or lists.get("left"))

    async def fill_quiet(self, p: SyncPass) -> bool:
        p.response["device_lists"] = {"changed": [], "left": []}
        counts, fallback = await self.keys.sync_key_counts(p.user_id, p.device_id)
        p.response["device_one_time_keys_count"] = counts
        p.response["device_unused_fallback_key_types"] = fallback
        return True
