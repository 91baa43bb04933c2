"""Typing, receipts, read markers, unread counts, push rules and presence."""

from __future__ import annotations

import asyncio
import json

from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"


async def _pair(client: MatrixClient) -> tuple[MatrixClient, MatrixClient, str]:
    alice = await client.register("alice")
    bob = await client.register("bob")
    room = await alice.create_room(preset="public_chat")
    await bob.ok("POST", f"{V3}/join/{room}", {})
    return alice, bob, room


def _ephemeral(sync: dict, room: str, etype: str) -> list[dict]:
    section = sync["rooms"].get("join", {}).get(room, {})
    return [e for e in section.get("ephemeral", {}).get("events", []) if e["type"] == etype]


async def test_typing_wakes_long_poll_and_expires(client: MatrixClient) -> None:
    alice, bob, room = await _pair(client)
    since = (await bob.sync())["next_batch"]
    waiter = asyncio.create_task(bob.sync(since=since, timeout=20000))
    await asyncio.sleep(0)
    await alice.ok("PUT", f"{V3}/rooms/{room}/typing/{alice.user_id}", {"typing": True, "timeout": 30000})
    got = await asyncio.wait_for(waiter, 10)
    assert _ephemeral(got, room, "m.typing")[0]["content"]["user_ids"] == [alice.user_id]
    waiter = asyncio.create_task(bob.sync(since=got["next_batch"], timeout=20000))
    await asyncio.sleep(0)
    await alice.ok("PUT", f"{V3}/rooms/{room}/typing/{alice.user_id}", {"typing": False})
    got2 = await asyncio.wait_for(waiter, 10)
    assert _ephemeral(got2, room, "m.typing")[0]["content"]["user_ids"] == []
    # a short timeout expires by itself and wakes the waiter
    waiter = asyncio.create_task(bob.sync(since=got2["next_batch"], timeout=20000))
    await alice.ok("PUT", f"{V3}/rooms/{room}/typing/{alice.user_id}", {"typing": True, "timeout": 50})
    result = await asyncio.wait_for(waiter, 10)
    # typing is state, not history: a repeat is harmless, but it must end up empty by itself
    for _ in range(5):
        typing_events = _ephemeral(result, room, "m.typing")
        if typing_events and typing_events[0]["content"]["user_ids"] == []:
            break
        result = await asyncio.wait_for(bob.sync(since=result["next_batch"], timeout=20000), 10)
    assert _ephemeral(result, room, "m.typing")[0]["content"]["user_ids"] == []
    resp = await bob.put(f"{V3}/rooms/{room}/typing/{alice.user_id}", {"typing": True})
    assert resp.status_code == 403
    resp = await bob.put(f"{V3}/rooms/{room}/typing/{bob.user_id}", {"typing": "yes"})
    assert resp.status_code == 400


