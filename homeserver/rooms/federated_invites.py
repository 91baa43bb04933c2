"""Invites across servers (server-server API "Inviting to a room", v2 `PUT /invite`).

Inbound: another server's user invites one of ours; the event is checked (format, signature,
content hash, that it invites a local user and comes from the origin's user), countersigned, and
held as an outlier with the stripped room state it came with, so the invitee's sync lists it.
Outbound: one of ours invites a user of another server; the signed event goes to the invitee's
server first, and its countersigned copy is what the room stores.
"""

from __future__ import annotations

from typing import Any, Protocol

from homeserver.events.receiver import Dropped, EventReceiver
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.events import check_event_size_and_format, compute_event_id
from homeserver.protocol.ids import server_name_of
from homeserver.protocol.redaction import redact
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.protocol.signing import SigningKey, sign_json, verify_json_signature
from homeserver.rooms.membership_peer import stripped_events
from homeserver.rooms.remote_membership import RemoteMembership
from homeserver.rooms.serialize import stripped_state
from homeserver.storage.stores import Stores

#: The room state an invite carries, as the spec recommends.
INVITE_STATE_TYPES = ("m.room.create", "m.room.name", "m.room.avatar", "m.room.topic", "m.room.join_rules",
                      "m.room.canonical_alias", "m.room.encryption")


class InvitePeer(Protocol):
    async def invite(self, destination: str, room_id: str, event_id: str, room_version: str,
                     pdu: dict[str, Any], invite_room_state: list[dict[str, Any]]) -> dict[str, Any]: ...


class FederatedInvites:
    def __init__(self, stores: Stores, server_name: str, signing_key: SigningKey, receiver: EventReceiver,
                 remote: RemoteMembership, peer: InvitePeer) -> None:
        self.stores = stores
        self.server_name = server_name
        self.signing_key = signing_key
        self.receiver = receiver
        self.remote = remote
        self.peer = peer

    def countersign(self, pdu: dict[str, Any], rv: RoomVersion) -> dict[str, Any]:
        """The event with this server's signature added (over its redacted form)."""
        signed = sign_json(redact(pdu, rv), self.server_name, self.signing_key)
        sigs = {k: dict(v) for k, v in pdu.get("signatures", {}).items() if isinstance(v, dict)}
        sigs.setdefault(self.server_name, {}).update(signed["signatures"][self.server_name])
        return {**pdu, "signatures": sigs}

    # ------------------------------------------------------------------ inbound

    async def receive(self, origin: str, room_id: str, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        version = body.get("room_version")
        rv = KNOWN_ROOM_VERSIONS.get(version) if isinstance(version, str) else None
        if rv is None:
            raise MatrixError(400, "M_INCOMPATIBLE_ROOM_VERSION", f"Room version {version!r} is not supported",
                              room_version=str(version))
        pdu = body.get("event")
        if not isinstance(pdu, dict):
            raise MatrixError(400, "M_BAD_JSON", "'event' must be an object")
        try:
            check_event_size_and_format(pdu, rv)
            computed = compute_event_id(pdu, rv)
        except (MatrixError, KeyError, TypeError, ValueError):
            raise MatrixError(400, "M_BAD_JSON", "Malformed invite event") from None
        if computed != event_id or pdu.get("room_id") != room_id:
            raise MatrixError(400, "M_BAD_JSON", "The event does not match the path")
        content = pdu.get("content")
        target = pdu.get("state_key")
        sender = pdu.get("sender")
        if pdu.get("type") != "m.room.member" or not isinstance(content, dict) \
                or content.get("membership") != "invite" or not isinstance(target, str):
            raise MatrixError(400, "M_BAD_JSON", "Expected an invite event")
        if not isinstance(sender, str) or server_name_of(sender) != origin:
            raise MatrixError(403, "M_FORBIDDEN", "The inviter is not a user of the sending server")
        if server_name_of(target) != self.server_name or await self.stores.accounts.get_user(target) is None:
            raise MatrixError(404, "M_NOT_FOUND", "The invited user is not a user of this server")
        known = await self.stores.userdata.room_version(room_id)
        if known is not None and known != rv.identifier:
            raise MatrixError(400, "M_BAD_JSON", "The room version does not match the room")
        try:
            await self.receiver.check_signatures(pdu, rv)
        except Dropped as e:
            raise MatrixError(403, "M_FORBIDDEN", f"The invite's signature does not verify: {e}") from None
        if self.receiver.check_content_hash(pdu, rv) is not pdu:
            raise MatrixError(400, "M_BAD_JSON", "The invite's content hash does not match")
        signed = self.countersign(pdu, rv)
        stripped = stripped_events(body.get("invite_room_state"))
        current = await self.stores.state.membership(room_id, target)
        if current is not None and current[0] in ("join", "ban") and await self.remote.host_in_room(room_id):
            raise MatrixError(403, "M_FORBIDDEN", f"The user is already {current[0]} in the room")
        await self.remote.ensure_room(rv, room_id, sender)
        async with self.stores.db.transaction() as c:
            await self.stores.membership_state.put(c, event_id, room_id, stripped)
        if not await self.remote.host_in_room(room_id):
            await self.remote.record_out_of_room(rv, room_id, target, signed, event_id)
        return {"event": signed}

    # ------------------------------------------------------------------ outbound

    async def countersigned_by_invitee(self, rv: RoomVersion, pdu: dict[str, Any]) -> dict[str, Any]:
        """Send a signed invite of a remote user to their server; their countersigned copy."""
        target = str(pdu.get("state_key", ""))
        room_id = str(pdu["room_id"])
        event_id = compute_event_id(pdu, rv)
        ids = await self.stores.state.current_ids(room_id, [(t, "") for t in INVITE_STATE_TYPES])
        evs = await self.stores.events.get_many(ids.values())
        stripped = [stripped_state(e) for e in evs.values()]
        try:
            answer = await self.peer.invite(server_name_of(target), room_id, event_id, rv.identifier, pdu, stripped)
        except MatrixError as e:
            if getattr(e, "remote_status", None) in (400, 403):  # the invitee's server said no
                body = getattr(e, "remote_body", None)
                why = body.get("error") if isinstance(body, dict) else None
                raise MatrixError(403, "M_FORBIDDEN", f"The invitee's server refused the invite: {why}") from None
            raise
        signed = answer.get("event")
        if not isinstance(signed, dict) or compute_event_id(signed, rv) != event_id:
            raise MatrixError(502, "M_UNKNOWN", "The invitee's server answered with another event")
        try:
            await self.receiver.check_signatures(signed, rv)
        except Dropped as e:
            raise MatrixError(502, "M_UNKNOWN", f"The invitee's server's signature does not verify: {e}") from None
        await self._check_invitee_signature(rv, signed, server_name_of(target))
        return signed

    async def _check_invitee_signature(self, rv: RoomVersion, signed: dict[str, Any], server: str) -> None:
        sigs = signed.get("signatures")
        theirs = sigs.get(server) if isinstance(sigs, dict) else None
        kids = [k for k in theirs if isinstance(k, str)] if isinstance(theirs, dict) else []
        ts = signed.get("origin_server_ts")
        keys = await self.receiver.keys.verify_keys(server, kids, ts if isinstance(ts, int) else 0)
        redacted = redact(signed, rv)
        redacted["signatures"] = sigs
        for kid, key in keys.items():
            try:
                verify_json_signature(redacted, server, kid, key)
                return
            except MatrixError:  # try the next key
                continue
        raise MatrixError(502, "M_UNKNOWN", "The invitee's server did not sign the invite")

