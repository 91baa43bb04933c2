"""Authorization rules for room versions 1 to 12 and the auth events selection (server-server
API §Auth events selection). The rule sets: rooms/fragments/v1-auth-rules.md (rooms v1, v2),
v3-auth-rules.md (v3-v5), rooms/v6.md, v7.md (knocking), fragments/v8-auth-rules.md (v8, v9:
restricted joins), rooms/v10.md (integer power levels, knock_restricted), v11.md, v12.md. The
differences are flags of RoomVersion; rule numbers below are those of v10/v11.

Signatures are the caller's business (they need keys, which is I/O); everything else here is a
pure function of the event and the state it is checked against.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.protocol.errors import AuthError, MatrixError
from homeserver.protocol.events import compute_event_id, event_refs
from homeserver.protocol.ids import is_valid_user_id, server_name_of
from homeserver.protocol.power_levels import (
    check_power_levels_event,
    event_required_level,
    named_level,
    user_power_level,
)
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.protocol.signing import verify_json_signature

StateKey = tuple[str, str]


def _content(event: Mapping[str, Any] | None) -> dict[str, Any]:
    c = event.get("content") if event is not None else None
    return c if isinstance(c, dict) else {}


def _event_id(rv: RoomVersion, event: dict[str, Any]) -> str:
    """The event's ID: the informational `event_id` key when present, else computed."""
    eid = event.get("event_id")
    if isinstance(eid, str):
        return eid
    try:
        return compute_event_id(event, rv)
    except MatrixError as e:  # not canonical-JSON encodable: cannot be a valid create event
        raise AuthError(f"Malformed create event: {e.error}") from None


def _creator(rv: RoomVersion, create: dict[str, Any]) -> Any:
    """"The creator" of rule 4.3.1: `content.creator` in v10, the create `sender` from v11."""
    if rv.create_has_creator:
        return _content(create).get("creator", create.get("sender"))
    return create.get("sender")


def _domain(user_id: Any) -> str | None:
    try:
        return server_name_of(str(user_id))
    except ValueError:
        return None


def auth_types_for_event(room_version: RoomVersion, event: dict[str, Any]) -> list[StateKey]:
    """The `(type, state_key)` pairs an event's `auth_events` may hold (server-server API §Auth
    events selection): the create event (v10/v11 only), power levels, the sender's membership,
    and for m.room.member the target's membership, join rules (join/invite/knock), the
    third-party invite named by the token, and the authorising user of a restricted join."""
    if event.get("type") == "m.room.create":
        return []
    keys: list[StateKey] = []
    if not room_version.room_id_from_create:
        keys.append(("m.room.create", ""))
    keys.append(("m.room.power_levels", ""))
    sender = event.get("sender")
    if isinstance(sender, str):
        keys.append(("m.room.member", sender))
    if event.get("type") == "m.room.member":
        raw_content = event.get("content")
        content = raw_content if isinstance(raw_content, dict) else {}
        target = event.get("state_key")
        if isinstance(target, str) and ("m.room.member", target) not in keys:
            keys.append(("m.room.member", target))
        membership = content.get("membership")
        if membership in ("join", "invite", "knock"):
            keys.append(("m.room.join_rules", ""))
        tpi = content.get("third_party_invite")
        if membership == "invite" and isinstance(tpi, dict):
            signed = tpi.get("signed")
            if isinstance(signed, dict) and isinstance(signed.get("token"), str):
                keys.append(("m.room.third_party_invite", signed["token"]))
        via = content.get("join_authorised_via_users_server")
        if membership == "join" and room_version.restricted_join_rule and isinstance(via, str) \
                and ("m.room.member", via) not in keys:
            keys.append(("m.room.member", via))
    return keys


