"""The spec response validator must accept good shapes and catch bad ones, or the API tests
that rely on it prove nothing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests import spec_schema
from tests.spec_schema import find_operations, validate_response

V1 = "/_matrix/client/v1"
V3 = "/_matrix/client/v3"
ROOM = "!abc:localhost"


def _invalid(method: str, path: str, status: int, body: object) -> str:
    with pytest.raises(AssertionError) as info:
        validate_response(method, path, status, body)
    return str(info.value)


def _op_ids(method: str, path: str) -> list[str]:
    return sorted(op.operation_id for op in find_operations(method, path))


def _event(**extra: Any) -> dict[str, Any]:
    """A room event in client format (as in /sync, without room_id)."""
    ev = {"event_id": "$ev1:localhost", "type": "m.room.message", "sender": "@alice:localhost",
          "origin_server_ts": 1_700_000_000_000, "content": {"msgtype": "m.text", "body": "hi"},
          "unsigned": {"age": 12}}
    ev.update(extra)
    return ev


# --------------------------------------------------------------------------- simple bodies


def test_whoami() -> None:
    path = f"{V3}/account/whoami"
    validate_response("GET", path, 200, {"user_id": "@alice:localhost", "device_id": "DEV"})
    validate_response("get", path, 200, {"user_id": "@alice:localhost"})  # method case-insensitive
    msg = _invalid("GET", path, 200, {"device_id": "DEV"})
    assert "getTokenOwner" in msg and "200" in msg and "'user_id' is a required property" in msg
    msg = _invalid("GET", path, 200, {"user_id": "alice"})  # pattern ^@
    assert "$.user_id" in msg
    _invalid("GET", path, 200, {"user_id": "@alice:localhost", "is_guest": "no"})


def test_send_message() -> None:
    path = f"{V3}/rooms/{ROOM}/send/m.room.message/txn1"
    assert _op_ids("PUT", path) == ["sendMessage"]
    validate_response("PUT", path, 200, {"event_id": "$x"})
    msg = _invalid("PUT", path, 200, {})
    assert "sendMessage" in msg and "event_id" in msg
    _invalid("PUT", path, 200, {"event_id": 5})
    _invalid("PUT", path, 200, [])
    # 400 is documented with the standard error schema
    validate_response("PUT", path, 400, {"errcode": "M_BAD_JSON", "error": "no"})
    _invalid("PUT", path, 400, {"error": "no errcode"})
    # 403 is not documented for sendMessage: nothing to check
    validate_response("PUT", path, 403, {"anything": "goes"})


def test_error_schemas() -> None:
    forbidden = {"errcode": "M_FORBIDDEN", "error": "x"}
    validate_response("GET", f"{V3}/account/whoami", 403, forbidden)
    state = f"{V3}/rooms/{ROOM}/state/m.room.name/"
    validate_response("PUT", state, 403, forbidden)
    msg = _invalid("PUT", state, 403, {"error": "x"})
    assert "setRoomStateWithKey" in msg and "403" in msg and "errcode" in msg
    _invalid("PUT", state, 403, {"errcode": 403})
    # 429 is a `$ref: "#/components/responses/rateLimited"` response object
    login = f"{V3}/login"
    validate_response("GET", login, 429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 2000})
    msg = _invalid("GET", login, 429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": "soon"})
    assert "retry_after_ms" in msg


def test_login_flows() -> None:
    path = f"{V3}/login"
    validate_response("GET", path, 200, {"flows": [{"type": "m.login.password"},
                                                   {"type": "m.login.token", "get_login_token": True}]})
    validate_response("GET", path, 200, {"flows": []})
    _invalid("GET", path, 200, {"flows": [{"get_login_token": True}]})  # type required
    _invalid("GET", path, 200, {"flows": "m.login.password"})
    # POST /login is a different operation with its own schema
    validate_response("POST", path, 200, {"user_id": "@a:localhost", "access_token": "t",
                                          "device_id": "D"})
    _invalid("POST", path, 200, {"access_token": "t", "device_id": "D"})


def test_relations_v1() -> None:
    base = f"{V1}/rooms/{ROOM}/relations/$root:localhost"
    assert _op_ids("GET", base) == ["getRelatingEvents"]
    assert _op_ids("GET", base + "/m.thread") == ["getRelatingEventsWithRelType"]
    assert _op_ids("GET", base + "/m.thread/m.room.message") == ["getRelatingEventsWithRelTypeAndEventType"]
    reply = _event(room_id=ROOM, content={"msgtype": "m.text", "body": "re",
                                          "m.relates_to": {"rel_type": "m.thread",
                                                           "event_id": "$root:localhost"}})
    body = {"chunk": [reply], "next_batch": "n1", "recursion_depth": 1}
    validate_response("GET", base, 200, body)
    validate_response("GET", base, 200, {"chunk": []})
    validate_response("GET", base + "/m.thread", 200, body)
    _invalid("GET", base, 200, {"chunk": 3})
    _invalid("GET", base, 200, {"next_batch": "n1"})  # chunk required
    no_room = {k: v for k, v in reply.items() if k != "room_id"}  # ClientEvent needs room_id
    msg = _invalid("GET", base, 200, {"chunk": [no_room]})
    assert "$.chunk[0]" in msg and "room_id" in msg


# --------------------------------------------------------------------------- /sync


def _sync_body() -> dict[str, Any]:
    member = _event(event_id="$m1:localhost", type="m.room.member", state_key="@alice:localhost",
                    content={"membership": "join", "displayname": "Alice"})
    return {
        "next_batch": "s72595_4483_1934",
        "account_data": {"events": [{"type": "m.push_rules", "content": {"global": {}}}]},
        "presence": {"events": [{"type": "m.presence", "sender": "@bob:localhost",
                                 "content": {"presence": "online"}}]},
        "to_device": {"events": []},
        "device_one_time_keys_count": {"signed_curve25519": 20},
        "rooms": {
            "join": {
                ROOM: {
                    "summary": {"m.heroes": ["@bob:localhost"], "m.joined_member_count": 2,
                                "m.invited_member_count": 0},
                    "state": {"events": [member]},
                    "timeline": {"events": [_event(), _event(event_id="$ev2:localhost",
                                                             type="m.room.topic", state_key="",
                                                             content={"topic": "t"})],
                                 "limited": False, "prev_batch": "p1"},
                    "ephemeral": {"events": [{"type": "m.typing",
                                              "content": {"user_ids": ["@bob:localhost"]}}]},
                    "account_data": {"events": []},
                    "unread_notifications": {"highlight_count": 0, "notification_count": 1},
                },
            },
            "invite": {
                "!inv:localhost": {"invite_state": {"events": [
                    {"type": "m.room.name", "state_key": "", "sender": "@bob:localhost",
                     "content": {"name": "Invite me"}},
                ]}},
            },
            "leave": {},
        },
    }


def test_sync_valid() -> None:
    validate_response("GET", f"{V3}/sync", 200, _sync_body())
    validate_response("GET", f"{V3}/sync", 200, {"next_batch": "s1"})


def test_sync_top_level_errors() -> None:
    body = _sync_body()
    body["next_batch"] = 5
    msg = _invalid("GET", f"{V3}/sync", 200, body)
    assert "sync" in msg and "$.next_batch" in msg
    body = _sync_body()
    del body["next_batch"]
    _invalid("GET", f"{V3}/sync", 200, body)


@pytest.mark.parametrize("mutate, where", [
    # timeline events: definitions/timeline_batch.yaml -> client_event_without_room_id.yaml
    (lambda b: b["rooms"]["join"][ROOM]["timeline"]["events"][0].pop("event_id"),
     "timeline.events[0]"),
    (lambda b: b["rooms"]["join"][ROOM]["timeline"]["events"][1].update(sender="bob"),
     "timeline.events[1].sender"),
    (lambda b: b["rooms"]["join"][ROOM]["timeline"].update(limited="no"), "timeline.limited"),
    # state events: definitions/state_event_batch.yaml
    (lambda b: b["rooms"]["join"][ROOM]["state"]["events"][0].update(origin_server_ts="now"),
     "state.events[0].origin_server_ts"),
    # stripped state: ../../event-schemas/schema/core-event-schema/stripped_state.yaml
    (lambda b: b["rooms"]["invite"]["!inv:localhost"]["invite_state"]["events"][0].pop("state_key"),
     "invite_state.events[0]"),
    # account data: definitions/event_batch.yaml -> ../../../event-schemas/.../event.yaml
    (lambda b: b["account_data"]["events"][0].pop("content"), "$.account_data.events[0]"),
    (lambda b: b["rooms"]["join"][ROOM]["unread_notifications"].update(highlight_count="0"),
     "unread_notifications.highlight_count"),
])
def test_sync_nested_refs_resolve(mutate: Any, where: str) -> None:
    body = copy.deepcopy(_sync_body())
    mutate(body)
    msg = _invalid("GET", f"{V3}/sync", 200, body)
    assert where in msg, msg


# --------------------------------------------------------------------------- path matching


def test_unknown_paths() -> None:
    with pytest.raises(LookupError):
        validate_response("GET", f"{V3}/no/such/thing", 200, {})
    with pytest.raises(LookupError):  # known path, method not in the spec
        validate_response("DELETE", f"{V3}/account/whoami", 200, {})
    with pytest.raises(LookupError):  # unknown version prefix
        validate_response("GET", "/_matrix/client/r0/account/whoami", 200, {})
    with pytest.raises(LookupError):  # send needs a txnId, not an empty one
        validate_response("PUT", f"{V3}/rooms/{ROOM}/send/m.room.message/", 200, {})
    with pytest.raises(LookupError):  # federation paths are looked up too
        validate_response("GET", "/_matrix/federation/v1/no/such/thing", 200, {})
    # Not in the data at all: ignored.
    validate_response("GET", "/_matrix/media/v3/no/such/thing", 200, [])


def test_server_server_paths_are_validated() -> None:
    validate_response("GET", "/_matrix/federation/v1/version", 200, {"server": {"name": "Parley"}})
    _invalid("GET", "/_matrix/federation/v1/version", 200, {"server": 1})
    _invalid("GET", "/_matrix/key/v2/server", 200, [])
    _invalid("POST", "/_matrix/key/v2/query", 200, {"server_keys": {}})


def test_non_client_paths_in_the_data_are_validated() -> None:
    validate_response("GET", "/_matrix/client/versions", 200, {"versions": ["v1.11"]})
    _invalid("GET", "/_matrix/client/versions", 200, {"unstable_features": {}})
    validate_response("GET", "/.well-known/matrix/client", 200,
                      {"m.homeserver": {"base_url": "https://example.org"}})
    _invalid("GET", "/.well-known/matrix/client", 200, {"m.homeserver": {}})
    validate_response("GET", "/_matrix/media/v3/config", 200, {"m.upload.size": 1000})
    _invalid("GET", "/_matrix/media/v3/config", 200, {"m.upload.size": "big"})
    # binary downloads have no JSON schema for 200; the error statuses do (502 is a
    # `$ref: "#/components/responses/downloadTooLarge"`); undocumented statuses: no check
    dl = "/_matrix/client/v1/media/download/localhost/abcDEF"
    assert _op_ids("GET", dl) == ["getContentAuthed"]
    validate_response("GET", dl, 200, b"\x89PNG")
    validate_response("GET", dl, 502, {"errcode": "M_TOO_LARGE", "error": "too large"})
    _invalid("GET", dl, 502, {"error": "no errcode"})
    validate_response("GET", dl, 404, {"error": "no errcode"})


def test_path_params_with_sigils_and_escapes() -> None:
    assert _op_ids("GET", f"{V3}/rooms/!r:x/event/$e:x") == ["getOneRoomEvent"]
    assert _op_ids("GET", f"{V3}/directory/room/#alias:localhost") == ["getRoomIdByAlias"]
    assert _op_ids("GET", f"{V3}/profile/@alice:localhost") == ["getUserProfile"]
    assert _op_ids("GET", f"{V3}/profile/@alice:localhost/displayname") == ["getProfileField"]
    assert _op_ids("POST", f"{V3}/join/%23alias%3Alocalhost") == ["joinRoom"]
    # percent-escaped literal segments still match
    assert _op_ids("GET", f"{V3}/account/who%61mi") == ["getTokenOwner"]
    assert _op_ids("GET", f"{V3}/user/@a:x/rooms/!r:x/account_data/m.tag") == ["getAccountDataPerRoom"]


def test_state_endpoints_trailing_slash() -> None:
    for suffix in ("m.room.name/", "m.room.name", "m.room.member/@alice:localhost"):
        path = f"{V3}/rooms/{ROOM}/state/{suffix}"
        assert _op_ids("GET", path) == ["getRoomStateWithKey"], path
        assert _op_ids("PUT", path) == ["setRoomStateWithKey"], path
    assert _op_ids("GET", f"{V3}/rooms/{ROOM}/state") == ["getRoomState"]
    put = f"{V3}/rooms/{ROOM}/state/m.room.name/"
    validate_response("PUT", put, 200, {"event_id": "$s"})
    _invalid("PUT", put, 200, {"event_id": "s"})
    validate_response("GET", f"{V3}/rooms/{ROOM}/state", 200,
                      [_event(room_id=ROOM, type="m.room.name", state_key="", content={"name": "n"})])
    _invalid("GET", f"{V3}/rooms/{ROOM}/state", 200, [{"type": "m.room.name"}])
    # the empty last segment is only for state keys
    with pytest.raises(LookupError):
        validate_response("GET", f"{V3}/profile/@alice:localhost/", 200, {})


def test_duplicate_templates_accept_either_operation() -> None:
    # Upstream documents POST /rooms/{roomId}/invite twice ("/rooms/{roomId}/invite " with a
    # trailing space in inviting.yaml, and third_party_membership.yaml).
    path = f"{V3}/rooms/{ROOM}/invite"
    assert _op_ids("POST", path) == ["inviteBy3PID", "inviteUser"]
    validate_response("POST", path, 200, {})
    msg = _invalid("POST", path, 403, {"error": "no errcode"})
    assert "inviteUser" in msg and "inviteBy3PID" in msg
    # 400 is only documented for inviteUser: validated against that one
    _invalid("POST", path, 400, {"error": "no errcode"})
    assert _op_ids("GET", f"{V3}/events") == ["getEvents", "peekEvents"]


def test_more_specific_template_wins() -> None:
    # /pushrules/global/ (literal) vs /pushrules/global/{kind}/{ruleId}: different depth;
    # versions vs v3-prefixed templates; relations depth is checked in test_relations_v1.
    assert _op_ids("GET", f"{V3}/pushrules/global/") == ["getPushRulesGlobal"]
    assert _op_ids("GET", f"{V3}/pushrules/") == ["getPushRules"]
    assert _op_ids("GET", f"{V3}/pushrules/global/override/.m.rule.master") == ["getPushRule"]
    assert _op_ids("GET", f"{V3}/room_keys/version") == ["getRoomKeysVersionCurrent"]
    assert _op_ids("GET", f"{V3}/room_keys/version/1") == ["getRoomKeysVersion"]
    assert _op_ids("GET", f"{V3}/admin/whois/@a:x") == ["getWhoIs"]  # basePath /_matrix/client


# --------------------------------------------------------------------------- plumbing


def test_spec_dir_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    real = spec_schema.spec_data_dir()
    monkeypatch.setenv(spec_schema.ENV_VAR, str(real.parent))
    assert spec_schema.spec_data_dir() == real
    monkeypatch.setenv(spec_schema.ENV_VAR, str(real))  # pointing at data/ itself also works
    assert spec_schema.spec_data_dir() == real
    validate_response("GET", f"{V3}/account/whoami", 200, {"user_id": "@a:b"})
    monkeypatch.setenv(spec_schema.ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError):
        validate_response("GET", f"{V3}/account/whoami", 200, {"user_id": "@a:b"})


def test_parsed_once() -> None:
    validate_response("GET", f"{V3}/account/whoami", 200, {"user_id": "@a:b"})
    loads = spec_schema._documents.cache_info().misses
    for _ in range(20):
        validate_response("GET", f"{V3}/account/whoami", 200, {"user_id": "@a:b"})
        validate_response("GET", f"{V3}/sync", 200, {"next_batch": "x"})
    assert spec_schema._documents.cache_info().misses == loads
    assert spec_schema._response_validator.cache_info().hits >= 40
