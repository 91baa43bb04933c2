"""Joining, leaving and being invited to rooms that live on another server, in-process on both
databases: the other server is an in-memory peer with its own signing key that holds a real,
signed room (create, members, power levels, join rules, messages) and answers make_join /
send_join / make_leave / send_leave / backfill / directory queries from it."""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import quote, unquote

import httpx
import orjson

from federation.keys import local_key_response
from federation.membership_client import FederationMembershipClient
from homeserver.app import Homeserver
from homeserver.protocol.events import compute_event_id, hash_and_sign_event
from homeserver.protocol.redaction import redact
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.protocol.signing import sign_json, verify_json_signature, verify_key_b64
from homeserver.rooms.federated_invites import FederatedInvites
from homeserver.rooms.remote_backfill import RemoteBackfill
from homeserver.rooms.remote_membership import RemoteMembership
from tests.api.test_federation_api import FED_ON, REMOTE, REMOTE_KEY, remote_keys_handler, signed, use_transport
from tests.api.test_federation_events import _fed, _rewire
from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
RV = KNOWN_ROOM_VERSIONS["10"]
BOB = f"@bob:{REMOTE}"
DOWN = "down.example"


class RemoteRoom:
    """A v10 room held by REMOTE, with three messages; answers the federation API for it."""

    def __init__(self, local: str, name: str = "remote room") -> None:
        self.room_id = f"!{secrets.token_hex(6)}:{REMOTE}"
        self.events: dict[str, dict[str, Any]] = {}
        self.state: dict[tuple[str, str], str] = {}
        self.last = ""
        self.calls: list[str] = []
        self.refuse_joins = False
        self.tamper: str | None = None
        self.local = local
        create = self.add("m.room.create", "", {"creator": BOB, "room_version": "10"})
        self.add("m.room.member", BOB, {"membership": "join"})
        self.add("m.room.power_levels", "", {"users": {BOB: 100}, "invite": 0})
        self.add("m.room.join_rules", "", {"join_rule": "public"})
        self.add("m.room.history_visibility", "", {"history_visibility": "shared"})
        self.add("m.room.name", "", {"name": name})
        self.add("m.room.topic", "", {"topic": "a topic"})
        self.history = [self.add("m.room.message", None, {"msgtype": "m.text", "body": f"old {i}"})
                        for i in range(3)]
        self.create_id = create

    def auth_for(self, etype: str, state_key: str | None, sender: str = BOB) -> list[str]:
        keys = [("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.member", sender)]
        if etype == "m.room.member":
            keys.append(("m.room.join_rules", ""))
        return [self.state[k] for k in keys if k in self.state]

    def add(self, etype: str, state_key: str | None, content: dict[str, Any], sender: str = BOB) -> str:
        pdu: dict[str, Any] = {"room_id": self.room_id, "type": etype, "sender": sender, "content": content,
                               "origin": REMOTE,
                               "origin_server_ts": int(time.time() * 1000), "depth": len(self.events) + 1,
                               "prev_events": [self.last] if self.last else [],
                               "auth_events": self.auth_for(etype, state_key, sender)}
        if state_key is not None:
            pdu["state_key"] = state_key
        pdu = hash_and_sign_event(pdu, REMOTE, REMOTE_KEY, RV)
        eid = compute_event_id(pdu, RV)
        self.events[eid] = pdu
        self.last = eid
        if state_key is not None:
            self.state[(etype, state_key)] = eid
        return eid

    def template(self, user_id: str, membership: str) -> dict[str, Any]:
        return {"room_version": "10", "event": {
            "room_id": self.room_id, "type": "m.room.member", "sender": user_id, "state_key": user_id,
            "content": {"membership": membership}, "origin": REMOTE, "origin_server_ts": 0,
            "depth": len(self.events) + 1, "prev_events": [self.last],
            "auth_events": self.auth_for("m.room.member", user_id, user_id)}}

    def handle(self, request: httpx.Request) -> httpx.Response:
        host, path = request.headers["host"], unquote(request.url.path)
        self.calls.append(f"{host} {request.method} {path.split('/')[4] if path.count('/') > 3 else path}")
        if host == DOWN:
            raise httpx.ConnectError("down")
        if path == "/_matrix/key/v2/server":
            return httpx.Response(200, json=local_key_response(REMOTE, REMOTE_KEY, [], int(time.time() * 1000)))
        if path == "/_matrix/federation/v1/query/directory":
            return httpx.Response(200, json={"room_id": self.room_id, "servers": [DOWN, REMOTE]})
        if path.startswith("/_matrix/federation/v1/make_"):
            if self.refuse_joins:
                return httpx.Response(403, json={"errcode": "M_FORBIDDEN", "error": "You are not invited"})
            user = path.rsplit("/", 1)[1]
            return httpx.Response(200, json=self.template(user, "join" if "make_join" in path else "leave"))
        if path.startswith("/_matrix/federation/v2/send_join/"):
            pdu = orjson.loads(request.content)
            ids = list(self.state.values())
            chain = [self.events[i] for i in ids]
            state = [dict(e) for e in chain]
            if self.tamper == "name":  # content changed after signing; the topic's signature forged
                chain = state = [
                    {**e, "content": {"name": "forged"}} if e["type"] == "m.room.name" else
                    {**e, "signatures": {REMOTE: {k: "A" * 86 for k in e["signatures"][REMOTE]}}}
                    if e["type"] == "m.room.topic" else e for e in state]
            if self.tamper == "garbage":
                state = ["x", 1, {"type": "m.room.name"}, {"room_id": self.room_id, "depth": "deep"}, *state]
            if self.tamper == "create":
                state = [e for e in state if e["type"] != "m.room.create"]
                chain = [e for e in chain if e["type"] != "m.room.create"]
            self.events[compute_event_id(pdu, RV)] = pdu
            return httpx.Response(200, json={"state": state, "auth_chain": chain, "origin": REMOTE,
                                             "members_omitted": False, "servers_in_room": [REMOTE]})
        if path.startswith("/_matrix/federation/v2/send_leave/"):
            pdu = orjson.loads(request.content)
            self.events[compute_event_id(pdu, RV)] = pdu
            return httpx.Response(200, json={})
        if path.startswith("/_matrix/federation/v2/invite/"):
            if self.refuse_joins:
                return httpx.Response(403, json={"errcode": "M_FORBIDDEN", "error": "No invites, thanks"})
            body = orjson.loads(request.content)
            rv = KNOWN_ROOM_VERSIONS[body["room_version"]]
            sig = sign_json(redact(body["event"], rv), REMOTE, REMOTE_KEY)["signatures"][REMOTE]
            self.calls.append(f"invite state {sorted(e['type'] for e in body['invite_room_state'])}")
            event = {**body["event"], "signatures": {**body["event"]["signatures"], REMOTE: sig}}
            return httpx.Response(200, json={"event": event})
        if path.startswith("/_matrix/federation/v1/backfill/"):
            pdus = [self.events[i] for i in reversed(self.history)]
            return httpx.Response(200, json={"origin": REMOTE, "origin_server_ts": 0, "pdus": pdus})
        if path.startswith("/_matrix/federation/v1/state_ids/"):
            before = [v for k, v in self.state.items() if k[0] != "m.room.member" or k[1] == BOB]
            return httpx.Response(200, json={"pdu_ids": before, "auth_chain_ids": before})
        if path.startswith("/_matrix/federation/v1/event/"):
            eid = path.rsplit("/", 1)[1]
            if eid in self.events:
                return httpx.Response(200, json={"origin": REMOTE, "origin_server_ts": 0, "pdus": [self.events[eid]]})
        return httpx.Response(404, json={"errcode": "M_NOT_FOUND", "error": "not here"})


