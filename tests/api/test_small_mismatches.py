"""Small behaviours SyTest checks: joined_members keys, alias deletion and the canonical alias,
redacting another room's event, identifiers with a trailing newline."""

from __future__ import annotations

from urllib.parse import quote

from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"


async def test_joined_members_always_has_avatar_and_name(client: MatrixClient) -> None:
    alice = await client.register()
    bob = await client.register()
    room = await alice.create_room(preset="public_chat")
    await bob.ok("PUT", f"{V3}/profile/{bob.user_id}/avatar_url", {"avatar_url": "mxc://test.parley/abc"})
    await bob.ok("POST", f"{V3}/join/{room}", {})
    joined = (await alice.ok("GET", f"{V3}/rooms/{room}/joined_members", validate=False))["joined"]
    assert joined[bob.user_id]["avatar_url"] == "mxc://test.parley/abc"
    assert "avatar_url" in joined[alice.user_id] and joined[alice.user_id]["avatar_url"] is None
    assert isinstance(joined[alice.user_id]["display_name"], str)


async def test_deleting_an_alias_clears_it_from_the_canonical_alias(client: MatrixClient) -> None:
    alice = await client.register()
    room = await alice.create_room()
    main, alt = "#main:test.parley", "#alt:test.parley"
    for a in (main, alt):
        await alice.ok("PUT", f"{V3}/directory/room/{quote(a)}", {"room_id": room})
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.canonical_alias", {"alias": main, "alt_aliases": [alt]})
    await alice.ok("DELETE", f"{V3}/directory/room/{quote(alt)}")
    content = await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.canonical_alias")
    assert content == {"alias": main, "alt_aliases": []}
    await alice.ok("DELETE", f"{V3}/directory/room/{quote(main)}")
    content = await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.canonical_alias")
    assert "alias" not in content


async def test_alias_deletion_by_unprivileged_creator_leaves_canonical_alias(client: MatrixClient) -> None:
    alice = await client.register()
    bob = await client.register()
    room = await alice.create_room(preset="public_chat")
    await bob.ok("POST", f"{V3}/join/{room}", {})
    alias = "#bobs:test.parley"
    await bob.ok("PUT", f"{V3}/directory/room/{quote(alias)}", {"room_id": room})
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.canonical_alias", {"alias": alias})
    await bob.ok("DELETE", f"{V3}/directory/room/{quote(alias)}")  # bob may delete his alias ...
    assert (await bob.get(f"{V3}/directory/room/{quote(alias)}")).status_code == 404
    content = await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.canonical_alias")
    assert content["alias"] == alias  # ... but not change the room's state


async def test_redacting_an_event_of_another_room_is_400(client: MatrixClient) -> None:
    alice = await client.register()
    room1 = await alice.create_room()
    room2 = await alice.create_room()
    eid = await alice.send_text(room1, "here")
    resp = await alice.put(f"{V3}/rooms/{room2}/redact/{eid}/t1", {})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM"
    ev = await alice.ok("GET", f"{V3}/rooms/{room1}/event/{eid}")
    assert ev["content"]["body"] == "here"


async def test_identifiers_with_trailing_newline_are_rejected(client: MatrixClient) -> None:
    alice = await client.register()
    resp = await client.post(f"{V3}/register", {"username": "nl\n", "password": "pw-nl-12",
                                                "auth": {"type": "m.login.dummy"}}, token="")
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_USERNAME"
    resp = await alice.get(f"{V3}/profile/{quote(alice.user_id + chr(10))}")
    assert resp.status_code == 400
    room = await alice.create_room()
    resp = await alice.get(f"{V3}/rooms/{quote(room + chr(10))}/state")
    assert resp.status_code == 400
    resp = await alice.put(f"{V3}/directory/room/{quote('#nl:test.parley' + chr(10))}", {"room_id": room})
    assert resp.status_code == 400
    resp = await alice.post(f"{V3}/rooms/{room}/invite", {"user_id": "@bob:test.parley\n"})
    assert resp.status_code == 400
    resp = await alice.get(f"{V3}/profile/{quote('@bob:test.parley:8x')}")
    assert resp.status_code == 400


