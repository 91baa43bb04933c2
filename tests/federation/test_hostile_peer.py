"""A hostile server against a real Parley, over real federation HTTP (tests/federation/hostile.py),
while a real Synapse shares the room: forged signatures, tampered hashes, events failing auth,
soft-fail candidates, rooms it is not in, oversized and malformed transactions, a wrong origin,
a banning ACL, replayed transaction IDs, EDUs for users it does not own, huge depth and prev_events
fan-out, and reads of rooms it may not see. Each gets the spec's answer, nothing of it shows, no
500, and Synapse's messages keep landing."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from homeserver.protocol.signing import generate_signing_key
from tests.federation.clients import User, wait_for
from tests.federation.hostile import FED, HostileServer
from tests.federation.peers import Peer, TestCA


@dataclass
class Scene:
    hostile: HostileServer
    alice: User  # on Parley, creator of the rooms
    bob: User  # on Synapse: the legitimate peer
    room: str  # alice's public room: Parley, Synapse and the hostile server are in it


@pytest.fixture(scope="module")
def scene(parley: Peer, synapse: Peer, test_ca: TestCA) -> Iterator[Scene]:
    hostile = HostileServer(test_ca, parley)
    try:
        alice, bob = User(parley), User(synapse)
        room = alice.call("POST", "/createRoom", {"preset": "public_chat", "name": "hostile"})["room_id"]
        bob.call("POST", f"/join/{quote(room)}", {}, server_name=parley.server_name)
        hostile.join(room)
        yield Scene(hostile, alice, bob, room)
    finally:
        hostile.close()


def _messages(user: User, room: str) -> list[dict[str, Any]]:
    return [e for e in user.call("GET", f"/rooms/{quote(room)}/messages", dir="b", limit=100)["chunk"]
            if e["type"] == "m.room.message"]


def _visible(user: User, room: str, event_id: str) -> bool:
    resp = httpx.get(f"{user.peer.client_base}/_matrix/client/v3/rooms/{quote(room)}/event/{quote(event_id)}",
                     headers={"Authorization": f"Bearer {user.token}"}, timeout=30)
    assert resp.status_code in (200, 404), resp.text
    return resp.status_code == 200


def legit_flows(s: Scene) -> None:
    """Synapse's next message in the room reaches Parley (the hostile traffic held nothing up)."""
    eid = s.bob.send(s.room, f"legit {secrets.token_hex(3)}")
    wait_for("Synapse's message on Parley", lambda: any(e["event_id"] == eid for e in _messages(s.alice, s.room)))