async def test_receipts_and_unread_counts(client: MatrixClient) -> None:
    alice, bob, room = await _pair(client)
    s0 = await bob.sync()
    ids = [await alice.send_text(room, f"m{i}") for i in range(3)]
    mention = (await alice.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/mention", {
        "msgtype": "m.text", "body": "hey bob", "m.mentions": {"user_ids": [bob.user_id]},
    }))["event_id"]
    await alice.ok("PUT", f"{V3}/rooms/{room}/send/m.reaction/react", {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": ids[0], "key": "x"}})
    s1 = await bob.sync(since=s0["next_batch"])
    counts = s1["rooms"]["join"][room]["unread_notifications"]
    assert counts == {"notification_count": 4, "highlight_count": 1}
    await bob.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{ids[1]}", {})
    s2 = await bob.sync(since=s1["next_batch"])
    assert s2["rooms"]["join"][room]["unread_notifications"] == {"notification_count": 2, "highlight_count": 1}
    receipts = _ephemeral(s2, room, "m.receipt")[0]["content"]
    assert bob.user_id in receipts[ids[1]]["m.read"]
    # alice sees bob's public receipt, but never a private one
    a1 = await alice.sync()
    assert bob.user_id in _ephemeral(a1, room, "m.receipt")[0]["content"][ids[1]]["m.read"]
    await bob.ok("POST", f"{V3}/rooms/{room}/receipt/m.read.private/{mention}", {})
    a2 = await alice.sync(since=a1["next_batch"])
    assert not _ephemeral(a2, room, "m.receipt")
    s3 = await bob.sync(since=s2["next_batch"])
    assert "m.read.private" in _ephemeral(s3, room, "m.receipt")[0]["content"][mention]
    assert s3["rooms"]["join"][room]["unread_notifications"]["notification_count"] == 0
    # read markers: fully_read lands in room account data
    await bob.ok("POST", f"{V3}/rooms/{room}/read_markers", {"m.fully_read": mention, "m.read": mention})
    fr = await bob.ok("GET", f"{V3}/user/{bob.user_id}/rooms/{room}/account_data/m.fully_read")
    assert fr == {"event_id": mention}
    for bad in ("m.unknown",):
        resp = await bob.post(f"{V3}/rooms/{room}/receipt/{bad}/{mention}", {})
        assert resp.status_code == 400
    resp = await bob.post(f"{V3}/rooms/{room}/receipt/m.read/$nope:test.parley", {})
    assert resp.status_code == 404
    resp = await bob.post(f"{V3}/rooms/{room}/receipt/m.read/{mention}", {"thread_id": None})
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INVALID_PARAM"


async def test_threaded_unread_counts(client: MatrixClient) -> None:
    alice, bob, room = await _pair(client)
    s0 = await bob.sync()
    root = await alice.send_text(room, "root")
    for i in range(2):
        await alice.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/th{i}", {
            "msgtype": "m.text", "body": f"reply {i}", "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
    flt = json.dumps({"room": {"timeline": {"unread_thread_notifications": True}}})
    s1 = await bob.sync(since=s0["next_batch"], filter=flt)
    section = s1["rooms"]["join"][room]
    assert section["unread_notifications"]["notification_count"] == 1
    assert section["unread_thread_notifications"][root]["notification_count"] == 2
    await bob.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{root}", {"thread_id": "main"})
    s2 = await bob.sync(since=s1["next_batch"], filter=flt)
    section = s2["rooms"]["join"][room]
    assert section["unread_notifications"]["notification_count"] == 0
    assert section["unread_thread_notifications"][root]["notification_count"] == 2


async def test_push_rules_api(client: MatrixClient) -> None:
    alice, bob, room = await _pair(client)
    rules = await bob.ok("GET", f"{V3}/pushrules/")
    ids = [r["rule_id"] for r in rules["global"]["override"]]
    assert ids[0] == ".m.rule.master" and ".m.rule.is_user_mention" in ids
    assert any(r["rule_id"] == ".m.rule.message" for r in rules["global"]["underride"])
    # mute the room for bob with a room rule
    await bob.ok("PUT", f"{V3}/pushrules/global/room/{room}", {"actions": []})
    assert (await bob.ok("GET", f"{V3}/pushrules/global/room/{room}"))["rule_id"] == room
    s0 = await bob.sync()
    await alice.send_text(room, "muted")
    s1 = await bob.sync(since=s0["next_batch"])
    assert s1["rooms"]["join"][room]["unread_notifications"]["notification_count"] == 0
    await bob.ok("PUT", f"{V3}/pushrules/global/room/{room}/enabled", {"enabled": False})
    assert (await bob.ok("GET", f"{V3}/pushrules/global/room/{room}/enabled")) == {"enabled": False}
    await alice.send_text(room, "loud again")
    s2 = await bob.sync(since=s1["next_batch"])
    assert s2["rooms"]["join"][room]["unread_notifications"]["notification_count"] == 2
    # defaults can be disabled but not deleted; the change reaches sync as m.push_rules
    await bob.ok("PUT", f"{V3}/pushrules/global/underride/.m.rule.message/enabled", {"enabled": False})
    s3 = await bob.sync(since=s2["next_batch"])
    pr = [e for e in s3["account_data"]["events"] if e["type"] == "m.push_rules"][0]["content"]
    assert [r for r in pr["global"]["underride"] if r["rule_id"] == ".m.rule.message"][0]["enabled"] is False
    assert (await bob.delete(f"{V3}/pushrules/global/underride/.m.rule.message")).status_code == 404
    await bob.ok("DELETE", f"{V3}/pushrules/global/room/{room}")
    assert (await bob.get(f"{V3}/pushrules/global/room/{room}")).status_code == 404
    assert (await bob.put(f"{V3}/pushrules/global/override/.mine", {"actions": []})).status_code == 400
    assert (await bob.put(f"{V3}/pushrules/global/nonsense/x", {"actions": []})).status_code == 400
    initial = await bob.sync()
    assert any(e["type"] == "m.push_rules" for e in initial["account_data"]["events"])


async def test_presence(client: MatrixClient) -> None:
    alice, bob, room = await _pair(client)
    s0 = await bob.sync()
    await alice.ok("PUT", f"{V3}/presence/{alice.user_id}/status", {"presence": "unavailable", "status_msg": "lunch"})
    got = await alice.ok("GET", f"{V3}/presence/{alice.user_id}/status")
    assert got["presence"] == "unavailable" and got["status_msg"] == "lunch"
    s1 = await bob.sync(since=s0["next_batch"])
    pres = [e for e in s1["presence"]["events"] if e["sender"] == alice.user_id]
    assert pres and pres[0]["content"]["presence"] == "unavailable"
    assert (await bob.put(f"{V3}/presence/{alice.user_id}/status", {"presence": "online"})).status_code == 403
    assert (await alice.put(f"{V3}/presence/{alice.user_id}/status", {"presence": "dancing"})).status_code == 400
    assert (await bob.get(f"{V3}/presence/@ghost:test.parley/status")).status_code == 404
    # a stranger sharing no room does not see alice's presence
    carol = await client.register("carol")
    c0 = await carol.sync()
    await alice.ok("PUT", f"{V3}/presence/{alice.user_id}/status", {"presence": "online", "status_msg": "back"})
    c1 = await carol.sync(since=c0["next_batch"])
    assert not [e for e in c1["presence"]["events"] if e["sender"] == alice.user_id]
