"""An invite of another server's user waits for that server to countersign it. A slow (here:
hanging) invitee server must not hold up the room: other events are sent meanwhile, and the
invite, once answered, still lands, beside them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.federation.clients import User
from tests.federation.hostile import HostileServer
from tests.federation.peers import Peer, TestCA


@pytest.fixture
def slow_server(parley: Peer, test_ca: TestCA) -> Iterator[HostileServer]:
    server = HostileServer(test_ca, parley)
    try:
        yield server
    finally:
        server.close()


def _invite_in_background(parley: Peer, slow_server: HostileServer, alice: User, room: str,
                          invitee: str) -> tuple[threading.Thread, dict[str, Any]]:
    """Alice invites the slow server's user from a thread; the answer lands in the dict."""
    slow_server.release_invites.clear()
    slow_server.invite_arrived.clear()
    answer: dict[str, Any] = {}

    def invite() -> None:
        resp = httpx.post(f"{parley.client_base}/_matrix/client/v3/rooms/{quote(room)}/invite",
                          json={"user_id": invitee}, headers={"Authorization": f"Bearer {alice.token}"},
                          timeout=120)
        answer["status"], answer["body"] = resp.status_code, resp.text

    inviting = threading.Thread(target=invite)
    inviting.start()
    return inviting, answer


def test_a_hanging_invitee_server_does_not_block_the_room(parley: Peer, slow_server: HostileServer) -> None:
    alice = User(parley)
    room = alice.call("POST", "/createRoom", {"preset": "private_chat", "name": "invites"})["room_id"]
    invitee = slow_server.user("slowpoke")
    inviting, answer = _invite_in_background(parley, slow_server, alice, room, invitee)
    try:
        assert slow_server.invite_arrived.wait(60), "the invite never reached the invitee's server"
        # The invitee's server is still sitting on the invite: the room goes on without it.
        sent = [alice.send(room, f"while inviting {i}") for i in range(3)]
        topic = alice.put_state(room, "m.room.topic", {"topic": "set while inviting"})
        assert inviting.is_alive() and "status" not in answer
    finally:
        slow_server.release_invites.set()
        inviting.join(120)
    assert answer.get("status") == 200, answer
    assert alice.membership(room, invitee) == "invite"
    chunk = alice.call("GET", f"/rooms/{quote(room)}/messages", dir="b", limit=50)["chunk"]
    ids = [e["event_id"] for e in chunk]
    assert set(sent) <= set(ids) and topic in ids
    # The invite is a branch beside those events; the next event joins the branches.
    after = alice.send(room, "after the invite")
    state = alice.state_ids(room)
    assert state[("m.room.topic", "")] == topic and ("m.room.member", invitee) in state
    assert alice.call("GET", f"/rooms/{quote(room)}/event/{quote(after)}")["content"]["body"] == "after the invite"


def test_an_invite_no_longer_allowed_after_the_wait_is_refused(parley: Peer, slow_server: HostileServer) -> None:
    alice = User(parley)
    room = alice.call("POST", "/createRoom", {"preset": "private_chat"})["room_id"]
    invitee = slow_server.user("banned")
    inviting, answer = _invite_in_background(parley, slow_server, alice, room, invitee)
    try:
        assert slow_server.invite_arrived.wait(60), "the invite never reached the invitee's server"
        # While the invitee's server thinks, the invitee is banned: the countersigned invite
        # must then not overrule the ban.
        alice.call("POST", f"/rooms/{quote(room)}/ban", {"user_id": invitee})
    finally:
        slow_server.release_invites.set()
        inviting.join(120)
    assert answer.get("status") == 403 and json.loads(answer["body"])["errcode"] == "M_FORBIDDEN", answer
    assert alice.membership(room, invitee) == "ban"
