"""User-interactive auth sessions: stored in the database, bound to their operation and user,
remembering the parameters of the request that opened them."""

from __future__ import annotations

from typing import Any

from homeserver.app import Homeserver
from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
PW = "correct horse battery"


def _pw_auth(user: str, password: str = PW, session: str | None = None) -> dict[str, Any]:
    auth: dict[str, Any] = {"type": "m.login.password", "password": password,
                            "identifier": {"type": "m.id.user", "user": user}}
    if session is not None:
        auth["session"] = session
    return auth


async def _login(client: MatrixClient, user: str, device_id: str) -> None:
    await client.ok("POST", f"{V3}/login", {"type": "m.login.password", "password": PW, "device_id": device_id,
                                            "identifier": {"type": "m.id.user", "user": user}}, token="")


async def test_registration_remembers_first_request_parameters(client: MatrixClient) -> None:
    first = await client.post(f"{V3}/register", {"username": "remember", "password": "pw-remember",
                                                 "device_id": "XYZZY", "initial_device_display_name": "phone"},
                              token="")
    assert first.status_code == 401
    session = first.json()["session"]
    done = await client.ok("POST", f"{V3}/register", {"auth": {"type": "m.login.dummy", "session": session}},
                           token="")
    assert done["user_id"] == "@remember:test.parley" and done["device_id"] == "XYZZY"
    alice = client.as_user(done["access_token"], done["user_id"], done["device_id"])
    assert (await alice.ok("GET", f"{V3}/devices/XYZZY"))["display_name"] == "phone"
    await client.ok("POST", f"{V3}/login", {"type": "m.login.password", "user": "remember",
                                            "password": "pw-remember"}, token="")


async def test_registration_is_idempotent_within_a_session(client: MatrixClient) -> None:
    first = await client.post(f"{V3}/register", {"password": "pw-anon"}, token="")
    session = first.json()["session"]
    body = {"password": "pw-anon", "auth": {"type": "m.login.dummy", "session": session}}
    one = await client.ok("POST", f"{V3}/register", body, token="")
    two = await client.ok("POST", f"{V3}/register", body, token="")
    assert one["user_id"] == two["user_id"]
    assert one["access_token"] != two["access_token"]
    assert (await client.get(f"{V3}/account/whoami", token=two["access_token"])).json()["user_id"] == one["user_id"]


async def test_session_is_bound_to_its_operation(client: MatrixClient) -> None:
    alice = await client.register("bound")
    await _login(client, "bound", "DEV1")
    await _login(client, "bound", "DEV2")
    start = await alice.request("DELETE", f"{V3}/devices/DEV1", {})
    assert start.status_code == 401
    session = start.json()["session"]
    # The session opened for DEV1 cannot delete DEV2 ...
    other = await alice.request("DELETE", f"{V3}/devices/DEV2", {"auth": _pw_auth(alice.user_id, session=session)})
    assert other.status_code == 403 and other.json()["errcode"] == "M_FORBIDDEN"
    assert (await alice.get(f"{V3}/devices/DEV2")).status_code == 200
    # ... nor change the password ...
    pw = await alice.post(f"{V3}/account/password", {"new_password": "x-new-1",
                                                     "auth": _pw_auth(alice.user_id, session=session)})
    assert pw.status_code == 403
    # ... but finishes the operation it was opened for.
    await alice.ok("DELETE", f"{V3}/devices/DEV1", {"auth": _pw_auth(alice.user_id, session=session)})
    assert (await alice.get(f"{V3}/devices/DEV1")).status_code == 404
    # A finished session is gone.
    again = await alice.request("DELETE", f"{V3}/devices/DEV2", {"auth": _pw_auth(alice.user_id, session=session)})
    assert again.status_code == 400


async def test_session_is_bound_to_its_user_and_parameters(client: MatrixClient) -> None:
    alice = await client.register("owner")
    mallory = await client.register("mallory")
    await _login(client, "owner", "D1")
    await _login(client, "owner", "D2")
    start = await alice.post(f"{V3}/delete_devices", {"devices": ["D1"]})
    session = start.json()["session"]
    stolen = await mallory.post(f"{V3}/delete_devices", {"devices": ["D1"],
                                                         "auth": _pw_auth(mallory.user_id, session=session)})
    assert stolen.status_code == 403
    swapped = await alice.post(f"{V3}/delete_devices", {"devices": ["D2"],
                                                        "auth": _pw_auth(alice.user_id, session=session)})
    assert swapped.status_code == 403
    assert (await alice.get(f"{V3}/devices/D2")).status_code == 200
    # Only `auth` on the second round: the remembered device list is used.
    await alice.ok("POST", f"{V3}/delete_devices", {"auth": _pw_auth(alice.user_id, session=session)})
    assert (await alice.get(f"{V3}/devices/D1")).status_code == 404
    assert (await alice.get(f"{V3}/devices/D2")).status_code == 200


async def test_wrong_password_keeps_the_session(client: MatrixClient) -> None:
    alice = await client.register("retry")
    start = await alice.post(f"{V3}/account/password", {"new_password": "pw-next-1", "logout_devices": False})
    session = start.json()["session"]
    bad = await alice.post(f"{V3}/account/password", {"new_password": "pw-next-1", "logout_devices": False,
                                                      "auth": _pw_auth(alice.user_id, "nope", session)})
    assert bad.status_code == 401 and bad.json()["errcode"] == "M_FORBIDDEN"
    assert bad.json()["session"] == session
    unknown = await alice.post(f"{V3}/account/password", {"new_password": "x", "auth": {
        "type": "m.login.password", "session": "no-such-session", "password": PW}})
    assert unknown.status_code == 400
    await alice.ok("POST", f"{V3}/account/password", {"new_password": "pw-next-1", "logout_devices": False,
                                                      "auth": _pw_auth(alice.user_id, session=session)})
    await client.ok("POST", f"{V3}/login", {"type": "m.login.password", "user": "retry",
                                            "password": "pw-next-1"}, token="")


async def test_sessions_live_in_the_database(client: MatrixClient, hs: Homeserver) -> None:
    """A session opened on one worker continues on another: nothing is kept in process memory."""
    alice = await client.register("shared")
    await _login(client, "shared", "GONE")
    start = await alice.request("DELETE", f"{V3}/devices/GONE", {})
    session = start.json()["session"]
    stored = await hs.stores.auth.get_uia_session(session)
    assert stored is not None and stored["operation"] == f"DELETE {V3}/devices/GONE"
    assert stored["user_id"] == alice.user_id
    from homeserver.accounts.uia import UIAService

    hs.uia = UIAService(hs.stores)  # a fresh service, as on another worker
    await alice.ok("DELETE", f"{V3}/devices/GONE", {"auth": _pw_auth(alice.user_id, session=session)})
    assert await hs.stores.auth.get_uia_session(session) is None
