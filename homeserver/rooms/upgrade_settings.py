"""A user's own settings follow them into an upgraded room (client-server API §Room Upgrades:
"When a user joins the new room, the server should automatically transfer/replicate some of the
user's personalized settings such as notifications, tags, etc.").

Copied: the per-room push rule (and override/underride rules matching the old room ID), the room's
tags, and the `m.direct` entries naming the old room. Nothing is overwritten in the new room.
"""

from __future__ import annotations

import copy
from typing import Any

from homeserver.accounts.account_data import AccountDataService
from homeserver.protocol.errors import MatrixError
from homeserver.push.service import PushService
from homeserver.storage.stores import Stores


def _retarget_conditions(conditions: Any, old_room: str, new_room: str) -> list[Any] | None:
    """The conditions with `room_id == old_room` pointed at the new room, or None if none did."""
    if not isinstance(conditions, list):
        return None
    out, hit = [], False
    for cond in conditions:
        if isinstance(cond, dict) and cond.get("kind") == "event_match" and cond.get("key") == "room_id" \
                and cond.get("pattern") == old_room:
            cond = dict(cond, pattern=new_room)
            hit = True
        out.append(cond)
    return out if hit else None


class UpgradeSettings:
    def __init__(self, stores: Stores, push: PushService, account_data: AccountDataService) -> None:
        self.stores = stores
        self.push = push
        self.account_data = account_data

    async def predecessor_of(self, room_id: str) -> str | None:
        ids = await self.stores.state.current_ids(room_id, [("m.room.create", "")])
        create_id = ids.get(("m.room.create", ""))
        create = await self.stores.events.get(create_id) if create_id else None
        pred = create.pdu.get("content", {}).get("predecessor") if create else None
        room = pred.get("room_id") if isinstance(pred, dict) else None
        return room if isinstance(room, str) else None

    async def on_join(self, user_id: str, room_id: str) -> None:
        old_room = await self.predecessor_of(room_id)
        if old_room is not None:
            await self.transfer(user_id, old_room, room_id)

    async def transfer(self, user_id: str, old_room: str, new_room: str) -> None:
        await self._push_rules(user_id, old_room, new_room)
        tags = await self.account_data.tags(user_id, old_room)
        if tags and not await self.account_data.tags(user_id, new_room):
            await self.account_data.put(user_id, new_room, "m.tag", {"tags": copy.deepcopy(tags)})
        direct = await self.stores.userdata.get_account_data(user_id, "", "m.direct")
        if isinstance(direct, dict):
            changed = False
            updated: dict[str, Any] = {}
            for other, rooms in direct.items():
                if isinstance(rooms, list) and old_room in rooms and new_room not in rooms:
                    rooms = [*rooms, new_room]
                    changed = True
                updated[other] = rooms
            if changed:
                await self.account_data.put(user_id, "", "m.direct", updated)

    async def _push_rules(self, user_id: str, old_room: str, new_room: str) -> None:
        ruleset = await self.push.ruleset(user_id)
        existing = {(kind, r.get("rule_id")) for kind, rules in ruleset.items() for r in rules}
        for kind, rules in ruleset.items():
            for rule in rules:
                rule_id = rule.get("rule_id")
                if not isinstance(rule_id, str) or rule_id.startswith("."):
                    continue
                body: dict[str, Any] = {"actions": rule.get("actions", [])}
                new_id = None
                if kind == "room" and rule_id == old_room:
                    new_id = new_room
                elif kind in ("override", "underride"):
                    conds = _retarget_conditions(rule.get("conditions"), old_room, new_room)
                    if conds is not None:
                        new_id = f"{rule_id}-{new_room}"
                        body["conditions"] = conds
                if new_id is None or (kind, new_id) in existing:
                    continue
                try:
                    await self.push.put_rule(user_id, kind, new_id, body, None, None)
                except MatrixError:
                    continue
