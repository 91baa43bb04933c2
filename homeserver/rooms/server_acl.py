"""Server ACLs applied to other servers (server-server API §Server Access Control Lists (ACLs)):
every inbound federation request that names a room, each PDU of a transaction (by its room) and
each room an EDU speaks about are checked against the room's current `m.room.server_acl`."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.events import check_event_size_and_format, compute_event_id
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.protocol.server_acl import ServerAcl
from homeserver.storage.stores import Stores

_ACL_KEY = ("m.room.server_acl", "")
_CACHE_SIZE = 1_000
DENIED = "Server is banned from this room by its server ACL"


@dataclass(frozen=True)
class DeniedPdu:
    event_id: str | None  # None when the PDU is too malformed to name
    reason: str = DENIED


class ServerAclService:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        # Parsed ACLs by the event ID that set them: an event never changes, so the cache only
        # needs the (cheap, indexed) current-state lookup to stay right.
        self._parsed: OrderedDict[str, ServerAcl] = OrderedDict()

    async def _acl(self, room_id: str) -> ServerAcl | None:
        current = await self.stores.state.current_ids(room_id, [_ACL_KEY])
        event_id = current.get(_ACL_KEY)
        if event_id is None:
            return None
        acl = self._parsed.get(event_id)
        if acl is None:
            ev = await self.stores.events.get(event_id)
            if ev is None:
                return None
            acl = ServerAcl.from_content(ev.pdu.get("content"))
            self._parsed[event_id] = acl
            while len(self._parsed) > _CACHE_SIZE:
                self._parsed.popitem(last=False)
        return acl

    async def allows(self, server_name: str, room_id: str) -> bool:
        """Whether `server_name` may take part in `room_id` (always, when the room has no ACL or
        is unknown here)."""
        acl = await self._acl(room_id)
        return acl is None or acl.allows(server_name)

    async def check(self, server_name: str, room_id: str) -> None:
        """403 M_FORBIDDEN when the room's ACL denies `server_name`."""
        if not await self.allows(server_name, room_id):
            raise MatrixError(403, "M_FORBIDDEN", DENIED)

    async def denied_pdu(self, origin: str, pdu: Any) -> DeniedPdu | None:
        """For a PDU of a transaction from `origin`: None when its room's ACL allows the origin
        (or it names no room: the receiver refuses it then), else what to report for it."""
        room_id = pdu.get("room_id") if isinstance(pdu, dict) else None
        if not isinstance(room_id, str) or await self.allows(origin, room_id):
            return None
        rv = KNOWN_ROOM_VERSIONS.get(await self.stores.userdata.room_version(room_id) or "")
        if rv is None:
            return DeniedPdu(None)
        try:
            check_event_size_and_format(pdu, rv)
            return DeniedPdu(compute_event_id(pdu, rv))
        except MatrixError:  # a malformed PDU is dropped all the same, unnamed
            return DeniedPdu(None)

    async def filter_edu(self, origin: str, edu: Any) -> Any | None:
        """The EDU without what it says about rooms whose ACL denies `origin`: None for an
        `m.typing` in such a room, an `m.receipt` without those rooms (None if none is left).
        EDUs that name no room pass unchanged."""
        if not isinstance(edu, dict) or not isinstance(edu.get("content"), dict):
            return edu
        content = edu["content"]
        if edu.get("edu_type") == "m.typing":
            room_id = content.get("room_id")
            if isinstance(room_id, str) and not await self.allows(origin, room_id):
                return None
            return edu
        if edu.get("edu_type") == "m.receipt":
            kept = {r: v for r, v in content.items() if await self.allows(origin, r)}
            if not kept:
                return None
            return edu if len(kept) == len(content) else {**edu, "content": kept}
        return edu
