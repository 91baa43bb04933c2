"""PDUs: content hashes, reference hashes (event IDs), signing, size and format checks,
and the client event format (server-server API §"Signing events", §"Event IDs")."""

from __future__ import annotations

import hashlib
from typing import Any

from homeserver.protocol.canonical import (
    encode_canonical_json,
    unpadded_b64encode,
    urlsafe_unpadded_b64encode,
)
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.redaction import redact
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.signing import SigningKey, sign_json

MAX_PDU_BYTES = 65536
MAX_ID_BYTES = 255


def compute_content_hash(pdu: dict[str, Any]) -> str:
    """sha256 of the canonical event without unsigned, signatures and hashes."""
    body = {k: v for k, v in pdu.items() if k not in ("unsigned", "signatures", "hashes")}
    return unpadded_b64encode(hashlib.sha256(encode_canonical_json(body)).digest())


def verify_content_hash(pdu: dict[str, Any]) -> bool:
    hashes = pdu.get("hashes")
    return isinstance(hashes, dict) and hashes.get("sha256") == compute_content_hash(pdu)


def compute_event_id(pdu: dict[str, Any], room_version: RoomVersion) -> str:
    """`$` + base64 of the reference hash: sha256 of the redacted event minus signatures/unsigned."""
    red = redact(pdu, room_version)
    for k in ("signatures", "unsigned"):
        red.pop(k, None)
    digest = hashlib.sha256(encode_canonical_json(red)).digest()
    if room_version.event_id_urlsafe:
        return "$" + urlsafe_unpadded_b64encode(digest)
    return "$" + unpadded_b64encode(digest)


def hash_and_sign_event(
    pdu: dict[str, Any], server_name: str, key: SigningKey, room_version: RoomVersion
) -> dict[str, Any]:
    """Set hashes.sha256, sign the redacted form, copy the signatures onto the full event."""
    out = dict(pdu)
    out["hashes"] = {"sha256": compute_content_hash(out)}
    signed = sign_json(redact(out, room_version), server_name, key)
    out["signatures"] = signed["signatures"]
    return out


def room_id_for_create_event(create_pdu: dict[str, Any], room_version: RoomVersion) -> str:
    """Room v12: the room ID is `!` + the create event's reference hash."""
    if not room_version.room_id_from_create:
        return str(create_pdu["room_id"])
    return "!" + compute_event_id(create_pdu, room_version)[1:]


def check_event_size_and_format(pdu: dict[str, Any], room_version: RoomVersion) -> None:
    """Size limits (65,536 bytes whole; 255 bytes for IDs and type/state_key) and field types."""
    for key, typ in (("type", str), ("sender", str), ("content", dict), ("origin_server_ts", int),
                     ("depth", int), ("prev_events", list), ("auth_events", list)):
        if not isinstance(pdu.get(key), typ) or isinstance(pdu.get(key), bool):
            raise MatrixError(400, "M_BAD_JSON", f"Event field '{key}' is missing or of the wrong type")
    if not (pdu.get("type") == "m.room.create" and room_version.room_id_from_create):
        if not isinstance(pdu.get("room_id"), str):
            raise MatrixError(400, "M_BAD_JSON", "Event field 'room_id' is missing")
    if "state_key" in pdu and not isinstance(pdu["state_key"], str):
        raise MatrixError(400, "M_BAD_JSON", "state_key must be a string")
    for key in ("type", "state_key", "sender", "room_id"):
        v = pdu.get(key)
        if isinstance(v, str) and len(v.encode()) > MAX_ID_BYTES:
            raise MatrixError(413, "M_TOO_LARGE", f"'{key}' is longer than {MAX_ID_BYTES} bytes")
    if len(encode_canonical_json(pdu)) > MAX_PDU_BYTES:
        raise MatrixError(413, "M_TOO_LARGE", f"Event is larger than {MAX_PDU_BYTES} bytes")


def client_event(pdu: dict[str, Any], event_id: str, *, unsigned: dict[str, Any] | None = None) -> dict[str, Any]:
    """The client format (definitions/client_event.yaml); `redacts` served both ways."""
    out: dict[str, Any] = {
        "event_id": event_id,
        "type": pdu.get("type"),
        "sender": pdu.get("sender"),
        "origin_server_ts": pdu.get("origin_server_ts"),
        "content": pdu.get("content", {}),
        "room_id": pdu.get("room_id"),
    }
    if "state_key" in pdu:
        out["state_key"] = pdu["state_key"]
    if pdu.get("type") == "m.room.redaction":
        target = pdu.get("content", {}).get("redacts", pdu.get("redacts"))
        if isinstance(target, str):
            out["redacts"] = target
            if out["content"].get("redacts") != target:
                out["content"] = {**out["content"], "redacts": target}
    if unsigned:
        out["unsigned"] = unsigned
    return out
