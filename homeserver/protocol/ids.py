"""Identifier grammars (appendices §Identifier Grammar).

Every check is a full match: `re.match` with `$` would accept a trailing newline, and
`str.isdigit` accepts non-ASCII digits, so neither is used here.
"""

from __future__ import annotations

import re

_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")
_DNS_NAME = re.compile(r"[A-Za-z0-9\-.]{1,255}")
_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]{2,45}\]")
_PORT = re.compile(r"[0-9]{1,5}")
_V12_ROOM = re.compile(r"![A-Za-z0-9_\-]{43}")
_EVENT_HASH = re.compile(r"\$[A-Za-z0-9+/_\-]{43,}")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
MAX_ID_BYTES = 255


def _utf8_len(s: str) -> int | None:
    """Length in UTF-8 bytes, or None for strings that cannot be UTF-8 (lone surrogates)."""
    if _SURROGATE.search(s):
        return None
    return len(s.encode())


def is_valid_server_name(s: str) -> bool:
    """`hostname[:port]`: a DNS name, IPv4 literal or bracketed IPv6 literal (appendices §Server Name)."""
    if not isinstance(s, str) or not s:
        return False
    host, port = s, None
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            return False
        host, rest = s[: end + 1], s[end + 1:]
        if rest:
            if not rest.startswith(":"):
                return False
            port = rest[1:]
        if not _IPV6.fullmatch(host):
            return False
    else:
        if ":" in s:
            host, port = s.rsplit(":", 1)
        if not _DNS_NAME.fullmatch(host):
            return False
        # All digits and dots but not a dotted quad: neither an IPv4 literal nor a DNS name.
        if host.replace(".", "").isascii() and host.replace(".", "").isdigit() and not _IPV4.fullmatch(host):
            return False
    return port is None or (bool(_PORT.fullmatch(port)) and int(port) <= 65535)


def server_name_of(id_str: str) -> str:
    """The server part of a user ID, room alias or pre-v12 room ID: everything after the first ':'
    (appendices §Common Identifier Format). Raises ValueError when there is none (v12 room IDs)."""
    _, sep, server = id_str.partition(":")
    if not sep or not server:
        raise ValueError(f"{id_str!r} has no server name")
    return server


def _sigil_id(s: str, sigil: str) -> bool:
    if not isinstance(s, str) or not s.startswith(sigil):
        return False
    size = _utf8_len(s)
    if size is None or size > MAX_ID_BYTES:
        return False
    local, sep, server = s[1:].partition(":")
    return bool(sep) and bool(local) and "\x00" not in local and is_valid_server_name(server)


def is_valid_localpart(s: str) -> bool:
    """The grammar for *new* user IDs: `[a-z0-9._=/+-]+` (appendices §User Identifiers)."""
    return isinstance(s, str) and bool(_LOCALPART.fullmatch(s))


def is_valid_user_id(s: str) -> bool:
    """`@localpart:server_name`, historical grammar accepted: any localpart without ':' or NUL,
    at most 255 bytes in all (appendices §User Identifiers, "Historical User IDs")."""
    return _sigil_id(s, "@")


def is_valid_room_alias(s: str) -> bool:
    """`#alias:server_name`, at most 255 bytes (appendices §Room Aliases)."""
    return _sigil_id(s, "#")


def is_valid_room_id(s: str) -> bool:
    """`!opaque:server` (v1-v11) or `!` + 43 URL-safe base64 characters (v12; appendices §Room IDs)."""
    if not isinstance(s, str):
        return False
    return bool(_V12_ROOM.fullmatch(s)) or _sigil_id(s, "!")


def is_valid_event_id(s: str) -> bool:
    """`$` + reference hash (room v3+) or legacy `$opaque:server` (appendices §Event IDs)."""
    if not isinstance(s, str):
        return False
    size = _utf8_len(s)
    if size is None or size > MAX_ID_BYTES:
        return False
    return bool(_EVENT_HASH.fullmatch(s)) or _sigil_id(s, "$")
