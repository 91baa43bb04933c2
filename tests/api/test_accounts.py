"""Registration, login, tokens, devices, password and deactivation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"


async def test_register_flow_uia_then_dummy(client: MatrixClient) -> None:
    resp = await client.post(f"{V3}/register", {"username": "alice", "password": "pw-alice-1"})
    assert resp.status_code == 401
    body = resp.json()
    assert body["flows"] == [{"stages": ["m.login.dummy"]}]
    assert isinstance(body["session"], str)
    resp = await client.post(
        f"{V3}/register",
        {"username": "alice", "password": "pw-alice-1", "auth": {"type": "m.login.dummy", "session": body["session"]}},
    )
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["user_id"] == "@alice:test.parley"
    who = await client.as_user(data["access_token"], data["user_id"], data["device_id"]).ok(
        "GET", f"{V3}/account/whoami"
    )
    assert who == {"user_id": "@alice:test.parley", "device_id": data["device_id"], "is_guest": False}


async def test_register_rejects_taken_and_invalid_names(client: MatrixClient) -> None:
    await client.register("bob")
    resp = await client.post(f"{V3}/register", {"username": "bob", "password": "x", "auth": {"type": "m.login.dummy"}})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_USER_IN_USE"
    for bad in ("", "has space", "é", "a:b", "x" * 300):
        resp = await client.post(f"{V3}/register",
                                 {"username": bad, "password": "x", "auth": {"type": "m.login.dummy"}})
        assert resp.status_code == 400, bad
        assert resp.json()["errcode"] == "M_INVALID_USERNAME", bad
    resp = await client.get(f"{V3}/register/available", params={"username": "bob"})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_USER_IN_USE"
    resp = await client.get(f"{V3}/register/available", params={"username": "carol"})
    assert resp.json() == {"available": True}


async def test_login_logout_and_token_revocation(client: MatrixClient) -> None:
    alice = await client.register("alice", "s3cret-pass")
    resp = await client.post(f"{V3}/login", {"type": "m.login.password",
                                             "identifier": {"type": "m.id.user", "user": "alice"}, "password": "wrong"})
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    data = await client.ok("POST", f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "@alice:test.parley"},
        "password": "s3cret-pass", "initial_device_display_name": "laptop",
    })
    second = client.as_user(data["access_token"], data["user_id"], data["device_id"])
    devices = (await second.ok("GET", f"{V3}/devices"))["devices"]
    assert {d["device_id"] for d in devices} == {alice.device_id, second.device_id}
    await second.ok("POST", f"{V3}/logout", {})
    resp = await second.get(f"{V3}/account/whoami")
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_UNKNOWN_TOKEN"
    # the first device still works
    await alice.ok("GET", f"{V3}/account/whoami")
    await alice.ok("POST", f"{V3}/logout/all", {})
    resp = await alice.get(f"{V3}/account/whoami")
    assert resp.status_code == 401


async def test_missing_and_garbage_tokens(client: MatrixClient) -> None:
    resp = await client.get(f"{V3}/account/whoami")
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_MISSING_TOKEN"
    for tok in ("garbage", "syt_garbage", "syt_a.b.c"):
        resp = await client.get(f"{V3}/account/whoami", token=tok)
        assert resp.status_code == 401 and resp.json()["errcode"] == "M_UNKNOWN_TOKEN"
    alice = await client.register()
    resp = await client.get(f"{V3}/account/whoami", params={"access_token": alice.token}, token="")
    assert resp.status_code == 200


async def test_refresh_tokens_rotate(client: MatrixClient) -> None:
    await client.register("rita", "pw-rita-123")
    data = await client.ok("POST", f"{V3}/login", {
        "type": "m.login.password", "user": "rita", "password": "pw-rita-123", "refresh_token": True,
    })
    assert data["expires_in_ms"] > 0 and data["refresh_token"]
    new = await client.ok("POST", f"{V3}/refresh", {"refresh_token": data["refresh_token"]}, token="")
    assert new["refresh_token"] != data["refresh_token"]
    # the old access token is retired, the new one works
    assert (await client.get(f"{V3}/account/whoami", token=data["access_token"])).status_code == 401
    await client.ok("GET", f"{V3}/account/whoami", token=new["access_token"])
    newer = await client.ok("POST", f"{V3}/refresh", {"refresh_token": new["refresh_token"]}, token="")
    await client.ok("GET", f"{V3}/account/whoami", token=newer["access_token"])
    # the first refresh token is gone once its successor has been used
    resp = await client.post(f"{V3}/refresh", {"refresh_token": data["refresh_token"]}, token="")
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_UNKNOWN_TOKEN"


async def test_password_change_requires_uia_and_logs_out_others(client: MatrixClient) -> None:
    alice = await client.register("alice", "old-password")
    other = await client.ok("POST", f"{V3}/login",
                            {"type": "m.login.password", "user": "alice", "password": "old-password"})
    resp = await alice.post(f"{V3}/account/password", {"new_password": "new-password"})
    assert resp.status_code == 401 and resp.json()["flows"] == [{"stages": ["m.login.password"]}]
    session = resp.json()["session"]
    resp = await alice.post(f"{V3}/account/password", {
        "new_password": "new-password",
        "auth": {"type": "m.login.password", "session": session, "password": "bad",
                 "identifier": {"type": "m.id.user", "user": "alice"}},
    })
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_FORBIDDEN"
    await alice.ok("POST", f"{V3}/account/password", {
        "new_password": "new-password",
        "auth": {"type": "m.login.password", "session": session, "password": "old-password",
                 "identifier": {"type": "m.id.user", "user": "alice"}},
    })
    assert (await client.get(f"{V3}/account/whoami", token=other["access_token"])).status_code == 401
    await alice.ok("GET", f"{V3}/account/whoami")
    resp = await client.post(f"{V3}/login", {"type": "m.login.password", "user": "alice", "password": "old-password"})
    assert resp.status_code == 403
    await client.ok("POST", f"{V3}/login", {"type": "m.login.password", "user": "alice", "password": "new-password"})


async def test_deactivate(client: MatrixClient) -> None:
    alice = await client.register("alice", "pw-pw-pw")
    room = await alice.create_room(name="r")
    await alice.ok("POST", f"{V3}/account/deactivate", {
        "auth": {"type": "m.login.password", "password": "pw-pw-pw", "user": "alice"},
    })
    assert (await alice.get(f"{V3}/account/whoami")).status_code == 401
    resp = await client.post(f"{V3}/login", {"type": "m.login.password", "user": "alice", "password": "pw-pw-pw"})
    assert resp.status_code == 403
    bob = await client.register()
    # the room saw alice leave
    resp = await bob.post(f"{V3}/rooms/{room}/join", {})
    assert resp.status_code == 403  # private room, alice (the only member) is gone


async def test_device_rename_and_delete(client: MatrixClient) -> None:
    alice = await client.register("alice", "pw-devices")
    await alice.ok("PUT", f"{V3}/devices/{alice.device_id}", {"display_name": "Phone"})
    dev = await alice.ok("GET", f"{V3}/devices/{alice.device_id}")
    assert dev["display_name"] == "Phone"
    assert (await alice.get(f"{V3}/devices/NOPE")).status_code == 404
    other = await client.ok("POST", f"{V3}/login",
                            {"type": "m.login.password", "user": "alice", "password": "pw-devices"})
    resp = await alice.delete(f"{V3}/devices/{other['device_id']}")
    assert resp.status_code == 401
    await alice.ok("DELETE", f"{V3}/devices/{other['device_id']}",
                   {"auth": {"type": "m.login.password", "password": "pw-devices", "user": "alice"}})
    assert (await client.get(f"{V3}/account/whoami", token=other["access_token"])).status_code == 401


@pytest.mark.parametrize("config_overrides", [{"registration": "closed"}])
async def test_registration_closed(client: MatrixClient, config_overrides: dict[str, Any]) -> None:
    resp = await client.post(f"{V3}/register", {"username": "x", "password": "y", "auth": {"type": "m.login.dummy"}})
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"


@pytest.mark.parametrize("config_overrides", [{"registration": "token", "registration_tokens": ("letmein",)}])
async def test_registration_token(client: MatrixClient, config_overrides: dict[str, Any]) -> None:
    resp = await client.post(f"{V3}/register", {"username": "x", "password": "y"})
    assert resp.json()["flows"] == [{"stages": ["m.login.registration_token"]}]
    resp = await client.post(f"{V3}/register", {"username": "x", "password": "y",
                                                "auth": {"type": "m.login.registration_token", "token": "nope"}})
    assert resp.status_code == 401
    await client.ok("POST", f"{V3}/register", {"username": "x", "password": "y",
                                               "auth": {"type": "m.login.registration_token", "token": "letmein"}})
    validity = await client.ok("GET", "/_matrix/client/v1/register/m.login.registration_token/validity",
                               params={"token": "letmein"})
    assert validity["valid"] is True


@pytest.mark.parametrize("config_overrides", [{"rate_limits": __import__(
    "homeserver.config", fromlist=["RateLimits"]).RateLimits(enabled=True, login_per_second=0.01, login_burst=2)}])
async def test_login_rate_limited(client: MatrixClient, config_overrides: dict[str, Any]) -> None:
    codes = []
    for _ in range(4):
        resp = await client.post(f"{V3}/login", {"type": "m.login.password", "user": "nobody", "password": "x"})
        codes.append(resp.status_code)
        if resp.status_code == 429:
            body = resp.json()
            assert body["errcode"] == "M_LIMIT_EXCEEDED" and body["retry_after_ms"] > 0
            assert int(resp.headers["retry-after"]) >= 1
    assert codes[:2] == [403, 403] and 429 in codes[2:]
