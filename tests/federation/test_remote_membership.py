"""Parley users in rooms that live on a real Synapse: joining by alias and by ID (room versions
10, 11 and 12), history through backfill as history_visibility allows, Synapse's later messages
in the Parley user's sync, invites and knocks both ways; and a room on another Parley."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.federation.peers import Peer, TestCA, start_parley

V3 = "/_matrix/client/v3"
DEADLINE_S = 30.0


def _register(peer: Peer) -> dict[str, Any]:
    body = {"username": f"u{secrets.token_hex(4)}", "password": "correct horse battery",
            "auth": {"type": "m.login.dummy"}}
    resp = httpx.post(f"{peer.client_base}{V3}/register", json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _call(peer: Peer, user: dict[str, Any], method: str, path: str, body: Any = None,
          params: dict[str, Any] | None = None, expect: int = 200) -> dict[str, Any]:
    resp = httpx.request(method, f"{peer.client_base}{V3}{path}", json=body, params=params, timeout=60,
                         headers={"Authorization": f"Bearer {user['access_token']}"})
    assert resp.status_code == expect, f"{method} {path}: {resp.status_code} {resp.text}"
    return dict(resp.json())


def _until(what: str, probe: Callable[[], Any]) -> Any:
    """Poll `probe` until it returns something truthy, within the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)  # polling interval of a condition with a deadline


def _synapse_room(synapse: Peer, bob: dict[str, Any], version: str, visibility: str = "shared",
                  alias: str | None = None) -> str:
    body: dict[str, Any] = {"room_version": version, "preset": "public_chat", "name": f"room v{version}",
                            "initial_state": [{"type": "m.room.history_visibility", "state_key": "",
                                               "content": {"history_visibility": visibility}}]}
    if alias:
        body["room_alias_name"] = alias
    return str(_call(synapse, bob, "POST", "/createRoom", body)["room_id"])


def _send(peer: Peer, user: dict[str, Any], room: str, text: str) -> str:
    return str(_call(peer, user, "PUT", f"/rooms/{quote(room)}/send/m.room.message/{secrets.token_hex(6)}",
                     {"msgtype": "m.text", "body": text})["event_id"])


def _membership_on(peer: Peer, viewer: dict[str, Any], room: str, user_id: str) -> str | None:
    members = _call(peer, viewer, "GET", f"/rooms/{quote(room)}/members")["chunk"]
    got = [m["content"]["membership"] for m in members if m["state_key"] == user_id]
    return got[0] if got else None


def _bodies_back(peer: Peer, user: dict[str, Any], room: str) -> list[str]:
    """Every message body visible paging /messages backwards to the start, oldest first."""
    bodies: list[str] = []
    token: str | None = None
    for _ in range(20):
        params: dict[str, Any] = {"dir": "b", "limit": 5}
        if token:
            params["from"] = token
        page = _call(peer, user, "GET", f"/rooms/{quote(room)}/messages", params=params)
        bodies += [e["content"]["body"] for e in page["chunk"] if e["type"] == "m.room.message"]
        token = page.get("end")
        if not token or not page["chunk"]:
            break
    return list(reversed(bodies))


def _sync(peer: Peer, user: dict[str, Any], since: str | None = None) -> dict[str, Any]:
    params = {"timeout": "0"} | ({"since": since} if since else {})
    return _call(peer, user, "GET", "/sync", params=params)


