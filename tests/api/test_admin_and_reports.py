"""/admin/whois, OpenID tokens (client request + federation userinfo) and content reports."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.app import Homeserver
from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
USERINFO = "/_matrix/federation/v1/openid/userinfo"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"admins": ("@boss:test.parley",)}


async def test_whois_for_self_and_admin(client: MatrixClient) -> None:
    boss = await client.register("boss")
    alice = await client.register("alice")
    await client.ok("POST", f"{V3}/login", {"type": "m.login.password", "user": "alice",
                                            "password": "correct horse battery", "device_id": "PHONE"},
                    token="", headers={"User-Agent": "ParleyTest/1.0"})
    mine = await alice.ok("GET", f"{V3}/admin/whois/{alice.user_id}")
    assert mine["user_id"] == alice.user_id
    assert set(mine["devices"]) == {alice.device_id, "PHONE"}
    conn = mine["devices"]["PHONE"]["sessions"][0]["connections"][0]
    assert conn["user_agent"] == "ParleyTest/1.0" and isinstance(conn["last_seen"], int) and conn["ip"]
    # Anybody else's needs a server admin.
    resp = await alice.get(f"{V3}/admin/whois/{boss.user_id}")
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    theirs = await boss.ok("GET", f"{V3}/admin/whois/{alice.user_id}")
    assert "PHONE" in theirs["devices"]
    assert (await boss.get(f"{V3}/admin/whois/@ghost:test.parley")).status_code == 404
    assert (await boss.get(f"{V3}/admin/whois/not-a-user")).status_code == 400


async def test_openid_token_exchange(client: MatrixClient) -> None:
    alice = await client.register()
    bob = await client.register()
    tok = await alice.ok("POST", f"{V3}/user/{alice.user_id}/openid/request_token", {})
    assert tok["matrix_server_name"] == "test.parley" and tok["token_type"] == "Bearer"
    assert tok["expires_in"] > 0
    info = await client.ok("GET", USERINFO, params={"access_token": tok["access_token"]}, token="")
    assert info == {"sub": alice.user_id}
    for params in ({"access_token": "an/invalid/token"}, {}):
        resp = await client.get(USERINFO, params=params, token="")
        assert resp.status_code == 401 and resp.json()["errcode"] == "M_UNKNOWN_TOKEN"
    # An access token is not an OpenID token, and nobody may request one for someone else.
    resp = await client.get(USERINFO, params={"access_token": alice.token}, token="")
    assert resp.status_code == 401
    resp = await bob.post(f"{V3}/user/{alice.user_id}/openid/request_token", {})
    assert resp.status_code == 403


async def test_reports(client: MatrixClient, hs: Homeserver) -> None:
    alice = await client.register()
    bob = await client.register()
    eve = await client.register()
    room = await alice.create_room(preset="public_chat")
    await bob.ok("POST", f"{V3}/join/{room}", {})
    eid = await alice.send_text(room, "rude")
    await bob.ok("POST", f"{V3}/rooms/{room}/report/{eid}", {"reason": "spam", "score": -100})
    await bob.ok("POST", f"{V3}/rooms/{room}/report", {"reason": "bad room"})
    await bob.ok("POST", f"{V3}/users/{alice.user_id}/report", {"reason": "bad user"})
    reports = await hs.admin.recent_reports()
    got = {(r["room_id"], r["event_id"], r["target_user_id"], r["reason"]) for r in reports}
    assert got == {(room, eid, None, "spam"), (room, None, None, "bad room"), (None, None, alice.user_id, "bad user")}
    assert all(r["reporter"] == bob.user_id for r in reports)
    # Events the reporter cannot see are "not found", as are unknown rooms and users.
    assert (await eve.post(f"{V3}/rooms/{room}/report/{eid}", {"reason": "x"})).status_code in (403, 404)
    assert (await bob.post(f"{V3}/rooms/{room}/report/$" + "a" * 43, {})).status_code == 404
    assert (await bob.post(f"{V3}/rooms/!nope:test.parley/report", {})).status_code == 404
    assert (await bob.post(f"{V3}/users/@nope:test.parley/report", {})).status_code == 404
    for bad in ({"score": 5}, {"score": "low"}, {"reason": 7}):
        resp = await bob.post(f"{V3}/rooms/{room}/report/{eid}", bad)
        assert resp.status_code == 400 and resp.json()["errcode"].startswith("M_")
    assert len(await hs.admin.recent_reports()) == 3
