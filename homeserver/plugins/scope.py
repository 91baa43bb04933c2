"""What a plugin's capability token may call: a pure decision on (method, path), given the
manifest's grants. Rooms are checked by the service afterwards (they need the database).

Everything not listed here is refused: a plugin speaks for its bot user in the rooms it was
granted, and nothing else (no /sync, no account or device management, no other users)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from parley_plugin.manifest import Manifest

_V3 = "/_matrix/client/v3"
_ROOM = re.compile(r"^/_matrix/client/(?:v3|v1)/rooms/([^/]+)/(.*)$")
_JOIN = re.compile(r"^/_matrix/client/v3/join/([^/]+)$")
_PROFILE = re.compile(r"^/_matrix/client/v3/profile/([^/]+)/(displayname|avatar_url)$")
# Room endpoints a bot may read (GET) or act on (the method given).
_ROOM_READS = ("state", "event/", "members", "joined_members", "messages", "context/", "relations/")
_ROOM_ACTIONS = {("POST", "join"), ("POST", "leave"), ("PUT", "typing/"), ("POST", "receipt/")}


@dataclass(frozen=True)
class Grant:
    """Allowed; `room_id` (when set) must still be one the plugin may use; `joining`: the call
    is a join, allowed for rooms the bot is only invited to."""

    room_id: str | None = None
    joining: bool = False


def decide(manifest: Manifest, bot_user: str, method: str, path: str) -> Grant | None:
    """The grant for this call, or None when the manifest does not allow it."""
    if path == f"{_V3}/account/whoami" and method == "GET":
        return Grant()
    if path == f"{_V3}/joined_rooms" and method == "GET":
        return Grant()
    if (m := _JOIN.match(path)) and method == "POST":
        target = unquote(m.group(1))
        return Grant(target, joining=True) if target.startswith("!") else None
    if (m := _PROFILE.match(path)) and method in ("GET", "PUT"):
        return Grant() if unquote(m.group(1)) == bot_user else None
    m = _ROOM.match(path)
    if m is None:
        return None
    room_id, rest = unquote(m.group(1)), m.group(2)
    if method == "GET" and any(rest == r or rest.startswith(r) for r in _ROOM_READS):
        return Grant(room_id)
    if any(method == meth and (rest == r or rest.startswith(r)) for meth, r in _ROOM_ACTIONS):
        return Grant(room_id, joining=rest == "join")
    if method == "PUT" and rest.startswith("send/"):
        event_type = unquote(rest.split("/")[1]) if rest.count("/") >= 2 else ""
        return Grant(room_id) if event_type in manifest.send else None
    if method == "PUT" and rest.startswith("redact/"):
        return Grant(room_id)
    if method == "PUT" and rest.startswith("state/"):
        event_type = unquote(rest.split("/")[1]) if "/" in rest else ""
        return Grant(room_id) if event_type in manifest.send else None
    return None
