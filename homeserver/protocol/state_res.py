"""State resolution v2 (rooms v2-v11; rooms/fragments/v2-state-res.md) and v2.1 (room v12;
rooms/v12.md §State resolution), as pure functions over event dicts. (Room v1: state_res_v1.py.)

Callers hand over every event the algorithm may touch (the events of the state sets and their
full auth chains) in `event_map`, keyed by event ID. Events missing from the map are treated as
unknown and skipped, never fetched.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from homeserver.protocol.auth_rules import auth_types_for_event, check_auth
from homeserver.protocol.errors import AuthError
from homeserver.protocol.events import event_refs
from homeserver.protocol.power_levels import user_power_level
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.state_res_v1 import resolve_state_v1

StateKey = tuple[str, str]
EventMap = Mapping[str, dict[str, Any]]


def _auth_ids(event: Mapping[str, Any]) -> list[str]:
    return event_refs(event.get("auth_events"))  # plain IDs, or v1/v2 [id, hashes] pairs


def _key(event: Mapping[str, Any]) -> StateKey:
    return (str(event.get("type")), str(event.get("state_key")))


def auth_chain(event_ids: Iterable[str], event_map: EventMap) -> set[str]:
    """All events reachable through `auth_events` from `event_ids`, the starting events excluded
    unless reachable from another (v2-state-res.md §Auth chain). Unknown IDs are kept in the
    result but not walked."""
    seen: set[str] = set()
    stack = [a for e in event_ids if e in event_map for a in _auth_ids(event_map[e])]
    while stack:
        eid = stack.pop()
        if eid in seen:
            continue
        seen.add(eid)
        if eid in event_map:
            stack.extend(_auth_ids(event_map[eid]))
    return seen


def is_power_event(event: Mapping[str, Any]) -> bool:
    """m.room.power_levels, m.room.join_rules, or a kick/ban (v2-state-res.md §Power events)."""
    if "state_key" not in event:
        return False
    etype = event.get("type")
    if etype in ("m.room.power_levels", "m.room.join_rules"):
        return True
    if etype == "m.room.member":
        content = event.get("content")
        membership = content.get("membership") if isinstance(content, dict) else None
        return membership in ("leave", "ban") and event.get("sender") != event.get("state_key")
    return False


def _create_for(rv: RoomVersion, event: Mapping[str, Any], event_map: EventMap,
                auth: Mapping[StateKey, dict[str, Any]]) -> dict[str, Any] | None:
    if event.get("type") == "m.room.create":
        return dict(event)
    if rv.room_id_from_create:
        room_id = event.get("room_id")
        if isinstance(room_id, str) and room_id.startswith("!"):
            return event_map.get("$" + room_id[1:])
        return None
    return auth.get(("m.room.create", ""))


def _sender_power(rv: RoomVersion, eid: str, event_map: EventMap) -> int | float:
    """The sender's level from the power levels among the event's own auth events (with the
    no-power-levels creator default)."""
    event = event_map[eid]
    auth = {_key(event_map[a]): event_map[a] for a in _auth_ids(event) if a in event_map}
    create = _create_for(rv, event, event_map, auth)
    if create is None:
        return 0
    pl = auth.get(("m.room.power_levels", ""))
    pl_content = pl.get("content") if pl is not None else None
    return user_power_level(rv, create, pl_content if isinstance(pl_content, dict) else None,
                            str(event.get("sender")))


def _ts(event: Mapping[str, Any]) -> int:
    ts = event.get("origin_server_ts")
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else 0


def reverse_topological_power_order(rv: RoomVersion, event_ids: AbstractSet[str],
                                    event_map: EventMap) -> list[str]:
    """Kahn's algorithm over the auth DAG restricted to `event_ids`, earliest first, taking the
    smallest available event by (higher sender power, older timestamp, smaller event ID)
    (v2-state-res.md §Reverse topological power ordering)."""
    ids = {e for e in event_ids if e in event_map}
    parents = {e: {a for a in _auth_ids(event_map[e]) if a in ids} for e in ids}
    children: dict[str, set[str]] = {e: set() for e in ids}
    for e, ps in parents.items():
        for p in ps:
            children[p].add(e)

    def order_key(e: str) -> tuple[float, int, str]:
        return (-_sender_power(rv, e, event_map), _ts(event_map[e]), e)

    waiting = {e: len(ps) for e, ps in parents.items()}
    heap = [(order_key(e), e) for e, n in waiting.items() if n == 0]
    heapq.heapify(heap)
    out: list[str] = []
    while heap:
        _, e = heapq.heappop(heap)
        out.append(e)
        for c in children[e]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(heap, (order_key(c), c))
    return out


def _pl_parent(event: Mapping[str, Any], event_map: EventMap) -> str | None:
    for a in _auth_ids(event):
        ae = event_map.get(a)
        if ae is not None and _key(ae) == ("m.room.power_levels", ""):
            return a
    return None


def mainline_order(event_ids: Iterable[str], power_levels_id: str | None,
                   event_map: EventMap) -> list[str]:
    """Sort by mainline position relative to `power_levels_id` (larger position first, then
    older timestamp, then smaller event ID; v2-state-res.md §Mainline ordering)."""
    mainline: dict[str, int] = {}
    cur, i = power_levels_id, 0
    while cur is not None and cur in event_map and cur not in mainline:
        mainline[cur] = i
        cur, i = _pl_parent(event_map[cur], event_map), i + 1

    def position(eid: str) -> float:
        seen: set[str] = set()
        cur = _pl_parent(event_map[eid], event_map)
        while cur is not None and cur not in seen:
            if cur in mainline:
                return mainline[cur]
            seen.add(cur)
            nxt = event_map.get(cur)
            cur = _pl_parent(nxt, event_map) if nxt is not None else None
        return math.inf

    known = [e for e in event_ids if e in event_map]
    return sorted(known, key=lambda e: (-position(e), _ts(event_map[e]), e))


def iterative_auth_checks(rv: RoomVersion, initial: Mapping[StateKey, str], ordered: Sequence[str],
                          event_map: EventMap, rejected: AbstractSet[str] = frozenset()
                          ) -> dict[StateKey, str]:
    """Apply each event that passes the auth rules against the state built so far, falling back
    to its own non-rejected auth events for missing keys (v2-state-res.md §Iterative auth checks)."""
    state = dict(initial)
    for eid in ordered:
        event = event_map.get(eid)
        if event is None or "state_key" not in event:
            continue
        auth: dict[StateKey, dict[str, Any]] = {}
        for a in _auth_ids(event):
            ae = event_map.get(a)
            if ae is not None and a not in rejected:
                auth[_key(ae)] = {**ae, "event_id": a}
        for k in auth_types_for_event(rv, event):
            sid = state.get(k)
            if sid is not None and sid in event_map:
                auth[k] = {**event_map[sid], "event_id": sid}
        if rv.room_id_from_create:
            create = _create_for(rv, event, event_map, auth)
            if create is not None and create.get("type") == "m.room.create":
                room_id = event.get("room_id")
                create = {**create, "event_id": "$" + room_id[1:]} if isinstance(room_id, str) \
                    else create
        else:
            create = auth.get(("m.room.create", ""))
        try:
            check_auth(rv, {**event, "event_id": eid}, auth, create_event=create)
        except AuthError:
            continue
        state[_key(event)] = eid
    return state


def resolve_state(rv: RoomVersion, state_sets: Sequence[Mapping[StateKey, str]],
                  event_map: EventMap, rejected: AbstractSet[str] = frozenset()
                  ) -> dict[StateKey, str]:
    """Resolve `state_sets` (maps `(type, state_key) -> event ID`) into one state map with state
    resolution v2, or v2.1 for room v12 (rooms/v12.md §State resolution): the full conflicted
    set adds the conflicted state subgraph and the power-event pass starts from an empty map.
    `rejected` names events rejected against their auth chains (never used as auth fallbacks).
    Room v1 uses state resolution v1 instead (state_res_v1.py)."""
    if rv.state_res == "v1":
        return resolve_state_v1(rv, state_sets, event_map)
    if not state_sets:
        return {}
    unconflicted: dict[StateKey, str] = {}
    conflicted: set[str] = set()
    keys = set().union(*(s.keys() for s in state_sets))
    for k in keys:
        values = {s.get(k) for s in state_sets}
        present = {v for v in values if v is not None}
        if len(values) == 1 and present:
            unconflicted[k] = present.pop()
        else:
            conflicted.update(present)
    if not conflicted:
        return unconflicted

    chains = [auth_chain(s.values(), event_map) for s in state_sets]
    everywhere = chains[0].intersection(*chains[1:]) if chains else set()
    full = conflicted | (set[str]().union(*chains) - everywhere)
    if rv.room_id_from_create:
        full |= conflicted_state_subgraph(conflicted, event_map)
    full = {e for e in full if e in event_map}

    power = {e for e in full if is_power_event(event_map[e])}
    for p in list(power):
        power |= auth_chain([p], event_map) & full
    power_sorted = reverse_topological_power_order(rv, power, event_map)
    start: Mapping[StateKey, str] = {} if rv.room_id_from_create else unconflicted
    partial = iterative_auth_checks(rv, start, power_sorted, event_map, rejected)

    rest = mainline_order(full - power, partial.get(("m.room.power_levels", "")), event_map)
    resolved = iterative_auth_checks(rv, partial, rest, event_map, rejected)
    resolved.update(unconflicted)
    return resolved


def conflicted_state_subgraph(conflicted: AbstractSet[str], event_map: EventMap) -> set[str]:
    """Every event on an `auth_events` path between two conflicted events, endpoints included
    (rooms/v12.md §Definitions, "Conflicted state subgraph")."""
    reaches: dict[str, bool] = {}

    def reaches_conflicted(eid: str) -> bool:
        # Iterative DFS: does some conflicted event lie strictly below `eid`?
        if eid in reaches:
            return reaches[eid]
        stack = [(eid, iter(_auth_ids(event_map.get(eid, {}))))]
        on_path = {eid}
        result = {eid: False}
        while stack:
            node, it = stack[-1]
            child = next(it, None)
            if child is None:
                stack.pop()
                on_path.discard(node)
                reaches[node] = result[node]
                if stack:
                    parent = stack[-1][0]
                    result[parent] = result[parent] or result[node]
                continue
            if child in conflicted:
                result[node] = True
            if child in reaches:
                result[node] = result[node] or reaches[child]
            elif child not in on_path and child in event_map:
                result[child] = False
                on_path.add(child)
                stack.append((child, iter(_auth_ids(event_map[child]))))
        return reaches[eid]

    below = auth_chain(conflicted, event_map)
    out = set(conflicted)
    for e in below:
        if e in event_map and (e in conflicted or reaches_conflicted(e)):
            out.add(e)
    return out
