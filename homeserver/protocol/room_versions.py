"""Room versions 10, 11 and 12 (spec: rooms/v10.md, v11.md, v12.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RoomVersion:
    identifier: str
    event_id_urlsafe: bool
    redaction_rules: str  # "v9" (rooms 9-10) or "v11" (rooms 11-12)
    auth_rules: str  # "v10", "v11" or "v12"
    room_id_from_create: bool
    creators_infinite_pl: bool
    create_has_creator: bool
    strict_canonical_json: bool
    integer_power_levels: bool
    redacts_in_content: bool
    knock_restricted_supported: bool


V10 = RoomVersion("10", True, "v9", "v10", False, False, True, True, True, False, True)
V11 = RoomVersion("11", True, "v11", "v11", False, False, False, True, True, True, True)
V12 = RoomVersion("12", True, "v11", "v12", True, True, False, True, True, True, True)

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {"10": V10, "11": V11, "12": V12}
DEFAULT_ROOM_VERSION = "12"