def _ok(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    return dict(resp.json()["pdus"])


def test_forged_signature_dropped_rest_of_transaction_lands(scene: Scene) -> None:
    h = scene.hostile
    forged_id, forged = h.event(scene.room, "m.room.message", {"msgtype": "m.text", "body": "forged"},
                                key=generate_signing_key("other"))
    good_id, good = h.event(scene.room, "m.room.message", {"msgtype": "m.text", "body": "honest"})
    results = _ok(h.send_txn([forged, good]))
    assert "error" in results[forged_id] and results[good_id] == {}
    h.accepted(scene.room, good_id, good)
    assert _visible(scene.alice, scene.room, good_id)
    assert not _visible(scene.alice, scene.room, forged_id)
    assert "forged" not in [e["content"].get("body") for e in _messages(scene.alice, scene.room)]
    legit_flows(scene)


def test_content_hash_mismatch_is_redacted(scene: Scene) -> None:
    h = scene.hostile
    eid, pdu = h.event(scene.room, "m.room.message", {"msgtype": "m.text", "body": "signed text"})
    # The signature covers only the redacted form: swapping the content keeps it valid, the hash not.
    tampered = pdu | {"content": {"msgtype": "m.text", "body": "tampered text"}}
    assert _ok(h.send_txn([tampered]))[eid] == {}
    h.accepted(scene.room, eid, pdu)
    shown = scene.alice.call("GET", f"/rooms/{quote(scene.room)}/event/{quote(eid)}")
    assert shown["content"] == {}  # stored redacted: neither text shows
    legit_flows(scene)


def test_event_failing_auth_is_rejected_and_unseen(scene: Scene) -> None:
    h = scene.hostile
    levels = scene.alice.call("GET", f"/rooms/{quote(scene.room)}/state/m.room.power_levels")
    grab = levels | {"users": {**levels.get("users", {}), h.user("mallory"): 100}}
    eid, pdu = h.event(scene.room, "m.room.power_levels", grab, state_key="")
    # A user who is not in the room speaks for it.
    stranger_id, stranger = h.event(scene.room, "m.room.message", {"msgtype": "m.text", "body": "stranger"},
                                    sender=h.user("stranger"))
    results = _ok(h.send_txn([pdu, stranger]))
    assert set(results) == {eid, stranger_id}  # processed (and rejected), as Synapse answers
    assert scene.alice.call("GET", f"/rooms/{quote(scene.room)}/state/m.room.power_levels") == levels
    assert not _visible(scene.alice, scene.room, eid)
    assert not _visible(scene.alice, scene.room, stranger_id)
    assert "stranger" not in [e["content"].get("body") for e in _messages(scene.alice, scene.room)]
    legit_flows(scene)


def test_soft_failed_after_a_ban(scene: Scene, parley: Peer) -> None:
    h = scene.hostile
    room = scene.alice.call("POST", "/createRoom", {"preset": "public_chat"})["room_id"]
    join_id = h.join(room)
    scene.alice.call("POST", f"/rooms/{quote(room)}/ban", {"user_id": h.user("mallory"), "reason": "spam"})
    # Built on the state before the ban (its join): it passes there, not against the current state.
    eid, pdu = h.event(room, "m.room.message", {"msgtype": "m.text", "body": "after the ban"},
                       prev_events=[join_id])
    assert _ok(h.send_txn([pdu]))[eid] == {}
    assert not _visible(scene.alice, room, eid)
    assert _messages(scene.alice, room) == []
    since = scene.alice.call("GET", "/sync", timeout=0)["rooms"]["join"].get(room, {})
    assert eid not in [e["event_id"] for e in since.get("timeline", {}).get("events", [])]
    legit_flows(scene)


def test_rooms_it_is_not_in(scene: Scene) -> None:
    h = scene.hostile
    private = scene.alice.call("POST", "/createRoom", {"preset": "private_chat", "initial_state": [
        {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "joined"}}]})
    private_id = private["room_id"]
    secret = scene.alice.send(private_id, "secret")
    # An event into a room it never joined, built on an event it heard of, and one for an unknown room.
    h.rooms[private_id] = {**h.rooms[scene.room], "state": {}, "latest": secret}
    eid, pdu = h.event(private_id, "m.room.message", {"msgtype": "m.text", "body": "intruder"})
    unknown = "!nowhere:" + h.server_name
    h.rooms[unknown] = h.rooms[private_id]
    ghost_id, ghost = h.event(unknown, "m.room.message", {"msgtype": "m.text", "body": "ghost"})
    results = _ok(h.send_txn([pdu, ghost]))
    assert results.get(ghost_id) != {}  # an unknown room's event is dropped, never processed
    assert not _visible(scene.alice, private_id, eid)
    assert [e["content"]["body"] for e in _messages(scene.alice, private_id)] == ["secret"]
    # Reads of the room's history and state are refused.
    r = quote(private_id, safe="")
    for method, path, body in [
        ("GET", f"{FED}/backfill/{r}?v={quote(secret, safe='')}&limit=10", None),
        ("GET", f"{FED}/state_ids/{r}?event_id={quote(secret, safe='')}", None),
        ("GET", f"{FED}/state/{r}?event_id={quote(secret, safe='')}", None),
        ("POST", f"{FED}/get_missing_events/{r}", {"earliest_events": [], "latest_events": [secret], "limit": 10}),
    ]:
        resp = h.request(method, path, body)
        assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN", (path, resp.text)
    resp = h.request("GET", f"{FED}/event/{quote(secret, safe='')}")
    assert resp.status_code == 404 and "secret" not in resp.text
    legit_flows(scene)


