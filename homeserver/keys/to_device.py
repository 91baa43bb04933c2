"""To-device messages (client-server API §Send-to-Device messaging).

A message is stored per recipient device at a position on the shared stream and stays there
until the device acknowledges a sync token at or past it: on /sync that is the next request's
`since`, over the WebSocket the client's `ack` of a later frame. So a message is delivered
again after a lost response or a dropped socket, and never after it was acknowledged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.events.recent import UserNote
from homeserver.protocol.errors import MatrixError
from homeserver.storage.stores import Stores

#: Messages delivered per sync at most; the rest follow in the next sync.
MAX_PER_SYNC = 100
MAX_TXN_ID = 255
MAX_RECIPIENT_DEVICES = 10_000

WakeUsers = Callable[[list[str]], Awaitable[None]]


class ToDeviceService:
    def __init__(self, stores: Stores, server_name: str, wake_users: WakeUsers) -> None:
        self.stores = stores
        self.server_name = server_name
        self._wake_users = wake_users
        #: Called with (sender, type, message_id, messages) for recipients on other servers.
        self.on_remote: Callable[[str, str, str, dict[str, dict[str, Any]]], Awaitable[None]] | None = None

    async def send(
        self, sender: str, sender_device: str, event_type: str, txn_id: str, messages: Any,
    ) -> None:
        if not event_type or len(event_type) > MAX_TXN_ID or not txn_id or len(txn_id) > MAX_TXN_ID:
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid event type or transaction ID")
        if not isinstance(messages, dict) or not all(
                isinstance(devs, dict) and all(isinstance(c, dict) for c in devs.values())
                for devs in messages.values()):
            raise MatrixError(400, "M_BAD_JSON", "messages must map users to devices to content objects")
        if sum(len(d) for d in messages.values()) > MAX_RECIPIENT_DEVICES:
            raise MatrixError(400, "M_INVALID_PARAM", "Too many recipient devices")
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        remote: dict[str, dict[str, Any]] = {}
        for user_id, devices in messages.items():
            if not isinstance(user_id, str) or user_id.partition(":")[2] != self.server_name:
                if isinstance(user_id, str) and ":" in user_id:
                    remote[user_id] = devices  # their server delivers them (m.direct_to_device)
                continue
            existing = await self._device_ids(user_id)
            # Messages for devices that do not exist would wait forever: dropped.
            named = {d: c for d, c in devices.items() if d in existing}
            if "*" in devices:
                for dev in sorted(existing):
                    # An explicitly addressed device gets its own message, not the wildcard's.
                    named.setdefault(dev, devices["*"])
            for dev, content in named.items():
                rows[(user_id, dev)] = {"type": event_type, "sender": sender, "content": content}
        async with self.stores.stream.write() as (c, pos):
            self.stores.stream.note(pos, UserNote(tuple(sorted({u for u, _ in rows}))))
            if not await self.stores.to_device.claim_txn(c, sender, sender_device, txn_id, pos):
                return  # a retry: the first request's messages are already queued
            await self.stores.to_device.add(c, pos, [(u, d, m) for (u, d), m in rows.items()])
        if rows:
            await self._wake_users(sorted({u for u, _ in rows}))
        if remote and self.on_remote is not None:
            await self.on_remote(sender, event_type, f"{sender_device}.{txn_id}", remote)

    async def deliver_remote(self, origin: str, sender: str, event_type: str, message_id: str,
                             messages: dict[str, Any]) -> None:
        """An m.direct_to_device EDU (the caller checked that `origin` owns `sender`): the
        messages for this server's users go to their inboxes, once per message_id."""
        if not event_type or len(event_type) > MAX_TXN_ID or not message_id or len(message_id) > MAX_TXN_ID:
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid event type or message ID")
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for user_id, devices in messages.items():
            if not isinstance(user_id, str) or user_id.partition(":")[2] != self.server_name \
                    or not isinstance(devices, dict):
                continue
            existing = await self._device_ids(user_id)
            named = {d: c for d, c in devices.items() if d in existing and isinstance(c, dict)}
            if isinstance(devices.get("*"), dict):
                for dev in sorted(existing):
                    named.setdefault(dev, devices["*"])
            for dev, content in named.items():
                rows[(user_id, dev)] = {"type": event_type, "sender": sender, "content": content}
            if len(rows) > MAX_RECIPIENT_DEVICES:
                raise MatrixError(400, "M_INVALID_PARAM", "Too many recipient devices")
        async with self.stores.stream.write() as (c, pos):
            self.stores.stream.note(pos, UserNote(tuple(sorted({u for u, _ in rows}))))
            # The message ID is the sender's transaction: a retried EDU is delivered once.
            if not await self.stores.to_device.claim_txn(c, sender, f"federation:{origin}", message_id, pos):
                return
            await self.stores.to_device.add(c, pos, [(u, d, m) for (u, d), m in rows.items()])
        if rows:
            await self._wake_users(sorted({u for u, _ in rows}))

    async def _device_ids(self, user_id: str) -> set[str]:
        return {str(d["device_id"]) for d in await self.stores.accounts.list_devices(user_id)}

    async def acknowledge(self, user_id: str, device_id: str, upto: int) -> None:
        """The device holds a token at `upto`: everything up to there has reached it."""
        if upto > 0:
            await self.stores.to_device.delete_upto(user_id, device_id, upto)

    async def pending(self, user_id: str, device_id: str, after: int, upto: int) -> tuple[list[dict[str, Any]], int]:
        """(messages in (after, upto], the position the client has them up to)."""
        got = await self.stores.to_device.pending(user_id, device_id, after, upto, MAX_PER_SYNC)
        if len(got) < MAX_PER_SYNC:
            return [m for _, m in got], upto
        return [m for _, m in got], got[-1][0]
