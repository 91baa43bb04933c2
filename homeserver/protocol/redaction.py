"""The redaction algorithm (rooms/fragments v9-redactions.md and v11-redactions.md)."""

from __future__ import annotations

from typing import Any

from homeserver.protocol.room_versions import RoomVersion

_TOP_V11 = {
    "event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures",
    "depth", "prev_events", "auth_events", "origin_server_ts",
}
_TOP_V9 = _TOP_V11 | {"origin", "membership", "prev_state"}

_PL_V9 = ("ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default")


def _content_keys(event_type: str, rules: str) -> tuple[str, ...] | None:
    """Keys of `content` kept for this type; None means keep all."""
    if event_type == "m.room.member":
        return ("membership", "join_authorised_via_users_server", "third_party_invite") if rules == "v11" \
            else ("membership", "join_authorised_via_users_server")
    if event_type == "m.room.create":
        return None if rules == "v11" else ("creator",)
    if event_type == "m.room.join_rules":
        return ("join_rule", "allow")
    if event_type == "m.room.power_levels":
        return _PL_V9 + ("invite",) if rules == "v11" else _PL_V9
    if event_type == "m.room.history_visibility":
        return ("history_visibility",)
    if event_type == "m.room.redaction" and rules == "v11":
        return ("redacts",)
    return ()


def redact(event: dict[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """A redacted copy of `event` (rooms/fragments/v9-redactions.md for room v10,
    v11-redactions.md for rooms v11 and v12).

    `unsigned` is dropped (the caller adds `unsigned.redacted_because` when serving clients);
    an `event_id` key, if present, is kept."""
    rules = room_version.redaction_rules
    top = _TOP_V11 if rules == "v11" else _TOP_V9
    out = {k: v for k, v in event.items() if k in top}
    content = event.get("content")
    content = content if isinstance(content, dict) else {}
    keep = _content_keys(str(event.get("type")), rules)
    if keep is None:
        new_content = dict(content)
    else:
        new_content = {k: content[k] for k in keep if k in content}
    if rules == "v11" and event.get("type") == "m.room.member" and "third_party_invite" in new_content:
        tpi = new_content["third_party_invite"]
        if isinstance(tpi, dict) and "signed" in tpi:
            new_content["third_party_invite"] = {"signed": tpi["signed"]}
        else:
            del new_content["third_party_invite"]
    out["content"] = new_content
    return out
