"""Other servers' users joining our rooms (server-server API "Joining Rooms": make_join, then
send_join v2), and the transactions other servers push to us (`PUT /send/{txnId}`)."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.events.receiver import EventReceiver, Received
from homeserver.events.server_reads import ServerReads
from homeserver.protocol.auth_rules import auth_types_for_event, check_auth
from homeserver.protocol.errors import AuthError, MatrixError
from homeserver.protocol.events import compute_event_id, make_event_refs
from homeserver.protocol.ids import is_valid_user_id, server_name_of
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.rooms.serialize import stripped_state
from homeserver.rooms.server_acl import ServerAclService
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores

log = logging.getLogger("parley.federation")
MAX_PDUS = 50
MAX_EDUS = 100
TXN_MEMORY = 2_000
#: The room state a knocker (or invitee) is shown, as the spec recommends.
STRIPPED_STATE_TYPES = ("m.room.create", "m.room.name", "m.room.avatar", "m.room.topic", "m.room.join_rules",
                        "m.room.canonical_alias", "m.room.encryption")


class RemoteJoins:
    def __init__(self, stores: Stores, server_name: str, receiver: EventReceiver, reads: ServerReads) -> None:
        self.stores = stores
        self.server_name = server_name
        self.receiver = receiver
        self.reads = reads
        #: Called with (join event, origin) once a send_join is accepted: the resident server
        #: passes the join on to the room's other servers (the one exception to "only our own
        #: events are sent"), as the server-server API's joining handshake asks.
        self.on_join_accepted: Callable[[StoredEvent, str], Awaitable[None]] | None = None

    async def _rv(self, room_id: str) -> RoomVersion:
        version = await self.stores.userdata.room_version(room_id)
        rv = KNOWN_ROOM_VERSIONS.get(version or "")
        if rv is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown room")
        return rv

    async def make_join(self, origin: str, room_id: str, user_id: str, versions: list[str]) -> dict[str, Any]:
        """A join event template for `user_id`, built on the room's current extremities."""
        rv = await self._rv(room_id)
        if rv.identifier not in (versions or ["1"]):
            raise MatrixError(400, "M_INCOMPATIBLE_ROOM_VERSION",
                              f"The room is version {rv.identifier}", room_version=rv.identifier)
        return await self._template(origin, rv, room_id, user_id, "join")

    async def make_leave(self, origin: str, room_id: str, user_id: str) -> dict[str, Any]:
        """A leave template (server-server API "Leaving Rooms (Rejecting Invites)")."""
        return await self._template(origin, await self._rv(room_id), room_id, user_id, "leave")

    async def _template(self, origin: str, rv: RoomVersion, room_id: str, user_id: str,
                        membership: str) -> dict[str, Any]:
        if not is_valid_user_id(user_id) or server_name_of(user_id) != origin:
            raise MatrixError(403, "M_FORBIDDEN", f"A server may only make {membership}s for its own users")
        extremities = await self.stores.events.forward_extremities(None, room_id)
        if not extremities:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown room")
        extremities.sort(key=lambda e: (e.depth, e.stream_ordering), reverse=True)
        extremities = extremities[:10]
        event: dict[str, Any] = {
            "origin": self.server_name,  # the resident server, as the template schema has it
            "room_id": room_id, "type": "m.room.member", "state_key": user_id, "sender": user_id,
            "content": {"membership": membership}, "origin_server_ts": int(time.time() * 1000),
            "depth": min(extremities[0].depth + 1, 2**53 - 1),
            "prev_events": make_event_refs(rv, [(e.event_id, e.pdu) for e in extremities]),
        }
        current = await self.stores.state.current_all(room_id)
        keys = auth_types_for_event(rv, event)
        auth = await self.stores.events.get_many([current[k] for k in keys if k in current])
        event["auth_events"] = make_event_refs(rv, [(a.event_id, a.pdu) for a in auth.values()])
        create = await self.stores.events.get(current.get(("m.room.create", ""), ""))
        state = {(a.type, a.state_key or ""): {**a.pdu, "event_id": a.event_id} for a in auth.values()}
        try:
            check_auth(rv, event, state,
                       create_event={**create.pdu, "event_id": create.event_id} if create else None)
        except AuthError as e:
            raise MatrixError(403, "M_FORBIDDEN", f"The {membership} would not be allowed: {e}") from None
        return {"room_version": rv.identifier, "event": event}

    async def make_knock(self, origin: str, room_id: str, user_id: str, versions: list[str]) -> dict[str, Any]:
        """A knock template (server-server API "Knocking upon a room"; rooms v7+)."""
        rv = await self._rv(room_id)
        if rv.identifier not in versions:
            raise MatrixError(400, "M_INCOMPATIBLE_ROOM_VERSION",
                              f"The room is version {rv.identifier}", room_version=rv.identifier)
        if not rv.knock_join_rule:
            raise MatrixError(400, "M_INCOMPATIBLE_ROOM_VERSION",
                              f"Room version {rv.identifier} does not support knocking", room_version=rv.identifier)
        return await self._template(origin, rv, room_id, user_id, "knock")

    async def send_knock(self, origin: str, room_id: str, event_id: str, pdu: Any) -> dict[str, Any]:
        """Accept a signed knock; answer with the room's stripped state for the knocker."""
        await self._accept_member_event(origin, room_id, event_id, pdu, "knock")
        ids = await self.stores.state.current_ids(room_id, [(t, "") for t in STRIPPED_STATE_TYPES])
        evs = await self.stores.events.get_many(ids.values())
        return {"knock_room_state": [stripped_state(e) for e in evs.values()]}

    async def send_leave(self, origin: str, room_id: str, event_id: str, pdu: Any) -> dict[str, Any]:
        """Accept a signed leave (a rejected invite, a retracted knock) from `origin`."""
        await self._accept_member_event(origin, room_id, event_id, pdu, "leave")
        return {}

    async def send_join(self, origin: str, room_id: str, event_id: str, pdu: Any) -> dict[str, Any]:
        """Accept a signed join from `origin` and answer with the room's state and auth chain."""
        got = await self._accept_member_event(origin, room_id, event_id, pdu, "join")
        assert got.event is not None
        state_ids, chain = await self.reads.state_ids(origin, room_id, event_id)
        servers = set()
        for (t, sk), _ in (await self.stores.state.current_all(room_id)).items():
            if t == "m.room.member" and ":" in sk:
                servers.add(server_name_of(sk))
        return {
            "origin": self.server_name,
            "state": await self.reads.pdus(state_ids),
            "auth_chain": await self.reads.pdus(chain),
            "event": self.reads.as_pdu(got.event),
            "members_omitted": False,
            "servers_in_room": sorted(servers),
        }

    async def _accept_member_event(self, origin: str, room_id: str, event_id: str, pdu: Any,
                                   membership: str) -> Received:
        rv = await self._rv(room_id)
        if not isinstance(pdu, dict) or pdu.get("type") != "m.room.member" or pdu.get("room_id") != room_id:
            raise MatrixError(400, "M_BAD_JSON", f"Expected a {membership} event of this room")
        sender = pdu.get("sender")
        content = pdu.get("content")
        if not isinstance(sender, str) or server_name_of(sender) != origin or pdu.get("state_key") != sender \
                or not isinstance(content, dict) or content.get("membership") != membership:
            raise MatrixError(400, "M_BAD_JSON", f"A {membership} must be the origin's user's own")
        try:
            computed = compute_event_id(pdu, rv)
        except Exception:  # noqa: BLE001 - any malformed PDU is the sender's error
            raise MatrixError(400, "M_BAD_JSON", "Malformed event") from None
        if computed != event_id:
            raise MatrixError(400, "M_BAD_JSON", "The event ID does not match the event")
        got = await self.receiver.receive(origin, pdu)
        if got.outcome == "dropped":
            raise MatrixError(400, "M_BAD_JSON", f"The {membership} was refused: {got.reason}")
        if got.event is None or got.event.rejected or got.event.soft_failed:
            raise MatrixError(403, "M_FORBIDDEN", f"The {membership} is not allowed: {got.reason or 'current state'}")
        # The sending server only talks to us: the room's other servers hear of it from here.
        if self.on_join_accepted is not None:
            await self.on_join_accepted(got.event, origin)
        return got