def _wire(hs: Homeserver, room: RemoteRoom) -> None:
    use_transport(hs, room.handle)
    _rewire(hs)
    peer = FederationMembershipClient(hs.federation.client)
    hs.remote_membership = RemoteMembership(hs.stores, hs.persister, hs.receiver, peer, hs.server_name,
                                            hs.rooms, hs.directory)
    hs.remote_membership.enabled = True
    hs.remote_membership.wake_users = hs.fanout.wake_users
    hs.membership.remote_leave = hs.remote_membership.leave_room
    hs.federated_invites = FederatedInvites(hs.stores, hs.server_name, hs.signing_key, hs.receiver,
                                            hs.remote_membership, peer)
    hs.reader.backfill = RemoteBackfill(hs.stores, hs.receiver, peer, hs.server_name).backfill
    hs.directory.remote = hs.federation.query_directory


@FED_ON
async def test_join_a_remote_room_by_alias_with_state_history_and_new_events(
        client: MatrixClient, hs: Homeserver) -> None:
    room = RemoteRoom(hs.server_name)
    _wire(hs, room)
    alice = await client.register("alice")
    joined = await alice.ok("POST", f"{V3}/join/{quote('#room:' + REMOTE)}", {})
    assert joined == {"room_id": room.room_id}
    # The alias's first server was down: the next one was asked.
    assert f"{DOWN} GET make_join" in room.calls and f"{REMOTE} PUT send_join" in room.calls
    sync = await alice.sync()
    section = sync["rooms"]["join"][room.room_id]
    state = {(e["type"], e["state_key"]) for e in section["state"]["events"]}
    assert {("m.room.create", ""), ("m.room.name", ""), ("m.room.member", BOB)} <= state
    assert [e["state_key"] for e in section["timeline"]["events"]] == [alice.user_id]
    assert (await alice.ok("GET", f"{V3}/rooms/{room.room_id}/state/m.room.name"))["name"] == "remote room"
    members = await alice.ok("GET", f"{V3}/rooms/{room.room_id}/joined_members")
    assert set(members["joined"]) == {BOB, alice.user_id}

    # Earlier history through backfill, in order, and never new in sync.
    page = await alice.ok("GET", f"{V3}/rooms/{room.room_id}/messages", params={"dir": "b", "limit": 10})
    bodies = [e["content"]["body"] for e in page["chunk"] if e["type"] == "m.room.message"]
    assert bodies == ["old 2", "old 1", "old 0"]
    assert any(c.endswith("GET backfill") for c in room.calls)
    later = await alice.sync(since=sync["next_batch"], timeout="0")
    assert room.room_id not in later.get("rooms", {}).get("join", {})


