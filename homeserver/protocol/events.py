"""PDUs: content hashes, reference hashes (event IDs), signing, size and format checks,
and the client event format (server-server API §"Signing events", §"Event IDs")."""

from __future__ import annotations

import hashlib
from typing import Any

from homeserver.protocol.canonical import (
    MAX_SAFE_INT,
    check_canonical_values,
    encode_canonical_json,
    unpadded_b64encode,
    urlsafe_unpadded_b64encode,
)
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_event_id
from homeserver.protocol.redaction import redact
from homeserver.protocol.room_versions import RoomVersion
from homeserver.protocol.signing import SigningKey, sign_json

MAX_PDU_BYTES = 65536
MAX_ID_BYTES = 255
MAX_PREV_EVENTS = 20
MAX_AUTH_EVENTS = 10
MAX_DEPTH_V1 = 2**63 - 1  # rooms v1-v5 (definitions/pdu_v1.yaml); v6+ canonical JSON: 2^53 - 1
_REQUIRED: tuple[tuple[str, type], ...] = (
    ("type", str), ("sender", str), ("content", dict), ("origin_server_ts", int), ("depth", int),
    ("prev_events", list), ("auth_events", list), ("hashes", dict), ("signatures", dict),
)


def compute_content_hash(pdu: dict[str, Any]) -> str:
    """Unpadded base64 sha256 of the canonical event without `unsigned`, `signatures` and `hashes`
    (server-server API §Calculating the content hash for an event).

    Every other key is covered, so a caller holding a room v3+ PDU must not have added an
    informational `event_id` key (v1/v2 PDUs carry a real one, covered by the hash)."""
    body = {k: v for k, v in pdu.items() if k not in ("unsigned", "signatures", "hashes")}
    return unpadded_b64encode(hashlib.sha256(encode_canonical_json(body)).digest())


def verify_content_hash(pdu: dict[str, Any]) -> bool:
    """Whether `hashes.sha256` matches the event (server-server API §Checks performed on receipt of
    a PDU, step 3: on a mismatch the caller keeps the redacted form)."""
    hashes = pdu.get("hashes")
    return isinstance(hashes, dict) and hashes.get("sha256") == compute_content_hash(pdu)


def compute_reference_hash(pdu: dict[str, Any], room_version: RoomVersion) -> bytes:
    """sha256 of the canonical redacted event without `signatures` and `unsigned` (server-server
    API §Calculating the reference hash for an event). In v1/v2 the PDU's `event_id` is part of
    the event and so of the hash; in v3+ an informational `event_id` key is ignored."""
    red = redact(pdu, room_version)
    for k in ("signatures", "unsigned"):
        red.pop(k, None)
    if not room_version.event_id_in_pdu:
        red.pop("event_id", None)
    return hashlib.sha256(encode_canonical_json(red)).digest()


def compute_event_id(pdu: dict[str, Any], room_version: RoomVersion) -> str:
    """The event's ID. v1/v2 (rooms/fragments/v1-event-ids.md): the `event_id` the PDU carries,
    `$opaque:server`. v3+: `$` + the reference hash in unpadded base64 (rooms/v3.md §Event IDs),
    URL-safe from v4 (rooms/fragments/v4-event-ids.md)."""
    if room_version.event_id_in_pdu:
        eid = pdu.get("event_id")
        if not isinstance(eid, str) or not is_valid_event_id(eid):
            raise MatrixError(400, "M_BAD_JSON", "Room v1/v2 events need an event_id")
        return eid
    digest = compute_reference_hash(pdu, room_version)
    if room_version.event_id_urlsafe:
        return "$" + urlsafe_unpadded_b64encode(digest)
    return "$" + unpadded_b64encode(digest)


def event_refs(refs: Any) -> list[str]:
    """The event IDs of a `prev_events` or `auth_events` list in any format: plain IDs (v3+) or
    `[event_id, {"sha256": ...}]` pairs (v1/v2, definitions/pdu_v1.yaml). Malformed entries are
    skipped; check_event_size_and_format rejects them."""
    out: list[str] = []
    for r in refs if isinstance(refs, list) else []:
        if isinstance(r, str):
            out.append(r)
        elif isinstance(r, list) and r and isinstance(r[0], str):
            out.append(r[0])
    return out