def check_auth_events_structure(
    room_version: RoomVersion, event: dict[str, Any], auth_events: list[dict[str, Any]]
) -> None:
    """Auth rule 2 (v10/v11) / 3 (v12): the event's own `auth_events` hold no duplicate
    `(type, state_key)`, nothing the auth events selection would not pick, nothing rejected (an
    informational `"rejected": True` key), nothing from another room, and (before v12) the create
    event, which v12 forbids."""
    allowed = set(auth_types_for_event(room_version, event))
    seen: set[StateKey] = set()
    has_create = False
    for ae in auth_events:
        if not isinstance(ae, dict):
            raise AuthError("Malformed auth event")
        key = (str(ae.get("type")), str(ae.get("state_key")))
        if key in seen:
            raise AuthError(f"Duplicate auth event {key}")
        seen.add(key)
        if key == ("m.room.create", ""):
            if room_version.room_id_from_create:
                raise AuthError("Room v12 events must not list the create event in auth_events")
            has_create = True
        if key not in allowed:
            raise AuthError(f"Unexpected auth event {key}")
        if ae.get("rejected"):
            raise AuthError(f"Auth event {key} was rejected")
        if ae.get("room_id") != event.get("room_id"):
            raise AuthError("Auth event from another room")
    if not room_version.room_id_from_create and not has_create:
        raise AuthError("No m.room.create event in auth_events")


def _membership(state: Mapping[StateKey, dict[str, Any]], user: Any) -> str:
    ev = state.get(("m.room.member", str(user)))
    if ev is None:
        return "leave"
    m = _content(ev).get("membership")
    return m if isinstance(m, str) else "leave"


def _check_create(room_version: RoomVersion, event: dict[str, Any]) -> None:
    if event.get("prev_events"):
        raise AuthError("m.room.create must have no prev_events")
    content = _content(event)
    if room_version.room_id_from_create:
        if "room_id" in event:
            raise AuthError("Room v12 create events have no room_id")
        extra = content.get("additional_creators")
        if extra is not None and (not isinstance(extra, list) or not all(
                isinstance(u, str) and is_valid_user_id(u) for u in extra)):
            raise AuthError("additional_creators must be a list of user IDs")
    elif _domain(event.get("room_id")) != _domain(event.get("sender")):
        raise AuthError("Room ID and sender domains differ")
    if "room_version" in content:
        version = content["room_version"]
        if not isinstance(version, str) or version not in KNOWN_ROOM_VERSIONS:
            raise AuthError(f"Unknown room version {version!r}")
    if room_version.create_has_creator and "creator" not in content:
        raise AuthError("m.room.create needs a creator")


