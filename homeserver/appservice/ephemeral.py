"""What an application service is sent besides room events (Application Service API
§Pushing ephemeral data, Matrix 1.13; to-device messages per MSC4203):

- with `receive_ephemeral`, `m.typing` and `m.receipt` of the rooms it is interested in (the
  rules for room events: a room of its room namespaces, or one where its sender or one of its
  users is joined or invited), and `m.presence` of its users and of users sharing such a room;
- to-device messages for devices of users in its user namespaces (MSC4203 has no opt-in),
  marked with `to_user_id` and `to_device_id`. Messages for users it holds exclusively are
  deleted from their inboxes once the AS accepted them (nobody else reads those inboxes);
  those for users of a non-exclusive namespace stay for the user's own clients.

Receipts and to-device messages live on the shared stream, so they follow the AS's persisted
cursor with its events. Typing and presence are in-memory state: the sender remembers the
serials it has sent up to, and after a restart starts from the current state."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from homeserver.appservice.registration import AppService
from homeserver.appservice.service import AppServices
from homeserver.ephemeral.presence import PresenceManager
from homeserver.ephemeral.typing import TypingManager
from homeserver.storage.plugins import PluginStore
from homeserver.storage.stores import Stores

TO_DEVICE_POSITIONS = 100  # stream positions of to-device messages per transaction


class Interest:
    """Which rooms an AS is interested in, asked at most once per room per transaction."""

    def __init__(self, appservices: AppServices, stores: Stores, a: AppService) -> None:
        self.appservices = appservices
        self.stores = stores
        self.a = a
        self.sender = appservices.sender(a)
        self._rooms: dict[str, bool] = {}

    def is_ours(self, user_id: str) -> bool:
        return user_id == self.sender or self.a.is_user(user_id)

    async def room(self, room_id: str) -> bool:
        if room_id not in self._rooms:
            members = await self.stores.state.members(room_id, ("join", "invite"))
            self._rooms[room_id] = self.a.is_room(room_id) or any(self.is_ours(m) for m in members)
        return self._rooms[room_id]


class EphemeralData:
    def __init__(self, appservices: AppServices, stores: Stores, store: PluginStore,
                 typing: TypingManager | None, presence: PresenceManager | None) -> None:
        self.appservices = appservices
        self.stores = stores
        self.store = store
        self.typing = typing
        self.presence = presence

    def serials(self) -> tuple[int, int]:
        """Where the typing and presence streams are now."""
        return (self.typing.serial if self.typing else 0, self.presence.serial if self.presence else 0)

    async def receipts(self, interest: Interest, after: int, upto: int) -> list[dict[str, Any]]:
        by_room: dict[str, dict[str, Any]] = defaultdict(dict)
        for r in await self.store.receipts_after(after, upto):
            if await interest.room(r["room_id"]):
                receipt: dict[str, Any] = {"ts": int(r["ts"])}
                if r["thread_id"]:
                    receipt["thread_id"] = r["thread_id"]
                content = by_room[r["room_id"]]
                content.setdefault(r["event_id"], {}).setdefault(r["receipt_type"], {})[r["user_id"]] = receipt
        return [{"type": "m.receipt", "room_id": room, "content": c} for room, c in by_room.items()]

    async def typing_since(self, interest: Interest, serial: int) -> list[dict[str, Any]]:
        if self.typing is None:
            return []
        return [{"type": "m.typing", "room_id": room, "content": {"user_ids": self.typing.typing_users(room)}}
                for room in sorted(self.typing.rooms_changed_since(serial)) if await interest.room(room)]

    async def presence_since(self, interest: Interest, serial: int) -> list[dict[str, Any]]:
        if self.presence is None or not self.presence.enabled:
            return []
        out = []
        for user in sorted(self.presence.changed_since(serial)):
            if interest.is_ours(user) or await self._shares_room(interest, user):
                out.append({"type": "m.presence", "sender": user, "content": self.presence.get(user)})
        return out

    async def _shares_room(self, interest: Interest, user_id: str) -> bool:
        rooms = await self.stores.state.rooms_for_user(user_id)
        for room_id, (membership, *_rest) in rooms.items():
            if membership == "join" and await interest.room(room_id):
                return True
        return False

    async def to_device(self, interest: Interest, after: int, upto: int
                        ) -> tuple[list[dict[str, Any]], list[tuple[str, str, int]], int]:
        """(messages for the AS's users, the inbox rows to delete once it accepted them, the
        position covered: `upto`, or less when there were more positions than one batch)."""
        rows = await self.store.to_device_after(after, upto, TO_DEVICE_POSITIONS)
        positions = sorted({r["stream_id"] for r in rows})
        end = positions[-1] if len(positions) >= TO_DEVICE_POSITIONS else upto
        out, delete = [], []
        a = interest.a
        for r in rows:
            if not a.is_user(r["user_id"]):
                continue
            out.append({**r["message"], "to_user_id": r["user_id"], "to_device_id": r["device_id"]})
            if a.is_user(r["user_id"], exclusive_only=True):
                delete.append((r["user_id"], r["device_id"], r["stream_id"]))
        return out, delete, end
