"""Incremental syncs built from the recent-changes log (homeserver/sync/delta.py) against the full
pass over the database: the same events, the same visibility, the same counts, and to-device
messages still delivered exactly once."""

from __future__ import annotations

import secrets
from typing import Any

from homeserver.app import Homeserver
from homeserver.metrics import REGISTRY
from homeserver.protocol.filters import SyncFilter
from homeserver.sync.token import SyncToken
from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"


def _delta_count() -> float:
    return REGISTRY.get_sample_value("parley_sync_passes_total", {"kind": "delta"}) or 0.0


def _without_age(obj: Any) -> Any:
    """`unsigned.age` and presence's `last_active_ago` are measured when the response is built,
    so two passes differ in them."""
    if isinstance(obj, dict):
        return {k: _without_age(v) for k, v in obj.items() if k not in ("age", "last_active_ago")}
    if isinstance(obj, list):
        return [_without_age(v) for v in obj]
    return obj


async def _both(hs: Homeserver, who: MatrixClient, since: str, flt: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """The sync from `since` through the log (which must be taken), then through the full pass
    (the log switched off); both must agree. Neither acknowledges anything."""
    assert who.user_id is not None and who.device_id is not None
    tok = SyncToken.parse(since)
    parsed = SyncFilter.parse(flt)
    before = _delta_count()
    quick = await hs.sync.sync(who.user_id, who.device_id, tok, parsed, False, 0, ack_since=False)
    assert _delta_count() == before + 1, "the recent-changes log should have answered"
    hs.recent.enabled = False
    try:
        full = await hs.sync.sync(who.user_id, who.device_id, tok, parsed, False, 0, ack_since=False)
    finally:
        hs.recent.enabled = True
    assert _delta_count() == before + 1
    assert _without_age(quick) == _without_age(full)
    return quick


def _timeline(resp: dict[str, Any], room: str) -> list[str]:
    section = resp.get("rooms", {}).get("join", {}).get(room, {})
    return [e["event_id"] for e in section.get("timeline", {}).get("events", [])]


async def _joined(client: MatrixClient, creator: MatrixClient, *names: str) -> tuple[str, list[MatrixClient]]:
    room = await creator.create_room(preset="public_chat")
    users = []
    for n in names:
        u = await client.register(n)
        await u.ok("POST", f"{V3}/join/{room}", {})
        users.append(u)
    return room, users


async def test_messages_receipts_typing_and_counts_match_the_full_pass(hs: Homeserver, client: MatrixClient) -> None:
    alice = await client.register("alice")
    room, (bob, carol) = await _joined(client, alice, "bob", "carol")
    bob2 = bob.as_user(*(await _login(client, "bob")))
    bob_since = (await bob.sync())["next_batch"]
    bob2_since = (await bob2.sync())["next_batch"]
    alice_since = (await alice.sync())["next_batch"]

    first = await alice.send_text(room, "hello all", txn="txn-a1")
    second = await alice.send_text(room, "bob: are you there?")  # a mention of bob's name: highlight
    await carol.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{first}", {})
    await carol.ok("PUT", f"{V3}/rooms/{room}/typing/{carol.user_id}", {"typing": True, "timeout": 30000})

    got = await _both(hs, bob, bob_since)
    section = got["rooms"]["join"][room]
    assert _timeline(got, room) == [first, second]
    assert section["unread_notifications"] == {"notification_count": 2, "highlight_count": 1}
    assert any(e["type"] == "m.receipt" and first in e["content"] for e in section["ephemeral"]["events"])
    assert any(e["type"] == "m.typing" and e["content"]["user_ids"] == [carol.user_id]
               for e in section["ephemeral"]["events"])
    assert all("transaction_id" not in e["unsigned"] for e in section["timeline"]["events"])
    # bob's second device: the same events, the same counts (one count shared by both devices)
    other = await _both(hs, bob2, bob2_since)
    assert _timeline(other, room) == [first, second]
    assert other["rooms"]["join"][room]["unread_notifications"] == section["unread_notifications"]
    # the sender's own device sees its transaction ID, only on the event it sent with it
    mine = await _both(hs, alice, alice_since)
    txns = [e["unsigned"].get("transaction_id") for e in mine["rooms"]["join"][room]["timeline"]["events"]]
    assert txns[0] == "txn-a1" and txns[1] != "txn-a1"

    # bob reads up to the first message: his count drops, by the log as by the full pass
    since = got["next_batch"]
    await bob.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{first}", {})
    third = await alice.send_text(room, "and a third")
    after = await _both(hs, bob, since)
    assert _timeline(after, room) == [third]
    assert after["rooms"]["join"][room]["unread_notifications"] == {"notification_count": 2, "highlight_count": 1}
    # a push rule silencing the room is honoured at once
    await bob.ok("PUT", f"{V3}/pushrules/global/room/{room}", {"actions": []})
    mark = (await bob.sync(since=after["next_batch"]))["next_batch"]
    fourth = await alice.send_text(room, "bob: a fourth")
    muted = await _both(hs, bob, mark)
    assert _timeline(muted, room) == [fourth]
    # counted with the rules as they are now: "and a third" no longer notifies, the two mentions
    # of bob's name still do (a content match outranks the room rule)
    assert muted["rooms"]["join"][room]["unread_notifications"] == {"notification_count": 2, "highlight_count": 2}


async def _login(client: MatrixClient, user: str) -> tuple[str, str, str]:
    data = await client.ok("POST", f"{V3}/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
        "password": "correct horse battery"}, token="")
    return data["access_token"], data["user_id"], data["device_id"]


