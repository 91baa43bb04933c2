"""The response validator itself must catch bad shapes, or the API tests prove nothing."""

from __future__ import annotations

import pytest

from tests.spec_schema import validate_response

V3 = "/_matrix/client/v3"


def test_whoami() -> None:
    validate_response("GET", f"{V3}/account/whoami", 200, {"user_id": "@a:b", "device_id": "D"})
    with pytest.raises(AssertionError):
        validate_response("GET", f"{V3}/account/whoami", 200, {"device_id": "D"})


def test_send_and_errors() -> None:
    path = f"{V3}/rooms/!r:x/send/m.room.message/t1"
    validate_response("PUT", path, 200, {"event_id": "$e"})
    with pytest.raises(AssertionError):
        validate_response("PUT", path, 200, {})
    validate_response("PUT", path, 400, {"errcode": "M_BAD_JSON", "error": "no"})
    with pytest.raises(AssertionError):
        validate_response("PUT", path, 400, {"error": "no errcode"})


def test_sync_nested_refs_resolve() -> None:
    ev = {"event_id": "$e", "type": "m.room.message", "sender": "@a:b", "origin_server_ts": 1,
          "content": {"body": "x", "msgtype": "m.text"}}
    body = {"next_batch": "s1", "rooms": {"join": {"!r:x": {"timeline": {"events": [ev], "limited": False}}}}}
    validate_response("GET", f"{V3}/sync", 200, body)
    with pytest.raises(AssertionError):
        validate_response("GET", f"{V3}/sync", 200, {**body, "next_batch": 5})
    bad = {k: v for k, v in ev.items() if k != "event_id"}
    with pytest.raises(AssertionError):
        validate_response("GET", f"{V3}/sync", 200,
                          {"next_batch": "s1", "rooms": {"join": {"!r:x": {"timeline": {"events": [bad]}}}}})


def test_lookup() -> None:
    with pytest.raises(LookupError):
        validate_response("GET", f"{V3}/no/such/thing", 200, {})
    validate_response("GET", f"{V3}/login", 200, {"flows": [{"type": "m.login.password"}]})
    validate_response("GET", "/_matrix/client/v1/rooms/!r:x/relations/$e", 200, {"chunk": []})
    with pytest.raises(AssertionError):
        validate_response("GET", "/_matrix/client/v1/rooms/!r:x/relations/$e", 200, {"chunk": 3})