@FED_ON
async def test_a_tampered_state_event_is_left_out(client: MatrixClient, hs: Homeserver) -> None:
    room = RemoteRoom(hs.server_name, "tampered")
    room.tamper = "name"
    _wire(hs, room)
    alice = await client.register("alice")
    await alice.ok("POST", f"{V3}/rooms/{room.room_id}/join", {})
    # A content hash mismatch: the event is kept redacted. A bad signature: the event is dropped.
    assert await alice.ok("GET", f"{V3}/rooms/{room.room_id}/state/m.room.name") == {}
    resp = await alice.get(f"{V3}/rooms/{room.room_id}/state/m.room.topic")
    assert resp.status_code == 404
    assert (await alice.ok("GET", f"{V3}/rooms/{room.room_id}/state/m.room.join_rules"))["join_rule"] == "public"


@FED_ON
async def test_remote_join_errors(client: MatrixClient, hs: Homeserver) -> None:
    room = RemoteRoom(hs.server_name, "errors")
    _wire(hs, room)
    alice = await client.register("alice")
    # No server to ask (a room ID without a server name, no via).
    resp = await alice.post(f"{V3}/join/{quote('!' + 'A' * 43)}")
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_NOT_FOUND"
    # Every server unreachable.
    resp = await alice.post(f"{V3}/join/{quote('!x:' + DOWN)}")
    assert resp.status_code == 502 and resp.json()["errcode"] == "M_UNKNOWN"
    # The room's server refuses.
    room.refuse_joins = True
    resp = await alice.post(f"{V3}/rooms/{room.room_id}/join")
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    # An answer without the create event.
    room.refuse_joins = False
    room.tamper = "garbage"  # junk among the state events is left out; the join goes through
    other = await client.register("other")
    await other.ok("POST", f"{V3}/rooms/{room.room_id}/join", {})
    await other.ok("POST", f"{V3}/rooms/{room.room_id}/leave", {})
    room.tamper = "create"
    resp = await alice.post(f"{V3}/rooms/{room.room_id}/join")
    assert resp.status_code == 502 and resp.json()["errcode"] == "M_UNKNOWN"
    assert room.room_id not in (await alice.ok("GET", f"{V3}/joined_rooms"))["joined_rooms"]


def _invite(room: RemoteRoom, target: str) -> tuple[str, dict[str, Any]]:
    eid = room.add("m.room.member", target, {"membership": "invite"})
    return eid, room.events[eid]


