"""Pushers API (GET /pushers, POST /pushers/set), GET /notifications, and pushers going away
with their device or the password."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
GATEWAY = "https://push.example.org/_matrix/push/v1/notify"


def http_pusher(pushkey: str = "key1", app_id: str = "org.example.app", **extra: Any) -> dict[str, Any]:
    body = {"kind": "http", "app_id": app_id, "pushkey": pushkey, "app_display_name": "Example",
            "device_display_name": "Phone", "lang": "en", "data": {"url": GATEWAY, "custom": 1}}
    body.update(extra)
    return body


async def pushers_of(user: MatrixClient) -> list[dict[str, Any]]:
    return (await user.ok("GET", f"{V3}/pushers"))["pushers"]


async def test_set_list_update_delete(client: MatrixClient) -> None:
    alice = await client.register()
    assert await pushers_of(alice) == []
    await alice.ok("POST", f"{V3}/pushers/set", http_pusher(profile_tag="tag"))
    [p] = await pushers_of(alice)
    assert p == {"pushkey": "key1", "kind": "http", "app_id": "org.example.app", "app_display_name": "Example",
                 "device_display_name": "Phone", "lang": "en", "profile_tag": "tag",
                 "data": {"url": GATEWAY, "custom": 1}}
    # Same app_id + pushkey updates; another pushkey adds.
    await alice.ok("POST", f"{V3}/pushers/set", http_pusher(lang="fr"))
    await alice.ok("POST", f"{V3}/pushers/set", http_pusher("key2"))
    got = await pushers_of(alice)
    assert [(p["pushkey"], p["lang"]) for p in got] == [("key1", "fr"), ("key2", "en")]
    # kind null deletes.
    await alice.ok("POST", f"{V3}/pushers/set", {"kind": None, "app_id": "org.example.app", "pushkey": "key1"})
    assert [p["pushkey"] for p in await pushers_of(alice)] == ["key2"]


async def test_append_false_takes_the_pushkey_from_other_users(client: MatrixClient) -> None:
    alice, bob = await client.register(), await client.register()
    await alice.ok("POST", f"{V3}/pushers/set", http_pusher("shared"))
    await bob.ok("POST", f"{V3}/pushers/set", http_pusher("shared", append=True))
    assert len(await pushers_of(alice)) == 1 and len(await pushers_of(bob)) == 1
    await bob.ok("POST", f"{V3}/pushers/set", http_pusher("shared"))
    assert await pushers_of(alice) == [] and len(await pushers_of(bob)) == 1


async def test_email_pusher(client: MatrixClient) -> None:
    alice = await client.register()
    body = {"kind": "email", "app_id": "m.email", "pushkey": "alice@example.org", "app_display_name": "Email",
            "device_display_name": "alice@example.org", "lang": "en", "data": {}}
    await alice.ok("POST", f"{V3}/pushers/set", body)
    assert [p["kind"] for p in await pushers_of(alice)] == ["email"]


@pytest.mark.parametrize("body,errcode", [
    ({"app_id": "a", "pushkey": "k"}, "M_MISSING_PARAM"),
    ({"kind": "http", "pushkey": "k"}, "M_MISSING_PARAM"),
    ({"kind": "http", "app_id": "a", "pushkey": "k"}, "M_MISSING_PARAM"),
    (http_pusher(kind="carrier-pigeon"), "M_INVALID_PARAM"),
    (http_pusher(kind=5), "M_INVALID_PARAM"),
    (http_pusher(app_id="x" * 65), "M_INVALID_PARAM"),
    (http_pusher(pushkey="k" * 513), "M_INVALID_PARAM"),
    (http_pusher(pushkey=""), "M_INVALID_PARAM"),
    (http_pusher(data={}), "M_INVALID_PARAM"),
    (http_pusher(data="nope"), "M_INVALID_PARAM"),
    (http_pusher(data={"url": "https://push.example.org/elsewhere"}), "M_INVALID_PARAM"),
    (http_pusher(data={"url": "ftp://push.example.org/_matrix/push/v1/notify"}), "M_INVALID_PARAM"),
    (http_pusher(data={"url": GATEWAY, "format": 3}), "M_INVALID_PARAM"),
    (http_pusher(append="yes"), "M_INVALID_PARAM"),
    (http_pusher(profile_tag=7), "M_INVALID_PARAM"),
    (http_pusher(lang=None), "M_INVALID_PARAM"),
    (http_pusher(kind="email"), "M_INVALID_PARAM"),
    (http_pusher(kind="email", app_id="m.email", pushkey="not-an-address"), "M_INVALID_PARAM"),
    (http_pusher(kind="org.parley.webpush", pushkey="not a url"), "M_INVALID_PARAM"),
    (http_pusher(kind="org.parley.webpush", pushkey="https://push.example/x", data={"p256dh": "!!"}),
     "M_INVALID_PARAM"),
])
async def test_bad_pusher_bodies(client: MatrixClient, body: dict[str, Any], errcode: str) -> None:
    alice = await client.register()
    resp = await alice.post(f"{V3}/pushers/set", body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["errcode"] == errcode
    assert await pushers_of(alice) == []


async def test_not_json_and_unauthenticated(client: MatrixClient) -> None:
    alice = await client.register()
    resp = await alice.request("POST", f"{V3}/pushers/set", raw=b"{nope")
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_NOT_JSON"
    resp = await client.get(f"{V3}/pushers")
    assert resp.status_code == 401


async def test_pushers_go_with_their_device(client: MatrixClient) -> None:
    alice = await client.register("alice_dev")
    phone = await alice.ok("POST", f"{V3}/login", {"type": "m.login.password", "identifier": {
        "type": "m.id.user", "user": "alice_dev"}, "password": "correct horse battery"}, token="")
    phone_client = alice.as_user(phone["access_token"], phone["user_id"], phone["device_id"])
    await alice.ok("POST", f"{V3}/pushers/set", http_pusher("laptop"))
    await phone_client.ok("POST", f"{V3}/pushers/set", http_pusher("phone"))
    assert len(await pushers_of(alice)) == 2
    await phone_client.ok("POST", f"{V3}/logout")
    assert [p["pushkey"] for p in await pushers_of(alice)] == ["laptop"]


async def test_password_change_removes_other_devices_pushers(client: MatrixClient) -> None:
    alice = await client.register("alice_pw")
    phone = await alice.ok("POST", f"{V3}/login", {"type": "m.login.password", "identifier": {
        "type": "m.id.user", "user": "alice_pw"}, "password": "correct horse battery"}, token="")
    phone_client = alice.as_user(phone["access_token"], phone["user_id"], phone["device_id"])
    await alice.ok("POST", f"{V3}/pushers/set", http_pusher("laptop"))
    await phone_client.ok("POST", f"{V3}/pushers/set", http_pusher("phone"))
    await alice.ok("POST", f"{V3}/account/password", {
        "new_password": "another horse battery", "logout_devices": False,
        "auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice_pw"},
                 "password": "correct horse battery"}})
    assert [p["pushkey"] for p in await pushers_of(alice)] == ["laptop"]


async def test_notifications_pagination_highlight_and_read(client: MatrixClient) -> None:
    alice = await client.register("alice_n")
    bob = await client.register()
    room = await alice.create_room(preset="public_chat")
    await bob.ok("POST", f"{V3}/join/{room}")
    first = await bob.send_text(room, "hello")
    await bob.send_text(room, "how is it going")
    mention = await bob.send_text(room, "ping alice_n please")
    await alice.send_text(room, "my own message never notifies me")

    page = await alice.ok("GET", f"{V3}/notifications", params={"limit": 2})
    assert [n["event"]["event_id"] for n in page["notifications"]][0] == mention
    assert len(page["notifications"]) == 2 and "next_token" in page
    assert all(n["room_id"] == room and n["read"] is False and "notify" in n["actions"]
               for n in page["notifications"])
    rest = await alice.ok("GET", f"{V3}/notifications", params={"limit": 2, "from": page["next_token"]})
    assert [n["event"]["event_id"] for n in rest["notifications"]] == [first]
    assert "next_token" not in rest

    hl = await alice.ok("GET", f"{V3}/notifications", params={"only": "highlight"})
    assert [n["event"]["event_id"] for n in hl["notifications"]] == [mention]
    assert {"set_tweak": "highlight"} in hl["notifications"][0]["actions"]

    await alice.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{mention}", {})
    after = await alice.ok("GET", f"{V3}/notifications")
    assert [n["read"] for n in after["notifications"]] == [True, True, True]
    # Unread counts in /sync still agree.
    sync = await alice.sync()
    assert sync["rooms"]["join"][room]["unread_notifications"]["notification_count"] == 0

    for params in ({"from": "nope"}, {"only": "everything"}, {"limit": "x"}):
        resp = await alice.get(f"{V3}/notifications", params=params)
        assert resp.status_code == 400, params


async def test_invite_notifies_the_invitee(client: MatrixClient) -> None:
    alice, bob = await client.register(), await client.register()
    room = await alice.create_room()
    await alice.ok("POST", f"{V3}/rooms/{room}/invite", {"user_id": bob.user_id})
    got = await bob.ok("GET", f"{V3}/notifications")
    assert [n["event"]["type"] for n in got["notifications"]] == ["m.room.member"]


async def test_user_rules_mute_a_room_and_highlight_keywords(client: MatrixClient) -> None:
    """Per-room and keyword settings through the standard push-rule API drive what is stored."""
    from urllib.parse import quote

    alice, bob = await client.register(), await client.register()
    noisy = await alice.create_room(preset="public_chat")
    quiet = await alice.create_room(preset="public_chat")
    for room in (noisy, quiet):
        await bob.ok("POST", f"{V3}/join/{room}")
    await alice.ok("PUT", f"{V3}/pushrules/global/room/{quote(quiet, safe='')}", {"actions": []})
    await alice.ok("PUT", f"{V3}/pushrules/global/content/deploy", {
        "pattern": "deploy", "actions": ["notify", {"set_tweak": "highlight"}]})
    await bob.send_text(quiet, "nobody hears this")
    plain = await bob.send_text(noisy, "just chatting")
    keyword = await bob.send_text(noisy, "time to deploy")
    got = await alice.ok("GET", f"{V3}/notifications")
    assert [n["event"]["event_id"] for n in got["notifications"]] == [keyword, plain]
    hl = await alice.ok("GET", f"{V3}/notifications", params={"only": "highlight"})
    assert [n["event"]["event_id"] for n in hl["notifications"]] == [keyword]