def test_oversized_transactions_are_refused_whole(scene: Scene) -> None:
    h = scene.hostile
    pdus = [h.event(scene.room, "m.room.message", {"msgtype": "m.text", "body": f"flood {i}"}) for i in range(51)]
    resp = h.send_txn([p for _, p in pdus])
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_BAD_JSON"
    typing = {"edu_type": "m.typing", "content": {"room_id": scene.room, "user_id": h.user("mallory"),
                                                  "typing": True}}
    resp = h.send_txn([pdus[0][1]], [typing] * 101)
    assert resp.status_code == 400
    for eid, _ in pdus[:3]:
        assert not _visible(scene.alice, scene.room, eid)
    legit_flows(scene)


def test_malformed_bodies_and_wrong_origins(scene: Scene, synapse: Peer) -> None:
    h = scene.hostile
    path = f"{FED}/send/{secrets.token_hex(6)}"
    resp = h.request("PUT", path, raw=b'{"pdus": [')
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_NOT_JSON"
    for body in ([1, 2], {"pdus": {"not": "a list"}, "edus": []}, {"pdus": [], "edus": "x"}):
        resp = h.request("PUT", f"{FED}/send/{secrets.token_hex(6)}", body)
        assert resp.status_code == 400 and resp.json()["errcode"] == "M_BAD_JSON", resp.text
    # Garbage in the PDU list is dropped item by item; the transaction answers.
    assert _ok(h.send_txn(["x", 3, {"room_id": 5}, {}])) == {}
    # A transaction claiming another origin than the signer.
    eid, pdu = h.event(scene.room, "m.room.message", {"msgtype": "m.text", "body": "as synapse"})
    resp = h.send_txn([pdu], origin=synapse.server_name)
    assert resp.status_code == 400, resp.text
    # Signed in another server's name, or for another destination: 401.
    resp = h.request("PUT", f"{FED}/send/{secrets.token_hex(6)}", {"pdus": [pdu], "edus": []},
                     origin=synapse.server_name)
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_UNAUTHORIZED"
    resp = h.request("PUT", f"{FED}/send/{secrets.token_hex(6)}", {"pdus": [pdu], "edus": []},
                     destination="elsewhere.example")
    assert resp.status_code == 401 and resp.json()["errcode"] == "M_UNAUTHORIZED"
    assert not _visible(scene.alice, scene.room, eid)
    legit_flows(scene)


def test_replayed_transaction_id_is_answered_not_reprocessed(scene: Scene) -> None:
    h = scene.hostile
    txn = secrets.token_hex(6)
    first_id, first = h.event(scene.room, "m.room.message", {"msgtype": "m.text", "body": "first"})
    answer = _ok(h.send_txn([first], txn_id=txn))
    h.accepted(scene.room, first_id, first)
    second_id, second = h.event(scene.room, "m.room.message", {"msgtype": "m.text", "body": "replayed"})
    assert _ok(h.send_txn([second], txn_id=txn)) == answer == {first_id: {}}
    assert _visible(scene.alice, scene.room, first_id)
    assert not _visible(scene.alice, scene.room, second_id)
    legit_flows(scene)


def test_edus_for_users_it_does_not_own(scene: Scene) -> None:
    h = scene.hostile
    room, mallory = scene.room, h.user("mallory")
    forged = [
        {"edu_type": "m.typing", "content": {"room_id": room, "user_id": scene.alice.user_id, "typing": True}},
        {"edu_type": "m.typing", "content": {"room_id": room, "user_id": scene.bob.user_id, "typing": True}},
        {"edu_type": "m.presence", "content": {"push": [{"user_id": scene.bob.user_id, "presence": "online",
                                                          "status_msg": "forged", "last_active_ago": 0}]}},
        {"edu_type": "m.receipt", "content": {room: {"m.read": {scene.bob.user_id: {
            "event_ids": [h.rooms[room]["latest"]], "data": {"ts": 1}}}}}},
    ]
    own = [
        {"edu_type": "m.presence", "content": {"push": [{"user_id": mallory, "presence": "online",
                                                          "status_msg": "own", "last_active_ago": 0}]}},
        {"edu_type": "m.typing", "content": {"room_id": room, "user_id": mallory, "typing": True}},
    ]
    scene.alice.since = scene.alice.call("GET", "/sync", timeout=0)["next_batch"]
    assert _ok(h.send_txn([], forged + own)) == {}

    def typing(got: dict[str, Any]) -> bool:
        eph = got.get("rooms", {}).get("join", {}).get(room, {}).get("ephemeral", {}).get("events", [])
        return any(e["type"] == "m.typing" and mallory in e["content"]["user_ids"] for e in eph)

    got = scene.alice.sync_until("the hostile user's own typing", typing)
    eph = got["rooms"]["join"][room]["ephemeral"]["events"]
    typers = {u for e in eph if e["type"] == "m.typing" for u in e["content"]["user_ids"]}
    assert typers == {mallory}
    receipts = [e for e in eph if e["type"] == "m.receipt"]
    assert not any(scene.bob.user_id in str(r["content"]) for r in receipts)
    wait_for("the hostile user's own presence", lambda: scene.alice.call(
        "GET", f"/presence/{quote(mallory)}/status").get("status_msg") == "own")
    assert scene.alice.call("GET", f"/presence/{quote(scene.bob.user_id)}/status").get("status_msg") != "forged"
    legit_flows(scene)


