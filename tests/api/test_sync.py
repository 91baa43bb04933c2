"""/sync: initial and incremental, long-poll, filters, limited timelines, invites, leaves."""

from __future__ import annotations

import asyncio
import json

from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"


async def test_initial_then_incremental_sync(client: MatrixClient) -> None:
    alice = await client.register("alice")
    room = await alice.create_room(name="R")
    first = await alice.sync()
    joined = first["rooms"]["join"][room]
    state_types = {e["type"] for e in joined["state"]["events"]} | {e["type"] for e in joined["timeline"]["events"]}
    assert {"m.room.create", "m.room.member", "m.room.power_levels", "m.room.name"} <= state_types
    assert joined["summary"]["m.joined_member_count"] == 1
    eid = await alice.send_text(room, "hello", txn="t-sync")
    nxt = await alice.sync(since=first["next_batch"])
    tl = nxt["rooms"]["join"][room]["timeline"]
    assert [e["event_id"] for e in tl["events"]] == [eid]
    assert tl["limited"] is False
    assert tl["events"][0]["unsigned"]["transaction_id"] == "t-sync"
    assert nxt["rooms"]["join"][room]["state"]["events"] == []
    # nothing new: the room is absent
    empty = await alice.sync(since=nxt["next_batch"])
    assert empty["rooms"].get("join", {}) == {}
    assert empty["next_batch"] == nxt["next_batch"]


async def test_limited_timeline_and_gap_state(client: MatrixClient) -> None:
    alice = await client.register()
    room = await alice.create_room()
    base = await alice.sync()
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.topic", {"topic": "changed early"})
    for i in range(15):
        await alice.send_text(room, f"m{i}")
    inc = await alice.sync(since=base["next_batch"], filter=json.dumps({"room": {"timeline": {"limit": 5}}}))
    joined = inc["rooms"]["join"][room]
    assert joined["timeline"]["limited"] is True
    assert [e["content"]["body"] for e in joined["timeline"]["events"]] == [f"m{i}" for i in range(10, 15)]
    assert any(e["type"] == "m.room.topic" for e in joined["state"]["events"])
    # prev_batch continues backwards without a gap
    page = await alice.ok("GET", f"{V3}/rooms/{room}/messages",
                          params={"dir": "b", "from": joined["timeline"]["prev_batch"], "limit": 3})
    assert [e["content"]["body"] for e in page["chunk"]] == ["m9", "m8", "m7"]


