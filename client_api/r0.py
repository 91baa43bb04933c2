"""The legacy `/_matrix/client/r0/` and `/_matrix/media/r0/` prefixes.

Bots and older clients still call r0 paths. Every client-server endpoint that existed in r0.6.1
is served unchanged under v3, so r0 is a path rewrite in the router, not a second route table.
Endpoints added after r0 (refresh, knock, login tokens, ...) stay v3-only.
"""

from __future__ import annotations

CLIENT_R0 = "/_matrix/client/r0/"
CLIENT_V3 = "/_matrix/client/v3/"
MEDIA_R0 = "/_matrix/media/r0/"
MEDIA_V3 = "/_matrix/media/v3/"

# First path segments of the r0.6.1 client-server API.
R0_SEGMENTS = frozenset({
    "account", "admin", "capabilities", "createRoom", "delete_devices", "devices", "directory",
    "events", "initialSync", "join", "joined_rooms", "keys", "login", "logout", "notifications",
    "presence", "profile", "publicRooms", "pushers", "pushrules", "register", "rooms", "search",
    "sendToDevice", "sync", "thirdparty", "user", "user_directory", "voip",
})
# Later additions under those segments.
NOT_IN_R0 = ("login/get_token",)
MEDIA_R0_SEGMENTS = frozenset({"upload", "download", "thumbnail", "config", "preview_url"})


def r0_to_v3(path: str) -> str | None:
    """The v3 path serving an r0 request, or None when the path is not a known r0 endpoint."""
    if path.startswith(CLIENT_R0):
        rest = path[len(CLIENT_R0):]
        if rest.split("/", 1)[0] in R0_SEGMENTS and not rest.startswith(NOT_IN_R0):
            return CLIENT_V3 + rest
        return None
    if path.startswith(MEDIA_R0):
        rest = path[len(MEDIA_R0):]
        if rest.split("/", 1)[0] in MEDIA_R0_SEGMENTS:
            return MEDIA_V3 + rest
    return None