def test_huge_depth_and_prev_events_fan_out(scene: Scene) -> None:
    h = scene.hostile
    # (past 2^53 - 1 a v6+ event cannot even be signed: canonical JSON has no such integer)
    too_deep_id, too_deep = h.event(scene.room, "m.room.message", {"msgtype": "m.text", "body": "deep"},
                                    depth=-1)
    fan = [f"${secrets.token_urlsafe(32)}" for _ in range(21)]
    wide_id, wide = h.event(scene.room, "m.room.message", {"msgtype": "m.text", "body": "wide"}, prev_events=fan)
    # 20 prev events none of which exist: the origin has nothing to fill the gap with.
    gap_id, gap = h.event(scene.room, "m.room.message", {"msgtype": "m.text", "body": "gap"},
                          prev_events=fan[:20])
    results = _ok(h.send_txn([too_deep, wide, gap]))
    # malformed ones are left out of the answer (as Synapse does), the unplaceable one is an error
    assert too_deep_id not in results and wide_id not in results and "error" in results[gap_id], results
    for eid in (too_deep_id, wide_id, gap_id):
        assert not _visible(scene.alice, scene.room, eid)
    # The largest depth allowed lands; the room's next local event is still a valid event.
    top_id, top = h.event(scene.room, "m.room.message", {"msgtype": "m.text", "body": "top"}, depth=2**53 - 1)
    assert _ok(h.send_txn([top]))[top_id] == {}
    h.accepted(scene.room, top_id, top)
    after = scene.alice.send(scene.room, "after the deep one")
    assert _visible(scene.alice, scene.room, after)
    legit_flows(scene)


def test_acl_banned_origin(scene: Scene) -> None:
    h = scene.hostile
    room = scene.alice.call("POST", "/createRoom", {"preset": "public_chat"})["room_id"]
    h.join(room)
    scene.bob.call("POST", f"/join/{quote(room)}", {}, server_name=scene.alice.peer.server_name)
    eid, pdu = h.event(room, "m.room.message", {"msgtype": "m.text", "body": "before the ACL"})
    assert _ok(h.send_txn([pdu]))[eid] == {}
    h.accepted(room, eid, pdu)
    scene.alice.put_state(room, "m.room.server_acl", {"allow": ["*"], "deny": ["localhost"]})
    banned_id, banned = h.event(room, "m.room.message", {"msgtype": "m.text", "body": "after the ACL"})
    other_id, other = h.event(scene.room, "m.room.message", {"msgtype": "m.text", "body": "other room"})
    results = _ok(h.send_txn([banned, other]))
    assert "error" in results[banned_id] and results[other_id] == {}
    h.accepted(scene.room, other_id, other)
    assert not _visible(scene.alice, room, banned_id)
    r = quote(room, safe="")
    for method, path in [("GET", f"{FED}/state_ids/{r}?event_id={quote(eid, safe='')}"),
                         ("GET", f"{FED}/make_join/{r}/{quote(h.user('eve'), safe='')}?ver=12")]:
        resp = h.request(method, path)
        assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN", (path, resp.text)
    # Synapse, not denied, still speaks in that room.
    sent = scene.bob.send(room, "still here")
    wait_for("Synapse's message in the ACL'd room",
             lambda: any(e["event_id"] == sent for e in _messages(scene.alice, room)))