async def test_who_left_or_never_joined_sees_nothing(hs: Homeserver, client: MatrixClient) -> None:
    alice = await client.register()
    room, (dave,) = await _joined(client, alice, "dave")
    eve = await client.register("eve")
    await alice.ok("POST", f"{V3}/rooms/{room}/invite", {"user_id": eve.user_id})
    await alice.send_text(room, "before dave leaves")
    await dave.ok("POST", f"{V3}/rooms/{room}/leave", {})
    dave_since = (await dave.sync())["next_batch"]
    eve_since = (await eve.sync())["next_batch"]
    secret = await alice.send_text(room, "after dave left")
    for who, since in ((dave, dave_since), (eve, eve_since)):
        resp = await _both(hs, who, since)
        assert secret not in str(resp)
        assert room not in resp["rooms"].get("join", {})
    # the one still joined does see it
    alice_resp = await alice.sync(since=dave_since)
    assert secret in _timeline(alice_resp, room)


async def test_state_changes_and_own_membership_take_the_full_pass(hs: Homeserver, client: MatrixClient) -> None:
    alice = await client.register()
    room, (bob,) = await _joined(client, alice, "frank")
    since = (await bob.sync())["next_batch"]
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.topic", {"topic": "new topic"})
    before = _delta_count()
    resp = await bob.sync(since=since)
    assert _delta_count() == before  # a state event in the window: the database decides
    assert any(e["type"] == "m.room.topic" for e in resp["rooms"]["join"][room]["timeline"]["events"])
    # afterwards quiet windows are served from the log again, with the new member count
    carl = await client.register("carl")
    await carl.ok("POST", f"{V3}/join/{room}", {})
    since = (await bob.sync(since=resp["next_batch"]))["next_batch"]
    await alice.send_text(room, "after the join")
    got = await _both(hs, bob, since)
    assert got["rooms"]["join"][room]["summary"]["m.joined_member_count"] == 3


