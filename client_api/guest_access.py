"""Which endpoints guest accounts may call (client-server API §Guest access, "Client behaviour").

Everything else answers 403 M_GUEST_ACCESS_FORBIDDEN to a guest's token. Beyond the spec's list
this allows what a client needs to run a guest session at all (filters, push rules, typing,
receipts, logout), as Synapse does.
"""

from __future__ import annotations

import re

_PREFIX = r"/_matrix/client/(?:r0|v3|v1)"
_ROOM = r"/rooms/[^/]+"

_ALLOWED: list[tuple[str, re.Pattern[str]]] = [
    (method, re.compile(_PREFIX + path + r"/?$"))
    for method, path in (
        # retrieving events and media
        ("GET", _ROOM + r"/state(?:/.*)?"),
        ("GET", _ROOM + r"/context/[^/]+"),
        ("GET", _ROOM + r"/event/[^/]+"),
        ("GET", _ROOM + r"/messages"),
        ("GET", _ROOM + r"/members"),
        ("GET", _ROOM + r"/joined_members"),
        ("GET", _ROOM + r"/initialSync"),
        ("GET", r"/sync"),
        ("GET", r"/events"),
        ("GET", r"/media/(?:download|thumbnail)/.*"),
        # sending events
        ("POST", _ROOM + r"/join"),
        ("POST", r"/join/[^/]+"),
        ("POST", _ROOM + r"/leave"),
        ("PUT", _ROOM + r"/send/[^/]+/[^/]+"),
        ("PUT", _ROOM + r"/state/.+"),
        ("PUT", r"/sendToDevice/[^/]+/[^/]+"),
        ("PUT", _ROOM + r"/typing/[^/]+"),
        ("POST", _ROOM + r"/receipt/.+"),
        ("POST", _ROOM + r"/read_markers"),
        # account maintenance
        ("GET", r"/profile/[^/]+(?:/[^/]+)?"),
        ("PUT", r"/profile/[^/]+/displayname"),
        ("GET", r"/devices"),
        ("GET", r"/devices/[^/]+"),
        ("PUT", r"/devices/[^/]+"),
        ("GET", r"/account/whoami"),
        ("POST", r"/logout"),
        ("GET", r"/capabilities"),
        ("GET", r"/pushrules/?.*"),
        ("POST", r"/user/[^/]+/filter"),
        ("GET", r"/user/[^/]+/filter/[^/]+"),
        ("GET", r"/voip/turnServer"),
        # end-to-end encryption
        ("POST", r"/keys/(?:upload|query|claim)"),
    )
]


def guest_may_call(method: str, path: str) -> bool:
    if method == "HEAD":
        method = "GET"
    return any(m == method and p.match(path) for m, p in _ALLOWED)
