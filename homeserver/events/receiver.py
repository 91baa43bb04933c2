"""Received PDUs, step by step as the server-server API's "Checks performed on receipt of a PDU":

1. check_format              a valid event of the room's version, else dropped
2. check_signatures          signed by every server that must sign it, else dropped
3. check_content_hash        the content hash matches, else the event is redacted and goes on
4. fetch_missing_auth_events unknown auth events are fetched and stored as outliers
5. auth_against_auth_events  passes the rules against its own auth events (and a redaction
                             names no event of another room), else rejected
6. state_before_event        from the prev events we hold (missing ones fetched with
                             get_missing_events), else the sender's /state_ids at the event
7. auth_against_state_before passes the rules against the state before it, else rejected
8. auth_against_current      passes the rules against the room's current state, else soft-failed
and then the same `persist(event, context)` local events take.

The federation client is injected (`EventSource`, `KeySource`), so tests pair the receiver with an
in-memory peer that signs with its own key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from homeserver.events.persist import EventContext, resolve_states
from homeserver.events.persister import EventPersister
from homeserver.protocol.auth_rules import auth_types_for_event, check_auth, check_auth_events_structure
from homeserver.protocol.errors import AuthError, MatrixError
from homeserver.protocol.events import (
    check_event_size_and_format,
    compute_event_id,
    event_refs,
    verify_content_hash,
)
from homeserver.protocol.pdu_signatures import required_signers, verify_pdu_signatures
from homeserver.protocol.redaction import redact
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores

log = logging.getLogger("parley.receiver")

StateMap = dict[tuple[str, str], str]
#: How many missing prev events one received event may pull in with get_missing_events.
MISSING_EVENTS_LIMIT = 20


class KeySource(Protocol):
    async def verify_keys(self, server: str, key_ids: list[str], valid_at_ts: int) -> dict[str, str]:
        """The server's verify keys among `key_ids` valid at `valid_at_ts`: key ID -> unpadded
        base64 ed25519 key (keys that cannot be had are left out)."""
        ...


class EventSource(Protocol):
    async def get_event(self, origin: str, event_id: str) -> dict[str, Any] | None: ...

    async def get_missing_events(self, origin: str, room_id: str, earliest: list[str],
                                 latest: list[str], limit: int) -> list[dict[str, Any]]: ...

    async def get_state_ids(self, origin: str, room_id: str, event_id: str) -> list[str]:
        """The state before `event_id` as the origin sees it (the `pdu_ids` of /state_ids)."""
        ...


@dataclass
class Received:
    outcome: str  # "persisted", "soft_failed", "rejected", "duplicate", "dropped"
    event_id: str | None = None
    reason: str | None = None
    event: StoredEvent | None = None


class Dropped(Exception):
    """The PDU is not stored at all (malformed, badly signed, impossible to place)."""

    event_id: str | None = None


class EventReceiver:
    def __init__(self, stores: Stores, persister: EventPersister, keys: KeySource,
                 source: EventSource) -> None:
        self.stores = stores
        self.persister = persister
        self.keys = keys
        self.source = source

    async def receive(self, origin: str, pdu: Any, depth: int = 0, backfilled: bool = False) -> Received:
        """Handle one PDU of a transaction (or of a backfill response: `backfilled`); never
        raises for a bad PDU (the rest go on)."""
        try:
            return await self._receive(origin, pdu, depth, backfilled)
        except Dropped as e:
            return Received("dropped", e.event_id, reason=str(e))

    async def _receive(self, origin: str, pdu: Any, depth: int, backfilled: bool) -> Received:
        rv, room_id = await self.check_format(pdu)
        event_id = compute_event_id(pdu, rv)
        try:
            return await self._checked(origin, pdu, rv, room_id, event_id, depth, backfilled)
        except Dropped as e:
            e.event_id = event_id
            raise

    async def _checked(self, origin: str, pdu: dict[str, Any], rv: RoomVersion, room_id: str,
                       event_id: str, depth: int, backfilled: bool) -> Received:
        known = await self.stores.events.get(event_id)
        if known is not None and not known.outlier:
            return Received("duplicate", event_id, event=known)  # an outlier is taken in anew
        await self.check_signatures(pdu, rv)
        pdu = self.check_content_hash(pdu, rv)
        await self.fetch_missing_auth_events(origin, rv, room_id, pdu, depth)
        auth_error = await self.auth_against_auth_events(rv, pdu) or await self.check_redaction_target(pdu)
        if depth < 3 and not backfilled:
            await self.fetch_missing_prev_events(origin, room_id, pdu, depth)
        async with self.stores.db.room_lock(room_id):
            # Filling a gap may have stored this very event meanwhile (it can be among the
            # missing events the origin sends back).
            again = await self.stores.events.get(event_id)
            if again is not None and not again.outlier:
                return Received("duplicate", event_id, event=again)
            ctx = await self.state_before_event(origin, rv, room_id, pdu, event_id)
            if auth_error is None:
                auth_error = await self.auth_against_state_before(rv, pdu, ctx)
            ctx.backfilled = backfilled
            if auth_error is not None:
                ctx.rejected = auth_error
            elif not backfilled:  # history is not judged by today's state
                soft = await self.auth_against_current(rv, room_id, pdu)
                ctx.soft_failed = soft is not None
            ev = await self.persister.persist(rv, room_id, pdu, event_id, ctx)
        outcome = "rejected" if ev.rejected else "soft_failed" if ev.soft_failed else "persisted"
        if outcome != "persisted":
            log.info("event %s from %s %s: %s", event_id, origin, outcome, ev.rejected or "current state")
        return Received(outcome, event_id, ev.rejected, ev)

    # ------------------------------------------------------------------ 1-3

    async def check_format(self, pdu: Any) -> tuple[RoomVersion, str]:
        if not isinstance(pdu, dict) or not isinstance(pdu.get("room_id"), str):
            raise Dropped("not an event of a room")
        room_id = pdu["room_id"]
        version = await self.stores.userdata.room_version(room_id)
        rv = KNOWN_ROOM_VERSIONS.get(version or "")
        if rv is None:
            raise Dropped(f"unknown room {room_id}")
        try:
            check_event_size_and_format(pdu, rv)
        except MatrixError as e:
            raise Dropped(e.error) from None
        return rv, room_id

    async def check_signatures(self, pdu: dict[str, Any], rv: RoomVersion) -> None:
        sigs = pdu.get("signatures")
        raw_ts = pdu.get("origin_server_ts")
        # Keys must be valid when the event was sent from room v5 (rooms/v5.md); older rooms
        # accept any key the server ever had, as their history was signed long ago.
        ts = raw_ts if isinstance(raw_ts, int) and rv.enforce_key_validity else 0
        keys = {}
        for server in required_signers(pdu):
            theirs = sigs.get(server) if isinstance(sigs, dict) else None
            kids = [k for k in theirs if isinstance(k, str)] if isinstance(theirs, dict) else []
            keys[server] = await self.keys.verify_keys(server, kids, ts)
        try:
            verify_pdu_signatures(pdu, rv, keys)
        except MatrixError as e:
            raise Dropped(e.error) from None

    @staticmethod
    def check_content_hash(pdu: dict[str, Any], rv: RoomVersion) -> dict[str, Any]:
        if verify_content_hash(pdu):
            return pdu
        log.warning("content hash mismatch for an event from %s: redacted", pdu.get("sender"))
        return redact(pdu, rv)

    # ------------------------------------------------------------------ 4-5

    async def fetch_missing_auth_events(self, origin: str, rv: RoomVersion, room_id: str,
                                        pdu: dict[str, Any], depth: int) -> None:
        ids = event_refs(pdu.get("auth_events"))
        have = await self.stores.events.get_many(ids)
        for eid in ids:
            if eid in have or depth > 20:
                continue
            fetched = await self.source.get_event(origin, eid)
            if fetched is None or not isinstance(fetched, dict):
                continue
            await self._store_outlier(origin, rv, room_id, fetched, eid, depth + 1)

    async def _store_outlier(self, origin: str, rv: RoomVersion, room_id: str, pdu: dict[str, Any],
                             expected_id: str, depth: int) -> None:
        """An auth or state event we need but whose place in the timeline we do not know."""
        try:
            fmt_rv, fmt_room = await self.check_format(pdu)
        except Dropped:
            return
        if fmt_room != room_id or compute_event_id(pdu, rv) != expected_id:
            return
        try:
            await self.check_signatures(pdu, rv)
        except Dropped:
            return
        pdu = self.check_content_hash(pdu, rv)
        await self.fetch_missing_auth_events(origin, rv, room_id, pdu, depth)
        error = await self.auth_against_auth_events(rv, pdu)
        async with self.stores.db.room_lock(room_id):
            if await self.stores.events.get(expected_id) is None:
                await self.persister.persist(rv, room_id, pdu, expected_id, EventContext.outlier_event(error))

    async def auth_against_auth_events(self, rv: RoomVersion, pdu: dict[str, Any]) -> str | None:
        ids = event_refs(pdu.get("auth_events"))
        got = await self.stores.events.get_many(ids)
        if len(got) != len(set(ids)):
            return "auth events unavailable"
        auth = [{**e.pdu, "event_id": e.event_id, **({"rejected": True} if e.rejected else {})}
                for e in got.values()]
        try:
            if pdu.get("type") != "m.room.create":  # the first event cites nothing (a backfilled create)
                check_auth_events_structure(rv, pdu, auth)
            state = {(a["type"], a.get("state_key", "")): a for a in auth}
            check_auth(rv, pdu, state, create_event=await self._create_event(pdu["room_id"]))
        except AuthError as e:
            return f"auth events: {e}"
        return None

    async def check_redaction_target(self, pdu: dict[str, Any]) -> str | None:
        """A redaction of a known event of another room is rejected (never shown)."""
        if pdu.get("type") != "m.room.redaction":
            return None
        content = pdu.get("content")
        target = content.get("redacts") if isinstance(content, dict) else None
        target = target if isinstance(target, str) else pdu.get("redacts")
        if not isinstance(target, str):
            return None
        ev = await self.stores.events.get(target)
        if ev is not None and ev.room_id != pdu.get("room_id"):
            return "redacts an event of another room"
        return None

    async def _create_event(self, room_id: str) -> dict[str, Any] | None:
        ids = await self.stores.state.current_ids(room_id, [("m.room.create", "")])
        ev = await self.stores.events.get(ids[("m.room.create", "")]) if ids else None
        return {**ev.pdu, "event_id": ev.event_id} if ev is not None else None

    # ------------------------------------------------------------------ 6-8

    async def fetch_missing_prev_events(self, origin: str, room_id: str, pdu: dict[str, Any],
                                        depth: int) -> None:
        prevs = event_refs(pdu.get("prev_events"))
        have = await self.stores.events.get_many(prevs)
        missing = [p for p in prevs if p not in have or have[p].outlier]
        if not missing:
            return
        extremities = [e.event_id for e in await self.stores.events.forward_extremities(None, room_id)]
        try:
            fetched = await self.source.get_missing_events(
                origin, room_id, extremities, [compute_event_id(pdu, await self._rv(room_id))],
                MISSING_EVENTS_LIMIT)
        except Exception as e:  # noqa: BLE001 - a peer failing here only means "state from /state_ids"
            log.info("get_missing_events from %s failed: %s", origin, e)
            return
        for ev in sorted((f for f in fetched if isinstance(f, dict)), key=lambda f: f.get("depth", 0)):
            await self.receive(origin, ev, depth + 1)

    async def _rv(self, room_id: str) -> RoomVersion:
        return KNOWN_ROOM_VERSIONS[await self.stores.userdata.room_version(room_id) or "12"]

    async def state_before_event(self, origin: str, rv: RoomVersion, room_id: str,
                                 pdu: dict[str, Any], event_id: str) -> EventContext:
        prevs = event_refs(pdu.get("prev_events"))
        have = await self.stores.events.get_many(prevs)
        if prevs and all(p in have and not have[p].outlier for p in prevs):
            groups = list(dict.fromkeys(have[p].state_group for p in prevs))
            if len(groups) == 1:
                return EventContext(state_before=groups[0])
            states = [dict(await self.stores.state.get_state(g)) for g in groups]
            return EventContext(state_before=None, state_snapshot=await resolve_states(self.stores, rv, states))
        if not prevs:
            return EventContext(state_before=None)
        # A gap we could not fill: the state after each prev event, from what we hold or from
        # the origin's /state_ids at that prev event (plus the prev event itself, as an outlier).
        states = []
        for p in prevs:
            known = have.get(p)
            if known is not None and not known.outlier:
                states.append(dict(await self.stores.state.get_state(known.state_group)))
            else:
                states.append(await self._state_after_remote(origin, rv, room_id, p))
        if len(states) == 1:
            return EventContext(state_before=None, state_snapshot=states[0])
        return EventContext(state_before=None, state_snapshot=await resolve_states(self.stores, rv, states))

    async def _state_after_remote(self, origin: str, rv: RoomVersion, room_id: str,
                                  prev_id: str) -> StateMap:
        try:
            state_ids = await self.source.get_state_ids(origin, room_id, prev_id)
        except Exception as e:  # noqa: BLE001 - whatever the peer did, this event cannot be placed
            raise Dropped(f"prev event {prev_id} unavailable and no state for it from {origin}: {e}") from None
        for eid in [prev_id, *state_ids]:
            if await self.stores.events.get(eid) is None:
                fetched = await self.source.get_event(origin, eid)
                if isinstance(fetched, dict):
                    await self._store_outlier_unlocked(origin, rv, room_id, fetched, eid)
        got = await self.stores.events.get_many([*state_ids, prev_id])
        state = {(e.type, e.state_key): e.event_id for eid, e in got.items()
                 if eid != prev_id and e.state_key is not None and not e.rejected}
        prev = got.get(prev_id)
        if prev is None:
            raise Dropped(f"prev event {prev_id} could not be fetched from {origin}")
        if prev.state_key is not None and not prev.rejected:
            state[(prev.type, prev.state_key)] = prev.event_id
        return state

    async def _store_outlier_unlocked(self, origin: str, rv: RoomVersion, room_id: str,
                                      pdu: dict[str, Any], expected_id: str) -> None:
        """As `_store_outlier`, for a caller that already holds the room lock."""
        try:
            await self.check_format(pdu)
            if compute_event_id(pdu, rv) != expected_id:
                return
            await self.check_signatures(pdu, rv)
        except Dropped:
            return
        pdu = self.check_content_hash(pdu, rv)
        error = await self.auth_against_auth_events(rv, pdu)
        await self.persister.persist(rv, room_id, pdu, expected_id, EventContext.outlier_event(error))

    async def _auth_state(self, rv: RoomVersion, pdu: dict[str, Any],
                          state: StateMap) -> dict[tuple[str, str], dict[str, Any]]:
        keys = set(auth_types_for_event(rv, pdu)) | {("m.room.create", "")}
        wanted = {k: state[k] for k in keys if k in state}
        got = await self.stores.events.get_many(wanted.values())
        return {k: {**got[e].pdu, "event_id": e} for k, e in wanted.items() if e in got}

    async def _check(self, rv: RoomVersion, pdu: dict[str, Any], state: StateMap) -> str | None:
        auth_state = await self._auth_state(rv, pdu, state)
        try:
            check_auth(rv, pdu, auth_state, create_event=await self._create_event(pdu["room_id"]))
        except AuthError as e:
            return str(e)
        return None

    async def auth_against_state_before(self, rv: RoomVersion, pdu: dict[str, Any],
                                        ctx: EventContext) -> str | None:
        if ctx.state_snapshot is not None:
            state: StateMap = ctx.state_snapshot
        elif ctx.state_before is not None:
            state = dict(await self.stores.state.get_state(ctx.state_before))
        else:
            state = {}
        error = await self._check(rv, pdu, state)
        return f"state before: {error}" if error else None

    async def auth_against_current(self, rv: RoomVersion, room_id: str, pdu: dict[str, Any]) -> str | None:
        keys = set(auth_types_for_event(rv, pdu)) | {("m.room.create", "")}
        current = await self.stores.state.current_ids(room_id, keys)
        return await self._check(rv, pdu, current)
