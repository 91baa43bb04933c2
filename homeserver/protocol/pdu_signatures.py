"""Which servers must have signed a PDU, and checking those signatures (server-server API,
"Validating hashes and signatures on received events"; "Checks performed on receipt of a PDU",
step 2). Pure: the verify keys are handed in.

Signatures cover the *redacted* event, so that a redacted copy still verifies. The servers
that must sign: the sender's server, and for a restricted join (room v8+) the server of the user
named in `join_authorised_via_users_server`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.redaction import redact
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.signing import verify_json_signature


def server_of(user_id: Any) -> str | None:
    if not isinstance(user_id, str) or ":" not in user_id:
        return None
    return user_id.split(":", 1)[1]


def required_signers(pdu: Mapping[str, Any]) -> set[str]:
    servers = {s for s in (server_of(pdu.get("sender")),) if s}
    content = pdu.get("content")
    if pdu.get("type") == "m.room.member" and isinstance(content, dict) \
            and content.get("membership") == "join":
        via = server_of(content.get("join_authorised_via_users_server"))
        if via:
            servers.add(via)
    return servers


def verify_pdu_signatures(
    pdu: dict[str, Any], rv: RoomVersion, keys: Mapping[str, Mapping[str, str]]
) -> None:
    """Every required server has a valid signature by one of its keys in `keys[server]`
    (key ID -> unpadded base64 verify key). Raises 401 M_UNAUTHORIZED otherwise."""
    redacted = redact(pdu, rv)
    if not rv.event_id_in_pdu:  # v1/v2 events carry their ID, which the signature covers
        redacted.pop("event_id", None)
    signatures = pdu.get("signatures")
    if not isinstance(signatures, dict):
        raise MatrixError(401, "M_UNAUTHORIZED", "The event carries no signatures")
    redacted["signatures"] = signatures
    for server in required_signers(pdu):
        theirs = signatures.get(server)
        if not isinstance(theirs, dict) or not theirs:
            raise MatrixError(401, "M_UNAUTHORIZED", f"Not signed by {server}")
        known = keys.get(server, {})
        usable = [k for k in theirs if k in known]
        if not usable:
            raise MatrixError(401, "M_UNAUTHORIZED", f"No known key of {server} signed the event")
        verify_json_signature(redacted, server, usable[0], known[usable[0]])