class TransactionHandler:
    """`PUT /send/{txnId}`: each PDU on its own (one bad PDU never fails the others); a retried
    transaction gets the same answer (remembered in process; a retry on another worker is
    handled again, which the receiver's per-event idempotency makes harmless)."""

    def __init__(self, receiver: EventReceiver, acls: ServerAclService | None = None) -> None:
        self.receiver = receiver
        self.acls = acls
        self._done: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        #: Each EDU of a transaction, after its PDUs: (origin, edu); must not raise.
        self.edu_handler: Callable[[str, Any], Awaitable[None]] | None = None
        #: Called with the origin of every transaction (it is up: retry what we owe it now).
        self.on_origin_seen: Callable[[str], Awaitable[None]] | None = None

    async def handle(self, origin: str, txn_id: str, body: dict[str, Any]) -> dict[str, Any]:
        key = (origin, txn_id)
        if key in self._done:
            return self._done[key]
        pdus, edus = body.get("pdus", []), body.get("edus", [])
        if not isinstance(pdus, list) or not isinstance(edus, list):
            raise MatrixError(400, "M_BAD_JSON", "'pdus' and 'edus' must be lists")
        if len(pdus) > MAX_PDUS or len(edus) > MAX_EDUS:
            raise MatrixError(400, "M_BAD_JSON", f"At most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs per transaction")
        if self.on_origin_seen is not None:
            try:
                await self.on_origin_seen(origin)
            except Exception:  # noqa: BLE001 - bookkeeping never fails the transaction
                log.exception("could not note that %s is up", origin)
        results: dict[str, Any] = {}
        for pdu in pdus:
            if self.acls is not None and (denied := await self.acls.denied_pdu(origin, pdu)):
                if denied.event_id is not None:  # dropped; the rest of the transaction lands
                    results[denied.event_id] = {"error": denied.reason}
                continue
            try:
                got = await self.receiver.receive(origin, pdu)
            except Exception:  # noqa: BLE001 - one PDU's failure never fails the transaction
                log.exception("a PDU from %s could not be handled", origin)
                continue
            if got.event_id is None:
                continue
            # Rejected and soft-failed events were processed (and stored as such): only events
            # that could not be handled report an error, as Synapse answers.
            results[got.event_id] = {} if got.outcome != "dropped" else {"error": got.reason or "dropped"}
        if self.edu_handler is not None:
            for edu in edus:
                # what an EDU says about rooms whose ACL denies the origin is dropped first
                kept = edu if self.acls is None else await self.acls.filter_edu(origin, edu)
                if kept is not None:
                    await self.edu_handler(origin, kept)
        answer = {"pdus": results}
        self._done[key] = answer
        while len(self._done) > TXN_MEMORY:
            self._done.popitem(last=False)
        return answer