def make_event_refs(room_version: RoomVersion, events: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """`prev_events`/`auth_events` for a new PDU from `(event_id, pdu)` pairs: plain IDs in v3+;
    in v1/v2 `[event_id, {"sha256": reference hash}]` pairs (definitions/pdu_v1.yaml)."""
    if not room_version.event_id_in_pdu:
        return [eid for eid, _ in events]
    return [
        [eid, {"sha256": unpadded_b64encode(compute_reference_hash(pdu, room_version))}]
        for eid, pdu in events
    ]


def hash_and_sign_event(
    pdu: dict[str, Any], server_name: str, key: SigningKey, room_version: RoomVersion
) -> dict[str, Any]:
    """Set `hashes.sha256`, sign the redacted form, copy the signatures onto the full event
    (server-server API §Signing events). Returns a new PDU; an informational `event_id` key is
    dropped except in v1/v2, where it is part of the event (and so hashed and signed)."""
    out = {k: v for k, v in pdu.items() if k != "event_id" or room_version.event_id_in_pdu}
    out["hashes"] = {"sha256": compute_content_hash(out)}
    signed = sign_json(redact(out, room_version), server_name, key)
    out["signatures"] = signed["signatures"]
    return out


def room_id_for_create_event(create_pdu: dict[str, Any], room_version: RoomVersion) -> str:
    """The room ID a create event defines: in room v12 `!` + its reference hash (the event ID with
    `!` for `$`; rooms/fragments/v12-event-format.md), else its own `room_id`."""
    if not room_version.room_id_from_create:
        return str(create_pdu["room_id"])
    return "!" + compute_event_id(create_pdu, room_version)[1:]


def _is_ref(room_version: RoomVersion, ref: Any) -> bool:
    if not room_version.event_id_in_pdu:
        return isinstance(ref, str)
    return (isinstance(ref, list) and len(ref) == 2 and isinstance(ref[0], str)
            and isinstance(ref[1], dict))


def check_event_size_and_format(pdu: dict[str, Any], room_version: RoomVersion) -> None:
    """Reject PDUs that are not valid for the room version (server-server API §Checks performed on
    receipt of a PDU, step 1; §Size limits): 413 M_TOO_LARGE beyond 65,536 bytes of canonical JSON
    or 255 bytes for `type`/`state_key`/`sender`/`room_id`; 400 M_BAD_JSON for missing or
    mistyped fields, floats or out-of-range integers (v6+ canonical JSON)."""
    if not isinstance(pdu, dict):
        raise MatrixError(400, "M_BAD_JSON", "An event must be a JSON object")
    for key, typ in _REQUIRED:
        v = pdu.get(key)
        if not isinstance(v, typ) or isinstance(v, bool):
            raise MatrixError(400, "M_BAD_JSON", f"Event field '{key}' is missing or of the wrong type")
    is_v12_create = pdu["type"] == "m.room.create" and room_version.room_id_from_create
    if not is_v12_create and not isinstance(pdu.get("room_id"), str):
        raise MatrixError(400, "M_BAD_JSON", "Event field 'room_id' is missing")
    if room_version.event_id_in_pdu:
        compute_event_id(pdu, room_version)  # raises unless a valid event_id is present
    for key, limit in (("prev_events", MAX_PREV_EVENTS), ("auth_events", MAX_AUTH_EVENTS)):
        ids = pdu[key]
        if len(ids) > limit or not all(_is_ref(room_version, i) for i in ids):
            raise MatrixError(400, "M_BAD_JSON", f"'{key}' must be at most {limit} event references")
    if not 0 <= pdu["depth"] <= (MAX_SAFE_INT if room_version.strict_canonical_json else MAX_DEPTH_V1):
        raise MatrixError(400, "M_BAD_JSON", "depth out of range")
    for key in ("state_key", "redacts"):
        if key in pdu and not isinstance(pdu[key], str):
            raise MatrixError(400, "M_BAD_JSON", f"'{key}' must be a string")
    if "unsigned" in pdu and not isinstance(pdu["unsigned"], dict):
        raise MatrixError(400, "M_BAD_JSON", "'unsigned' must be an object")
    for key in ("type", "state_key", "sender", "room_id"):
        v = pdu.get(key)
        if isinstance(v, str) and len(v.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
            raise MatrixError(413, "M_TOO_LARGE", f"'{key}' is longer than {MAX_ID_BYTES} bytes")
    if room_version.strict_canonical_json:
        check_canonical_values(pdu)
    if len(encode_canonical_json(pdu)) > MAX_PDU_BYTES:
        raise MatrixError(413, "M_TOO_LARGE", f"Event is larger than {MAX_PDU_BYTES} bytes")


def client_event(pdu: dict[str, Any], event_id: str, *, unsigned: dict[str, Any] | None = None) -> dict[str, Any]:
    """The client format (client-server API §Room Event Format, definitions/client_event.yaml):
    no federation-only keys; `redacts` of m.room.redaction served both top-level and in `content`
    for every room version (rooms/v11.md §Event format)."""
    raw_content = pdu.get("content")
    content = raw_content if isinstance(raw_content, dict) else {}
    room_id = pdu.get("room_id")
    if room_id is None and pdu.get("type") == "m.room.create" and event_id.startswith("$"):
        room_id = "!" + event_id[1:]  # a v12 create event names its room by its own ID
    out: dict[str, Any] = {
        "event_id": event_id,
        "type": pdu.get("type"),
        "sender": pdu.get("sender"),
        "origin_server_ts": pdu.get("origin_server_ts"),
        "content": content,
        "room_id": room_id,
    }
    if "state_key" in pdu:
        out["state_key"] = pdu["state_key"]
    if pdu.get("type") == "m.room.redaction":
        target = content.get("redacts", pdu.get("redacts"))
        if isinstance(target, str):
            out["redacts"] = target
            if out["content"].get("redacts") != target:
                out["content"] = {**out["content"], "redacts": target}
    if unsigned:
        out["unsigned"] = unsigned
    return out
