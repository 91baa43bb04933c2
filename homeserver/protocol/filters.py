"""Event filters (Client-Server API, "Filtering"): parsing, validation and matching. Pure."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_room_id, is_valid_user_id

MAX_FILTER_LIMIT = 1000


def _bad(msg: str) -> MatrixError:
    return MatrixError(400, "M_BAD_JSON", msg)


def _str_list(obj: dict[str, Any], key: str) -> tuple[str, ...] | None:
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise _bad(f"filter field '{key}' must be a list of strings")
    return tuple(v)


def _user_list(obj: dict[str, Any], key: str) -> tuple[str, ...] | None:
    v = _str_list(obj, key)
    if v is not None and not all(is_valid_user_id(u) for u in v):
        raise _bad(f"filter field '{key}' must list user IDs")
    return v


def _room_list(obj: dict[str, Any], key: str) -> tuple[str, ...] | None:
    v = _str_list(obj, key)
    if v is not None and not all(is_valid_room_id(r) for r in v):
        raise _bad(f"filter field '{key}' must list room IDs")
    return v


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


def _type_matches(patterns: tuple[str, ...], event_type: str) -> bool:
    for p in patterns:
        if p == event_type or ("*" in p and _glob(p).match(event_type)):
            return True
    return False


@dataclass(frozen=True)
class RoomEventFilter:
    """EventFilter + RoomEventFilter fields (the spec's `RoomEventFilter` schema)."""

    limit: int | None = None
    types: tuple[str, ...] | None = None
    not_types: tuple[str, ...] = ()
    senders: tuple[str, ...] | None = None
    not_senders: tuple[str, ...] = ()
    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    contains_url: bool | None = None
    lazy_load_members: bool = False
    include_redundant_members: bool = False

    @classmethod
    def parse(cls, obj: Any) -> RoomEventFilter:
        if obj is None:
            return cls()
        if not isinstance(obj, dict):
            raise _bad("a filter must be an object")
        limit = obj.get("limit")
        if limit is not None:
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
                raise _bad("filter limit must be a non-negative integer")
            limit = min(limit, MAX_FILTER_LIMIT)
        contains_url = obj.get("contains_url")
        if contains_url is not None and not isinstance(contains_url, bool):
            raise _bad("contains_url must be a boolean")
        lazy = obj.get("lazy_load_members", False)
        if not isinstance(lazy, bool):
            raise _bad("lazy_load_members must be a boolean")
        redundant = obj.get("include_redundant_members", False)
        if not isinstance(redundant, bool):
            raise _bad("include_redundant_members must be a boolean")
        return cls(
            limit=limit,
            types=_str_list(obj, "types"),
            not_types=_str_list(obj, "not_types") or (),
            senders=_user_list(obj, "senders"),
            not_senders=_user_list(obj, "not_senders") or (),
            rooms=_room_list(obj, "rooms"),
            not_rooms=_room_list(obj, "not_rooms") or (),
            contains_url=contains_url,
            lazy_load_members=lazy,
            include_redundant_members=redundant,
        )

    def room_allowed(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    def matches(self, event_type: str, sender: str, content: dict[str, Any], room_id: str | None = None) -> bool:
        if room_id is not None and not self.room_allowed(room_id):
            return False
        if sender in self.not_senders:
            return False
        if self.senders is not None and sender not in self.senders:
            return False
        if self.not_types and _type_matches(self.not_types, event_type):
            return False
        if self.types is not None and not _type_matches(self.types, event_type):
            return False
        if self.contains_url is not None:
            has_url = isinstance(content.get("url"), str)
            if has_url != self.contains_url:
                return False
        return True


@dataclass(frozen=True)
class SyncFilter:
    """The top-level `Filter` schema used by /sync."""

    timeline: RoomEventFilter = field(default_factory=RoomEventFilter)
    state: RoomEventFilter = field(default_factory=RoomEventFilter)
    ephemeral: RoomEventFilter = field(default_factory=RoomEventFilter)
    room_account_data: RoomEventFilter = field(default_factory=RoomEventFilter)
    account_data: RoomEventFilter = field(default_factory=RoomEventFilter)
    presence: RoomEventFilter = field(default_factory=RoomEventFilter)
    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    include_leave: bool = False
    event_fields: tuple[str, ...] | None = None
    event_format: str = "client"
    timeline_unread_threads: bool = False

    @classmethod
    def parse(cls, obj: Any) -> SyncFilter:
        if obj is None:
            return cls()
        if not isinstance(obj, dict):
            raise _bad("a filter must be an object")
        room = obj.get("room", {})
        if not isinstance(room, dict):
            raise _bad("filter 'room' must be an object")
        include_leave = room.get("include_leave", False)
        if not isinstance(include_leave, bool):
            raise _bad("include_leave must be a boolean")
        raw_timeline = room.get("timeline")
        timeline = raw_timeline if isinstance(raw_timeline, dict) else {}
        unread_threads = timeline.get("unread_thread_notifications", False)
        if not isinstance(unread_threads, bool):
            raise _bad("unread_thread_notifications must be a boolean")
        fmt = obj.get("event_format", "client")
        if fmt not in ("client", "federation"):
            raise _bad("event_format must be 'client' or 'federation'")
        return cls(
            timeline=RoomEventFilter.parse(room.get("timeline")),
            state=RoomEventFilter.parse(room.get("state")),
            ephemeral=RoomEventFilter.parse(room.get("ephemeral")),
            room_account_data=RoomEventFilter.parse(room.get("account_data")),
            account_data=RoomEventFilter.parse(obj.get("account_data")),
            presence=RoomEventFilter.parse(obj.get("presence")),
            rooms=_room_list(room, "rooms"),
            not_rooms=_room_list(room, "not_rooms") or (),
            include_leave=include_leave,
            event_fields=_str_list(obj, "event_fields"),
            event_format=fmt,
            timeline_unread_threads=unread_threads,
        )

    def room_allowed(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms
