"""One way into the event graph for every event, local or received: `persist(event, context)`.

The caller holds the room's lock (`Database.room_lock`) and has decided, in the context, what the
state before the event is and whether the event is an outlier, rejected or soft-failed:

- a timeline event gets the next stream position, a state group for the state after it (the
  state before plus itself, unless rejected), moves the forward extremities and updates the
  room's current state: the state after the one extremity, or the resolution (state resolution
  v2, `protocol/state_res.py`) of the states after each extremity where branches meet;
- an outlier (an auth-chain or state event we hold without its place in the timeline) gets a
  negative position (never new to a sync), no state and no effect on the room;
- a backfilled event (history from before what we held) is a timeline event at a negative
  position, placed in the past by its depth, that changes neither extremities nor current state;
- a rejected event is stored (so it is never fetched again) but changes no state; a soft-failed
  one has its state after it (descendants may cite it) but is no extremity and never shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from homeserver.protocol.events import event_refs
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.state_res import resolve_state
from homeserver.search.indexer import index_event
from homeserver.storage.database import Conn
from homeserver.storage.events import UNKNOWN_STATE, StoredEvent
from homeserver.storage.stores import Stores

StateKey = tuple[str, str]
StateMap = dict[StateKey, str]


@dataclass
class EventContext:
    """What persisting an event needs besides the PDU."""

    #: State group of the state before the event (None: the empty state, or `state_snapshot`).
    state_before: int | None
    #: The state before as a map, when no group holds it yet (a resolved merge of branches).
    state_snapshot: StateMap | None = None
    outlier: bool = False
    rejected: str | None = None
    soft_failed: bool = False
    #: History fetched from the past (backfill): part of the timeline, placed by its depth,
    #: with a negative position (never new to a sync); no effect on extremities or current state.
    backfilled: bool = False
    #: Built on the room's current state with every extremity as a prev event (local sends):
    #: the new current state is the old one plus this event, no resolution needed.
    extends_current: bool = False

    @classmethod
    def outlier_event(cls, rejected: str | None = None) -> EventContext:
        return cls(state_before=None, outlier=True, rejected=rejected)


@dataclass
class Relation:
    rel_type: str | None
    relates_to: str | None
    thread_root: str | None
    txn_device: str | None = None
    txn_id: str | None = None


async def write_event(
    stores: Stores, c: Conn, rv: RoomVersion, room_id: str, pdu: dict[str, Any], event_id: str,
    ctx: EventContext, pos: int, rel: Relation,
) -> tuple[StoredEvent, int | None, StateMap]:
    """Insert the event inside the open transaction; returns (event, its parent group, delta)."""
    state_key = pdu.get("state_key")
    applies = state_key is not None and not ctx.outlier and ctx.rejected is None
    delta: StateMap = {(pdu["type"], state_key): event_id} if applies and state_key is not None else {}
    before = ctx.state_before
    if ctx.state_snapshot is not None:
        before = await stores.state.new_group(c, room_id, None, ctx.state_snapshot)
    if ctx.outlier:
        group = UNKNOWN_STATE
    elif delta or before is None:
        group = await stores.state.new_group(c, room_id, before, delta)
    else:
        group = before
    ev = StoredEvent(
        event_id=event_id, stream_ordering=pos, room_id=room_id, type=pdu["type"],
        state_key=state_key, sender=pdu["sender"], depth=pdu["depth"],
        origin_server_ts=pdu["origin_server_ts"], pdu=pdu, state_group=group,
        redacted_by=None, txn_device=rel.txn_device, txn_id=rel.txn_id,
        state_before=None if ctx.outlier else before, outlier=ctx.outlier,
        rejected=ctx.rejected, soft_failed=ctx.soft_failed,
    )
    prevs = event_refs(pdu.get("prev_events"))
    if not ctx.outlier:
        await stores.events.drop_outlier(c, event_id)  # held as an outlier until now
    await stores.events.insert(c, ev, prevs, rel.rel_type, rel.relates_to, rel.thread_root,
                               moves_extremities=not ctx.backfilled)
    await index_event(stores, c, ev)
    if ev.in_timeline and not ctx.backfilled:
        if ctx.extends_current:
            for key, eid in delta.items():
                await _set_current(stores, c, room_id, key, eid, ev)
        else:
            await update_current_state(stores, c, rv, room_id, ev)
    return ev, before, delta


async def _set_current(stores: Stores, c: Conn, room_id: str, key: StateKey, event_id: str,
                       ev: StoredEvent | None) -> None:
    await stores.state.set_current(c, room_id, key, event_id)
    if key[0] == "m.room.member":
        if ev is None or ev.event_id != event_id:
            ev = await stores.events.get(event_id)
        if ev is not None:
            membership = ev.pdu.get("content", {}).get("membership")
            await stores.state.set_membership(
                c, room_id, key[1], membership if isinstance(membership, str) else "leave",
                event_id, ev.stream_ordering)


async def update_current_state(stores: Stores, c: Conn, rv: RoomVersion, room_id: str,
                               new: StoredEvent) -> None:
    """Recompute the current state from the forward extremities and write the difference
    (keys may change, appear, or disappear)."""
    extremities = await stores.events.forward_extremities(c, room_id)
    states = [await stores.state.get_state(ext.state_group, c) for ext in extremities]
    if not states:
        return
    # The new event is not committed yet: reads outside this transaction cannot see it.
    target = dict(states[0]) if len(states) == 1 else await resolve_states(stores, rv, states, [new])
    old = await stores.state.current_all_in(c, room_id)
    for key in old.keys() - target.keys():
        await stores.state.remove_current(c, room_id, key)
    for key, eid in target.items():
        if old.get(key) != eid:
            await _set_current(stores, c, room_id, key, eid, new)


async def resolve_states(stores: Stores, rv: RoomVersion, states: list[StateMap],
                         known: Sequence[StoredEvent] = ()) -> StateMap:
    """State resolution over stored events: loads the state sets' events and their auth chains
    (`known`: events not readable yet, such as the one being written)."""
    event_map: dict[str, dict[str, Any]] = {ev.event_id: {**ev.pdu, "event_id": ev.event_id} for ev in known}
    rejected: set[str] = {ev.event_id for ev in known if ev.rejected}
    frontier = {eid for s in states for eid in s.values()} | {
        a for ev in known for a in event_refs(ev.pdu.get("auth_events"))}
    frontier -= event_map.keys()
    while frontier:
        got = await stores.events.get_many(frontier)
        frontier = set()
        for eid, ev in got.items():
            event_map[eid] = {**ev.pdu, "event_id": eid}
            if ev.rejected:
                rejected.add(eid)
            for a in event_refs(ev.pdu.get("auth_events")):
                if a not in event_map:
                    frontier.add(a)
        frontier -= event_map.keys()
    return resolve_state(rv, states, event_map, rejected)