async def _put_invite(client: MatrixClient, hs: Homeserver, room: RemoteRoom, eid: str, body: Any,
                      origin: str = REMOTE) -> httpx.Response:
    uri = f"/_matrix/federation/v2/invite/{quote(room.room_id)}/{quote(eid)}"
    return await client.request("PUT", uri, body, headers=signed(REMOTE_KEY, origin, hs.server_name, "PUT", uri, body),
                                token="")


@FED_ON
async def test_remote_invite_shown_then_rejected(client: MatrixClient, hs: Homeserver) -> None:
    room = RemoteRoom(hs.server_name, "invites")
    _wire(hs, room)
    alice = await client.register("alice")
    eid, pdu = _invite(room, alice.user_id)
    stripped = [{"type": "m.room.name", "state_key": "", "sender": BOB, "content": {"name": "invites"}}]
    resp = await _put_invite(client, hs, room, eid, {"room_version": "10", "event": pdu,
                                                     "invite_room_state": stripped})
    assert resp.status_code == 200, resp.text
    countersigned = resp.json()["event"]
    (kid, _), = countersigned["signatures"][hs.server_name].items()
    body = {**redact(countersigned, RV), "signatures": countersigned["signatures"]}
    verify_json_signature(body, hs.server_name, kid, verify_key_b64(hs.signing_key))
    sync = await alice.sync()
    invite = sync["rooms"]["invite"][room.room_id]["invite_state"]["events"]
    assert {"type": "m.room.name", "state_key": "", "sender": BOB, "content": {"name": "invites"}} in invite
    assert invite[-1]["state_key"] == alice.user_id and invite[-1]["content"]["membership"] == "invite"

    await alice.ok("POST", f"{V3}/rooms/{room.room_id}/leave", {})
    assert f"{REMOTE} PUT send_leave" in room.calls
    left = room.events[room.last] if room.events[room.last]["content"].get("membership") == "leave" else None
    assert left is None or left["sender"] == alice.user_id
    after = await alice.sync(since=sync["next_batch"], timeout="0")
    assert room.room_id not in after["rooms"].get("invite", {})
    assert room.room_id in after["rooms"].get("leave", {})


@FED_ON
async def test_remote_invite_refusals(client: MatrixClient, hs: Homeserver) -> None:
    room = RemoteRoom(hs.server_name, "refusals")
    _wire(hs, room)
    alice = await client.register("alice")
    eid, pdu = _invite(room, alice.user_id)
    cases: list[tuple[dict[str, Any], str, int, str]] = [
        ({"room_version": "99", "event": pdu}, REMOTE, 400, "M_INCOMPATIBLE_ROOM_VERSION"),
        ({"room_version": "10", "event": pdu}, "other.example", 401, "M_UNAUTHORIZED"),
        ({"room_version": "10", "event": {**pdu, "content": {"membership": "join"}}}, REMOTE, 400, "M_BAD_JSON"),
        ({"room_version": "10", "event": "nope"}, REMOTE, 400, "M_BAD_JSON"),
    ]
    for body, origin, status, errcode in cases:
        resp = await _put_invite(client, hs, room, eid, body, origin)
        assert (resp.status_code, resp.json()["errcode"]) == (status, errcode), (body, resp.text)
    nobody_id, nobody = _invite(room, f"@nobody:{hs.server_name}")
    resp = await _put_invite(client, hs, room, nobody_id, {"room_version": "10", "event": nobody})
    assert resp.status_code == 404 and resp.json()["errcode"] == "M_NOT_FOUND"
    forged = {**pdu, "signatures": {REMOTE: {k: "A" * 86 for k in pdu["signatures"][REMOTE]}}}
    resp = await _put_invite(client, hs, room, eid, {"room_version": "10", "event": forged})
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    assert room.room_id not in (await alice.sync()).get("rooms", {}).get("invite", {})


async def _signed_member(client: MatrixClient, hs: Homeserver, kind: str, room: str, versions: str = "") -> Any:
    """make_<kind> for BOB, signed by REMOTE: (event ID, PDU) or the error response."""
    resp = await _fed(client, hs, "GET", f"/_matrix/federation/v1/make_{kind}/{quote(room)}/{quote(BOB)}{versions}")
    if resp.status_code != 200:
        return resp
    template = resp.json()
    rv = KNOWN_ROOM_VERSIONS[template["room_version"]]
    pdu = hash_and_sign_event(template["event"], REMOTE, REMOTE_KEY, rv)
    return compute_event_id(pdu, rv), pdu