@pytest.mark.parametrize("version", ["10", "11", "12"])
def test_join_a_synapse_room_by_alias_and_by_id(parley: Peer, synapse: Peer, version: str) -> None:
    bob = _register(synapse)
    local = f"j{version}{secrets.token_hex(3)}"
    by_alias = _synapse_room(synapse, bob, version, alias=local)
    by_id = _synapse_room(synapse, bob, version)
    for i in range(3):
        _send(synapse, bob, by_alias, f"before {i}")
    alice = _register(parley)
    carol = _register(parley)
    joined = _call(parley, alice, "POST", f"/join/{quote(f'#{local}:{synapse.server_name}')}", {})
    assert joined["room_id"] == by_alias
    # A v12 room ID names no server: the client says where to go.
    joined = _call(parley, carol, "POST", f"/join/{quote(by_id)}", {}, params={"server_name": synapse.server_name})
    assert joined["room_id"] == by_id
    assert _membership_on(synapse, bob, by_alias, alice["user_id"]) == "join"
    assert _membership_on(synapse, bob, by_id, carol["user_id"]) == "join"

    first = _sync(parley, alice)
    room = first["rooms"]["join"][by_alias]
    state = {(e["type"], e["state_key"]) for e in room["state"]["events"] + room["timeline"]["events"]}
    assert {("m.room.create", ""), ("m.room.name", ""), ("m.room.member", bob["user_id"]),
            ("m.room.member", alice["user_id"]), ("m.room.history_visibility", "")} <= state
    assert room["timeline"]["events"][-1]["state_key"] == alice["user_id"]
    assert _call(parley, alice, "GET", f"/rooms/{quote(by_alias)}/state/m.room.name")["name"] == f"room v{version}"

    # Synapse's messages after the join reach the Parley user's sync, in order.
    sent = [_send(synapse, bob, by_alias, f"after {i}") for i in range(3)]
    seen: list[str] = []
    since = first["next_batch"]

    def more() -> bool:
        nonlocal since
        s = _sync(parley, alice, since)
        since = s["next_batch"]
        seen.extend(e["event_id"] for e in s["rooms"]["join"].get(by_alias, {}).get("timeline", {})
                    .get("events", []) if e["type"] == "m.room.message")
        return len(seen) >= len(sent)

    _until("Synapse's messages in the Parley sync", more)
    assert seen == sent
    # The earlier history comes through backfill (shared visibility), never as new in sync.
    assert _bodies_back(parley, alice, by_alias) == [f"before {i}" for i in range(3)] + [f"after {i}" for i in range(3)]
    later = _sync(parley, alice, since)
    assert by_alias not in later.get("rooms", {}).get("join", {})


def test_history_visibility_joined_hides_backfilled_history(parley: Peer, synapse: Peer) -> None:
    bob = _register(synapse)
    room = _synapse_room(synapse, bob, "12", visibility="joined")
    for i in range(3):
        _send(synapse, bob, room, f"secret {i}")
    alice = _register(parley)
    _call(parley, alice, "POST", f"/rooms/{quote(room)}/join", {}, params={"via": synapse.server_name})
    last = _send(synapse, bob, room, "welcome")

    def arrived() -> bool:
        page = _call(parley, alice, "GET", f"/rooms/{quote(room)}/messages", params={"dir": "b", "limit": 5})
        return any(e["event_id"] == last for e in page["chunk"])

    _until("the message after the join", arrived)
    assert _bodies_back(parley, alice, room) == ["welcome"]


def test_invites_from_synapse_accepted_and_rejected(parley: Peer, synapse: Peer) -> None:
    bob = _register(synapse)
    alice = _register(parley)
    accepted = _synapse_room(synapse, bob, "12")
    rejected = _synapse_room(synapse, bob, "11")
    for room in (accepted, rejected):
        _call(synapse, bob, "POST", f"/rooms/{quote(room)}/invite", {"user_id": alice["user_id"]})

    invites = _until("both invites in the Parley sync",
                     lambda: (i := _sync(parley, alice).get("rooms", {}).get("invite", {}))
                     and accepted in i and rejected in i and i)
    stripped = {(e["type"], e["state_key"]) for e in invites[accepted]["invite_state"]["events"]}
    assert ("m.room.member", alice["user_id"]) in stripped and ("m.room.name", "") in stripped

    _call(parley, alice, "POST", f"/join/{quote(accepted)}", {})
    assert _membership_on(synapse, bob, accepted, alice["user_id"]) == "join"
    assert accepted in _call(parley, alice, "GET", "/joined_rooms")["joined_rooms"]

    _call(parley, alice, "POST", f"/rooms/{quote(rejected)}/leave", {})
    assert _membership_on(synapse, bob, rejected, alice["user_id"]) == "leave"
    after = _sync(parley, alice)
    assert rejected not in after.get("rooms", {}).get("invite", {})
    assert rejected not in _call(parley, alice, "GET", "/joined_rooms")["joined_rooms"]