def check_auth(
    room_version: RoomVersion,
    event: dict[str, Any],
    auth_state: Mapping[StateKey, dict[str, Any]],
    *,
    create_event: dict[str, Any] | None = None,
) -> None:
    """Run the authorization rules of the room version (see the module docstring) for `event`
    against `auth_state`, a map `(type, state_key) -> PDU` (e.g. the state before the event, or
    the event's own auth events). Raises `AuthError` to reject; returns None to allow.

    Signature checks (rule 4.2 and "signed by the sender's server") are the caller's. For v12 the
    create event comes from `create_event` (or `auth_state` as a fallback); for v1-v11 from
    `auth_state[("m.room.create", "")]`, with `create_event` as a fallback. `event_id` keys on the
    dicts are trusted when present, otherwise IDs are computed."""
    etype = event.get("type")
    sender = event.get("sender")
    if not isinstance(sender, str) or not isinstance(etype, str):
        raise AuthError("Event needs a type and a sender")
    if not isinstance(event.get("content"), dict):
        raise AuthError("Event content must be an object")
    if etype == "m.room.create":
        _check_create(room_version, event)
        return
    in_state = auth_state.get(("m.room.create", ""))
    if room_version.room_id_from_create:
        create = create_event if create_event is not None else in_state
    else:
        create = in_state if in_state is not None else create_event
    if not isinstance(create, dict) or create.get("type") != "m.room.create":
        raise AuthError("No create event")
    if room_version.room_id_from_create:
        if event.get("room_id") != "!" + _event_id(room_version, create)[1:]:
            raise AuthError("room_id does not match the create event")
    if _content(create).get("m.federate", True) is False and _domain(sender) != _domain(create.get("sender")):
        raise AuthError("This room does not federate")
    if etype == "m.room.aliases" and room_version.special_case_aliases_auth:
        # v1-v5 rule 4: a server may only set the aliases under its own name (v6+: an ordinary
        # state event).
        if not isinstance(event.get("state_key"), str):
            raise AuthError("m.room.aliases needs a state_key")
        if _domain(sender) != event["state_key"]:
            raise AuthError("m.room.aliases state_key must be the sender's server")
        return

    pl_ev = auth_state.get(("m.room.power_levels", ""))
    pl = pl_ev.get("content") if pl_ev is not None else None
    if pl is not None and not isinstance(pl, dict):
        pl = {}

    def level(user: Any) -> int | float:
        return user_power_level(room_version, create, pl, str(user))

    if etype == "m.room.member":
        _check_member(room_version, event, auth_state, create, pl, level)
        return

    if _membership(auth_state, sender) != "join":
        raise AuthError("Sender is not joined to the room")
    if etype == "m.room.third_party_invite":
        if level(sender) < named_level(pl, "invite"):
            raise AuthError("Sender may not invite")
        return
    state_key = event.get("state_key")
    if level(sender) < event_required_level(pl, etype, state_key is not None):
        raise AuthError(f"Sender lacks the power to send {etype}")
    if isinstance(state_key, str) and state_key.startswith("@") and state_key != sender:
        raise AuthError("State keys starting with @ are reserved for that user")
    if etype == "m.room.power_levels":
        check_power_levels_event(room_version, event, create, pl, level(sender))
    elif etype == "m.room.redaction" and room_version.special_case_redaction_auth:
        _check_redaction_v1(event, pl, level(sender))


def _check_redaction_v1(event: dict[str, Any], pl: dict[str, Any] | None, sender_level: int | float) -> None:
    """Rooms v1/v2 rule 11 (rooms/fragments/v1-auth-rules.md): a redaction is allowed if the sender
    has the redact level, or if its event ID and the redacted event's ID share a domain. (From v3
    the redact level is a question of applying the redaction, not of auth: v3-handling-redactions.)"""
    if sender_level >= named_level(pl, "redact"):
        return
    own, target = event.get("event_id"), event.get("redacts")
    if isinstance(own, str) and isinstance(target, str) and _domain(own) is not None \
            and _domain(own) == _domain(target):
        return
    raise AuthError("Sender may not redact this event")