async def test_join_with_custom_content(client: MatrixClient) -> None:
    alice = await client.register()
    bob = await client.register()
    room = await alice.create_room(preset="public_chat", room_alias_name="custom")
    await bob.ok("POST", f"{V3}/join/{quote('#custom:test.parley')}", {"foo": "bar", "reason": "hi"})
    member = await bob.ok("GET", f"{V3}/rooms/{room}/state/m.room.member/{bob.user_id}")
    assert member["foo"] == "bar" and member["membership"] == "join" and member["reason"] == "hi"
    carol = await client.register()
    await carol.ok("POST", f"{V3}/rooms/{room}/join", {"foo": 1, "membership": "leave"})
    member = await carol.ok("GET", f"{V3}/rooms/{room}/state/m.room.member/{carol.user_id}")
    assert member["foo"] == 1 and member["membership"] == "join"


async def test_send_without_transaction_id(client: MatrixClient) -> None:
    alice = await client.register()
    room = await alice.create_room()
    one = await alice.ok("POST", f"{V3}/rooms/{room}/send/m.room.message", {"msgtype": "m.text", "body": "x"},
                         validate=False)
    two = await alice.ok("POST", f"{V3}/rooms/{room}/send/m.room.message", {"msgtype": "m.text", "body": "x"},
                         validate=False)
    assert one["event_id"] != two["event_id"]
    ev = await alice.ok("GET", f"{V3}/rooms/{room}/event/{one['event_id']}")
    assert ev["content"]["body"] == "x"
    resp = await alice.post(f"{V3}/rooms/{room}/send/m.room.message", validate=False, raw=b"[]")
    assert resp.status_code == 400


async def test_filters_must_name_real_ids(client: MatrixClient) -> None:
    alice = await client.register()
    for flt in ({"room": {"timeline": {"rooms": ["not_a_room_id"]}}},
                {"room": {"timeline": {"senders": ["not_a_sender_id"]}}},
                {"room": {"not_rooms": ["#alias:test.parley"]}},
                {"presence": {"not_senders": ["nobody"]}}):
        resp = await alice.post(f"{V3}/user/{alice.user_id}/filter", flt)
        assert resp.status_code == 400 and resp.json()["errcode"] == "M_BAD_JSON", flt
    ok = {"room": {"rooms": ["!a:test.parley"], "timeline": {"senders": [alice.user_id]}}}
    assert (await alice.ok("POST", f"{V3}/user/{alice.user_id}/filter", ok))["filter_id"]


async def test_uia_challenge_always_lists_completed(client: MatrixClient) -> None:
    alice = await client.register()
    resp = await alice.post(f"{V3}/account/deactivate", {"auth": {
        "type": "m.login.password", "password": "wrong", "identifier": {"type": "m.id.user", "user": alice.user_id}}})
    assert resp.status_code == 401
    body = resp.json()
    assert body["errcode"] == "M_FORBIDDEN" and body["completed"] == [] and body["flows"]


async def test_tokens_with_non_ascii_digits_are_400_not_500(client: MatrixClient) -> None:
    # "²".isdigit() is True but int("²") raises: every token parser must refuse it cleanly.
    alice = await client.register()
    room = await alice.create_room()
    for path, params in [
        (f"{V3}/sync", {"since": "s²"}),
        (f"{V3}/sync", {"filter": "²"}),
        (f"{V3}/user/{alice.user_id}/filter/²", None),
        (f"{V3}/publicRooms", {"since": "p²"}),
        (f"{V3}/events", {"from": "s²"}),
        (f"{V3}/rooms/{room}/messages", {"dir": "b", "from": "t²"}),
    ]:
        resp = await alice.get(path, params=params)
        assert 400 <= resp.status_code < 500, (path, params, resp.status_code)
        assert resp.json()["errcode"].startswith("M_")
