"""History visibility on every read path: what joiners, leavers, rejected invitees and banned
strangers may read (Client-Server API, "History visibility"), judged per event."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
V1 = "/_matrix/client/v1"


async def _room(owner: MatrixClient, visibility: str) -> str:
    room = await owner.create_room(preset="public_chat")
    await owner.ok("PUT", f"{V3}/rooms/{room}/state/m.room.history_visibility",
                   {"history_visibility": visibility})
    return room


async def _bodies_via_messages(user: MatrixClient, room: str, **params: Any) -> list[str]:
    page = await user.ok("GET", f"{V3}/rooms/{room}/messages",
                         params={"dir": "b", "limit": 100, **params})
    return [e["content"].get("body") for e in page["chunk"] if e["type"] == "m.room.message"]


def _timeline_bodies(section: dict[str, Any]) -> list[str]:
    return [e["content"].get("body") for e in section["timeline"]["events"]
            if e["type"] == "m.room.message"]


async def test_joiner_sees_no_history_before_join_under_joined(client: MatrixClient) -> None:
    alice, bob = await client.register(), await client.register()
    room = await _room(alice, "joined")
    for i in range(5):
        await alice.send_text(room, f"before{i}")
    bob_since = (await bob.sync())["next_batch"]
    await bob.ok("POST", f"{V3}/rooms/{room}/join", {})
    await alice.send_text(room, "after")
    wide = json.dumps({"room": {"timeline": {"limit": 50}}})
    for params in ({"filter": wide}, {"filter": wide, "since": bob_since}):
        section = (await bob.sync(**params))["rooms"]["join"][room]
        assert _timeline_bodies(section) == ["after"]
        types = [e["type"] for e in section["timeline"]["events"]]
        assert "m.room.member" in types  # the join itself is visible
        # the room's state stays complete (the creation events were shared history)
        assert {"m.room.create", "m.room.power_levels"} <= \
            {e["type"] for e in section["state"]["events"]} | set(types)
    assert await _bodies_via_messages(bob, room) == ["after"]


async def test_invited_visibility_starts_at_the_invite(client: MatrixClient) -> None:
    alice, bob = await client.register(), await client.register()
    room = await _room(alice, "invited")
    await alice.send_text(room, "before invite")
    await alice.ok("POST", f"{V3}/rooms/{room}/invite", {"user_id": bob.user_id})
    await alice.send_text(room, "between invite and join")
    await bob.ok("POST", f"{V3}/rooms/{room}/join", {})
    await alice.send_text(room, "after join")
    assert await _bodies_via_messages(bob, room) == ["after join", "between invite and join"]
    section = (await bob.sync(filter=json.dumps({"room": {"timeline": {"limit": 50}}})))["rooms"]["join"][room]
    assert _timeline_bodies(section) == ["between invite and join", "after join"]


async def test_leaver_reads_nothing_after_leaving(client: MatrixClient) -> None:
    alice, bob = await client.register(), await client.register()
    room = await _room(alice, "joined")
    hidden_before = await alice.send_text(room, "before bob")
    await bob.ok("POST", f"{V3}/rooms/{room}/join", {})
    seen = await alice.send_text(room, "while bob is here")
    await bob.ok("POST", f"{V3}/rooms/{room}/leave", {})
    hidden_after = await alice.send_text(room, "after bob left")
    assert await _bodies_via_messages(bob, room) == ["while bob is here"]
    assert await _bodies_via_messages(bob, room, dir="f") == ["while bob is here"]
    for eid in (hidden_before, hidden_after):
        assert (await bob.get(f"{V3}/rooms/{room}/event/{eid}")).status_code == 404
        assert (await bob.get(f"{V3}/rooms/{room}/context/{eid}")).status_code == 404
    assert (await bob.get(f"{V3}/rooms/{room}/event/{seen}")).status_code == 200
    ctx = await bob.ok("GET", f"{V3}/rooms/{room}/context/{seen}", params={"limit": 20})
    around = [e["event_id"] for e in ctx["events_before"] + ctx["events_after"]]
    assert hidden_before not in around and hidden_after not in around
    # the left room in sync (include_leave) carries the same window
    left = (await bob.sync(filter=json.dumps({"room": {"include_leave": True,
                                                         "timeline": {"limit": 50}}})))["rooms"]["leave"][room]
    assert _timeline_bodies(left) == ["while bob is here"]


async def test_rejected_and_withdrawn_invites_open_nothing(client: MatrixClient) -> None:
    alice, bob, carol = await client.register(), await client.register(), await client.register()
    room = await _room(alice, "shared")
    secret = await alice.send_text(room, "secret history")
    await alice.ok("POST", f"{V3}/rooms/{room}/invite", {"user_id": bob.user_id})
    await bob.ok("POST", f"{V3}/rooms/{room}/leave", {})  # reject
    await alice.ok("POST", f"{V3}/rooms/{room}/invite", {"user_id": carol.user_id})
    await alice.ok("POST", f"{V3}/rooms/{room}/kick", {"user_id": carol.user_id})  # withdraw
    await alice.send_text(room, "later")
    for user in (bob, carol):
        assert await _bodies_via_messages(user, room) == []
        assert (await user.get(f"{V3}/rooms/{room}/event/{secret}")).status_code == 404
        left = (await user.sync(filter=json.dumps({"room": {"include_leave": True}})))["rooms"]["leave"][room]
        assert _timeline_bodies(left) == []
        assert not any(e["type"] == "m.room.message" for e in left["state"]["events"])
    # the rejection itself reaches the rejecter
    left = (await bob.sync(filter=json.dumps({"room": {"include_leave": True}})))["rooms"]["leave"][room]
    assert any(e["type"] == "m.room.member" and e["state_key"] == bob.user_id
               for e in left["timeline"]["events"])


async def test_banned_stranger_learns_nothing(client: MatrixClient) -> None:
    alice, mallory = await client.register(), await client.register()
    room = await _room(alice, "shared")
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.topic", {"topic": "secret plans"})
    secret = await alice.send_text(room, "secret")
    await alice.ok("POST", f"{V3}/rooms/{room}/ban", {"user_id": mallory.user_id})
    state = await mallory.ok("GET", f"{V3}/rooms/{room}/state")
    assert not any(e["type"] in ("m.room.topic", "m.room.name", "m.room.power_levels") for e in state)
    assert (await mallory.get(f"{V3}/rooms/{room}/state/m.room.topic")).status_code == 404
    assert await _bodies_via_messages(mallory, room) == []
    assert (await mallory.get(f"{V3}/rooms/{room}/event/{secret}")).status_code == 404
    members = await mallory.ok("GET", f"{V3}/rooms/{room}/members")
    assert alice.user_id not in {e["state_key"] for e in members["chunk"]}


async def test_setting_is_judged_at_each_event(client: MatrixClient) -> None:
    """Switching joined -> shared does not open the older joined-only history."""
    alice, bob = await client.register(), await client.register()
    room = await _room(alice, "joined")
    await alice.send_text(room, "joined-only")
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.history_visibility", {"history_visibility": "shared"})
    await alice.send_text(room, "shared")
    await bob.ok("POST", f"{V3}/rooms/{room}/join", {})
    assert await _bodies_via_messages(bob, room) == ["shared"]
    section = (await bob.sync(filter=json.dumps({"room": {"timeline": {"limit": 50}}})))["rooms"]["join"][room]
    assert _timeline_bodies(section) == ["shared"]


async def test_threads_hide_replies_after_leaving(client: MatrixClient) -> None:
    alice, bob = await client.register(), await client.register()
    room = await _room(alice, "shared")
    await bob.ok("POST", f"{V3}/rooms/{room}/join", {})
    root = await alice.send_text(room, "root")
    rel = {"rel_type": "m.thread", "event_id": root}
    first = await alice.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/r1",
                           {"msgtype": "m.text", "body": "reply 1", "m.relates_to": rel})
    await bob.ok("POST", f"{V3}/rooms/{room}/leave", {})
    await alice.ok("PUT", f"{V3}/rooms/{room}/send/m.room.message/r2",
                   {"msgtype": "m.text", "body": "reply after bob left", "m.relates_to": rel})
    threads = await bob.ok("GET", f"{V1}/rooms/{room}/threads")
    bundle = threads["chunk"][0]["unsigned"]["m.relations"]["m.thread"]
    assert bundle["latest_event"]["event_id"] == first["event_id"]
    assert bundle["count"] == 1
    rels = await bob.ok("GET", f"{V1}/rooms/{room}/relations/{root}")
    assert [e["event_id"] for e in rels["chunk"]] == [first["event_id"]]


async def test_reinvite_is_no_membership_oracle(client: MatrixClient) -> None:
    alice, bob, eve = await client.register(), await client.register(), await client.register()
    room = await alice.create_room(preset="private_chat")
    await alice.ok("POST", f"{V3}/rooms/{room}/invite", {"user_id": bob.user_id})
    resp = await eve.post(f"{V3}/rooms/{room}/invite", {"user_id": bob.user_id})
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    # a member who may invite still gets the idempotent answer
    assert (await alice.post(f"{V3}/rooms/{room}/invite", {"user_id": bob.user_id})).status_code == 200


async def test_strangers_are_refused_and_world_readable_is_open(client: MatrixClient) -> None:
    alice, eve = await client.register(), await client.register()
    room = await _room(alice, "shared")
    await alice.send_text(room, "members only")
    assert (await eve.get(f"{V3}/rooms/{room}/messages", params={"dir": "b"})).status_code == 403
    open_room = await _room(alice, "world_readable")
    await alice.send_text(open_room, "for everyone")
    assert "for everyone" in await _bodies_via_messages(eve, open_room)
