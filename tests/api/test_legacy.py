"""Legacy surface: the r0 prefix, /initialSync, /rooms/{roomId}/initialSync and /events."""

from __future__ import annotations

import asyncio

from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
R0 = "/_matrix/client/r0"


async def test_r0_prefix_serves_r0_endpoints(client: MatrixClient) -> None:
    body = {"username": "rzero", "password": "pw-rzero-1", "auth": {"type": "m.login.dummy"}}
    reg = await client.ok("POST", f"{R0}/register", body, token="")
    alice = client.as_user(reg["access_token"], reg["user_id"], reg["device_id"])
    assert (await alice.ok("GET", f"{R0}/account/whoami"))["user_id"] == "@rzero:test.parley"
    room = (await alice.ok("POST", f"{R0}/createRoom", {"name": "old"}))["room_id"]
    sent = await alice.ok("PUT", f"{R0}/rooms/{room}/send/m.room.message/t1", {"msgtype": "m.text", "body": "hi"})
    ev = await alice.ok("GET", f"{V3}/rooms/{room}/event/{sent['event_id']}")
    assert ev["content"]["body"] == "hi"
    sync = await alice.ok("GET", f"{R0}/sync")
    assert room in sync["rooms"]["join"]
    assert (await alice.ok("GET", f"{R0}/pushrules/"))["global"]["override"]
    login = await client.ok("POST", f"{R0}/login", {"type": "m.login.password", "user": "rzero",
                                                       "password": "pw-rzero-1"}, token="")
    assert login["user_id"] == "@rzero:test.parley"


async def test_r0_media_prefix(client: MatrixClient) -> None:
    alice = await client.register()
    assert (await alice.ok("GET", "/_matrix/media/r0/config"))["m.upload.size"] > 0
    resp = await alice.get("/_matrix/media/r0/not-a-media-endpoint")
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_UNRECOGNIZED"


async def test_r0_prefix_is_not_a_blanket_alias(client: MatrixClient) -> None:
    # Endpoints added after r0 and unknown paths answer M_UNRECOGNIZED, not a v3 handler.
    for path in (f"{R0}/refresh", f"{R0}/login/get_token", f"{R0}/nonsense", f"{R0}/knock/!a:b"):
        resp = await client.post(path, {})
        assert resp.status_code in (404, 405), path
        assert resp.json()["errcode"] == "M_UNRECOGNIZED"


async def test_r0_keeps_percent_encoding(client: MatrixClient) -> None:
    alice = await client.register()
    room = await alice.create_room()
    await alice.ok("PUT", f"{R0}/rooms/{room}/state/m.room.topic", {"topic": "t"})
    resp = await alice.request("PUT", f"{R0}/directory/room/%23enc%3Atest.parley", {"room_id": room})
    assert resp.status_code == 200, resp.text
    assert (await alice.ok("GET", f"{V3}/directory/room/%23enc%3Atest.parley"))["room_id"] == room


async def test_initial_sync_lists_rooms_state_messages_receipts(client: MatrixClient) -> None:
    alice = await client.register()
    bob = await client.register()
    room = await alice.create_room(preset="public_chat", name="Legacy")
    await bob.ok("POST", f"{V3}/join/{room}", {})
    eid = await alice.send_text(room, "hello")
    await alice.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{eid}", {})
    invite_room = await bob.create_room()
    await bob.ok("POST", f"{V3}/rooms/{invite_room}/invite", {"user_id": alice.user_id})
    await alice.ok("PUT", f"{V3}/user/{alice.user_id}/rooms/{room}/tags/u.work", {})

    body = await alice.ok("GET", f"{V3}/initialSync", params={"limit": "5"})
    assert body["end"].startswith("s")
    rooms = {r["room_id"]: r for r in body["rooms"]}
    joined = rooms[room]
    assert joined["membership"] == "join"
    assert joined["visibility"] == "public"
    assert [e["content"].get("body") for e in joined["messages"]["chunk"]][-1] == "hello"
    assert len(joined["messages"]["chunk"]) <= 5
    assert joined["messages"]["end"] == body["end"]
    state = {(e["type"], e["state_key"]) for e in joined["state"]}
    assert ("m.room.name", "") in state and ("m.room.member", bob.user_id) in state
    assert any(e["type"] == "m.tag" and "u.work" in e["content"]["tags"] for e in joined["account_data"])
    assert rooms[invite_room]["membership"] == "invite"
    receipts = [r for r in body["receipts"] if r["room_id"] == room]
    assert receipts and eid in receipts[0]["content"]
    assert not any(e["type"] == "m.push_rules" for e in body["account_data"])  # own API for those
    # Old event format: user_id beside sender, age at the top level.
    member = next(e for e in joined["state"] if e["type"] == "m.room.member" and e["state_key"] == bob.user_id)
    assert member["user_id"] == bob.user_id and isinstance(member["age"], int)
    assert rooms[invite_room]["invite"]["user_id"] == bob.user_id
    # Presence of everyone sharing a room, the caller included (calling it counts as activity).
    presence = {e["content"]["user_id"]: e for e in body["presence"]}
    assert set(presence) == {alice.user_id, bob.user_id}
    assert presence[alice.user_id]["content"]["presence"] == "online"
    assert "last_active_ago" in presence[alice.user_id]["content"]