def _check_member(
    rv: RoomVersion, event: dict[str, Any], state: Mapping[StateKey, dict[str, Any]],
    create: dict[str, Any], pl: dict[str, Any] | None, level: Any,
) -> None:
    sender = event["sender"]
    target = event.get("state_key")
    content = event["content"]
    membership = content.get("membership")
    if not isinstance(target, str) or not isinstance(membership, str):
        raise AuthError("m.room.member needs a state_key and a membership")
    sender_m = _membership(state, sender)
    target_m = _membership(state, target)
    # No join rules event: treated as "invite", as Synapse does (the spec only says "otherwise").
    join_rule = _content(state.get(("m.room.join_rules", ""))).get("join_rule", "invite")

    if membership == "join":
        prevs = event_refs(event.get("prev_events"))
        if len(prevs) == 1 and target == _creator(rv, create) and prevs[0] == _event_id(rv, create):
            return
        if sender != target:
            raise AuthError("Cannot make another user join")
        if sender_m == "ban":
            raise AuthError("Sender is banned")
        if join_rule == "invite" or (join_rule == "knock" and rv.knock_join_rule):
            if sender_m in ("invite", "join"):
                return
            raise AuthError("The room is invite-only")
        if (join_rule == "restricted" and rv.restricted_join_rule) or \
                (join_rule == "knock_restricted" and rv.knock_restricted_supported):
            if sender_m in ("invite", "join"):
                return
            via = content.get("join_authorised_via_users_server")
            if not isinstance(via, str) or _membership(state, via) != "join" \
                    or level(via) < named_level(pl, "invite"):
                raise AuthError("Join is not authorised by a member with invite power")
            return
        if join_rule == "public":
            return
        raise AuthError("Cannot join this room")

    if membership == "invite":
        tpi = content.get("third_party_invite")
        if tpi is not None:
            _check_third_party_invite(tpi, target, target_m, sender, state)
            return
        if sender_m != "join":
            raise AuthError("Sender is not joined to the room")
        if target_m in ("join", "ban"):
            raise AuthError(f"Target is already {target_m}")
        if level(sender) >= named_level(pl, "invite"):
            return
        raise AuthError("Sender lacks the power to invite")

    if membership == "leave":
        if sender == target:
            if sender_m in ("invite", "join") or (sender_m == "knock" and rv.knock_join_rule):
                return
            raise AuthError("Sender is not in the room")
        if sender_m != "join":
            raise AuthError("Sender is not joined to the room")
        if target_m == "ban" and level(sender) < named_level(pl, "ban"):
            raise AuthError("Sender lacks the power to unban")
        if level(sender) >= named_level(pl, "kick") and level(target) < level(sender):
            return
        raise AuthError("Sender lacks the power to kick this user")

    if membership == "ban":
        if sender_m != "join":
            raise AuthError("Sender is not joined to the room")
        if level(sender) >= named_level(pl, "ban") and level(target) < level(sender):
            return
        raise AuthError("Sender lacks the power to ban this user")

    if membership == "knock" and rv.knock_join_rule:
        if join_rule != "knock" and not (join_rule == "knock_restricted" and rv.knock_restricted_supported):
            raise AuthError("This room does not accept knocks")
        if sender != target:
            raise AuthError("Cannot knock for another user")
        if sender_m not in ("ban", "invite", "join"):
            return
        raise AuthError(f"Cannot knock while {sender_m}")

    raise AuthError(f"Unknown membership {membership!r}")


def _check_third_party_invite(
    tpi: Any, target: str, target_m: str, sender: str, state: Mapping[StateKey, dict[str, Any]]
) -> None:
    if target_m == "ban":
        raise AuthError("Target is banned")
    if not isinstance(tpi, dict) or not isinstance(tpi.get("signed"), dict):
        raise AuthError("third_party_invite needs 'signed'")
    signed = tpi["signed"]
    mxid, token = signed.get("mxid"), signed.get("token")
    if not isinstance(mxid, str) or not isinstance(token, str):
        raise AuthError("signed needs mxid and token")
    if mxid != target:
        raise AuthError("mxid does not match the state_key")
    tp_ev = state.get(("m.room.third_party_invite", token))
    if tp_ev is None:
        raise AuthError("No matching m.room.third_party_invite")
    if tp_ev.get("sender") != sender:
        raise AuthError("Sender differs from the third-party invite's sender")
    tp_content = _content(tp_ev)
    keys = []
    if isinstance(tp_content.get("public_key"), str):
        keys.append(tp_content["public_key"])
    public_keys = tp_content.get("public_keys")
    for entry in public_keys if isinstance(public_keys, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("public_key"), str):
            keys.append(entry["public_key"])
    sigs = signed.get("signatures")
    if not isinstance(sigs, dict):
        raise AuthError("signed has no signatures")
    for server, by_key in sigs.items():
        if not isinstance(by_key, dict):
            continue
        for kid in by_key:
            for pk in keys:
                try:
                    verify_json_signature(signed, server, kid, pk)
                    return
                except MatrixError:
                    continue
    raise AuthError("No valid signature on the third-party invite")
