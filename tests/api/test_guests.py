"""Guest access: register?kind=guest, the guest endpoint set, m.room.guest_access, upgrades."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
GUESTS_ON = pytest.mark.parametrize("config_overrides", [{"allow_guest_access": True}])


async def _guest(client: MatrixClient, **body: Any) -> MatrixClient:
    data = await client.ok("POST", f"{V3}/register", body, params={"kind": "guest"}, token="")
    return client.as_user(data["access_token"], data["user_id"], data["device_id"])


async def test_guest_registration_is_off_by_default(client: MatrixClient) -> None:
    resp = await client.post(f"{V3}/register", {}, params={"kind": "guest"}, token="")
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"


@GUESTS_ON
async def test_guest_endpoints_and_room_rules(client: MatrixClient) -> None:
    alice = await client.register("alice")
    guest = await _guest(client, initial_device_display_name="phone")
    localpart = guest.user_id[1:].split(":")[0]
    assert localpart.isdigit()
    me = await guest.ok("GET", f"{V3}/account/whoami")
    assert me == {"user_id": guest.user_id, "device_id": guest.device_id, "is_guest": True}
    assert (await alice.ok("GET", f"{V3}/account/whoami"))["is_guest"] is False
    assert (await guest.ok("GET", f"{V3}/devices"))["devices"][0]["display_name"] == "phone"

    # Outside the guest endpoint set: refused.
    for method, path, body in (("POST", f"{V3}/createRoom", {}),
                               ("POST", "/_matrix/client/v3/user_directory/search", {"search_term": "a"}),
                               ("PUT", f"{V3}/user/{guest.user_id}/account_data/x", {})):
        resp = await guest.request(method, path, body)
        assert resp.status_code == 403 and resp.json()["errcode"] == "M_GUEST_ACCESS_FORBIDDEN", path
    await guest.sync()

    # A public room that forbids guests (the public_chat default).
    room = await alice.create_room(preset="public_chat")
    resp = await guest.post(f"{V3}/rooms/{room}/join", {})
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
    resp = await guest.put(f"{V3}/rooms/{room}/state/m.room.member/{guest.user_id}", {"membership": "join"})
    assert resp.status_code == 403
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.guest_access", {"guest_access": "can_join"})
    await guest.ok("POST", f"{V3}/join/{room}", {})
    await guest.send_text(room, "hello as a guest")
    await guest.ok("PUT", f"{V3}/profile/{guest.user_id}/displayname", {"displayname": "creeper"})
    member = await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.member/{guest.user_id}")
    assert member == {"membership": "join", "displayname": "creeper"}
    msgs = await guest.ok("GET", f"{V3}/rooms/{room}/messages", params={"dir": "b", "limit": 5})
    assert any(e["content"].get("body") == "hello as a guest" for e in msgs["chunk"])
    # Revoking guest access makes every joined guest leave.
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.guest_access", {"guest_access": "forbidden"})
    member = await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.member/{guest.user_id}")
    assert member["membership"] == "leave"
    assert (await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.member/{alice.user_id}"))["membership"] == "join"


@GUESTS_ON
async def test_guest_upgrade_to_full_account(client: MatrixClient) -> None:
    guest = await _guest(client)
    other_guest = await _guest(client)
    alice = await client.register("alice")
    localpart = guest.user_id[1:].split(":")[0]
    body = {"username": localpart, "password": "a new password", "guest_access_token": guest.token}
    # Another guest cannot take this guest's account; a full user's token is no guest token.
    resp = await client.post(f"{V3}/register", dict(body, guest_access_token=other_guest.token,
                                                       auth={"type": "m.login.dummy"}), token="")
    assert resp.status_code == 403
    resp = await client.post(f"{V3}/register", dict(body, guest_access_token=alice.token,
                                                       auth={"type": "m.login.dummy"}), token="")
    assert resp.status_code == 403
    resp = await client.post(f"{V3}/register", dict(body, guest_access_token="syt_nonsense"), token="")
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"

    # First call: the usual interactive-auth challenge, not "user ID taken".
    resp = await client.post(f"{V3}/register", body, token="")
    assert resp.status_code == 401 and "flows" in resp.json()
    data = await client.ok("POST", f"{V3}/register", dict(body, auth={"type": "m.login.dummy"}), token="")
    assert data["user_id"] == guest.user_id
    full = client.as_user(data["access_token"], data["user_id"], data["device_id"])
    assert (await full.ok("GET", f"{V3}/account/whoami"))["is_guest"] is False
    await full.create_room()
    # The guest token is gone; the password works.
    resp = await guest.get(f"{V3}/account/whoami")
    assert resp.status_code == 401
    await client.ok("POST", f"{V3}/login", {"type": "m.login.password", "user": localpart,
                                           "password": "a new password"}, token="")
    # A full account cannot be "upgraded" again.
    resp = await client.post(f"{V3}/register", dict(body, guest_access_token=full.token,
                                                       auth={"type": "m.login.dummy"}), token="")
    assert resp.status_code == 403


@GUESTS_ON
async def test_guest_registration_bad_input(client: MatrixClient) -> None:
    for body in ({"device_id": 5}, {"initial_device_display_name": ["x"]}, {"refresh_token": "yes"}):
        resp = await client.post(f"{V3}/register", body, params={"kind": "guest"}, token="")
        assert resp.status_code == 400 and resp.json()["errcode"] == "M_BAD_JSON", body
    guest = await _guest(client, refresh_token=True)
    assert (await guest.ok("GET", f"{V3}/account/whoami"))["is_guest"] is True


def test_guest_and_directory_config_keys() -> None:
    from homeserver.config import Config, ConfigError, load_config

    assert Config().allow_guest_access is False and Config().user_directory_search_all_users is False
    cfg = load_config(None, {"PARLEY_ALLOW_GUEST_ACCESS": "true",
                             "PARLEY_USER_DIRECTORY_SEARCH_ALL_USERS": "yes"})
    assert cfg.allow_guest_access is True and cfg.user_directory_search_all_users is True
    with pytest.raises(ConfigError) as e:
        load_config(None, {"PARLEY_ALLOW_GUEST_ACCESS": "perhaps"})
    assert e.value.key == "allow_guest_access"
