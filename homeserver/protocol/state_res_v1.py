"""State resolution v1, for room version 1 only (rooms/v1.md §State resolution).

Known to reset state in some cases (the reason for v2); needed only to read old rooms. Parley's
own rooms have linear histories, so it decides only events that peers send in v1 rooms.

The resolution R of several state maps: start from the entries they agree on; then resolve the
conflicts of m.room.power_levels, then m.room.join_rules, then m.room.member (each key on its
own): order the candidates by ascending depth, then descending sha1(event_id); take the first,
then each next one while the auth rules allow it in R (stop at the first refused). Every other
conflicted key gets the candidate of highest depth, then lowest sha1(event_id), that the auth
rules allow in R (the last of the order if none is allowed, as Synapse does).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from homeserver.protocol.auth_rules import check_auth
from homeserver.protocol.errors import AuthError
from homeserver.protocol.room_versions import RoomVersion

StateKey = tuple[str, str]
EventMap = Mapping[str, dict[str, Any]]
_AUTH_TYPES = ("m.room.power_levels", "m.room.join_rules", "m.room.member")


def _order(event_ids: set[str], event_map: EventMap) -> list[str]:
    """Highest depth first, then lowest sha1(event_id) (utf-8; peers sent non-ASCII IDs)."""
    def key(eid: str) -> tuple[int, str]:
        depth = event_map[eid].get("depth")
        d = depth if isinstance(depth, int) and not isinstance(depth, bool) else 0
        return (-d, hashlib.sha1(eid.encode("utf-8", "surrogatepass")).hexdigest())
    return sorted(event_ids, key=key)


def _allowed(rv: RoomVersion, eid: str, state: Mapping[StateKey, str], event_map: EventMap) -> bool:
    auth_state = {k: dict(event_map[v], event_id=v) for k, v in state.items() if v in event_map}
    try:
        check_auth(rv, dict(event_map[eid], event_id=eid), auth_state)
    except AuthError:
        return False
    return True


def resolve_state_v1(rv: RoomVersion, state_sets: Sequence[Mapping[StateKey, str]],
                     event_map: EventMap) -> dict[StateKey, str]:
    """Resolve `state_sets` (maps `(type, state_key) -> event ID`) with the room v1 algorithm
    (rooms/v1.md §State resolution). Candidates missing from `event_map` are ignored."""
    if not state_sets:
        return {}
    resolved: dict[StateKey, str] = {}
    conflicts: dict[StateKey, set[str]] = {}
    for k in set().union(*(s.keys() for s in state_sets)):
        values = {s.get(k) for s in state_sets}
        if len(values) == 1 and None not in values:
            resolved[k] = values.pop()  # type: ignore[assignment]
        else:
            known = {v for v in values if v is not None and v in event_map}
            if known:
                conflicts[k] = known
    for etype in _AUTH_TYPES:
        for k in sorted(k for k in conflicts if k[0] == etype):
            ordered = list(reversed(_order(conflicts[k], event_map)))  # ascending depth
            resolved[k] = ordered[0]
            for eid in ordered[1:]:
                if not _allowed(rv, eid, resolved, event_map):
                    break
                resolved[k] = eid
    for k in sorted(k for k in conflicts if k[0] not in _AUTH_TYPES):
        ordered = _order(conflicts[k], event_map)
        resolved[k] = next((e for e in ordered if _allowed(rv, e, resolved, event_map)), ordered[-1])
    return resolved
