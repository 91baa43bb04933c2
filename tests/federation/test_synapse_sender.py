"""Parley and a real Synapse in one room, both directions (issue 10, scenarios 1 and 2, and
catch-up): a Parley user creates a room and invites a Synapse user, who joins through the invite;
50 messages each way arrive in order on both sides (compared through both client APIs); typing,
read receipts, presence and a redaction cross both ways; the Synapse user leaves and re-joins the
Parley room, a Parley user leaves (through the sender) and re-joins a Synapse room, and both
servers end with the same current state of both rooms; Synapse stopped while Parley sends, and
Parley restarted with a non-empty queue, lose nothing. The servers here are this module's own
(the last test stops and restarts them)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.federation.clients import User, same_state, wait_for
from tests.federation.peers import (
    Peer,
    TestCA,
    parley_and_synapse,
    restart_parley,
    restart_synapse,
)


def ephemeral(sync: dict[str, Any], room: str, kind: str) -> list[dict[str, Any]]:
    data = sync.get("rooms", {}).get("join", {}).get(room, {})
    return [e for e in data.get("ephemeral", {}).get("events", []) if e["type"] == kind]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, test_ca: TestCA) -> Iterator[tuple[Peer, Peer]]:
    with parley_and_synapse(tmp_path_factory.mktemp("pair-send"), test_ca) as pair:
        yield pair


@pytest.fixture(scope="module")
def room(pair: tuple[Peer, Peer]) -> tuple[User, User, str]:
    parley, synapse = pair
    alice, bob = User(parley), User(synapse)
    room_id = alice.call("POST", "/createRoom", {"preset": "public_chat", "name": "across"})["room_id"]
    alice.call("POST", f"/rooms/{quote(room_id)}/invite", {"user_id": bob.user_id})
    bob.sync_until("the invite", lambda s: room_id in s.get("rooms", {}).get("invite", {}))
    bob.call("POST", f"/join/{quote(room_id)}", {})  # through the invite: no server named
    # Synapse now knows the room; Parley's first event after the join must reach it.
    wait_for("the join on Parley", lambda: bob.user_id in alice.call(
        "GET", f"/rooms/{quote(room_id)}/joined_members")["joined"])
    return alice, bob, room_id


def test_fifty_messages_each_way_in_order(room: tuple[User, User, str]) -> None:
    alice, bob, room_id = room
    # One way, then the other: messages sent concurrently from both sides are siblings in the
    # room's graph, which each server may order differently among themselves.
    for i in range(50):
        alice.send(room_id, f"p{i}")
    wanted = [f"p{i}" for i in range(50)]
    wait_for("50 messages on Synapse", lambda: bob.bodies(room_id) == wanted)
    for i in range(50):
        bob.send(room_id, f"s{i}")
    wanted += [f"s{i}" for i in range(50)]
    wait_for("100 messages on Parley", lambda: alice.bodies(room_id) == wanted)
    assert bob.bodies(room_id) == wanted


def test_typing_receipts_and_presence_cross_both_ways(room: tuple[User, User, str]) -> None:
    alice, bob, room_id = room
    alice.sync_until("an initial sync", lambda s: True)
    bob.sync_until("an initial sync", lambda s: True)
    alice.call("PUT", f"/rooms/{quote(room_id)}/typing/{quote(alice.user_id)}", {"typing": True, "timeout": 20000})
    bob.sync_until("Alice typing", lambda s: any(
        alice.user_id in e["content"]["user_ids"] for e in ephemeral(s, room_id, "m.typing")))
    bob.call("PUT", f"/rooms/{quote(room_id)}/typing/{quote(bob.user_id)}", {"typing": True, "timeout": 20000})
    alice.sync_until("Bob typing", lambda s: any(
        bob.user_id in e["content"]["user_ids"] for e in ephemeral(s, room_id, "m.typing")))

    from_alice = alice.send(room_id, "receipt me")
    from_bob = bob.send(room_id, "and me")
    wait_for("both messages on both sides", lambda: alice.bodies(room_id)[-2:] == bob.bodies(room_id)[-2:]
             == ["receipt me", "and me"])
    bob.call("POST", f"/rooms/{quote(room_id)}/receipt/m.read/{quote(from_alice)}", {})
    alice.call("POST", f"/rooms/{quote(room_id)}/receipt/m.read/{quote(from_bob)}", {})

    def read_by(user: str, event_id: str) -> Callable[[dict[str, Any]], bool]:
        return lambda s: any(user in e["content"].get(event_id, {}).get("m.read", {})
                             for e in ephemeral(s, room_id, "m.receipt"))

    alice.sync_until("Bob's receipt", read_by(bob.user_id, from_alice))
    bob.sync_until("Alice's receipt", read_by(alice.user_id, from_bob))

    alice.call("PUT", f"/presence/{quote(alice.user_id)}/status", {"presence": "online", "status_msg": "parley"})
    wait_for("Alice's presence on Synapse", lambda: bob.call(
        "GET", f"/presence/{quote(alice.user_id)}/status").get("status_msg") == "parley")
    bob.call("PUT", f"/presence/{quote(bob.user_id)}/status", {"presence": "online", "status_msg": "synapse"})
    wait_for("Bob's presence on Parley", lambda: alice.call(
        "GET", f"/presence/{quote(bob.user_id)}/status").get("status_msg") == "synapse")


def test_redactions_cross_both_ways(room: tuple[User, User, str]) -> None:
    alice, bob, room_id = room
    a = alice.send(room_id, "regret from parley")
    # Bob sends once he has Alice's message: sent at the same moment, the two are concurrent
    # events that each server may order differently (its own first), which is not the point here.
    wait_for("Alice's message on Synapse", lambda: bob.bodies(room_id)[-1:] == ["regret from parley"])
    b = bob.send(room_id, "regret from synapse")
    wait_for("both on both sides", lambda: alice.bodies(room_id)[-2:] == bob.bodies(room_id)[-2:])
    alice.call("PUT", f"/rooms/{quote(room_id)}/redact/{quote(a)}/{secrets.token_hex(6)}", {})
    bob.call("PUT", f"/rooms/{quote(room_id)}/redact/{quote(b)}/{secrets.token_hex(6)}", {})
    for user in (alice, bob):
        for event_id in (a, b):
            wait_for(f"{event_id} redacted for {user.user_id}", lambda u=user, e=event_id: u.call(
                "GET", f"/rooms/{quote(room_id)}/event/{quote(e)}").get("content") == {})


def test_synapse_user_leaves_and_rejoins_the_parley_room(room: tuple[User, User, str]) -> None:
    alice, bob, room_id = room
    bob.call("POST", f"/rooms/{quote(room_id)}/leave", {})
    wait_for("Bob's leave on Parley", lambda: alice.membership(room_id, bob.user_id) == "leave")
    alice.send(room_id, "while Bob is away")
    bob.call("POST", f"/join/{quote(room_id)}", {}, server_name=alice.peer.server_name)
    wait_for("Bob's re-join on Parley", lambda: alice.membership(room_id, bob.user_id) == "join")
    alice.send(room_id, "welcome back")
    # Bob answers once he has it: sent at the same moment, the two could be ordered differently on
    # each server (concurrent events), which is not what this test is about.
    wait_for("the welcome on Synapse", lambda: bob.bodies(room_id)[-1:] == ["welcome back"])
    bob.send(room_id, "glad to be back")
    wait_for("both on both sides", lambda: alice.bodies(room_id)[-2:] == bob.bodies(room_id)[-2:]
             == ["welcome back", "glad to be back"])
    wait_for("the same current state on both servers", lambda: same_state(alice, bob, room_id))


def test_parley_user_leaves_and_rejoins_a_synapse_room(room: tuple[User, User, str]) -> None:
    alice, bob, _ = room
    on_synapse = bob.call("POST", "/createRoom", {"preset": "public_chat", "name": "over there"})["room_id"]
    alice.call("POST", f"/join/{quote(on_synapse)}", {}, server_name=bob.peer.server_name)
    assert bob.membership(on_synapse, alice.user_id) == "join"
    alice.send(on_synapse, "hello from parley")
    wait_for("Alice's message on Synapse", lambda: bob.bodies(on_synapse) == ["hello from parley"])
    # Parley is in the room: the leave is an ordinary local event, delivered by the sender.
    alice.call("POST", f"/rooms/{quote(on_synapse)}/leave", {})
    wait_for("Alice's leave on Synapse", lambda: bob.membership(on_synapse, alice.user_id) == "leave")
    bob.send(on_synapse, "said while Alice was away")
    alice.call("POST", f"/join/{quote(on_synapse)}", {}, server_name=bob.peer.server_name)
    assert bob.membership(on_synapse, alice.user_id) == "join"
    bob.send(on_synapse, "welcome back")
    wait_for("Synapse's message after the re-join", lambda: alice.bodies(on_synapse)[-1:] == ["welcome back"])
    alice.send(on_synapse, "thanks")
    wait_for("the reply on Synapse", lambda: bob.bodies(on_synapse)[-1:] == ["thanks"])
    wait_for("the same current state on both servers", lambda: same_state(alice, bob, on_synapse))
    assert alice.state_ids(on_synapse)[("m.room.member", alice.user_id)] == \
        bob.state_ids(on_synapse)[("m.room.member", alice.user_id)]


def test_catch_up_after_synapse_and_parley_restarts(pair: tuple[Peer, Peer], room: tuple[User, User, str],
                                                    test_ca: TestCA) -> None:
    parley, synapse = pair
    alice, bob, room_id = room
    synapse.stop()
    for i in range(5):
        alice.send(room_id, f"while down {i}")
    restart_parley(parley, test_ca)  # with those five still queued
    for i in range(5, 10):
        alice.send(room_id, f"while down {i}")
    restart_synapse(synapse)
    wanted = [f"while down {i}" for i in range(10)]
    wait_for("the ten messages on Synapse", lambda: bob.bodies(room_id)[-10:] == wanted)
    assert alice.bodies(room_id)[-10:] == wanted
    assert sorted(alice.bodies(room_id)) == sorted(bob.bodies(room_id))
    wait_for("the same current state after the restarts", lambda: same_state(alice, bob, room_id))
