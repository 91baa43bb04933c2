"""The space hierarchy as another server sees it (`GET /_matrix/federation/v1/hierarchy/{roomId}`,
server-server API §Spaces): the space, its `m.space.child` children this server knows, each
judged for the requesting server. Unlike the client API there is no pagination and no depth:
the space and its direct children, and the requesting server filters further for its user.

A room is shown to a server that is in it, or when the server could peek or join it: the
history is world-readable, or the join rule is public, knock, restricted or knock_restricted
(restricted rooms carry their `allowed_room_ids`, for the requesting server to check).
"""

from __future__ import annotations

from typing import Any

from homeserver.events.server_reads import ServerReads
from homeserver.protocol.errors import MatrixError
from homeserver.rooms.directory import DirectoryService
from homeserver.storage.stores import Stores

#: Most children of one space listed (a space with more is cut short, in state-key order).
MAX_CHILDREN = 500
OPEN_RULES = ("public", "knock")
RESTRICTED_RULES = ("restricted", "knock_restricted")


def _child_order(child: dict[str, Any]) -> tuple[int, str, int, str]:
    """The spec's ordering of space children (§Ordering of children within a space): by a valid
    `order` string first, then by the child event's timestamp, then by room ID."""
    order = child["content"].get("order")
    valid = isinstance(order, str) and len(order) <= 50 and all(0x20 <= ord(c) <= 0x7E for c in order)
    return (0 if valid else 1, order if valid else "", child["origin_server_ts"], child["state_key"])


class SpaceHierarchy:
    def __init__(self, stores: Stores, directory: DirectoryService, server_reads: ServerReads) -> None:
        self.stores = stores
        self.directory = directory
        self.server_reads = server_reads

    async def _state_content(self, room_id: str, event_type: str) -> dict[str, Any]:
        ids = await self.stores.state.current_ids(room_id, [(event_type, "")])
        eid = ids.get((event_type, ""))
        ev = (await self.stores.events.get_many([eid])).get(eid) if eid else None
        content = ev.pdu.get("content") if ev else None
        return content if isinstance(content, dict) else {}

    async def known(self, room_id: str) -> bool:
        """Whether this server holds the room's state."""
        return bool(await self.stores.state.current_ids(room_id, [("m.room.create", "")]))

    async def summary(self, room_id: str) -> dict[str, Any] | None:
        """The room's hierarchy chunk (without children_state), None when unknown here."""
        if not await self.known(room_id):
            return None
        entry = await self.directory.summary(room_id)
        if entry.get("join_rule") in RESTRICTED_RULES:
            allow = (await self._state_content(room_id, "m.room.join_rules")).get("allow")
            entry["allowed_room_ids"] = sorted({a["room_id"] for a in allow or [] if isinstance(a, dict)
                                                and a.get("type") == "m.room_membership"
                                                and isinstance(a.get("room_id"), str)})
        create = await self._state_content(room_id, "m.room.create")
        entry["room_version"] = str(create.get("room_version", "1"))
        encryption = (await self._state_content(room_id, "m.room.encryption")).get("algorithm")
        if isinstance(encryption, str):
            entry["encryption"] = encryption
        return entry

    async def _summary(self, server: str, room_id: str) -> dict[str, Any] | None:
        """The room's chunk, or None when the server may not see it (or it is unknown here)."""
        entry = await self.summary(room_id)
        if entry is None:
            return None
        rule = entry.get("join_rule")
        visible = (rule in OPEN_RULES or rule in RESTRICTED_RULES or entry.get("world_readable")
                   or await self.server_reads.server_in_room(server, room_id))
        return entry if visible else None

    async def children_state(self, room_id: str, suggested_only: bool) -> list[dict[str, Any]]:
        current = await self.stores.state.current_of_type(room_id, "m.space.child")
        evs = await self.stores.events.get_many(list(current.values()))
        out = []
        for (_, state_key), eid in current.items():
            ev = evs.get(eid)
            content = ev.pdu.get("content") if ev else None
            # A child event without a `via` list is a removed child.
            if ev is None or not isinstance(content, dict) or not isinstance(content.get("via"), list) \
                    or not content["via"]:
                continue
            if suggested_only and content.get("suggested") is not True:
                continue
            out.append({"type": "m.space.child", "state_key": state_key, "content": content,
                        "sender": ev.sender, "origin_server_ts": ev.origin_server_ts})
        out.sort(key=_child_order)
        return out[:MAX_CHILDREN]

    async def for_server(self, server: str, room_id: str, suggested_only: bool) -> dict[str, Any]:
        room = await self._summary(server, room_id)
        if room is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown room or not accessible")
        room["children_state"] = await self.children_state(room_id, suggested_only)
        children, inaccessible = [], []
        for child in room["children_state"]:
            child_id = child["state_key"]
            if not await self.known(child_id):
                continue  # not known here: the requesting server asks the child's own servers
            summary = await self._summary(server, child_id)
            if summary is None:
                inaccessible.append(child_id)
            else:
                children.append(summary)
        return {"room": room, "children": children, "inaccessible_children": inaccessible}
