"""What other servers may read of a room (server-server API: /event, /state_ids, /state,
/event_auth, /get_missing_events, /backfill), judged per event by server history visibility:
`world_readable` and `shared` history is theirs to read, `invited`/`joined` history only when
one of their users was invited/joined in the state at the event (protocol/visibility.py)."""

from __future__ import annotations

from typing import Any

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.events import event_refs
from homeserver.protocol.visibility import visible_to_server
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores

HV_KEY = ("m.room.history_visibility", "")
MAX_AUTH_CHAIN = 10_000


def _server_of(user_id: str) -> str:
    return user_id.split(":", 1)[1] if ":" in user_id else ""


class ServerReads:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    async def _state_after(self, ev: StoredEvent) -> dict[tuple[str, str], str]:
        return dict(await self.stores.state.get_state(ev.state_group)) if not ev.outlier else {}

    async def server_in_room(self, server: str, room_id: str) -> bool:
        current = await self.stores.state.current_of_type(room_id, "m.room.member")
        evs = await self.stores.events.get_many(current.values())
        return any(_server_of(k[1]) == server and e.pdu.get("content", {}).get("membership") == "join"
                   for k, eid in current.items() if (e := evs.get(eid)) is not None)

    async def require_in_room(self, server: str, room_id: str) -> None:
        if not await self.server_in_room(server, room_id):
            raise MatrixError(403, "M_FORBIDDEN", f"{server} is not in {room_id}")

    async def visible(self, server: str, evs: list[StoredEvent]) -> list[StoredEvent]:
        out = []
        for ev in evs:
            if ev.outlier or ev.rejected:
                continue
            state = await self._state_after(ev)
            hv_ev = await self.stores.events.get(state[HV_KEY]) if HV_KEY in state else None
            hv = hv_ev.pdu.get("content", {}).get("history_visibility") if hv_ev else None
            member_ids = [eid for (t, sk), eid in state.items() if t == "m.room.member" and _server_of(sk) == server]
            members = await self.stores.events.get_many(member_ids)
            memberships = [m.pdu.get("content", {}).get("membership") for m in members.values()]
            if visible_to_server(hv, memberships):
                out.append(ev)
        return out

    async def event(self, server: str, event_id: str) -> StoredEvent:
        ev = await self.stores.events.get(event_id)
        if ev is None or not await self.server_in_room(server, ev.room_id) or not await self.visible(server, [ev]):
            raise MatrixError(404, "M_NOT_FOUND", "Event not found")
        return ev

    async def _timeline_event(self, server: str, room_id: str, event_id: str) -> StoredEvent:
        await self.require_in_room(server, room_id)
        ev = await self.stores.events.get(event_id)
        if ev is None or ev.room_id != room_id or ev.outlier or ev.rejected:
            raise MatrixError(404, "M_NOT_FOUND", "Event not found in this room")
        return ev

    async def state_ids(self, server: str, room_id: str, event_id: str) -> tuple[list[str], list[str]]:
        """The state before the event and its auth chain (as /state_ids and /state answer)."""
        ev = await self._timeline_event(server, room_id, event_id)
        state = dict(await self.stores.state.get_state(ev.state_before)) if ev.state_before is not None else {}
        ids = list(state.values())
        return ids, sorted(await self.auth_chain(ids))

    async def auth_chain(self, event_ids: list[str]) -> set[str]:
        """Every event reachable through auth_events (the starting events not included)."""
        seen: set[str] = set()
        frontier = set(event_ids)
        while frontier and len(seen) < MAX_AUTH_CHAIN:
            got = await self.stores.events.get_many(frontier)
            nxt: set[str] = set()
            for ev in got.values():
                for a in event_refs(ev.pdu.get("auth_events")):
                    if a not in seen:
                        seen.add(a)
                        nxt.add(a)
            frontier = nxt
        return seen

    async def event_auth(self, server: str, room_id: str, event_id: str) -> list[str]:
        ev = await self._timeline_event(server, room_id, event_id)
        return sorted(await self.auth_chain([ev.event_id]))

    async def pdus(self, event_ids: list[str]) -> list[dict[str, Any]]:
        got = await self.stores.events.get_many(event_ids)
        return [self.as_pdu(got[e]) for e in event_ids if e in got]

    @staticmethod
    def as_pdu(ev: StoredEvent) -> dict[str, Any]:
        pdu = {k: v for k, v in ev.pdu.items() if k != "unsigned"}
        return pdu

    async def missing_events(self, server: str, room_id: str, earliest: list[str], latest: list[str],
                             limit: int, min_depth: int) -> list[StoredEvent]:
        """Walk back from `latest` through prev_events, stopping at `earliest` (oldest first)."""
        await self.require_in_room(server, room_id)
        seen = set(earliest) | set(latest)
        frontier = list(latest)
        found: list[StoredEvent] = []
        while frontier and len(found) < limit:
            got = await self.stores.events.get_many(frontier)
            nxt = []
            for eid in frontier:
                ev = got.get(eid)
                if ev is None or ev.room_id != room_id:
                    continue
                for p in event_refs(ev.pdu.get("prev_events")):
                    if p not in seen:
                        seen.add(p)
                        nxt.append(p)
            prevs = await self.stores.events.get_many(nxt)
            for p in nxt:
                ev = prevs.get(p)
                if ev is not None and ev.room_id == room_id and ev.depth >= min_depth and len(found) < limit:
                    found.append(ev)
            frontier = [p for p in nxt if p in prevs]
        found = await self.visible(server, found)
        return sorted(found, key=lambda e: (e.depth, e.stream_ordering))

    async def backfill(self, server: str, room_id: str, from_ids: list[str], limit: int) -> list[StoredEvent]:
        """History before (and including) `from_ids`, newest first, breadth-first by prev_events."""
        await self.require_in_room(server, room_id)
        seen: set[str] = set()
        queue = list(from_ids)
        out: list[StoredEvent] = []
        while queue and len(out) < limit:
            got = await self.stores.events.get_many(queue)
            nxt: list[str] = []
            for eid in queue:
                ev = got.get(eid)
                if eid in seen or ev is None or ev.room_id != room_id:
                    continue
                seen.add(eid)
                out.append(ev)
                nxt.extend(p for p in event_refs(ev.pdu.get("prev_events")) if p not in seen)
            queue = nxt
        return await self.visible(server, out[:limit])