async def test_initial_sync_archived_includes_departed_rooms(client: MatrixClient) -> None:
    alice = await client.register()
    room = await alice.create_room()
    await alice.send_text(room, "before leaving")
    await alice.ok("POST", f"{V3}/rooms/{room}/leave", {})
    plain = await alice.ok("GET", f"{V3}/initialSync")
    assert room not in {r["room_id"] for r in plain["rooms"]}
    archived = await alice.ok("GET", f"{V3}/initialSync", params={"archived": "true"})
    left = {r["room_id"]: r for r in archived["rooms"]}[room]
    assert left["membership"] == "leave"
    assert any(e.get("content", {}).get("body") == "before leaving" for e in left["messages"]["chunk"])


async def test_room_initial_sync(client: MatrixClient) -> None:
    alice = await client.register()
    eve = await client.register()
    room = await alice.create_room(name="One room")
    await alice.send_text(room, "m1")
    body = await alice.ok("GET", f"{V3}/rooms/{room}/initialSync")
    assert body["room_id"] == room and body["membership"] == "join"
    assert body["messages"]["chunk"][-1]["content"]["body"] == "m1"
    assert any(e["type"] == "m.room.name" for e in body["state"])
    assert [e["content"]["user_id"] for e in body["presence"]] == [alice.user_id]
    # A stranger is refused; a departed member still gets the room as it was when they left.
    resp = await eve.get(f"{V3}/rooms/{room}/initialSync")
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    await alice.ok("POST", f"{V3}/rooms/{room}/leave", {})
    await client.register()  # unrelated traffic after leaving
    left = await alice.ok("GET", f"{V3}/rooms/{room}/initialSync")
    assert left["membership"] == "leave"
    assert left["messages"]["chunk"][-1]["type"] == "m.room.member"
    resp = await alice.get(f"{V3}/rooms/not-a-room/initialSync")
    assert resp.status_code == 400
    assert (await alice.get(f"{V3}/rooms/!unknown:test.parley/initialSync")).status_code == 404


async def test_room_initial_sync_of_a_world_readable_room_without_joining(client: MatrixClient) -> None:
    alice = await client.register()
    reader = await client.register()
    room = await alice.create_room(preset="public_chat")
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.history_visibility",
                   {"history_visibility": "world_readable"})
    await alice.send_text(room, "public")
    body = await reader.ok("GET", f"{V3}/rooms/{room}/initialSync")
    assert "membership" not in body
    assert body["messages"]["chunk"][-1]["content"]["body"] == "public"
    assert any(e["type"] == "m.room.history_visibility" for e in body["state"])
    assert [e["content"]["user_id"] for e in body["presence"]] == [alice.user_id]


async def test_events_stream(client: MatrixClient) -> None:
    alice = await client.register()
    room = await alice.create_room()
    first = await alice.ok("GET", f"{R0}/events", params={"timeout": "0"})
    assert first["chunk"] == [] and first["start"] == first["end"]
    sent = [await alice.send_text(room, f"msg {i}") for i in range(15)]
    await alice.ok("PUT", f"{V3}/user/{alice.user_id}/rooms/{room}/tags/u.x", {})
    caught = await alice.ok("GET", f"{R0}/events", params={"from": first["end"], "timeout": "0"})
    ids = [e.get("event_id") for e in caught["chunk"]]
    assert [i for i in ids if i in sent] == sent  # all of them, in order, past the sync timeline limit
    assert any(e["type"] == "m.tag" and e["room_id"] == room for e in caught["chunk"])
    # With a limit the stream pages forward from `from`, oldest first, never skipping.
    token, paged = first["end"], []
    for _ in range(10):
        page = await alice.ok("GET", f"{R0}/events", params={"from": token, "timeout": "0", "limit": "4"})
        assert len([e for e in page["chunk"] if e.get("event_id") in sent]) <= 4
        paged += [e["event_id"] for e in page["chunk"] if e.get("event_id") in sent]
        token = page["end"]
        if not page["chunk"]:
            break
    assert paged == sent
    again = await alice.ok("GET", f"{R0}/events", params={"from": caught["end"], "timeout": "0"})
    assert again["chunk"] == []

    # Whichever runs first, the long poll from `end` returns the new message.
    polled, eid = await asyncio.gather(
        alice.ok("GET", f"{R0}/events", params={"from": caught["end"], "timeout": "5000"}),
        alice.send_text(room, "wake up"))
    assert eid in [e.get("event_id") for e in polled["chunk"]]
    for params in ({"from": "garbage"}, {"limit": "ten"}, {"limit": "-1"}, {"timeout": "soon"}):
        bad = await alice.get(f"{R0}/events", params=params)
        assert bad.status_code == 400 and bad.json()["errcode"] == "M_INVALID_PARAM", params


async def test_every_r0_era_route_answers_under_r0(client: MatrixClient) -> None:
    """Each v3 route whose first segment existed in r0.6.1 is reachable under /r0/: without a
    token it must fail authentication (or succeed), never be an unknown endpoint."""
    import re

    from client_api.app import ALL_ROUTES
    from client_api.r0 import CLIENT_V3, NOT_IN_R0, R0_SEGMENTS

    checked = 0
    for route in ALL_ROUTES:
        path = route.path
        if not path.startswith(CLIENT_V3):
            continue
        rest = path[len(CLIENT_V3):]
        if rest.split("/", 1)[0] not in R0_SEGMENTS or rest.startswith(NOT_IN_R0):
            continue
        concrete = re.sub(r"\{[^}]+\}", "x", rest)
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            resp = await client.request(method, f"{R0}/{concrete}", {} if method in ("PUT", "POST") else None,
                                        token="", validate=False)
            assert not (resp.status_code in (404, 405) and resp.json().get("errcode") == "M_UNRECOGNIZED"), \
                (method, concrete, resp.status_code, resp.text)
            checked += 1
    assert checked > 40
