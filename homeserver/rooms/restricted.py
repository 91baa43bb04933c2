"""Restricted joins (join rules `restricted` and `knock_restricted`, client-server API §Restricted
rooms): a user who is joined to one of the rooms in the join rule's `allow` list may join without
an invite. The join event names a local member with the power to invite in
`join_authorised_via_users_server`, which the authorization rules then check."""

from __future__ import annotations

from typing import Any

from homeserver.protocol.power_levels import named_level, user_power_level
from homeserver.protocol.room_versions import RoomVersion
from homeserver.storage.stores import Stores


async def restricted_join_authoriser(
    stores: Stores, server_name: str, rv: RoomVersion, room_id: str, user_id: str,
) -> str | None:
    """A local member who can vouch for `user_id` joining `room_id`, or None (no restricted join
    rule, no allow condition met, or nobody here with invite power)."""
    keys = [("m.room.join_rules", ""), ("m.room.power_levels", ""), ("m.room.create", "")]
    ids = await stores.state.current_ids(room_id, keys)
    evs = await stores.events.get_many(ids.values())

    def content(t: str) -> dict[str, Any] | None:
        ev = evs.get(ids.get((t, ""), ""))
        c = ev.pdu.get("content") if ev else None
        return c if isinstance(c, dict) else None

    rules = content("m.room.join_rules") or {}
    if rules.get("join_rule") not in ("restricted", "knock_restricted"):
        return None
    allow = rules.get("allow")
    allowed = False
    for cond in allow if isinstance(allow, list) else []:
        if isinstance(cond, dict) and cond.get("type") == "m.room_membership" \
                and isinstance(cond.get("room_id"), str):
            m = await stores.state.membership(cond["room_id"], user_id)
            if m is not None and m[0] == "join":
                allowed = True
                break
    create_ev = evs.get(ids.get(("m.room.create", ""), ""))
    if not allowed or create_ev is None:
        return None
    pl = content("m.room.power_levels")
    create = dict(create_ev.pdu, event_id=create_ev.event_id)
    needed = named_level(pl, "invite")
    for member in sorted(await stores.state.members(room_id, ("join",))):
        if member.endswith(":" + server_name) and user_power_level(rv, create, pl, member) >= needed:
            return member
    return None
