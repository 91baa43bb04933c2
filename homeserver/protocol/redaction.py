"""The redaction algorithm (rooms/fragments/v1-redactions.md, v6-redactions.md, v9-redactions.md,
v11-redactions.md; rooms/v8.md §Redactions)."""

from __future__ import annotations

from typing import Any

from homeserver.protocol.room_versions import RoomVersion

_TOP_V11 = {
    "event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures",
    "depth", "prev_events", "auth_events", "origin_server_ts",
}
_TOP_V1 = _TOP_V11 | {"origin", "membership", "prev_state"}

_PL_V1 = ("ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default")


def _content_keys(event_type: str, rv: RoomVersion) -> tuple[str, ...] | None:
    """Keys of `content` kept for this type; None means keep all."""
    v11 = rv.updated_redaction_rules
    if event_type == "m.room.member":
        keys: tuple[str, ...] = ("membership",)
        if rv.redaction_keeps_authorising_user:
            keys += ("join_authorised_via_users_server",)
        return keys + ("third_party_invite",) if v11 else keys
    if event_type == "m.room.create":
        return None if v11 else ("creator",)
    if event_type == "m.room.join_rules":
        return ("join_rule", "allow") if rv.redaction_keeps_join_rules_allow else ("join_rule",)
    if event_type == "m.room.power_levels":
        return _PL_V1 + ("invite",) if v11 else _PL_V1
    if event_type == "m.room.history_visibility":
        return ("history_visibility",)
    if event_type == "m.room.aliases" and rv.redaction_keeps_aliases:
        return ("aliases",)
    if event_type == "m.room.redaction" and v11:
        return ("redacts",)
    return ()


def redact(event: dict[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """A redacted copy of `event` under the room version's rules: v1-v5 keep m.room.aliases
    `aliases` (v1-redactions.md), v6-v7 drop it (v6-redactions.md), v8 keeps join rules `allow`
    (rooms/v8.md), v9-v10 keep `join_authorised_via_users_server` (v9-redactions.md), v11-v12
    use v11-redactions.md (fewer top-level keys, all create content, power levels `invite`,
    member `third_party_invite.signed`, redaction `redacts`).

    `unsigned` is dropped (the caller adds `unsigned.redacted_because` when serving clients);
    an `event_id` key, if present, is kept (v1/v2 PDUs carry one)."""
    v11 = room_version.updated_redaction_rules
    top = _TOP_V11 if v11 else _TOP_V1
    out = {k: v for k, v in event.items() if k in top}
    content = event.get("content")
    content = content if isinstance(content, dict) else {}
    keep = _content_keys(str(event.get("type")), room_version)
    if keep is None:
        new_content = dict(content)
    else:
        new_content = {k: content[k] for k in keep if k in content}
    if v11 and event.get("type") == "m.room.member" and "third_party_invite" in new_content:
        tpi = new_content["third_party_invite"]
        if isinstance(tpi, dict) and "signed" in tpi:
            new_content["third_party_invite"] = {"signed": tpi["signed"]}
        else:
            del new_content["third_party_invite"]
    out["content"] = new_content
    return out
