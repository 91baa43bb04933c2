"""Build, authorize and persist new local events: the one path every local event takes.

Per room, one event at a time (Database.room_lock). Inside the lock: read the forward
extremities and the auth state, build the PDU (prev_events, auth_events, depth, hashes,
signature), run the authorization rules, then write event + edges + extremities + state delta +
current state + membership in one transaction. Only after the commit are waiters woken.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from homeserver import metrics
from homeserver.events.notifier import Notifier
from homeserver.events.persist import EventContext, Relation, write_event
from homeserver.events.recent import EventNote
from homeserver.protocol.auth_rules import auth_types_for_event, check_auth
from homeserver.protocol.canonical import check_canonical_values
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.events import (
    check_event_size_and_format,
    compute_event_id,
    hash_and_sign_event,
    make_event_refs,
    room_id_for_create_event,
)
from homeserver.protocol.power_levels import named_level, user_power_level
from homeserver.protocol.room_versions import RoomVersion
from homeserver.search.indexer import event_redacted
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores

MAX_PREV_EVENTS = 10


@dataclass
class _Built:
    """A local event built and signed under the room lock, not yet stored."""

    pdu: dict[str, Any]
    event_id: str
    ctx: EventContext
    unsigned: dict[str, Any]
    prev_ids: set[str]  # the forward extremities it was built on


@dataclass
class TxnInfo:
    device_id: str
    txn_key: str  # the full request path: the spec's idempotency scope
    txn_id: str


def relation_of(content: dict[str, Any]) -> tuple[str | None, str | None]:
    rel = content.get("m.relates_to")
    if not isinstance(rel, dict):
        return None, None
    rel_type, target = rel.get("rel_type"), rel.get("event_id")
    if isinstance(rel_type, str) and isinstance(target, str):
        return rel_type, target
    return None, None


def redaction_target(pdu: dict[str, Any]) -> str | None:
    target = pdu.get("content", {}).get("redacts")
    if not isinstance(target, str):
        target = pdu.get("redacts")
    return target if isinstance(target, str) else None


class EventPersister:
    def __init__(
        self,
        stores: Stores,
        server_name: str,
        signing_key: Any,
        notifier: Notifier,
        on_persisted: Callable[[StoredEvent], Awaitable[None]] | None = None,
    ) -> None:
        self.stores = stores
        self.server_name = server_name
        self.signing_key = signing_key
        self.notifier = notifier
        self.on_persisted = on_persisted
        self._last_create_ts = 0
        #: Invites of another server's user go to that server first; its countersigned copy is
        #: what is stored (homeserver/rooms/federated_invites.py).
        self.remote_invite: Callable[[RoomVersion, dict[str, Any]], Awaitable[dict[str, Any]]] | None = None

    async def create_room_event(
        self, rv: RoomVersion, create_content: dict[str, Any], sender: str, room_id_hint: str | None
    ) -> StoredEvent:
        """Persist an m.room.create event: the first event of a new room."""
        # Two identical create events (same sender, content and millisecond) would have the same
        # event ID, and in v12 the same room ID: keep their timestamps distinct.
        ts = max(int(time.time() * 1000), self._last_create_ts + 1)
        for _ in range(20):
            self._last_create_ts = ts
            pdu: dict[str, Any] = {
                "type": "m.room.create",
                "state_key": "",
                "sender": sender,
                "content": create_content,
                "origin_server_ts": ts,
                "depth": 1,
                "prev_events": [],
                "auth_events": [],
            }
            if not rv.room_id_from_create:
                assert room_id_hint is not None
                pdu["room_id"] = room_id_hint
            if rv.event_id_in_pdu:
                pdu["event_id"] = self._legacy_event_id()
            check_auth(rv, pdu, {}, create_event=pdu)
            pdu = hash_and_sign_event(pdu, self.server_name, self.signing_key, rv)
            check_event_size_and_format(pdu, rv)
            check_canonical_values(pdu)  # v1-v5 tolerate floats from peers; we never create them
            event_id = compute_event_id(pdu, rv)
            room_id = room_id_for_create_event(pdu, rv) if rv.room_id_from_create else room_id_hint
            assert room_id is not None
            if await self.stores.events.get(event_id) is None:
                try:
                    return await self.persist(rv, room_id, pdu, event_id,
                                              EventContext(state_before=None, extends_current=True))
                except Exception:
                    if await self.stores.events.get(event_id) is None:
                        raise  # not the collision (another worker, same millisecond): a real error
            ts += 1
        raise MatrixError(500, "M_UNKNOWN", "Could not allocate a room ID")

    async def send(
        self,
        rv: RoomVersion,
        room_id: str,
        event_type: str,
        sender: str,
        content: dict[str, Any],
        state_key: str | None = None,
        txn: TxnInfo | None = None,
        check: Callable[[dict[str, Any], dict[tuple[str, str], StoredEvent]], Awaitable[None]] | None = None,
    ) -> StoredEvent:
        """Build and persist one event; `check` may veto it with the auth state at hand."""
        st = self.stores
        async with st.db.room_lock(room_id):
            prior = await self._prior(sender, txn)
            if prior is not None:
                return prior
            built = await self._build(rv, room_id, event_type, sender, content, state_key, check)
            if not self._is_remote_invite(event_type, state_key, content):
                return await self._store(rv, room_id, built, txn)
        # An invite of another server's user goes to that server first, to be countersigned. That
        # call can take as long as the remote server likes (up to the client's timeout), so it is
        # made without the room lock: other events of the room go on meanwhile, and the invite
        # is checked again, under the lock, against whatever they changed.
        assert self.remote_invite is not None
        signed = await self.remote_invite(rv, built.pdu)
        async with st.db.room_lock(room_id):
            prior = await self._prior(sender, txn)
            if prior is not None:
                return prior
            await self._recheck(rv, room_id, built, check)
            built.pdu = signed
            return await self._store(rv, room_id, built, txn)

    def _is_remote_invite(self, event_type: str, state_key: str | None, content: dict[str, Any]) -> bool:
        return (self.remote_invite is not None and event_type == "m.room.member" and state_key is not None
                and content.get("membership") == "invite" and state_key.split(":", 1)[-1] != self.server_name)

    async def _prior(self, sender: str, txn: TxnInfo | None) -> StoredEvent | None:
        """The event a repeated transaction ID already stored (sends are idempotent)."""
        if txn is None:
            return None
        prior = await self.stores.userdata.get_txn(sender, txn.device_id, txn.txn_key)
        return await self.stores.events.get(prior["event_id"]) if prior is not None else None

    async def _auth_state(self, rv: RoomVersion, pdu: dict[str, Any],
                          state_ids: Mapping[tuple[str, str], str]) -> dict[tuple[str, str], StoredEvent]:
        keys = set(auth_types_for_event(rv, pdu)) | {("m.room.create", "")}
        got = await self.stores.events.get_many([state_ids[k] for k in keys if k in state_ids])
        return {k: got[state_ids[k]] for k in keys if k in state_ids and state_ids[k] in got}

    async def _build(
        self, rv: RoomVersion, room_id: str, event_type: str, sender: str, content: dict[str, Any],
        state_key: str | None,
        check: Callable[[dict[str, Any], dict[tuple[str, str], StoredEvent]], Awaitable[None]] | None,
    ) -> _Built:
        """The signed, authorized PDU on the room's forward extremities (the room lock is held)."""
        st = self.stores
        # Under the room lock every earlier write to this room has committed.
        all_extremities = await st.events.forward_extremities(None, room_id)
        if not all_extremities:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown room")
        all_extremities.sort(key=lambda e: (e.depth, e.stream_ordering), reverse=True)
        extremities = all_extremities[:MAX_PREV_EVENTS]
        depth = min(extremities[0].depth + 1, 2**53 - 1)
        # The state before the new event: the one extremity's state after it, or (where
        # branches meet) the room's current state, which is their resolution.
        ctx = EventContext(state_before=extremities[0].state_group,
                           extends_current=len(all_extremities) <= MAX_PREV_EVENTS)
        if len(all_extremities) > 1:
            ctx.state_before, ctx.state_snapshot = None, await st.state.current_all(room_id)

        pdu: dict[str, Any] = {
            "room_id": room_id,
            "type": event_type,
            "sender": sender,
            "content": content,
            "origin_server_ts": int(time.time() * 1000),
            "depth": depth,
            "prev_events": make_event_refs(rv, [(e.event_id, e.pdu) for e in extremities]),
        }
        if rv.event_id_in_pdu:
            pdu["event_id"] = self._legacy_event_id()
        if state_key is not None:
            pdu["state_key"] = state_key
        if event_type == "m.room.redaction" and not rv.redacts_in_content:
            target = content.get("redacts")
            if isinstance(target, str):
                pdu["redacts"] = target

        state_ids = ctx.state_snapshot if ctx.state_snapshot is not None \
            else await st.state.get_state(extremities[0].state_group)
        auth_state = await self._auth_state(rv, pdu, state_ids)
        create = auth_state.get(("m.room.create", ""))
        if create is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown room")
        pdu["auth_events"] = make_event_refs(rv, [
            (ev.event_id, ev.pdu)
            for k, ev in sorted(auth_state.items())
            if not (rv.room_id_from_create and k == ("m.room.create", ""))
            and k in set(auth_types_for_event(rv, pdu))
        ])
        if check is not None:
            await check(pdu, auth_state)
        check_auth(rv, pdu, {k: _with_id(ev) for k, ev in auth_state.items()}, create_event=_with_id(create))
        pdu = hash_and_sign_event(pdu, self.server_name, self.signing_key, rv)
        check_event_size_and_format(pdu, rv)
        check_canonical_values(pdu)  # v1-v5 tolerate floats from peers; we never create them
        unsigned: dict[str, Any] = {}
        if state_key is not None:
            replaced = state_ids.get((event_type, state_key))
            if replaced is not None:
                old = await st.events.get(replaced)
                unsigned["replaces_state"] = replaced
                if old is not None:
                    unsigned["prev_content"] = old.pdu.get("content", {})
                    unsigned["prev_sender"] = old.sender
        return _Built(pdu, compute_event_id(pdu, rv), ctx, unsigned, {e.event_id for e in extremities})

    async def _recheck(
        self, rv: RoomVersion, room_id: str, built: _Built,
        check: Callable[[dict[str, Any], dict[tuple[str, str], StoredEvent]], Awaitable[None]] | None,
    ) -> None:
        """After the lock was let go: if other events landed meanwhile, the event must still be
        allowed by the room's current state (the invitee banned, the inviter demoted: refused),
        and it becomes a branch beside them, merged into current state by resolution."""
        now = {e.event_id for e in await self.stores.events.forward_extremities(None, room_id)}
        if now == built.prev_ids:
            return
        built.ctx.extends_current = False
        auth_state = await self._auth_state(rv, built.pdu, await self.stores.state.current_all(room_id))
        create = auth_state.get(("m.room.create", ""))
        if create is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown room")
        if check is not None:
            await check(built.pdu, auth_state)
        check_auth(rv, built.pdu, {k: _with_id(ev) for k, ev in auth_state.items()}, create_event=_with_id(create))

    async def _store(self, rv: RoomVersion, room_id: str, built: _Built, txn: TxnInfo | None) -> StoredEvent:
        pdu = {**built.pdu, "unsigned": built.unsigned} if built.unsigned else built.pdu
        with metrics.EVENT_PERSIST.time():
            return await self.persist(rv, room_id, pdu, built.event_id, built.ctx, txn)

    def _legacy_event_id(self) -> str:
        """A room v1/v2 event ID, `$opaque:server`, chosen by the server that creates the event
        (rooms/fragments/v1-event-ids.md): 144 random bits make collisions negligible."""
        return f"${secrets.token_urlsafe(18)}:{self.server_name}"

    async def persist(
        self, rv: RoomVersion, room_id: str, pdu: dict[str, Any], event_id: str,
        ctx: EventContext, txn: TxnInfo | None = None,
    ) -> StoredEvent:
        """Store one event, local or received (the caller holds the room lock), then wake
        whoever waits for it. See `events/persist.py` for what the context decides."""
        st = self.stores
        rel_type, relates_to = relation_of(pdu.get("content", {}))
        rel = Relation(rel_type, relates_to, relates_to if rel_type == "m.thread" else None,
                       txn.device_id if txn else None, txn.txn_id if txn else None)
        if ctx.outlier or ctx.backfilled:
            async with st.db.transaction() as c:
                pos = -await st.outlier_ids.next(c)
                ev, _, _ = await write_event(st, c, rv, room_id, pdu, event_id, ctx, pos, rel)
            st.events.remember_committed(ev)
            return ev
        async with st.stream.write() as (c, pos):
            ev, before, delta = await write_event(st, c, rv, room_id, pdu, event_id, ctx, pos, rel)
            if pdu["type"] == "m.room.redaction" and ev.in_timeline:
                target = redaction_target(pdu)
                if target is not None and await self._may_redact(rv, room_id, pdu, target, ev):
                    # The index first: it reads the target, whose cached copy mark_redacted drops.
                    await event_redacted(st, c, target)
                    await st.events.mark_redacted(c, target, event_id)
            if txn is not None:
                await st.userdata.put_txn(
                    c, pdu["sender"], txn.device_id, txn.txn_key, {"event_id": event_id}
                )
            st.stream.note(pos, EventNote(ev))
        if delta:
            await st.state.prime(ev.state_group, before, delta)
        st.events.remember_committed(ev)
        if self.on_persisted is not None and ev.in_timeline:
            await self.on_persisted(ev)
        return ev

    async def persist_outliers(self, rv: RoomVersion, room_id: str,
                               items: list[tuple[dict[str, Any], str, EventContext]]) -> list[StoredEvent]:
        """Store many outliers (pdu, event ID, outlier context) in one transaction: a join's
        auth chain and state cost one commit, not one each."""
        st = self.stores
        stored = []
        async with st.db.transaction() as c:
            for pdu, event_id, ctx in items:
                rel_type, relates_to = relation_of(pdu.get("content", {}))
                rel = Relation(rel_type, relates_to, relates_to if rel_type == "m.thread" else None, None, None)
                pos = -await st.outlier_ids.next(c)
                ev, _, _ = await write_event(st, c, rv, room_id, pdu, event_id, ctx, pos, rel)
                stored.append(ev)
        for ev in stored:
            st.events.remember_committed(ev)
        return stored

    async def _may_redact(self, rv: RoomVersion, room_id: str, pdu: dict[str, Any], target_id: str,
                          ev: StoredEvent) -> bool:
        """Whether a redaction takes effect (rooms v3+ "redactions"): its target is an event of
        the same room, sent by a user of the redacting user's server, or the redacting user has
        the power to redact others' events in the state before the redaction."""
        target = await self.stores.events.get(target_id)
        if target is None or target.room_id != room_id or target.event_id == ev.event_id:
            return False
        if target.sender.split(":", 1)[-1] == pdu["sender"].split(":", 1)[-1]:
            return True
        state = await self.stores.state.get_state(ev.state_before) if ev.state_before is not None else {}
        wanted = [state[k] for k in (("m.room.create", ""), ("m.room.power_levels", "")) if k in state]
        got = await self.stores.events.get_many(wanted)
        create = got.get(state.get(("m.room.create", ""), ""))
        pl = got.get(state.get(("m.room.power_levels", ""), ""))
        if create is None:
            return False
        pl_content = pl.pdu.get("content") if pl is not None else None
        level = user_power_level(rv, _with_id(create), pl_content, pdu["sender"])
        return level >= named_level(pl_content, "redact")


def _with_id(ev: StoredEvent) -> dict[str, Any]:
    d = dict(ev.pdu)
    d["event_id"] = ev.event_id
    return d