def test_parley_user_invites_a_synapse_user_who_joins(parley: Peer, synapse: Peer) -> None:
    alice = _register(parley)
    bob = _register(synapse)
    room = str(_call(parley, alice, "POST", "/createRoom", {"preset": "private_chat", "name": "from parley"})
               ["room_id"])
    _call(parley, alice, "POST", f"/rooms/{quote(room)}/invite", {"user_id": bob["user_id"]})
    assert _membership_on(parley, alice, room, bob["user_id"]) == "invite"
    _until("the invite in Synapse's sync",
           lambda: room in _sync(synapse, bob).get("rooms", {}).get("invite", {}))
    _call(synapse, bob, "POST", f"/join/{quote(room)}", {})
    assert _membership_on(parley, alice, room, bob["user_id"]) == "join"
    assert _membership_on(synapse, bob, room, alice["user_id"]) == "join"


def test_knocks_both_ways(parley: Peer, synapse: Peer) -> None:
    bob = _register(synapse)
    alice = _register(parley)
    knock_rules = [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}]
    # A Parley user knocks on a Synapse room, then takes the knock back.
    on_synapse = str(_call(synapse, bob, "POST", "/createRoom", {
        "room_version": "12", "name": "knock here", "initial_state": knock_rules})["room_id"])
    resp = _call(parley, alice, "POST", f"/knock/{quote(on_synapse)}", {"reason": "let me in"},
                 params={"via": synapse.server_name})
    assert resp == {"room_id": on_synapse}
    assert _membership_on(synapse, bob, on_synapse, alice["user_id"]) == "knock"
    knocks = _sync(parley, alice)["rooms"]["knock"]
    stripped = {(e["type"], e.get("state_key")) for e in knocks[on_synapse]["knock_state"]["events"]}
    assert ("m.room.name", "") in stripped and ("m.room.member", alice["user_id"]) in stripped
    _call(parley, alice, "POST", f"/rooms/{quote(on_synapse)}/leave", {})
    assert _membership_on(synapse, bob, on_synapse, alice["user_id"]) == "leave"

    # A Synapse user knocks on a Parley room; the Parley user lets them in.
    on_parley = str(_call(parley, alice, "POST", "/createRoom", {
        "room_version": "11", "name": "knock there", "initial_state": knock_rules})["room_id"])
    _call(synapse, bob, "POST", f"/knock/{quote(on_parley)}", {}, params={"server_name": parley.server_name})
    assert _membership_on(parley, alice, on_parley, bob["user_id"]) == "knock"
    _call(parley, alice, "POST", f"/rooms/{quote(on_parley)}/invite", {"user_id": bob["user_id"]})
    _call(synapse, bob, "POST", f"/join/{quote(on_parley)}", {}, params={"server_name": parley.server_name})
    assert _membership_on(parley, alice, on_parley, bob["user_id"]) == "join"


def test_parley_joins_a_room_on_another_parley(parley: Peer, test_ca: TestCA,
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    other = start_parley(tmp_path_factory.mktemp("parley-join"), test_ca)
    try:
        alice = _register(other)
        local = f"pp{secrets.token_hex(3)}"
        room = str(_call(other, alice, "POST", "/createRoom", {
            "preset": "public_chat", "room_alias_name": local, "name": "on the other Parley"})["room_id"])
        for i in range(3):
            _send(other, alice, room, f"earlier {i}")
        carol = _register(parley)
        assert _call(parley, carol, "POST", f"/join/{quote(f'#{local}:{other.server_name}')}", {}) == {"room_id": room}
        assert _membership_on(other, alice, room, carol["user_id"]) == "join"
        assert _call(parley, carol, "GET", f"/rooms/{quote(room)}/state/m.room.name")["name"] == "on the other Parley"
        assert _bodies_back(parley, carol, room) == [f"earlier {i}" for i in range(3)]
    finally:
        other.stop()
