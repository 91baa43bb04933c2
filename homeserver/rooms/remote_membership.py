"""Local users joining and leaving rooms this server is not in (server-server API "Joining Rooms":
make_join, then send_join v2; "Leaving Rooms (Rejecting Invites)": make_leave, send_leave v2).

A join asks each candidate server in turn (the client's `via`/`server_name`, the alias answer's
servers, the inviter's server, the room ID's domain) for a template, signs the event and sends it;
the state and auth chain that come back are checked like any received PDU (signatures and
content hashes through the receiver's steps, each event against its own auth events, the join
against the state), stored as outliers, and the join becomes the room's first timeline event
with that state before it. Events the room's servers send afterwards go through the receiver.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.events.persist import EventContext
from homeserver.events.persister import EventPersister
from homeserver.events.receiver import Dropped, EventReceiver
from homeserver.protocol.auth_chain import auth_order, auth_state_for, check_auth_chain, find_create, state_map
from homeserver.protocol.auth_rules import check_auth
from homeserver.protocol.errors import AuthError, MatrixError
from homeserver.protocol.events import (
    check_event_size_and_format,
    compute_event_id,
    hash_and_sign_event,
    make_event_refs,
)
from homeserver.protocol.ids import is_valid_room_id, server_name_of
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.rooms.directory import DirectoryService
from homeserver.rooms.membership_peer import (
    REFUSALS,
    MembershipPeer,
    event_id_or_none,
    remote_message,
    stripped_events,
    valid_servers,
)
from homeserver.rooms.service import RoomService
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores

log = logging.getLogger("parley.federation")
MAX_SERVERS = 10


class RemoteMembership:
    def __init__(self, stores: Stores, persister: EventPersister, receiver: EventReceiver,
                 peer: MembershipPeer, server_name: str, rooms: RoomService, directory: DirectoryService) -> None:
        self.stores = stores
        self.rooms = rooms
        self.directory = directory
        self.persister = persister
        self.receiver = receiver
        self.peer = peer
        self.server_name = server_name
        #: Whether federation is on (off: rooms elsewhere cannot be joined).
        self.enabled = False
        self.wake_users: Callable[[list[str]], Awaitable[None]] | None = None

    # ------------------------------------------------------------------ deciding

    async def host_in_room(self, room_id: str) -> bool:
        """Whether a user of this server is joined (then membership is an ordinary event)."""
        joined = await self.stores.state.members(room_id, ("join",))
        return any(server_name_of(u) == self.server_name for u in joined)

    async def candidate_servers(self, room_id: str, hints: list[str], user_id: str | None = None) -> list[str]:
        servers = list(hints)
        if user_id is not None:
            mine = await self.stores.state.membership(room_id, user_id)
            if mine is not None and mine[0] in ("invite", "knock"):
                ev = await self.stores.events.get(mine[1])
                if ev is not None and ev.sender != user_id:
                    servers.append(server_name_of(ev.sender))
                # The servers whose users sent the room state that came with it.
                for e in await self.stores.membership_state.get(mine[1]) or []:
                    if isinstance(e.get("sender"), str) and ":" in e["sender"]:
                        servers.append(server_name_of(e["sender"]))
        if ":" in room_id:
            servers.append(server_name_of(room_id))
        return [s for s in dict.fromkeys(servers) if s and s != self.server_name][:MAX_SERVERS]

    async def needs_remote(self, room_id: str) -> bool:
        return self.enabled and not await self.host_in_room(room_id)

    # ------------------------------------------------------------------ client requests

    async def join_room(self, user_id: str, target: str, via: list[str], reason: str | None,
                        extra: dict[str, Any]) -> str:
        """POST /join/{roomIdOrAlias} and /rooms/{roomId}/join: an ordinary event when this server
        is in the room, else a remote join through the room's servers."""
        hints = valid_servers(via)
        if target.startswith("#"):
            found = await self.directory.resolve(target)
            room_id = str(found["room_id"])
            hints += [s for s in found.get("servers", []) if isinstance(s, str)]
        else:
            room_id = await self.rooms.resolve_room(target)
        if not is_valid_room_id(room_id):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid room ID")
        if await self.needs_remote(room_id):
            servers = await self.candidate_servers(room_id, hints, user_id)
            if servers:
                content = await self.rooms._member_content(user_id, "join")
                content.update(extra)
                if reason is not None:
                    content["reason"] = reason
                await self.join(user_id, room_id, servers, content)
                return room_id
        await self.rooms.update_membership(user_id, room_id, user_id, "join", reason, extra)
        return room_id

    async def knock_room(self, user_id: str, target: str, via: list[str], reason: str | None) -> str:
        """POST /knock/{roomIdOrAlias}: through a server of the room when this server is not in it."""
        hints = valid_servers(via)
        if target.startswith("#"):
            found = await self.directory.resolve(target)
            room_id = str(found["room_id"])
            hints += [s for s in found.get("servers", []) if isinstance(s, str)]
        else:
            room_id = target
        if await self.needs_remote(room_id):
            servers = await self.candidate_servers(room_id, hints, user_id)
            if servers:
                content = await self.rooms._member_content(user_id, "knock")
                if reason is not None:
                    content["reason"] = reason
                await self.knock(user_id, room_id, servers, content)
                return room_id
        return await self.rooms.knock(user_id, room_id, reason)

    async def knock(self, user_id: str, room_id: str, servers: list[str], content: dict[str, Any]) -> StoredEvent:
        async def make(server: str) -> dict[str, Any]:
            return await self.peer.make_knock(server, room_id, user_id, list(KNOWN_ROOM_VERSIONS))

        async def send(server: str, rv: RoomVersion, event_id: str, pdu: dict[str, Any]) -> Any:
            return await self.peer.send_knock(server, room_id, event_id, pdu)

        rv, pdu, event_id, answer = await self._handshake("knock on", room_id, user_id, "knock", content, servers,
                                                          make, send)
        stripped = stripped_events(answer.get("knock_room_state"))
        await self.ensure_room(rv, room_id, "")
        async with self.stores.db.transaction() as c:
            await self.stores.membership_state.put(c, event_id, room_id, stripped)
        return await self.record_out_of_room(rv, room_id, user_id, pdu, event_id)

    async def _handshake(self, verb: str, room_id: str, user_id: str, membership: str, content: dict[str, Any],
                         servers: list[str], make: Callable[[str], Awaitable[dict[str, Any]]],
                         send: Callable[[str, RoomVersion, str, dict[str, Any]], Awaitable[Any]], *,
                         refusals_final: bool = True) -> tuple[RoomVersion, dict[str, Any], str, Any]:
        """make_X / send_X through the first of `servers` that accepts: the room version, our
        signed event, its ID and the answer. A refusal by the room's server (not invited,
        banned, ...) is final when `refusals_final`; other failures move on to the next server."""
        last: MatrixError | None = None
        for server in servers:
            try:
                template = await make(server)
                rv = self._template_version(template)
                pdu, event_id = self._sign_template(rv, template.get("event"), room_id, user_id, membership, content)
                return rv, pdu, event_id, await send(server, rv, event_id, pdu)
            except MatrixError as e:
                log.info("could not %s %s through %s: %s", verb, room_id, server, e.error)
                last = e
                remote_status, remote_code = getattr(e, "remote_status", None), getattr(e, "remote_errcode", None)
                if refusals_final and remote_status in (400, 403) and remote_code in REFUSALS:
                    raise MatrixError(remote_status, remote_code, remote_message(e)) from None
        if membership == "join" and last is not None and getattr(last, "remote_status", None) == 404:
            raise MatrixError(404, "M_NOT_FOUND", "No server could be found to join this room through")
        raise MatrixError(502 if last is not None else 404, "M_UNKNOWN" if last is not None else "M_NOT_FOUND",
                          f"Failed to {verb} the room: {last.error if last else 'no servers'}")

    async def leave_room(self, user_id: str, room_id: str, reason: str | None) -> bool:
        """A leave of a room this server is not in (rejecting an invite, retracting a knock) goes
        through a server of the room; True when handled here, False for an ordinary leave."""
        if not await self.needs_remote(room_id):
            return False
        current = await self.stores.state.membership(room_id, user_id)
        if current is None or current[0] not in ("invite", "knock"):
            return False
        servers = await self.candidate_servers(room_id, [], user_id)
        if not servers:
            return False
        try:
            await self.leave(user_id, room_id, servers, reason)
        except MatrixError as e:
            if current[0] != "invite":
                raise
            # The room's servers cannot be reached (or refuse): the invite is rejected here
            # all the same, so that it does not stay in the user's sync forever.
            log.info("rejecting the invite to %s locally: %s", room_id, e.error)
            await self._local_rejection(user_id, room_id, current[1], reason)
        return True

    async def _local_rejection(self, user_id: str, room_id: str, invite_id: str, reason: str | None) -> None:
        """A leave event of our own making, after the invite (never sent anywhere)."""
        invite = await self.stores.events.get(invite_id)
        version = await self.stores.userdata.room_version(room_id)
        rv = KNOWN_ROOM_VERSIONS.get(version or "")
        if invite is None or rv is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown invite")
        content: dict[str, Any] = {"membership": "leave", **({"reason": reason} if reason is not None else {})}
        refs = make_event_refs(rv, [(invite.event_id, invite.pdu)])
        pdu: dict[str, Any] = {"room_id": room_id, "type": "m.room.member", "sender": user_id, "state_key": user_id,
                               "content": content, "origin_server_ts": int(time.time() * 1000),
                               "depth": invite.depth + 1, "prev_events": refs, "auth_events": refs}
        if rv.event_id_in_pdu:
            pdu["event_id"] = self.persister._legacy_event_id()
        pdu = hash_and_sign_event(pdu, self.server_name, self.persister.signing_key, rv)
        await self.record_out_of_room(rv, room_id, user_id, pdu, compute_event_id(pdu, rv))

    # ------------------------------------------------------------------ joining

    async def join(self, user_id: str, room_id: str, servers: list[str], content: dict[str, Any]) -> StoredEvent:
        """Join `room_id` through the first of `servers` that lets us; a clear error when none does."""
        if not is_valid_room_id(room_id):
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid room ID")
        if not servers:
            raise MatrixError(404, "M_NOT_FOUND", "No known servers to join this room through")

        async def make(server: str) -> dict[str, Any]:
            return await self.peer.make_join(server, room_id, user_id, list(KNOWN_ROOM_VERSIONS))

        async def send(server: str, rv: RoomVersion, event_id: str, pdu: dict[str, Any]) -> StoredEvent:
            # a send_join answer that does not check out sends us on to the next server too
            answer = await self.peer.send_join(server, room_id, event_id, pdu)
            return await self._take_join(server, rv, room_id, pdu, event_id, answer)

        _, _, _, ev = await self._handshake("join", room_id, user_id, "join", content, servers, make, send)
        if self.rooms.after_join is not None:
            await self.rooms.after_join(user_id, room_id)
        assert isinstance(ev, StoredEvent)  # what `send` above returned
        return ev

    @staticmethod
    def _template_version(template: dict[str, Any]) -> RoomVersion:
        version = template.get("room_version", "1")
        rv = KNOWN_ROOM_VERSIONS.get(version) if isinstance(version, str) else None
        if rv is None:
            raise MatrixError(400, "M_UNSUPPORTED_ROOM_VERSION", f"Room version {version!r} is not supported")
        return rv

    def _sign_template(self, rv: RoomVersion, event: Any, room_id: str, user_id: str, membership: str,
                       content: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The resident server's template, checked and filled in, hashed and signed by us."""
        if not isinstance(event, dict) or event.get("room_id") != room_id or event.get("sender") != user_id \
                or event.get("state_key") != user_id or event.get("type") != "m.room.member":
            raise MatrixError(502, "M_UNKNOWN", "The resident server sent a malformed template")
        tcontent = event.get("content")
        if not isinstance(tcontent, dict) or tcontent.get("membership") != membership:
            raise MatrixError(502, "M_UNKNOWN", "The resident server's template is not a " + membership)
        pdu = {k: v for k, v in event.items() if k not in ("signatures", "hashes", "unsigned", "event_id")}
        pdu["content"] = {**tcontent, **content, "membership": membership}
        pdu["origin"] = self.server_name
        pdu["origin_server_ts"] = int(time.time() * 1000)
        if rv.event_id_in_pdu:
            pdu["event_id"] = self.persister._legacy_event_id()
        try:
            pdu = hash_and_sign_event(pdu, self.server_name, self.persister.signing_key, rv)
            check_event_size_and_format(pdu, rv)
            return pdu, compute_event_id(pdu, rv)
        except MatrixError as e:
            raise MatrixError(502, "M_UNKNOWN", f"The resident server's template is invalid: {e.error}") from None
        except (KeyError, TypeError, ValueError, AttributeError):
            raise MatrixError(502, "M_UNKNOWN", "The resident server's template is malformed") from None

    async def _take_join(self, origin: str, rv: RoomVersion, room_id: str, pdu: dict[str, Any], event_id: str,
                         answer: dict[str, Any]) -> StoredEvent:
        """Check the send_join answer and store it; the join is the room's newest event."""
        signed = answer.get("event")
        if isinstance(signed, dict) and event_id_or_none(signed, rv) == event_id:
            pdu = signed  # countersigned by the resident server (restricted joins)
        state_pdus, chain_pdus = answer.get("state"), answer.get("auth_chain")
        if not isinstance(state_pdus, list) or not isinstance(chain_pdus, list):
            raise MatrixError(502, "M_UNKNOWN", "The resident server's send_join answer is malformed")
        events = await self._checked_pdus(rv, room_id, [*chain_pdus, *state_pdus])
        rejected = check_auth_chain(rv, room_id, events)
        state_ids = [i for i in (event_id_or_none(p, rv) for p in state_pdus) if i is not None]
        state = state_map(events, [i for i in state_ids if i in events], rejected)
        create_id = find_create(rv, room_id, events)
        if create_id is None or state.get(("m.room.create", "")) != create_id:
            raise MatrixError(502, "M_UNKNOWN", "The room's state has no valid create event")
        try:
            check_auth(rv, {**pdu, "event_id": event_id}, auth_state_for(rv, pdu, state, events),
                       create_event={**events[create_id], "event_id": create_id})
        except AuthError as e:
            raise MatrixError(403, "M_FORBIDDEN", f"The join is not allowed by the room's state: {e}") from None
        return await self._store_join(rv, room_id, events, rejected, state, pdu, event_id, events[create_id])

    async def _checked_pdus(self, rv: RoomVersion, room_id: str, pdus: list[Any]) -> dict[str, dict[str, Any]]:
        """Format, signatures and content hashes (the receiver's steps 1-3); bad ones are left out."""
        out: dict[str, dict[str, Any]] = {}
        for pdu in pdus:
            if not isinstance(pdu, dict):
                continue
            try:
                check_event_size_and_format(pdu, rv)
                event_id = compute_event_id(pdu, rv)
            except (MatrixError, KeyError, TypeError, ValueError):
                continue
            if event_id in out:
                continue
            try:
                await self.receiver.check_signatures(pdu, rv)
            except Dropped as e:
                log.info("send_join: %s dropped: %s", event_id, e)
                continue
            out[event_id] = self.receiver.check_content_hash(pdu, rv)
        return out

    async def _store_join(self, rv: RoomVersion, room_id: str, events: dict[str, dict[str, Any]],
                          rejected: dict[str, str], state: dict[tuple[str, str], str], pdu: dict[str, Any],
                          event_id: str, create: dict[str, Any]) -> StoredEvent:
        await self.ensure_room(rv, room_id, str(create.get("sender", "")))

        async with self.stores.db.room_lock(room_id):
            have = await self.stores.events.get_many(events.keys())
            missing = [(events[eid], eid, EventContext.outlier_event(rejected.get(eid)))
                       for eid in auth_order(events) if eid not in have and eid != event_id]
            for start in range(0, len(missing), 500):
                await self.persister.persist_outliers(rv, room_id, missing[start:start + 500])
            known = await self.stores.events.get(event_id)
            if known is not None and not known.outlier:
                return known
            return await self.persister.persist(rv, room_id, pdu, event_id,
                                                EventContext(state_before=None, state_snapshot=state))

    async def ensure_room(self, rv: RoomVersion, room_id: str, creator: str) -> None:
        """Register a room first heard of over federation (its version is what reads need)."""
        if await self.stores.userdata.room_version(room_id) is not None:
            return
        try:
            async with self.stores.db.transaction() as c:
                await self.stores.userdata.add_room(c, room_id, rv.identifier, creator, False,
                                                    int(time.time() * 1000))
        except Exception:
            if await self.stores.userdata.room_version(room_id) is None:
                raise  # not a concurrent registration of the same room

    # ------------------------------------------------------------------ leaving

    async def leave(self, user_id: str, room_id: str, servers: list[str], reason: str | None) -> StoredEvent:
        """Reject an invite or retract a knock through a server of the room (make_leave,
        send_leave), then record the leave here."""
        content: dict[str, Any] = {"reason": reason} if reason is not None else {}

        async def make(server: str) -> dict[str, Any]:
            return await self.peer.make_leave(server, room_id, user_id)

        async def send(server: str, rv: RoomVersion, event_id: str, pdu: dict[str, Any]) -> Any:
            return await self.peer.send_leave(server, room_id, event_id, pdu)

        rv, pdu, event_id, _ = await self._handshake("leave", room_id, user_id, "leave", content, servers, make, send,
                                                     refusals_final=False)
        return await self.record_out_of_room(rv, room_id, user_id, pdu, event_id)

    async def record_out_of_room(self, rv: RoomVersion, room_id: str, user_id: str, pdu: dict[str, Any],
                                 event_id: str) -> StoredEvent:
        """A membership event of a room we are not in (an invite received, a leave or knock sent):
        held as an outlier, with the user's membership moved to it at a new stream position so
        their syncs see the change."""
        async with self.stores.db.room_lock(room_id):
            ev = await self.stores.events.get(event_id)
            if ev is None:
                ev = await self.persister.persist(rv, room_id, pdu, event_id, EventContext.outlier_event())
            membership = pdu.get("content", {}).get("membership")
            async with self.stores.stream.write() as (c, pos):
                await self.stores.state.set_membership(c, room_id, user_id, str(membership), event_id, pos)
        if self.wake_users is not None:
            await self.wake_users([user_id])
        return ev