async def test_to_device_messages_still_arrive_exactly_once(hs: Homeserver, client: MatrixClient) -> None:
    alice = await client.register()
    room, (bob,) = await _joined(client, alice, "gina")
    assert bob.user_id is not None and bob.device_id is not None
    t0 = (await bob.sync())["next_batch"]
    await alice.ok("PUT", f"{V3}/sendToDevice/m.test/{secrets.token_hex(4)}",
                   {"messages": {bob.user_id: {bob.device_id: {"n": 1}}}})
    flt = SyncFilter()
    # the WebSocket's way: frames follow each other, only acknowledged tokens count
    frame1 = await hs.sync.sync(bob.user_id, bob.device_id, SyncToken.parse(t0), flt, False, 0,
                                ack_since=False, acked=SyncToken.parse(t0))
    assert [m["content"] for m in frame1["to_device"]["events"]] == [{"n": 1}]
    await alice.send_text(room, "a message")
    frame2 = await _both(hs, bob, frame1["next_batch"])
    assert frame2["to_device"]["events"] == []
    # not acknowledged yet: a client resuming from t0 gets the message again
    again = await hs.sync.sync(bob.user_id, bob.device_id, SyncToken.parse(t0), flt, False, 0,
                               ack_since=False, acked=SyncToken.parse(t0))
    assert [m["content"] for m in again["to_device"]["events"]] == [{"n": 1}]
    # once frame 1 is acknowledged, a quiet sync deletes it and it never comes back
    await alice.send_text(room, "another message")
    before = _delta_count()
    await hs.sync.sync(bob.user_id, bob.device_id, SyncToken.parse(frame2["next_batch"]), flt, False, 0,
                       ack_since=False, acked=SyncToken.parse(frame1["next_batch"]))
    assert _delta_count() == before + 1
    resumed = await bob.sync(since=t0)
    assert resumed["to_device"]["events"] == []


async def test_key_counts_follow_claims_on_quiet_syncs(hs: Homeserver, client: MatrixClient) -> None:
    from tests.api.test_e2ee_keys import Device

    alice = await client.register()
    room, (bob,) = await _joined(client, alice, "hank")
    dev = Device(bob)
    await bob.ok("POST", f"{V3}/keys/upload", {"device_keys": dev.device_keys(), "one_time_keys": dev.otks(2),
                                              "fallback_keys": dev.otks(1, 100, fallback=True)})
    since = (await bob.sync())["next_batch"]
    await alice.send_text(room, "one")
    got = await _both(hs, bob, since)
    assert got["device_one_time_keys_count"] == {"signed_curve25519": 2}
    assert got["device_unused_fallback_key_types"] == ["signed_curve25519"]
    # claims take no stream position: the counts must still move on the next quiet sync
    for left in (1, 0):
        await alice.ok("POST", f"{V3}/keys/claim",
                       {"one_time_keys": {bob.user_id: {bob.device_id: "signed_curve25519"}}})
        await alice.send_text(room, "again")
        got = await _both(hs, bob, got["next_batch"])
        assert got["device_one_time_keys_count"] == {"signed_curve25519": left}
    await alice.ok("POST", f"{V3}/keys/claim", {"one_time_keys": {bob.user_id: {bob.device_id: "signed_curve25519"}}})
    await alice.send_text(room, "fallback used")
    got = await _both(hs, bob, got["next_batch"])
    assert got["device_unused_fallback_key_types"] == []


async def test_other_users_account_data_and_inboxes_keep_syncs_quick(hs: Homeserver, client: MatrixClient) -> None:
    alice = await client.register()
    room, (bob,) = await _joined(client, alice, "ivan")
    assert alice.user_id is not None and alice.device_id is not None
    since = (await bob.sync())["next_batch"]
    await alice.ok("PUT", f"{V3}/user/{alice.user_id}/account_data/org.example.x", {"a": 1})
    await alice.ok("PUT", f"{V3}/sendToDevice/m.test/{secrets.token_hex(4)}",
                   {"messages": {alice.user_id: {alice.device_id: {"n": 1}}}})
    eid = await alice.send_text(room, "hi")
    got = await _both(hs, bob, since)
    assert _timeline(got, room) == [eid]
    assert got["account_data"]["events"] == [] and got["to_device"]["events"] == []
    # bob's own account data: his next sync reads the database and carries it
    await bob.ok("PUT", f"{V3}/user/{bob.user_id}/account_data/org.example.y", {"b": 2})
    before = _delta_count()
    mine = await bob.sync(since=got["next_batch"])
    assert _delta_count() == before
    assert {"type": "org.example.y", "content": {"b": 2}} in mine["account_data"]["events"]
