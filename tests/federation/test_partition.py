"""Scenario 3 of issue 10, against a real Synapse: a partition. Both servers are in one room and
may change its name and power levels; Synapse is stopped, Parley changes both and keeps talking;
Synapse comes back and, before it has heard of that, changes both too. Afterwards both servers
show the same current state (the same event IDs for m.room.name and m.room.power_levels, state
resolution v2) and every message sent on either side arrives on the other. The servers are this
module's own (Synapse is stopped)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.federation.clients import User, same_state, wait_for
from tests.federation.peers import Peer, TestCA, parley_and_synapse, restart_synapse

DEADLINE_S = 120.0  # the sender's backoff towards the restarted Synapse is part of the wait


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, test_ca: TestCA) -> Iterator[tuple[Peer, Peer]]:
    with parley_and_synapse(tmp_path_factory.mktemp("pair-part"), test_ca) as pair:
        yield pair


def _power(user: User, room: str, **change: int) -> dict[str, object]:
    """The room's power levels as `user`'s server has them, with `change` applied."""
    return {**user.call("GET", f"/rooms/{quote(room)}/state/m.room.power_levels"), **change}


def test_both_sides_change_name_and_power_levels_during_a_partition(pair: tuple[Peer, Peer]) -> None:
    parley, synapse = pair
    alice, bob = User(parley), User(synapse)
    room = alice.call("POST", "/createRoom", {
        "preset": "public_chat", "name": "before", "room_version": "12",
        "power_level_content_override": {"users": {bob.user_id: 100}}})["room_id"]
    bob.call("POST", f"/join/{quote(room)}", {}, server_name=parley.server_name)
    alice.send(room, "hello")
    wait_for("the first message on Synapse", lambda: bob.bodies(room) == ["hello"])
    wait_for("the same state before the partition", lambda: same_state(alice, bob, room))

    synapse.stop()
    name_p = alice.put_state(room, "m.room.name", {"name": "named on parley"})
    pl_p = alice.put_state(room, "m.room.power_levels", _power(alice, room, invite=10))
    for i in range(3):
        alice.send(room, f"parley during {i}")

    restart_synapse(synapse)
    # Synapse has not heard of Parley's changes yet: the sender is backing off towards it.
    assert bob.state_ids(room)[("m.room.name", "")] != name_p
    name_s = bob.put_state(room, "m.room.name", {"name": "named on synapse"})
    pl_s = bob.put_state(room, "m.room.power_levels", _power(bob, room, kick=60))
    for i in range(3):
        bob.send(room, f"synapse during {i}")

    wanted = {"hello"} | {f"parley during {i}" for i in range(3)} | {f"synapse during {i}" for i in range(3)}
    wait_for("every message on Parley", lambda: set(alice.bodies(room)) == wanted, DEADLINE_S)
    wait_for("every message on Synapse", lambda: set(bob.bodies(room)) == wanted, DEADLINE_S)
    # A message from each side merges the two branches of the room's graph on both servers.
    alice.send(room, "after from parley")
    bob.send(room, "after from synapse")
    wanted |= {"after from parley", "after from synapse"}
    wait_for("the last messages on both sides", lambda: set(alice.bodies(room)) == set(bob.bodies(room)) == wanted,
             DEADLINE_S)

    def converged() -> bool:
        a, b = alice.state_ids(room), bob.state_ids(room)
        return a == b and a[("m.room.name", "")] in (name_p, name_s) and a[("m.room.power_levels", "")] in (pl_p, pl_s)

    wait_for("both servers on the same current state", converged, DEADLINE_S)
    state = alice.state_ids(room)
    name = alice.call("GET", f"/rooms/{quote(room)}/state/m.room.name")["name"]
    assert name == bob.call("GET", f"/rooms/{quote(room)}/state/m.room.name")["name"]
    assert name == ("named on parley" if state[("m.room.name", "")] == name_p else "named on synapse")
    assert alice.call("GET", f"/rooms/{quote(room)}/state/m.room.power_levels") == \
        bob.call("GET", f"/rooms/{quote(room)}/state/m.room.power_levels")
