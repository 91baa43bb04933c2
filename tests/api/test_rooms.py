"""Rooms: creation, membership, messages, state, history, relations, redaction."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
V1 = "/_matrix/client/v1"


async def _state(c: MatrixClient, room: str) -> dict[tuple[str, str], dict]:
    events = await c.ok("GET", f"{V3}/rooms/{room}/state")
    return {(e["type"], e["state_key"]): e for e in events}


@pytest.mark.parametrize("version", ["10", "11", "12"])
async def test_create_room_versions_and_presets(client: MatrixClient, version: str) -> None:
    alice = await client.register("alice")
    room = await alice.create_room(
        room_version=version, name="Team", topic="Talk", preset="public_chat",
        room_alias_name="team",
        initial_state=[{"type": "m.room.encryption", "state_key": "",
                        "content": {"algorithm": "m.megolm.v1.aes-sha2"}}],
    )
    if version == "12":
        assert ":" not in room and room.startswith("!")
    else:
        assert room.endswith(":test.parley")
    state = await _state(alice, room)
    create = state[("m.room.create", "")]
    assert create["content"]["room_version"] == version
    assert ("creator" in create["content"]) == (version == "10")
    assert state[("m.room.join_rules", "")]["content"]["join_rule"] == "public"
    assert state[("m.room.name", "")]["content"]["name"] == "Team"
    assert state[("m.room.topic", "")]["content"]["topic"] == "Talk"
    assert state[("m.room.canonical_alias", "")]["content"]["alias"] == "#team:test.parley"
    assert ("m.room.encryption", "") in state
    pl = state[("m.room.power_levels", "")]["content"]
    assert (alice.user_id in pl["users"]) == (version != "12")
    resolved = await client.ok("GET", f"{V3}/directory/room/%23team:test.parley")
    assert resolved["room_id"] == room
    # the alias is taken now
    resp = await alice.post(f"{V3}/createRoom", {"room_alias_name": "team"})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_ROOM_IN_USE"


async def test_create_room_rejects_bad_input(client: MatrixClient) -> None:
    alice = await client.register()
    for body, code in (
        ({"room_version": "99"}, "M_UNSUPPORTED_ROOM_VERSION"),
        ({"preset": "nope"}, "M_INVALID_PARAM"),
        ({"invite": ["not-a-user"]}, "M_INVALID_PARAM"),
        ({"initial_state": [{"type": 5}]}, "M_BAD_JSON"),
        ({"name": 7}, "M_BAD_JSON"),
        ({"visibility": "sideways"}, "M_INVALID_PARAM"),
    ):
        resp = await alice.post(f"{V3}/createRoom", body)
        assert resp.status_code == 400, body
        assert resp.json()["errcode"] == code, body
    assert (await alice.ok("GET", f"{V3}/joined_rooms"))["joined_rooms"] == []


async def test_invite_join_send_and_permissions(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    eve = await client.register("eve")
    room = await alice.create_room(name="private")
    resp = await bob.post(f"{V3}/rooms/{room}/join", {})
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    await alice.ok("POST", f"{V3}/rooms/{room}/invite", {"user_id": bob.user_id})
    await bob.ok("POST", f"{V3}/join/{room}", {})
    assert room in (await bob.ok("GET", f"{V3}/joined_rooms"))["joined_rooms"]
    eid = await bob.send_text(room, "hi alice")
    ev = await alice.ok("GET", f"{V3}/rooms/{room}/event/{eid}")
    assert ev["content"]["body"] == "hi alice" and ev["sender"] == bob.user_id
    # outsiders can neither send nor read
    resp = await eve.put(f"{V3}/rooms/{room}/send/m.room.message/t1", {"msgtype": "m.text", "body": "x"})
    assert resp.status_code == 403
    assert (await eve.get(f"{V3}/rooms/{room}/event/{eid}")).status_code == 404  # no existence oracle
    assert (await eve.get(f"{V3}/rooms/{room}/messages", params={"dir": "b"})).status_code == 403
    # bob (PL 0) cannot change the name or power levels, nor kick alice
    resp = await bob.put(f"{V3}/rooms/{room}/state/m.room.name", {"name": "mine"})
    assert resp.status_code == 403
    resp = await bob.post(f"{V3}/rooms/{room}/kick", {"user_id": alice.user_id})
    assert resp.status_code == 403
    # avatar_url/display_name are null when unset (as Synapse answers; the schema says string).
    members = await alice.ok("GET", f"{V3}/rooms/{room}/joined_members", validate=False)
    assert set(members["joined"]) == {alice.user_id, bob.user_id}
    chunk = (await alice.ok("GET", f"{V3}/rooms/{room}/members", params={"membership": "join"}))["chunk"]
    assert {e["state_key"] for e in chunk} == {alice.user_id, bob.user_id}


async def test_unknown_room_is_404(client: MatrixClient) -> None:
    alice = await client.register()
    resp = await alice.put(f"{V3}/rooms/!nope:test.parley/send/m.room.message/t", {"body": "x"})
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_NOT_FOUND"
    resp = await alice.post(f"{V3}/join/%23missing:test.parley", {})
    assert resp.status_code == 404


async def test_send_is_idempotent_per_txn(client: MatrixClient) -> None:
    alice = await client.register()
    room = await alice.create_room()
    a = await alice.send_text(room, "once", txn="same")
    b = await alice.send_text(room, "once", txn="same")
    assert a == b
    results = await asyncio.gather(*(alice.send_text(room, "race", txn="race1") for _ in range(5)))
    assert len(set(results)) == 1
    msgs = await alice.ok("GET", f"{V3}/rooms/{room}/messages", params={"dir": "b", "limit": 50})
    bodies = [e["content"].get("body") for e in msgs["chunk"] if e["type"] == "m.room.message"]
    assert bodies.count("once") == 1 and bodies.count("race") == 1
    # another device of the same user has its own txn scope
    login = await client.ok("POST", f"{V3}/login",
                            {"type": "m.login.password", "user": alice.user_id, "password": "correct horse battery"})
    other = client.as_user(login["access_token"], login["user_id"], login["device_id"])
    assert await other.send_text(room, "once", txn="same") != a


async def test_kick_ban_unban_leave_forget(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    room = await alice.create_room(preset="public_chat")
    await bob.ok("POST", f"{V3}/join/{room}", {})
    await alice.ok("POST", f"{V3}/rooms/{room}/kick", {"user_id": bob.user_id, "reason": "bye"})
    state = await _state(alice, room)
    assert state[("m.room.member", bob.user_id)]["content"]["membership"] == "leave"
    await bob.ok("POST", f"{V3}/join/{room}", {})
    await alice.ok("POST", f"{V3}/rooms/{room}/ban", {"user_id": bob.user_id})
    resp = await bob.post(f"{V3}/join/{room}", {})
    assert resp.status_code == 403
    await alice.ok("POST", f"{V3}/rooms/{room}/unban", {"user_id": bob.user_id})
    await bob.ok("POST", f"{V3}/join/{room}", {})
    await bob.ok("POST", f"{V3}/rooms/{room}/leave", {})
    resp = await bob.post(f"{V3}/rooms/{room}/leave", {})
    assert resp.status_code == 403
    await bob.ok("POST", f"{V3}/rooms/{room}/forget", {})
    sync = await bob.sync(filter='{"room":{"include_leave":true}}')
    assert room not in sync["rooms"].get("leave", {})
    resp = await alice.post(f"{V3}/rooms/{room}/forget", {})
    assert resp.status_code == 400


async def test_state_put_get_and_noop(client: MatrixClient) -> None:
    alice = await client.register()
    room = await alice.create_room()
    first = (await alice.ok("PUT", f"{V3}/rooms/{room}/state/org.example.thing/key1", {"v": 1}))["event_id"]
    again = (await alice.ok("PUT", f"{V3}/rooms/{room}/state/org.example.thing/key1", {"v": 1}))["event_id"]
    assert first == again
    assert await alice.ok("GET", f"{V3}/rooms/{room}/state/org.example.thing/key1") == {"v": 1}
    full = await alice.ok("GET", f"{V3}/rooms/{room}/state/org.example.thing/key1", params={"format": "event"},
                          validate=False)  # the spec's oneOf matches both branches for any event
    assert full["event_id"] == first
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.topic/", {"topic": "t"})
    assert (await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.topic"))["topic"] == "t"
    resp = await alice.get(f"{V3}/rooms/{room}/state/org.example.thing/missing")
    assert resp.status_code == 404
    # a state key starting with @ must be the sender's own
    resp = await alice.put(f"{V3}/rooms/{room}/state/org.example.thing/@bob:test.parley", {"v": 2})
    assert resp.status_code == 403


async def test_messages_pagination_both_directions(client: MatrixClient) -> None:
    alice = await client.register()
    room = await alice.create_room()
    sent = [await alice.send_text(room, f"m{i}") for i in range(25)]
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params = {"dir": "b", "limit": 7}
        if token:
            params["from"] = token
        page = await alice.ok("GET", f"{V3}/rooms/{room}/messages", params=params)
        seen.extend(e["event_id"] for e in page["chunk"])
        pages += 1
        if "end" not in page:
            break
        token = page["end"]
        assert pages < 20
    msgs = [e for e in seen if e in sent]
    assert msgs == list(reversed(sent))
    # the last page reaches the room's creation
    last = await alice.ok("GET", f"{V3}/rooms/{room}/event/{seen[-1]}")
    assert last["type"] == "m.room.create"
    # forwards from the start returns everything in order
    fwd = await alice.ok("GET", f"{V3}/rooms/{room}/messages", params={"dir": "f", "limit": 100, "from": "t0"})
    assert [e["event_id"] for e in fwd["chunk"] if e["event_id"] in sent] == sent
    # a filter narrows by type
    only = await alice.ok("GET", f"{V3}/rooms/{room}/messages",
                          params={"dir": "b", "limit": 100, "filter": '{"types":["m.room.message"]}'})
    assert len(only["chunk"]) == 25
    resp = await alice.get(f"{V3}/rooms/{room}/messages", params={"dir": "x"})
    assert resp.status_code == 400
    resp = await alice.get(f"{V3}/rooms/{room}/messages", params={"dir": "b", "from": "garbage"})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM"


async def test_context(client: MatrixClient) -> None:
    alice = await client.register()
    room = await alice.create_room()
    ids = [await alice.send_text(room, f"c{i}") for i in range(9)]
    ctx = await alice.ok("GET", f"{V3}/rooms/{room}/context/{ids[4]}", params={"limit": 4})
    assert ctx["event"]["event_id"] == ids[4]
    assert [e["event_id"] for e in ctx["events_before"]] == [ids[3], ids[2]]
    assert [e["event_id"] for e in ctx["events_after"]] == [ids[5], ids[6]]
    assert any(e["type"] == "m.room.member" for e in ctx["state"])


async def test_edit_reaction_thread_redaction_relations(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    room = await alice.create_room(preset="public_chat")
    await bob.ok("POST", f"{V3}/join/{room}", {})
    root = await alice.send_text(room, "root")
    edit = (await bob.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/e1", {
        "msgtype": "m.text", "body": "* root!",
        "m.new_content": {"msgtype": "m.text", "body": "root!"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": root},
    }))["event_id"]
    react = (await bob.ok("PUT", f"{V3}/rooms/{room}/send/m.reaction/r1", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "👍"},
    }))["event_id"]
    t1 = (await bob.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/t1", {
        "msgtype": "m.text", "body": "in thread",
        "m.relates_to": {"rel_type": "m.thread", "event_id": root},
    }))["event_id"]
    t1_react = (await alice.ok("PUT", f"{V3}/rooms/{room}/send/m.reaction/r2", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": t1, "key": "🎉"},
    }))["event_id"]
    rel = await alice.ok("GET", f"{V1}/rooms/{room}/relations/{root}")
    assert {e["event_id"] for e in rel["chunk"]} == {edit, react, t1}
    only = await alice.ok("GET", f"{V1}/rooms/{room}/relations/{root}/m.annotation")
    assert [e["event_id"] for e in only["chunk"]] == [react]
    typed = await alice.ok("GET", f"{V1}/rooms/{room}/relations/{root}/m.annotation/m.reaction")
    assert [e["event_id"] for e in typed["chunk"]] == [react]
    deep = await alice.ok("GET", f"{V1}/rooms/{room}/relations/{root}", params={"recurse": "true"})
    assert t1_react in {e["event_id"] for e in deep["chunk"]} and deep["recursion_depth"] == 2
    paged = await alice.ok("GET", f"{V1}/rooms/{room}/relations/{root}", params={"limit": 2})
    assert len(paged["chunk"]) == 2 and "next_batch" in paged
    rest = await alice.ok("GET", f"{V1}/rooms/{room}/relations/{root}",
                          params={"limit": 2, "from": paged["next_batch"]})
    assert len(rest["chunk"]) == 1
    threads = await alice.ok("GET", f"{V1}/rooms/{room}/threads")
    assert [e["event_id"] for e in threads["chunk"]] == [root]
    summary = threads["chunk"][0]["unsigned"]["m.relations"]["m.thread"]
    assert summary["count"] == 1 and summary["latest_event"]["event_id"] == t1
    # bob may redact his own reaction but not alice's root
    resp = await bob.put(f"{V3}/rooms/{room}/redact/{root}/x1", {"reason": "no"})
    assert resp.status_code == 403
    red = (await bob.ok("PUT", f"{V3}/rooms/{room}/redact/{react}/x2", {"reason": "oops"}))["event_id"]
    redacted = await alice.ok("GET", f"{V3}/rooms/{room}/event/{react}")
    assert redacted["content"] == {}
    assert redacted["unsigned"]["redacted_because"]["event_id"] == red
    rel = await alice.ok("GET", f"{V1}/rooms/{room}/relations/{root}")
    assert react not in {e["event_id"] for e in rel["chunk"]}
    red_ev = await alice.ok("GET", f"{V3}/rooms/{room}/event/{red}")
    assert red_ev["redacts"] == react and red_ev["content"]["redacts"] == react
    # the room admin may redact others' events
    await alice.ok("PUT", f"{V3}/rooms/{room}/redact/{edit}/x3", {})


async def test_aliases_and_public_directory(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    pub = await alice.create_room(preset="public_chat", visibility="public", name="Lobby", topic="hello")
    await alice.create_room(name="Secret")
    rooms = await client.ok("GET", f"{V3}/publicRooms")
    assert [r["room_id"] for r in rooms["chunk"]] == [pub]
    assert rooms["chunk"][0]["name"] == "Lobby" and rooms["chunk"][0]["num_joined_members"] == 1
    found = await bob.ok("POST", f"{V3}/publicRooms", {"filter": {"generic_search_term": "lob"}})
    assert len(found["chunk"]) == 1
    await alice.ok("PUT", f"{V3}/directory/room/%23lobby:test.parley", {"room_id": pub})
    resp = await alice.put(f"{V3}/directory/room/%23lobby:test.parley", {"room_id": pub})
    assert resp.status_code == 409
    await bob.ok("POST", f"{V3}/join/%23lobby:test.parley", {})
    assert (await alice.ok("GET", f"{V3}/rooms/{pub}/aliases"))["aliases"] == ["#lobby:test.parley"]
    resp = await bob.delete(f"{V3}/directory/room/%23lobby:test.parley")
    assert resp.status_code == 403
    await alice.ok("DELETE", f"{V3}/directory/room/%23lobby:test.parley")
    assert (await client.get(f"{V3}/directory/room/%23lobby:test.parley")).status_code == 404
    await alice.ok("PUT", f"{V3}/directory/list/room/{pub}", {"visibility": "private"})
    assert (await client.ok("GET", f"{V3}/directory/list/room/{pub}"))["visibility"] == "private"
    assert (await client.ok("GET", f"{V3}/publicRooms"))["chunk"] == []


async def test_profile_updates_member_events(client: MatrixClient) -> None:
    alice = await client.register("alice")
    room = await alice.create_room()
    await alice.ok("PUT", f"{V3}/profile/{alice.user_id}/displayname", {"displayname": "Alice A."})
    assert (await client.ok("GET", f"{V3}/profile/{alice.user_id}"))["displayname"] == "Alice A."
    member = await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.member/{alice.user_id}")
    assert member["displayname"] == "Alice A."
    # unset: an empty answer, not a 404 (as Synapse; SyTest relies on it)
    assert (await client.ok("GET", f"{V3}/profile/{alice.user_id}/avatar_url")) == {}
    # any string is kept, as Synapse does (clients only fetch mxc:// URIs)
    await alice.ok("PUT", f"{V3}/profile/{alice.user_id}/avatar_url", {"avatar_url": "http://x"})
    resp = await alice.put(f"{V3}/profile/{alice.user_id}/avatar_url", {"avatar_url": 5})
    assert resp.status_code == 400
    await alice.ok("PUT", f"{V3}/profile/{alice.user_id}/avatar_url", {"avatar_url": "mxc://test.parley/abc"})
    assert (await client.ok("GET", f"{V3}/profile/{alice.user_id}/avatar_url")) == {"avatar_url": "mxc://test.parley/abc"}
    bob = await client.register("bob")
    resp = await bob.put(f"{V3}/profile/{alice.user_id}/displayname", {"displayname": "hacked"})
    assert resp.status_code == 403
    assert (await client.get(f"{V3}/profile/@nobody:test.parley")).status_code == 404


async def test_concurrent_create_room_same_user(client: MatrixClient) -> None:
    """Identical create events in one millisecond must not collide (v12 room IDs are their hash)."""
    alice = await client.register()
    # more concurrent writers than the database pool has connections: must not deadlock
    rooms = await asyncio.wait_for(
        asyncio.gather(*(alice.create_room(preset="public_chat") for _ in range(24))), 120)
    assert len(set(rooms)) == 24
    joined = (await alice.ok("GET", f"{V3}/joined_rooms"))["joined_rooms"]
    assert set(rooms) <= set(joined)