async def test_long_poll_wakes_on_message(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    room = await alice.create_room(preset="public_chat")
    await bob.ok("POST", f"{V3}/join/{room}", {})
    since = (await bob.sync())["next_batch"]
    waiter = asyncio.create_task(bob.sync(since=since, timeout=30000))
    await asyncio.sleep(0)  # let the long-poll register (it would also catch a prior send)
    eid = await alice.send_text(room, "ping")
    result = await asyncio.wait_for(waiter, 10)
    assert [e["event_id"] for e in result["rooms"]["join"][room]["timeline"]["events"]] == [eid]


async def test_long_poll_times_out_empty_for_unrelated_rooms(client: MatrixClient) -> None:
    alice = await client.register()
    carol = await client.register()
    other = await carol.create_room()
    since = (await alice.sync())["next_batch"]
    task = asyncio.create_task(alice.sync(since=since, timeout=300))
    await carol.send_text(other, "not for alice")
    result = await task
    assert result["rooms"].get("join", {}) == {}


async def test_invite_and_leave_sections(client: MatrixClient) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    room = await alice.create_room(name="Invite me", invite=[bob.user_id], is_direct=True)
    s1 = await bob.sync()
    inv = s1["rooms"]["invite"][room]["invite_state"]["events"]
    types = {e["type"] for e in inv}
    assert "m.room.create" in types and "m.room.name" in types
    me = [e for e in inv if e["type"] == "m.room.member" and e["state_key"] == bob.user_id]
    assert me and me[0]["content"]["membership"] == "invite" and me[0]["content"]["is_direct"] is True
    await bob.ok("POST", f"{V3}/rooms/{room}/join", {})
    s2 = await bob.sync(since=s1["next_batch"])
    assert room in s2["rooms"]["join"]
    # a newly joined room comes with its full state
    assert any(e["type"] == "m.room.create" for e in s2["rooms"]["join"][room]["state"]["events"]) or \
        any(e["type"] == "m.room.create" for e in s2["rooms"]["join"][room]["timeline"]["events"])
    await alice.ok("POST", f"{V3}/rooms/{room}/kick", {"user_id": bob.user_id})
    s3 = await bob.sync(since=s2["next_batch"])
    left = s3["rooms"]["leave"][room]
    assert left["timeline"]["events"][-1]["content"]["membership"] == "leave"
    await alice.send_text(room, "after bob left")
    s4 = await bob.sync(since=s3["next_batch"])
    assert room not in s4["rooms"].get("join", {}) and room not in s4["rooms"].get("leave", {})


async def test_account_data_and_tags_in_sync(client: MatrixClient) -> None:
    alice = await client.register()
    room = await alice.create_room()
    s1 = await alice.sync()
    await alice.ok("PUT", f"{V3}/user/{alice.user_id}/account_data/m.direct", {"@x:test.parley": [room]})
    await alice.ok("PUT", f"{V3}/user/{alice.user_id}/rooms/{room}/account_data/org.example", {"a": 1})
    await alice.ok("PUT", f"{V3}/user/{alice.user_id}/rooms/{room}/tags/m.favourite", {"order": 0.5})
    s2 = await alice.sync(since=s1["next_batch"])
    assert {"type": "m.direct", "content": {"@x:test.parley": [room]}} in s2["account_data"]["events"]
    room_ad = {e["type"]: e["content"] for e in s2["rooms"]["join"][room]["account_data"]["events"]}
    assert room_ad["org.example"] == {"a": 1}
    assert room_ad["m.tag"] == {"tags": {"m.favourite": {"order": 0.5}}}
    assert await alice.ok("GET", f"{V3}/user/{alice.user_id}/account_data/m.direct") == {"@x:test.parley": [room]}
    tags = await alice.ok("GET", f"{V3}/user/{alice.user_id}/rooms/{room}/tags")
    assert tags == {"tags": {"m.favourite": {"order": 0.5}}}
    await alice.ok("DELETE", f"{V3}/user/{alice.user_id}/rooms/{room}/tags/m.favourite")
    assert (await alice.ok("GET", f"{V3}/user/{alice.user_id}/rooms/{room}/tags")) == {"tags": {}}
    assert (await alice.get(f"{V3}/user/{alice.user_id}/account_data/unset.type")).status_code == 404
    other = await client.register()
    assert (await other.get(f"{V3}/user/{alice.user_id}/account_data/m.direct")).status_code == 403


async def test_stored_filter_and_lazy_members(client: MatrixClient) -> None:
    alice = await client.register("alice")
    room = await alice.create_room(preset="public_chat")
    users = [await client.register() for _ in range(3)]
    for u in users:
        await u.ok("POST", f"{V3}/join/{room}", {})
    await users[0].send_text(room, "talker")
    flt = {"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 1}}}
    fid = (await alice.ok("POST", f"{V3}/user/{alice.user_id}/filter", flt))["filter_id"]
    assert await alice.ok("GET", f"{V3}/user/{alice.user_id}/filter/{fid}") == flt
    s = await alice.sync(filter=fid)
    members = {e["state_key"] for e in s["rooms"]["join"][room]["state"]["events"] if e["type"] == "m.room.member"}
    assert members == {alice.user_id, users[0].user_id}
    assert (await alice.get(f"{V3}/sync", params={"filter": "99999"})).status_code == 400
    assert (await alice.get(f"{V3}/sync", params={"since": "bogus"})).status_code == 400
    bad = await alice.post(f"{V3}/user/{alice.user_id}/filter", {"room": {"timeline": {"limit": "x"}}})
    assert bad.status_code == 400


async def test_full_state_and_no_duplicates(client: MatrixClient) -> None:
    alice = await client.register()
    room = await alice.create_room()
    s1 = await alice.sync()
    s2 = await alice.sync(since=s1["next_batch"], full_state="true")
    assert any(e["type"] == "m.room.create" for e in s2["rooms"]["join"][room]["state"]["events"])
    # concurrent senders: every event arrives exactly once across incremental syncs
    token = s2["next_batch"]
    sent = await asyncio.gather(*(alice.send_text(room, f"c{i}") for i in range(20)))
    got: list[str] = []
    for _ in range(10):
        s = await alice.sync(since=token, filter=json.dumps({"room": {"timeline": {"limit": 100}}}))
        token = s["next_batch"]
        got += [e["event_id"] for e in s["rooms"].get("join", {}).get(room, {}).get("timeline", {}).get("events", [])]
        if len(got) >= 20:
            break
    assert sorted(got) == sorted(sent) and len(got) == len(set(got))


# ---------------------------------------------------------------- sync correctness (issue 9 §2)

async def test_own_profile_change_is_not_a_new_join(client: MatrixClient) -> None:
    alice = await client.register()
    room = await alice.create_room()
    for i in range(3):
        await alice.send_text(room, f"m{i}")
    since = (await alice.sync())["next_batch"]
    await alice.ok("PUT", f"{V3}/profile/{alice.user_id}/displayname", {"displayname": "Alice 2"})
    section = (await alice.sync(since=since))["rooms"]["join"][room]
    events = section["timeline"]["events"]
    assert [(e["type"], e["content"].get("displayname")) for e in events] == [("m.room.member", "Alice 2")]
    assert section["timeline"]["limited"] is False
    assert section["state"]["events"] == []


async def test_state_outside_a_type_filtered_timeline_is_kept(client: MatrixClient) -> None:
    alice = await client.register()
    room = await alice.create_room()
    since = (await alice.sync())["next_batch"]
    await alice.send_text(room, "first")
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.name", {"name": "Renamed"})
    await alice.send_text(room, "second")
    flt = json.dumps({"room": {"timeline": {"types": ["m.room.message"]}}})
    section = (await alice.sync(since=since, filter=flt))["rooms"]["join"][room]
    assert [e["content"]["body"] for e in section["timeline"]["events"]] == ["first", "second"]
    names = [e for e in section["state"]["events"] if e["type"] == "m.room.name"]
    assert [e["content"]["name"] for e in names] == ["Renamed"]


async def test_lazy_members_in_a_limited_incremental_sync(client: MatrixClient) -> None:
    alice, bob, carol = await client.register(), await client.register(), await client.register()
    room = await alice.create_room(preset="public_chat")
    await bob.ok("POST", f"{V3}/rooms/{room}/join", {})
    flt = json.dumps({"room": {"timeline": {"limit": 2}, "state": {"lazy_load_members": True}}})
    for i in range(3):  # bob's join falls out of alice's first timeline: she never got his member event
        await alice.send_text(room, f"a{i}")
    first = (await alice.sync(filter=flt))["rooms"]["join"][room]
    assert bob.user_id not in {e["state_key"] for e in first["state"]["events"] if e["type"] == "m.room.member"}
    since = (await alice.sync(filter=flt))["next_batch"]
    await carol.ok("POST", f"{V3}/rooms/{room}/join", {})
    await carol.ok("POST", f"{V3}/rooms/{room}/leave", {})
    for i in range(4):
        await bob.send_text(room, f"b{i}")
    resp = await alice.sync(since=since, filter=flt)
    section = resp["rooms"]["join"][room]
    assert section["timeline"]["limited"] is True
    members = {e["state_key"]: e["content"]["membership"]
               for e in section["state"]["events"] if e["type"] == "m.room.member"}
    assert members.get(bob.user_id) == "join"  # the timeline's sender, unchanged since `since`
    assert members.get(carol.user_id) == "leave"  # joined and left in the gap
    assert alice.user_id not in members  # already sent to this device: not repeated
    # nothing new: nothing repeated
    await bob.send_text(room, "again")
    again = await alice.sync(since=resp["next_batch"], filter=flt)
    assert [e["content"]["body"] for e in again["rooms"]["join"][room]["timeline"]["events"]] == ["again"]
    assert not [e for e in again["rooms"]["join"][room]["state"]["events"] if e["type"] == "m.room.member"]


async def test_ignored_users(client: MatrixClient) -> None:
    alice, bob, troll = await client.register(), await client.register(), await client.register()
    room = await alice.create_room(preset="public_chat")
    await bob.ok("POST", f"{V3}/rooms/{room}/join", {})
    await troll.ok("POST", f"{V3}/rooms/{room}/join", {})
    await bob.ok("PUT", f"{V3}/user/{bob.user_id}/account_data/m.ignored_user_list",
                 {"ignored_users": {troll.user_id: {}}})
    since = (await bob.sync())["next_batch"]
    await troll.send_text(room, "noise")
    await alice.send_text(room, "signal")
    other = await troll.create_room()
    await troll.ok("POST", f"{V3}/rooms/{other}/invite", {"user_id": bob.user_id})
    resp = await bob.sync(since=since)
    bodies = [e["content"].get("body") for e in resp["rooms"]["join"][room]["timeline"]["events"]]
    assert bodies == ["signal"]
    assert other not in resp["rooms"].get("invite", {})
    page = await bob.ok("GET", f"{V3}/rooms/{room}/messages", params={"dir": "b", "limit": 50})
    assert "noise" not in [e["content"].get("body") for e in page["chunk"]]


async def test_presence_of_a_new_member_arrives(client: MatrixClient) -> None:
    alice, bob = await client.register(), await client.register()
    await bob.ok("PUT", f"{V3}/presence/{bob.user_id}/status", {"presence": "online", "status_msg": "hi"})
    room = await alice.create_room(preset="public_chat")
    since = (await alice.sync())["next_batch"]
    await bob.ok("POST", f"{V3}/rooms/{room}/join", {})
    resp = await alice.sync(since=since)
    pres = [e for e in resp["presence"]["events"] if e["sender"] == bob.user_id]
    assert pres and pres[0]["content"]["status_msg"] == "hi"


async def test_messages_from_initial_sync_prev_batch(client: MatrixClient) -> None:
    alice = await client.register()
    room = await alice.create_room()
    for i in range(12):
        await alice.send_text(room, f"m{i}")
    section = (await alice.sync(filter=json.dumps({"room": {"timeline": {"limit": 5}}})))["rooms"]["join"][room]
    assert [e["content"]["body"] for e in section["timeline"]["events"]] == [f"m{i}" for i in range(7, 12)]
    page = await alice.ok("GET", f"{V3}/rooms/{room}/messages",
                          params={"dir": "b", "from": section["timeline"]["prev_batch"], "limit": 3})
    assert [e["content"]["body"] for e in page["chunk"]] == ["m6", "m5", "m4"]
