"""Checking a room's state and auth chain as a resident server hands them over (server-server API
"Joining Rooms": the `send_join` response; the same for `/state`), once their signatures and
hashes have been checked.

Each event is authorized against its own auth events (checks on receipt of a PDU, step 4/5),
auth events first, so that an event citing a rejected or missing auth event is rejected in turn.
Pure: the events are handed in, nothing is fetched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.protocol.auth_rules import auth_types_for_event, check_auth, check_auth_events_structure
from homeserver.protocol.errors import AuthError
from homeserver.protocol.events import event_refs
from homeserver.protocol.room_versions import RoomVersion

StateKey = tuple[str, str]


def auth_order(events: Mapping[str, dict[str, Any]]) -> list[str]:
    """Event IDs with every event after the auth events it cites (those we hold), ties by depth;
    a cycle (impossible for honest servers) is broken by depth order."""
    order: list[str] = []
    placed: set[str] = set()
    visiting: set[str] = set()

    def depth_of(eid: str) -> tuple[int, str]:
        d = events[eid].get("depth")
        return (d if isinstance(d, int) else 0, eid)

    for start in sorted(events, key=depth_of):
        stack: list[tuple[str, bool]] = [(start, False)]
        while stack:
            eid, expanded = stack.pop()
            if eid in placed:
                continue
            if expanded:
                visiting.discard(eid)
                placed.add(eid)
                order.append(eid)
                continue
            if eid in visiting:
                continue
            visiting.add(eid)
            stack.append((eid, True))
            for a in sorted((a for a in event_refs(events[eid].get("auth_events")) if a in events),
                            key=depth_of, reverse=True):
                if a not in placed and a not in visiting:
                    stack.append((a, False))
    return order


def find_create(rv: RoomVersion, room_id: str, events: Mapping[str, dict[str, Any]]) -> str | None:
    """The ID of the room's create event among `events` (one whose room it defines)."""
    for eid, pdu in events.items():
        if pdu.get("type") != "m.room.create" or pdu.get("state_key") != "":
            continue
        if (rv.room_id_from_create and "!" + eid[1:] == room_id) or pdu.get("room_id") == room_id:
            return eid
    return None


def check_auth_chain(rv: RoomVersion, room_id: str,
                     events: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """Authorize every event against its own auth events; returns the rejected ones with the
    reason (an event is also rejected when an auth event it cites is missing or rejected)."""
    create_id = find_create(rv, room_id, events)
    create = {**events[create_id], "event_id": create_id} if create_id is not None else None
    rejected: dict[str, str] = {}
    for eid in auth_order(events):
        pdu = events[eid]
        if pdu.get("room_id") != room_id and eid != create_id:
            rejected[eid] = "an event of another room"
            continue
        ids = event_refs(pdu.get("auth_events"))
        missing = [a for a in ids if a not in events]
        if missing:
            rejected[eid] = f"auth event {missing[0]} missing"
            continue
        auth = [{**events[a], "event_id": a, **({"rejected": True} if a in rejected else {})} for a in ids]
        try:
            if pdu.get("type") != "m.room.create":
                check_auth_events_structure(rv, pdu, auth)
            state = {(str(a.get("type")), str(a.get("state_key", ""))): a for a in auth}
            check_auth(rv, {**pdu, "event_id": eid}, state, create_event=create)
        except AuthError as e:
            rejected[eid] = str(e)
    return rejected


def state_map(events: Mapping[str, dict[str, Any]], ids: list[str], rejected: Mapping[str, str]) -> dict[
        StateKey, str]:
    """(type, state_key) -> event ID of the state events among `ids` that were not rejected."""
    out: dict[StateKey, str] = {}
    for eid in ids:
        pdu = events.get(eid)
        if pdu is None or eid in rejected or not isinstance(pdu.get("state_key"), str):
            continue
        out[(str(pdu.get("type")), pdu["state_key"])] = eid
    return out


def auth_state_for(rv: RoomVersion, event: dict[str, Any], state: Mapping[StateKey, str],
                   events: Mapping[str, dict[str, Any]]) -> dict[StateKey, dict[str, Any]]:
    """The auth events an event would cite, picked from `state` (with their IDs)."""
    keys = set(auth_types_for_event(rv, event)) | {("m.room.create", "")}
    return {k: {**events[state[k]], "event_id": state[k]} for k in keys if k in state and state[k] in events}