@FED_ON
async def test_remote_users_knock_and_leave_local_rooms(client: MatrixClient, hs: Homeserver) -> None:
    use_transport(hs, remote_keys_handler([]))
    _rewire(hs)
    alice = await client.register("alice")
    knock_rules = [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}]
    room = await alice.create_room(room_version="11", name="knockable", initial_state=knock_rules)
    old = await alice.create_room(room_version="6", name="too old")
    resp = await _signed_member(client, hs, "knock", old, "?ver=6")
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INCOMPATIBLE_ROOM_VERSION"
    resp = await _signed_member(client, hs, "knock", room, "?ver=10")
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INCOMPATIBLE_ROOM_VERSION"

    eid, knock = await _signed_member(client, hs, "knock", room, "?ver=11")
    resp = await _fed(client, hs, "PUT", f"/_matrix/federation/v1/send_knock/{quote(room)}/{quote(eid)}", knock)
    assert resp.status_code == 200, resp.text
    assert {"type": "m.room.name", "state_key": "", "sender": alice.user_id, "content": {"name": "knockable"}} \
        in resp.json()["knock_room_state"]
    member = await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.member/{quote(BOB)}")
    assert member["membership"] == "knock"

    eid, leave = await _signed_member(client, hs, "leave", room)
    wrong = await _fed(client, hs, "PUT", f"/_matrix/federation/v2/send_leave/{quote(room)}/{quote(eid)}", knock)
    assert wrong.status_code == 400 and wrong.json()["errcode"] == "M_BAD_JSON"
    resp = await _fed(client, hs, "PUT", f"/_matrix/federation/v2/send_leave/{quote(room)}/{quote(eid)}", leave)
    assert resp.status_code == 200 and resp.json() == {}
    member = await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.member/{quote(BOB)}")
    assert member["membership"] == "leave"
    # A leave for a user of another server is refused.
    eve = quote("@eve:elsewhere.example")
    resp = await _fed(client, hs, "GET", f"/_matrix/federation/v1/make_leave/{quote(room)}/{eve}")
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"


@FED_ON
async def test_inviting_a_remote_user(client: MatrixClient, hs: Homeserver) -> None:
    remote = RemoteRoom(hs.server_name, "outbound invites")
    _wire(hs, remote)
    hs.persister.remote_invite = hs.federated_invites.countersigned_by_invitee
    alice = await client.register("alice")
    room = await alice.create_room(name="ours")
    await alice.ok("POST", f"{V3}/rooms/{room}/invite", {"user_id": BOB})
    assert any(c.startswith("invite state") and "m.room.name" in c for c in remote.calls)
    member = await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.member/{quote(BOB)}")
    assert member["membership"] == "invite"
    stored = await hs.stores.events.get((await hs.stores.state.membership(room, BOB) or ("", "", 0))[1])
    assert stored is not None and REMOTE in stored.pdu["signatures"]  # kept as countersigned

    remote.refuse_joins = True
    carol = f"@carol:{REMOTE}"
    resp = await alice.post(f"{V3}/rooms/{room}/invite", {"user_id": carol})
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    assert "No invites, thanks" in resp.json()["error"]
    assert (await alice.get(f"{V3}/rooms/{room}/state/m.room.member/{quote(carol)}")).status_code == 404


@FED_ON
async def test_an_invite_is_rejected_even_when_its_server_refuses(client: MatrixClient, hs: Homeserver) -> None:
    room = RemoteRoom(hs.server_name, "unreachable inviter")
    _wire(hs, room)
    alice = await client.register("alice")
    eid, pdu = _invite(room, alice.user_id)
    resp = await _put_invite(client, hs, room, eid, {"room_version": "10", "event": pdu})
    assert resp.status_code == 200
    sync = await alice.sync()
    assert room.room_id in sync["rooms"]["invite"]
    room.refuse_joins = True
    await alice.ok("POST", f"{V3}/rooms/{room.room_id}/leave", {"reason": "no thanks"})
    assert f"{REMOTE} GET make_leave" in room.calls
    after = await alice.sync(since=sync["next_batch"], timeout="0")
    assert room.room_id not in after["rooms"].get("invite", {}) and room.room_id in after["rooms"]["leave"]
    again = await alice.post(f"{V3}/rooms/{room.room_id}/leave")
    assert again.status_code == 403 and again.json()["errcode"] == "M_FORBIDDEN"
