"""Parley users joining rooms a real Synapse created in room versions 1 to 9 (the other direction
is test_room_versions_synapse.py): by alias and by ID, messages both ways in order, and both
servers agreeing on the room's current state, event ID for event ID."""

from __future__ import annotations

import re
import secrets
from urllib.parse import quote

import pytest

from tests.federation.clients import User, same_state, wait_for
from tests.federation.peers import Peer


def _id_pattern(version: str, server: str) -> re.Pattern[str]:
    if version in ("1", "2"):
        return re.compile(r"^\$[^:]+:" + re.escape(server) + "$")
    return re.compile(r"^\$[A-Za-z0-9+/]{43}$" if version == "3" else r"^\$[A-Za-z0-9_\-]{43}$")


def _messages(user: User, room: str) -> list[tuple[str, str]]:
    """(event ID, body) of the room's messages, oldest first, as the user's server shows them."""
    chunk = user.call("GET", f"/rooms/{quote(room)}/messages", dir="b", limit=100)["chunk"]
    return [(e["event_id"], e["content"]["body"]) for e in reversed(chunk)
            if e["type"] == "m.room.message" and "body" in e.get("content", {})]


@pytest.mark.parametrize("version", [str(v) for v in range(1, 10)])
def test_parley_joins_synapse_rooms_of_versions_1_to_9(parley: Peer, synapse: Peer, version: str) -> None:
    bob = User(synapse)
    local = f"old{version}{secrets.token_hex(3)}"
    room = bob.call("POST", "/createRoom", {"room_version": version, "preset": "public_chat",
                                            "name": f"synapse v{version}", "room_alias_name": local})["room_id"]
    # v1 and v2 event IDs name their server; from v3 on they are hashes (v3 base64, v4+ URL-safe).
    create_id = bob.state_ids(room)[("m.room.create", "")]
    assert _id_pattern(version, synapse.server_name).match(create_id), create_id
    early = [bob.send(room, f"synapse early {i}") for i in range(2)]

    alice, carol = User(parley), User(parley)
    assert alice.call("POST", f"/join/{quote(f'#{local}:{synapse.server_name}')}", {})["room_id"] == room
    assert carol.call("POST", f"/join/{quote(room)}", {}, server_name=synapse.server_name)["room_id"] == room
    assert bob.membership(room, alice.user_id) == "join"
    # Parley is in the room by then: the second join is built locally and sent to Synapse.
    wait_for("the second join on Synapse", lambda: bob.membership(room, carol.user_id) == "join")
    assert alice.call("GET", f"/rooms/{quote(room)}/state/m.room.create")["room_version"] == version
    assert alice.call("GET", f"/rooms/{quote(room)}/state/m.room.name")["name"] == f"synapse v{version}"

    # Parley's messages, in this version's event format, reach Synapse in order ...
    ours = [alice.send(room, f"parley {i}") for i in range(3)]
    for eid in ours:
        assert _id_pattern(version, parley.server_name).match(eid), eid
    wait_for("Parley's messages on Synapse", lambda: [m[0] for m in _messages(bob, room)][-3:] == ours)
    # ... and Synapse's reach Parley, after them.
    theirs = [bob.send(room, f"synapse late {i}") for i in range(3)]
    wait_for("Synapse's messages on Parley", lambda: [m[0] for m in _messages(alice, room)][-3:] == theirs)
    got = _messages(alice, room)
    assert [m[1] for m in got][-6:] == [f"parley {i}" for i in range(3)] + [f"synapse late {i}" for i in range(3)]
    # History from before the join came through backfill (shared visibility).
    assert [m[0] for m in got][:2] == early

    # State changes on either side land on both, and then the two states are the same.
    levels = bob.call("GET", f"/rooms/{quote(room)}/state/m.room.power_levels")
    levels["users"][alice.user_id] = 50
    power = bob.put_state(room, "m.room.power_levels", levels)
    wait_for("the power levels on Parley", lambda: alice.state_ids(room).get(("m.room.power_levels", "")) == power)
    topic = alice.put_state(room, "m.room.topic", {"topic": f"from parley v{version}"})
    wait_for("the topic on Synapse", lambda: bob.state_ids(room).get(("m.room.topic", "")) == topic)
    bob.put_state(room, "m.room.name", {"name": f"renamed v{version}"})
    wait_for("both servers' states to agree", lambda: same_state(alice, bob, room))
    state = alice.state_ids(room)
    assert {("m.room.member", u.user_id) for u in (alice, bob, carol)} <= set(state)
    assert alice.call("GET", f"/rooms/{quote(room)}/state/m.room.name")["name"] == f"renamed v{version}"
