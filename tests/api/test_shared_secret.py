"""Synapse-style shared-secret registration (/_synapse/admin/v1/register)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from tests.conftest import MatrixClient

PATH = "/_synapse/admin/v1/register"
SECRET = "s3cret-for-tests"
ON = pytest.mark.parametrize("config_overrides", [{"registration_shared_secret": SECRET}])


def mac(nonce: str, user: str, password: str, admin: bool, user_type: str | None = None,
        secret: str = SECRET) -> str:
    # Written out as Synapse's documentation gives it, independently of the server's code.
    msg = b"\x00".join([nonce.encode(), user.encode(), password.encode(), b"admin" if admin else b"notadmin"])
    if user_type:
        msg += b"\x00" + user_type.encode()
    return hmac.new(secret.encode(), msg, hashlib.sha1).hexdigest()


async def test_off_without_a_secret(client: MatrixClient) -> None:
    resp = await client.get(PATH)
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_UNKNOWN"
    resp = await client.post(PATH, {"nonce": "x", "username": "a", "password": "b", "mac": "c"})
    assert resp.status_code == 400


@ON
async def test_register_with_the_shared_secret(client: MatrixClient) -> None:
    nonce = (await client.ok("GET", PATH))["nonce"]
    body = {"nonce": nonce, "username": "carol", "password": "pw-carol-123", "admin": True,
            "displayname": "Carol", "mac": mac(nonce, "carol", "pw-carol-123", True)}
    data = await client.ok("POST", PATH, body)
    assert data["user_id"].startswith("@carol:")
    carol = client.as_user(data["access_token"], data["user_id"], data["device_id"])
    assert (await carol.ok("GET", "/_matrix/client/v3/account/whoami"))["user_id"] == data["user_id"]
    profile = await client.ok("GET", f"/_matrix/client/v3/profile/{data['user_id']}")
    assert profile["displayname"] == "Carol"
    # The same request again: the name is taken.
    resp = await client.post(PATH, body)
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_USER_IN_USE"
    # The password works for a normal login.
    await client.ok("POST", "/_matrix/client/v3/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "carol"},
        "password": "pw-carol-123"})


@ON
async def test_wrong_mac_forged_nonce_and_bad_fields(client: MatrixClient) -> None:
    nonce = (await client.ok("GET", PATH))["nonce"]
    wrong = {"nonce": nonce, "username": "dave", "password": "pw-dave-123",
             "mac": mac(nonce, "dave", "pw-dave-123", True)}  # signed as admin, sent as not
    resp = await client.post(PATH, wrong)
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    other = {**wrong, "mac": mac(nonce, "dave", "pw-dave-123", False, secret="another")}
    assert (await client.post(PATH, other)).status_code == 403
    forged = "1." + nonce.split(".", 1)[1]
    resp = await client.post(PATH, {**wrong, "nonce": forged, "mac": mac(forged, "dave", "pw-dave-123", False)})
    assert resp.status_code == 400
    for bad in ({"username": "dave"}, {**wrong, "admin": "yes"}, {**wrong, "password": 5}):
        resp = await client.post(PATH, bad)
        assert resp.status_code == 400 and resp.json()["errcode"].startswith("M_"), bad
    ok = {**wrong, "mac": mac(nonce, "dave", "pw-dave-123", False, "bot"), "user_type": "bot"}
    assert (await client.post(PATH, ok)).status_code == 200
