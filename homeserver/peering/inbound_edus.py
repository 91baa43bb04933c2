"""EDUs received in transactions (server-server API §EDUs), handed to the real-time layer.

A registry maps each edu_type to its handler. Every EDU is checked before it has any effect: the
sending server must own the user it speaks for, and that user must be in the room (typing,
receipts) or share a room with this server (presence, device lists). An EDU that fails a check
or is malformed is dropped on its own: EDU errors never fail the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.ephemeral.presence import STATES
from homeserver.events.fanout import FanOut
from homeserver.keys.service import KeyService
from homeserver.keys.to_device import ToDeviceService
from homeserver.protocol.ids import is_valid_user_id, server_name_of
from homeserver.rooms.receipts import ReceiptService
from homeserver.storage.stores import Stores

log = logging.getLogger("parley.federation")

EduHandler = Callable[[str, dict[str, Any]], Awaitable[None]]
#: How long a remote typing notification lasts without a refresh (Synapse's is 60 s).
REMOTE_TYPING_TIMEOUT_MS = 60_000


class EduRejected(Exception):
    pass


class InboundEdus:
    def __init__(self, stores: Stores, server_name: str, fanout: FanOut, receipts: ReceiptService,
                 to_device: ToDeviceService, keys: KeyService) -> None:
        self.stores = stores
        self.server_name = server_name
        self.fanout = fanout
        self.receipts = receipts
        self.to_device = to_device
        self.keys = keys
        self.handlers: dict[str, EduHandler] = {
            "m.typing": self.typing,
            "m.receipt": self.receipt,
            "m.presence": self.presence,
            "m.direct_to_device": self.direct_to_device,
            "m.device_list_update": self.device_list_update,
            "m.signing_key_update": self.signing_key_update,
        }

    async def handle(self, origin: str, edu: Any) -> None:
        """One EDU of a transaction from `origin`; never raises."""
        if not isinstance(edu, dict) or not isinstance(edu.get("content"), dict):
            return
        handler = self.handlers.get(edu.get("edu_type"))  # type: ignore[arg-type]  # checked by .get
        if handler is None:
            return  # unknown EDU types are ignored, as the spec asks
        try:
            await handler(origin, edu["content"])
        except EduRejected as e:
            log.info("dropped a %s EDU from %s: %s", edu.get("edu_type"), origin, e)
        except Exception:  # noqa: BLE001 - one EDU never fails the transaction
            log.exception("a %s EDU from %s could not be handled", edu.get("edu_type"), origin)

    # ------------------------------------------------------------------ checks

    def _owned(self, origin: str, user_id: Any) -> str:
        if not isinstance(user_id, str) or not is_valid_user_id(user_id) or server_name_of(user_id) != origin:
            raise EduRejected(f"{origin} does not own {user_id!r}")
        return user_id

    async def _joined(self, room_id: Any, user_id: str) -> str:
        if not isinstance(room_id, str):
            raise EduRejected("room_id must be a string")
        m = await self.stores.state.membership(room_id, user_id)
        if m is None or m[0] != "join":
            raise EduRejected(f"{user_id} is not in {room_id}")
        return room_id

    async def _shares_a_room(self, user_id: str) -> None:
        rooms = await self.stores.state.rooms_for_user(user_id)
        if not any(m == "join" for m, _, _ in rooms.values()):
            raise EduRejected(f"{user_id} shares no room with this server")

    # ------------------------------------------------------------------ handlers

    async def typing(self, origin: str, content: dict[str, Any]) -> None:
        user_id = self._owned(origin, content.get("user_id"))
        room_id = await self._joined(content.get("room_id"), user_id)
        typing = content.get("typing")
        if not isinstance(typing, bool):
            raise EduRejected("typing must be a boolean")
        await self.fanout.set_typing(room_id, user_id, typing, REMOTE_TYPING_TIMEOUT_MS)

    async def receipt(self, origin: str, content: dict[str, Any]) -> None:
        for room_id, by_type in content.items():
            if not isinstance(by_type, dict) or not isinstance(by_type.get("m.read"), dict):
                continue  # private receipts never federate; other types are not ours to store
            for user_id, entry in by_type["m.read"].items():
                try:
                    user_id = self._owned(origin, user_id)
                    await self._joined(room_id, user_id)
                    if not isinstance(entry, dict) or not isinstance(entry.get("event_ids"), list):
                        raise EduRejected("event_ids must be a list")
                    data = entry.get("data")
                    if not isinstance(data, dict):
                        data = {}
                    ts, thread = data.get("ts"), data.get("thread_id")
                    for event_id in entry["event_ids"][:10]:
                        if isinstance(event_id, str):
                            await self.receipts.remote_receipt(
                                room_id, user_id, event_id, thread if isinstance(thread, str) else "",
                                ts if isinstance(ts, int) else None)
                except EduRejected as e:
                    log.info("dropped a receipt from %s: %s", origin, e)

    async def presence(self, origin: str, content: dict[str, Any]) -> None:
        push = content.get("push")
        if not isinstance(push, list):
            raise EduRejected("push must be a list")
        for entry in push[:1000]:
            if not isinstance(entry, dict):
                continue
            try:
                user_id = self._owned(origin, entry.get("user_id"))
                await self._shares_a_room(user_id)
                state = entry.get("presence")
                if state not in STATES:
                    raise EduRejected(f"unknown presence {state!r}")
                status, ago = entry.get("status_msg"), entry.get("last_active_ago")
                ago = ago if isinstance(ago, int) and not isinstance(ago, bool) and 0 <= ago < 2**53 else None
                await self.fanout.set_remote_presence(user_id, str(state),
                                                      status if isinstance(status, str) else None, ago)
            except EduRejected as e:
                log.info("dropped a presence update from %s: %s", origin, e)

    async def direct_to_device(self, origin: str, content: dict[str, Any]) -> None:
        sender = self._owned(origin, content.get("sender"))
        event_type, message_id, messages = content.get("type"), content.get("message_id"), content.get("messages")
        if not isinstance(event_type, str) or not isinstance(message_id, str) or not isinstance(messages, dict):
            raise EduRejected("type, message_id and messages are required")
        await self.to_device.deliver_remote(origin, sender, event_type, message_id, messages)

    async def device_list_update(self, origin: str, content: dict[str, Any]) -> None:
        user_id = self._owned(origin, content.get("user_id"))
        await self._shares_a_room(user_id)
        stream_id = content.get("stream_id")
        await self.keys.remote_device_list_changed(
            user_id, stream_id if isinstance(stream_id, int) and not isinstance(stream_id, bool) else 0)

    async def signing_key_update(self, origin: str, content: dict[str, Any]) -> None:
        user_id = self._owned(origin, content.get("user_id"))
        await self._shares_a_room(user_id)
        await self.keys.remote_device_list_changed(user_id)
