"""Rooms of older versions with a real Synapse: Parley creates rooms v1, v3, v6 and v9, a
Synapse user joins each through Parley's make_join/send_join (so Synapse checked our state and auth
chain in that version's event format, redaction and auth rules), Synapse backfills Parley's history
from before the join, and Synapse's messages land in Parley in order."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.federation.peers import Peer
from tests.federation.test_synapse_peer import _auth, _register

V3 = "/_matrix/client/v3"


def _id_pattern(version: str, server: str) -> re.Pattern[str]:
    if version in ("1", "2"):
        return re.compile(r"^\$[^:]+:" + re.escape(server) + "$")
    return re.compile(r"^\$[A-Za-z0-9+/]{43}$" if version == "3" else r"^\$[A-Za-z0-9_\-]{43}$")


def _call(peer: Peer, user: dict[str, Any], method: str, path: str, body: Any = None,
          params: dict[str, Any] | None = None) -> Any:
    resp = httpx.request(method, f"{peer.client_base}{path}", json=body, params=params, headers=_auth(user),
                         timeout=60)
    assert resp.status_code == 200, (path, resp.text)
    return resp.json()


def _bodies(peer: Peer, user: dict[str, Any], room: str) -> list[tuple[str, str, str]]:
    page = _call(peer, user, "GET", f"{V3}/rooms/{quote(room)}/messages", params={"dir": "b", "limit": 50})
    return [(e["sender"], e["content"].get("body", ""), e["event_id"]) for e in reversed(page["chunk"])
            if e["type"] == "m.room.message"]


def _poll(what: str, check: Any, limit: float = 60) -> Any:
    """Poll `check` until it returns a truthy value, with a deadline."""
    deadline = time.monotonic() + limit
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)  # poll interval against a deadline, not a synchronization sleep


@pytest.mark.parametrize("version", ["1", "3", "6", "9"])
def test_synapse_joins_parley_rooms_of_older_versions(parley: Peer, synapse: Peer, version: str) -> None:
    alice = _register(parley)
    room = _call(parley, alice, "POST", f"{V3}/createRoom",
                 {"room_version": version, "preset": "public_chat", "name": f"v{version}"})["room_id"]
    assert room.endswith(":" + parley.server_name)
    early = [_call(parley, alice, "PUT", f"{V3}/rooms/{quote(room)}/send/m.room.message/e{i}",
                   {"msgtype": "m.text", "body": f"parley {i}"})["event_id"] for i in range(3)]
    # a redaction before the join: Synapse must accept the redacted event in the state/history
    _call(parley, alice, "PUT", f"{V3}/rooms/{quote(room)}/redact/{quote(early[1], safe='')}/r", {"reason": "x"})
    sam = _register(synapse)
    joined = _call(synapse, sam, "POST", f"{V3}/join/{quote(room)}", {},
                   params={"server_name": parley.server_name})
    assert joined["room_id"] == room

    # Synapse accepted the state and auth chain: its client sees the room as Parley made it
    state = _call(synapse, sam, "GET", f"{V3}/rooms/{quote(room)}/state")
    by_key = {(e["type"], e["state_key"]): e for e in state}
    assert by_key[("m.room.create", "")]["content"]["room_version"] == version
    assert by_key[("m.room.name", "")]["content"]["name"] == f"v{version}"
    assert by_key[("m.room.member", alice["user_id"])]["content"]["membership"] == "join"
    assert by_key[("m.room.member", sam["user_id"])]["content"]["membership"] == "join"
    pattern = _id_pattern(version, parley.server_name)
    assert pattern.match(by_key[("m.room.create", "")]["event_id"])

    # Synapse backfills Parley's history from before the join (shared history), redaction included
    def synapse_history() -> list[tuple[str, str, str]] | None:
        page = _call(synapse, sam, "GET", f"{V3}/rooms/{quote(room)}/messages", params={"dir": "b", "limit": 30})
        msgs = [(e["event_id"], e["content"].get("body", ""), e["type"]) for e in reversed(page["chunk"])
                if e["type"] == "m.room.message"]
        return msgs if len(msgs) >= 3 else None

    history = _poll("Synapse's backfill", synapse_history)
    assert [h[0] for h in history] == early
    assert [h[1] for h in history] == ["parley 0", "", "parley 2"]  # the redacted one has no body

    # Synapse's messages land in Parley, in order, under their IDs in the version's format
    sent = [_call(synapse, sam, "PUT", f"{V3}/rooms/{quote(room)}/send/m.room.message/s{i}",
                  {"msgtype": "m.text", "body": f"synapse {i}"})["event_id"] for i in range(5)]
    for eid in sent:
        assert _id_pattern(version, synapse.server_name).match(eid), eid

    def landed() -> list[tuple[str, str, str]] | None:
        got = [b for b in _bodies(parley, alice, room) if b[0] == sam["user_id"]]
        return got if len(got) == len(sent) else None

    got = _poll("Synapse's messages in Parley", landed)
    assert [g[1] for g in got] == [f"synapse {i}" for i in range(5)]
    assert [g[2] for g in got] == sent
    members = _call(parley, alice, "GET", f"{V3}/rooms/{quote(room)}/joined_members")["joined"]
    assert set(members) == {alice["user_id"], sam["user_id"]}


def test_server_acl_against_synapse(parley: Peer, synapse: Peer) -> None:
    """Synapse's server name here is an IP literal (127.0.0.1:port): an ACL refusing IP literals
    keeps its user out; once in, PDUs of a room whose ACL then bans it are dropped while its
    PDUs of another room (sent after them, on the same ordered queue) land."""
    alice = _register(parley)
    acl = {"type": "m.room.server_acl", "state_key": "", "content": {"allow": ["*"], "allow_ip_literals": False}}
    room = _call(parley, alice, "POST", f"{V3}/createRoom",
                 {"room_version": "10", "preset": "public_chat", "initial_state": [acl]})["room_id"]
    other = _call(parley, alice, "POST", f"{V3}/createRoom", {"room_version": "10", "preset": "public_chat"})["room_id"]
    sam = _register(synapse)
    resp = httpx.post(f"{synapse.client_base}{V3}/join/{quote(room)}", json={}, headers=_auth(sam),
                      params={"server_name": parley.server_name}, timeout=60)
    assert resp.status_code != 200, resp.text
    members = _call(parley, alice, "GET", f"{V3}/rooms/{quote(room)}/joined_members")["joined"]
    assert set(members) == {alice["user_id"]}

    # Ports are ignored and globs match: denying 127.0.0.* by name also keeps it out.
    _call(parley, alice, "PUT", f"{V3}/rooms/{quote(room)}/state/m.room.server_acl/",
          {"allow": ["*"], "deny": ["127.0.0.*"]})
    resp = httpx.post(f"{synapse.client_base}{V3}/join/{quote(room)}", json={}, headers=_auth(sam),
                      params={"server_name": parley.server_name}, timeout=60)
    assert resp.status_code != 200, resp.text

    # Lifted: the join goes through.
    _call(parley, alice, "PUT", f"{V3}/rooms/{quote(room)}/state/m.room.server_acl/", {"allow": ["*"]})
    for r in (room, other):
        _call(synapse, sam, "POST", f"{V3}/join/{quote(r)}", {}, params={"server_name": parley.server_name})
    # Banned again (Synapse does not hear of it: Parley does not send its events yet).
    _call(parley, alice, "PUT", f"{V3}/rooms/{quote(room)}/state/m.room.server_acl/",
          {"allow": ["*"], "allow_ip_literals": False})
    _call(synapse, sam, "PUT", f"{V3}/rooms/{quote(room)}/send/m.room.message/b1",
          {"msgtype": "m.text", "body": "into the banned room"})
    marker = _call(synapse, sam, "PUT", f"{V3}/rooms/{quote(other)}/send/m.room.message/o1",
                   {"msgtype": "m.text", "body": "into the open room"})["event_id"]
    _poll("the open room's message", lambda: any(b[2] == marker for b in _bodies(parley, alice, other)))
    assert [b for b in _bodies(parley, alice, room) if b[0] == sam["user_id"]] == []
