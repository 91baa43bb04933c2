"""Scenario 5 of issue 10: two Parley servers in one room, each restarted once mid-conversation
(and once with messages sent to it while it was down); nothing is lost, and both servers show
every message in the same order."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.federation.clients import User, same_state, wait_for
from tests.federation.peers import Peer, TestCA, restart_parley, start_parley

DEADLINE_S = 90.0  # includes the sender's backoff towards a server that was down


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory, test_ca: TestCA) -> Iterator[tuple[Peer, Peer]]:
    first = start_parley(tmp_path_factory.mktemp("parley-one"), test_ca)
    try:
        second = start_parley(tmp_path_factory.mktemp("parley-two"), test_ca)
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def test_two_parleys_restarted_mid_conversation_lose_nothing(two: tuple[Peer, Peer], test_ca: TestCA) -> None:
    one, other = two
    alice, carol = User(one), User(other)
    room = alice.call("POST", "/createRoom", {"preset": "public_chat", "name": "pair"})["room_id"]
    carol.call("POST", f"/join/{quote(room)}", {}, server_name=one.server_name)
    sent: list[str] = []

    def turn(who: User, body: str) -> None:
        """One message, then wait until both servers show the conversation so far, in order."""
        who.send(room, body)
        sent.append(body)
        wait_for(f"{body!r} on both servers", lambda: alice.bodies(room) == carol.bodies(room) == sent, DEADLINE_S)

    for i in range(5):
        turn(alice, f"a{i}")
        turn(carol, f"c{i}")
    restart_parley(one, test_ca)  # the room's origin server
    for i in range(5, 10):
        turn(alice, f"a{i}")
        turn(carol, f"c{i}")
    restart_parley(other, test_ca)
    for i in range(10, 15):
        turn(carol, f"c{i}")
        turn(alice, f"a{i}")
    # Down while the other talks: the messages wait in the sender's queue for its return.
    other.stop()
    for i in range(15, 20):
        alice.send(room, f"a{i}")
        sent.append(f"a{i}")
    restart_parley(other, test_ca)
    # Carol typing makes her server talk to the first one, which ends its backoff towards it.
    carol.call("PUT", f"/rooms/{quote(room)}/typing/{quote(carol.user_id)}", {"typing": True, "timeout": 5000})
    wait_for("everything on both servers", lambda: alice.bodies(room) == carol.bodies(room) == sent, DEADLINE_S)
    wait_for("the same current state", lambda: same_state(alice, carol, room), DEADLINE_S)
