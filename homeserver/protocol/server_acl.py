"""Server access control lists (client-server API §Server Access Control Lists (ACLs) for rooms,
event-schemas m.room.server_acl; server-server API §Server Access Control Lists (ACLs)).

Pure: the caller finds the room's current `m.room.server_acl` content and asks whether a server
(the origin of a request or transaction) may take part in the room.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any


def glob_to_regex(glob: str) -> re.Pattern[str]:
    """A case-insensitive, whole-string pattern for a glob (appendices §Glob-style matching):
    `*` matches zero or more characters, `?` exactly one, everything else itself."""
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob]
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def host_without_port(server_name: str) -> str:
    """The server name without its port: `evil.com:8448` -> `evil.com`, `[::1]:8448` -> `[::1]`
    (the port is never considered by an ACL)."""
    if server_name.startswith("["):
        end = server_name.find("]")
        return server_name[: end + 1] if end != -1 else server_name
    return server_name.split(":", 1)[0]


def is_ip_literal(host: str) -> bool:
    """An IPv4 dotted quad or a bracketed IPv6 literal (appendices §Server Name)."""
    if host.startswith("[") and host.endswith("]"):
        candidate = host[1:-1]
    else:
        candidate = host
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ServerAcl:
    """The parsed content of an `m.room.server_acl` event. Entries that are not strings are
    ignored; a missing or non-list `allow` is empty (so it denies everyone), and
    `allow_ip_literals` is true unless it is the boolean false."""

    allow: tuple[re.Pattern[str], ...]
    deny: tuple[re.Pattern[str], ...]
    allow_ip_literals: bool

    @classmethod
    def from_content(cls, content: Any) -> ServerAcl:
        c = content if isinstance(content, dict) else {}

        def globs(key: str) -> tuple[re.Pattern[str], ...]:
            v = c.get(key)
            return tuple(glob_to_regex(g) for g in v if isinstance(g, str)) if isinstance(v, list) else ()

        return cls(allow=globs("allow"), deny=globs("deny"), allow_ip_literals=c.get("allow_ip_literals") is not False)

    def allows(self, server_name: str) -> bool:
        """Whether `server_name` may take part, in the spec's order: an IP literal is denied when
        `allow_ip_literals` is false; then a `deny` match denies; then an `allow` match allows;
        anything else is denied."""
        host = host_without_port(server_name)
        if not self.allow_ip_literals and is_ip_literal(host):
            return False
        if any(p.fullmatch(host) for p in self.deny):
            return False
        return any(p.fullmatch(host) for p in self.allow)


def server_allowed(acl_content: Any | None, server_name: str) -> bool:
    """Whether `server_name` may take part in a room whose current `m.room.server_acl` content is
    `acl_content` (None: the room has no ACL, and every server is allowed)."""
    if acl_content is None:
        return True
    return ServerAcl.from_content(acl_content).allows(server_name)
