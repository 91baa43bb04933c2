"""Room versions 1 to 12 (spec: rooms/v1.md ... rooms/v12.md).

Each version is a set of flags; the algorithms in protocol/ branch on the flags, never on the
version string, so a difference between two versions is always named here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, kw_only=True)
class RoomVersion:
    identifier: str
    # Event IDs (rooms/fragments/v1-event-ids.md, v3.md §Event IDs, v4-event-ids.md): v1/v2
    # events carry a server-chosen `$opaque:server` ID in the PDU and reference other events as
    # `[event_id, {"sha256": ...}]` pairs; v3+ IDs are the reference hash and references are
    # plain IDs, in standard base64 in v3 and URL-safe base64 from v4.
    event_id_in_pdu: bool
    event_id_urlsafe: bool
    # Labels of the spec's rule sets, for messages and logs only (code tests the flags below).
    redaction_rules: str  # "v1", "v6", "v8", "v9" or "v11"
    auth_rules: str  # "v1", "v3", "v6", "v7", "v8", "v10", "v11" or "v12"
    # "v1" (room v1), "v2" (rooms v2-v11) or "v2.1" (room v12).
    state_res: str
    # Redaction algorithm (fragments v1-, v6-, v9-, v11-redactions.md; rooms/v8.md §Redactions).
    redaction_keeps_aliases: bool  # v1-v5: m.room.aliases keeps `aliases`
    redaction_keeps_join_rules_allow: bool  # v8+: m.room.join_rules keeps `allow`
    redaction_keeps_authorising_user: bool  # v9+: member keeps join_authorised_via_users_server
    updated_redaction_rules: bool  # v11+: the v11 algorithm (rooms/fragments/v11-redactions.md)
    # Authorization rules.
    special_case_aliases_auth: bool  # v1-v5: rule 4 for m.room.aliases
    special_case_redaction_auth: bool  # v1-v2: rule 11 for m.room.redaction (by event ID domain)
    limit_notifications_power_levels: bool  # v6+: `notifications` checked like `events`
    knock_join_rule: bool  # v7+: membership `knock`, join rule `knock`
    restricted_join_rule: bool  # v8+: join rule `restricted`, join_authorised_via_users_server
    knock_restricted_supported: bool  # v10+: join rule `knock_restricted`
    integer_power_levels: bool  # v10+: power levels must be integers (no strings)
    create_has_creator: bool  # v1-v10: m.room.create content carries `creator`
    room_id_from_create: bool  # v12: room ID = create event's reference hash
    creators_infinite_pl: bool  # v12: creators have infinite, immutable power
    # Event format.
    strict_canonical_json: bool  # v6+: floats and out-of-range integers are invalid
    enforce_key_validity: bool  # v5+: signing keys must be valid at origin_server_ts
    redacts_in_content: bool  # v11+: m.room.redaction carries `redacts` in content only


V1 = RoomVersion(
    identifier="1", event_id_in_pdu=True, event_id_urlsafe=False,
    redaction_rules="v1", auth_rules="v1", state_res="v1",
    redaction_keeps_aliases=True, redaction_keeps_join_rules_allow=False,
    redaction_keeps_authorising_user=False, updated_redaction_rules=False,
    special_case_aliases_auth=True, special_case_redaction_auth=True,
    limit_notifications_power_levels=False, knock_join_rule=False, restricted_join_rule=False,
    knock_restricted_supported=False, integer_power_levels=False, create_has_creator=True,
    room_id_from_create=False, creators_infinite_pl=False,
    strict_canonical_json=False, enforce_key_validity=False, redacts_in_content=False,
)
V2 = replace(V1, identifier="2", state_res="v2")
V3 = replace(V2, identifier="3", event_id_in_pdu=False, auth_rules="v3", special_case_redaction_auth=False)
V4 = replace(V3, identifier="4", event_id_urlsafe=True)
V5 = replace(V4, identifier="5", enforce_key_validity=True)
V6 = replace(
    V5, identifier="6", redaction_rules="v6", auth_rules="v6", redaction_keeps_aliases=False,
    special_case_aliases_auth=False, limit_notifications_power_levels=True, strict_canonical_json=True,
)
V7 = replace(V6, identifier="7", auth_rules="v7", knock_join_rule=True)
V8 = replace(
    V7, identifier="8", redaction_rules="v8", auth_rules="v8", redaction_keeps_join_rules_allow=True,
    restricted_join_rule=True,
)
V9 = replace(V8, identifier="9", redaction_rules="v9", redaction_keeps_authorising_user=True)
V10 = replace(
    V9, identifier="10", auth_rules="v10", knock_restricted_supported=True, integer_power_levels=True,
)
V11 = replace(
    V10, identifier="11", redaction_rules="v11", auth_rules="v11", updated_redaction_rules=True,
    create_has_creator=False, redacts_in_content=True,
)
V12 = replace(
    V11, identifier="12", auth_rules="v12", state_res="v2.1", room_id_from_create=True,
    creators_infinite_pl=True,
)

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    rv.identifier: rv for rv in (V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12)
}
DEFAULT_ROOM_VERSION = "12"
