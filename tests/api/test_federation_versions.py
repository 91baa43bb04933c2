"""Inbound federation in rooms of older versions (SQLite and PostgreSQL): a signed remote server
joins local rooms of versions 1-11 with make_join/send_join, sends messages and a redaction in a
transaction, and reads events back through /event, /state_ids and /backfill. The PDUs it gets
are in the room version's format (v1/v2: `event_id` inside, references as [id, {sha256}] pairs;
v3+: IDs from the reference hash) and carry this server's valid signature."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote

import pytest

from homeserver.app import Homeserver
from homeserver.protocol.auth_rules import auth_types_for_event
from homeserver.protocol.canonical import unpadded_b64encode
from homeserver.protocol.events import (
    compute_event_id,
    compute_reference_hash,
    event_refs,
    hash_and_sign_event,
    make_event_refs,
)
from homeserver.protocol.redaction import redact
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.protocol.signing import key_id, verify_json_signature, verify_key_b64
from tests.api.test_federation_api import FED_ON, REMOTE, REMOTE_KEY, remote_keys_handler, use_transport
from tests.api.test_federation_events import BOB, FED, V3, _fed, _rewire
from tests.conftest import MatrixClient

ID_FORMAT = {
    "1": re.compile(r"^\$[^:]+:(test\.parley|remote\.example)$"),
    "2": re.compile(r"^\$[^:]+:(test\.parley|remote\.example)$"),
    "3": re.compile(r"^\$[A-Za-z0-9+/]{43}$"),
}
URLSAFE = re.compile(r"^\$[A-Za-z0-9_\-]{43}$")


def _check_refs(rv: RoomVersion, refs: list[Any], pdus: dict[str, dict[str, Any]]) -> None:
    """References in the version's format; v1/v2 pairs carry the referenced event's reference hash."""
    for ref in refs:
        if rv.event_id_in_pdu:
            assert isinstance(ref, list) and len(ref) == 2 and set(ref[1]) == {"sha256"}, ref
            if ref[0] in pdus:
                assert ref[1]["sha256"] == unpadded_b64encode(compute_reference_hash(pdus[ref[0]], rv))
        else:
            assert isinstance(ref, str), ref


def _check_served(hs: Homeserver, rv: RoomVersion, pdu: dict[str, Any]) -> str:
    """A PDU this server served: its ID, format and signature as a peer would check them."""
    eid = compute_event_id(pdu, rv)
    assert ("event_id" in pdu) == rv.event_id_in_pdu
    assert (ID_FORMAT.get(rv.identifier) or URLSAFE).match(eid), eid
    if pdu["sender"].endswith(":" + hs.server_name):
        verify_json_signature(redact(pdu, rv), hs.server_name, key_id(hs.signing_key), verify_key_b64(hs.signing_key))
    return eid


async def _remote_event(hs: Homeserver, rv: RoomVersion, room: str, n: int, etype: str,
                        content: dict[str, Any], *, prev: list[str] | None = None,
                        auth_from: dict[tuple[str, str], str] | None = None,
                        **extra: Any) -> tuple[str, dict[str, Any]]:
    """A signed PDU from the remote server on the room's extremities (or `prev`), with auth events
    from the current state (or `auth_from`), in the version's format."""
    st = hs.stores
    if prev is None:
        prevs = await st.events.forward_extremities(None, room)
    else:
        prevs = [e for e in (await st.events.get_many(prev)).values()]
    pdu: dict[str, Any] = {"room_id": room, "type": etype, "sender": BOB, "content": content,
                           "origin_server_ts": 1_700_000_000_000 + n, "depth": max(e.depth for e in prevs) + 1,
                           **extra}
    if rv.event_id_in_pdu:
        pdu["event_id"] = f"$remote{n}:{REMOTE}"
    current = auth_from if auth_from is not None else await st.state.current_all(room)
    auth = await st.events.get_many([current[k] for k in auth_types_for_event(rv, pdu) if k in current])

    def ref_pdu(e: Any) -> dict[str, Any]:
        return {**e.pdu, "event_id": e.event_id} if rv.event_id_in_pdu else e.pdu

    pdu["prev_events"] = make_event_refs(rv, [(e.event_id, ref_pdu(e)) for e in prevs])
    pdu["auth_events"] = make_event_refs(rv, [(e.event_id, ref_pdu(e)) for e in auth.values()])
    pdu = hash_and_sign_event(pdu, REMOTE, REMOTE_KEY, rv)
    return compute_event_id(pdu, rv), pdu


async def _join(client: MatrixClient, hs: Homeserver, rv: RoomVersion, room: str) -> tuple[str, dict[str, Any]]:
    """The remote server's user joins through make_join and send_join v2: (join ID, the answer)."""
    version = rv.identifier
    resp = await _fed(client, hs, "GET", f"{FED}/make_join/{quote(room)}/{quote(BOB)}?ver={version}&ver=12")
    assert resp.status_code == 200, resp.text
    template = resp.json()
    assert template["room_version"] == version and "event_id" not in template["event"]
    local = {e.event_id: ({**e.pdu, "event_id": e.event_id} if rv.event_id_in_pdu else e.pdu)
             for e in (await hs.stores.events.get_many(event_refs(template["event"]["auth_events"]))).values()}
    _check_refs(rv, template["event"]["auth_events"] + template["event"]["prev_events"], local)
    join = dict(template["event"])
    if rv.event_id_in_pdu:
        join["event_id"] = f"$join:{REMOTE}"  # v1/v2: the joining server names its event
    join = hash_and_sign_event(join, REMOTE, REMOTE_KEY, rv)
    join_id = compute_event_id(join, rv)
    send_join = f"/_matrix/federation/v2/send_join/{quote(room)}/{quote(join_id, safe='')}"
    resp = await _fed(client, hs, "PUT", send_join, join)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    return join_id, answer


@FED_ON
@pytest.mark.parametrize("version", ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"])
async def test_remote_server_in_a_room_of_each_version(client: MatrixClient, hs: Homeserver, version: str) -> None:
    use_transport(hs, remote_keys_handler([]))
    _rewire(hs)
    rv = KNOWN_ROOM_VERSIONS[version]
    alice = await client.register("alice")
    room = await alice.create_room(room_version=version, preset="public_chat")
    await alice.send_text(room, "before bob")

    # make_join offers this version only to a server that names it
    resp = await _fed(client, hs, "GET", f"{FED}/make_join/{quote(room)}/{quote(BOB)}?ver=12")
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INCOMPATIBLE_ROOM_VERSION"
    assert resp.json()["room_version"] == version
    join_id, answer = await _join(client, hs, rv, room)
    state_ids = {_check_served(hs, rv, p) for p in answer["state"]}
    chain_ids = {_check_served(hs, rv, p) for p in answer["auth_chain"]}
    served = {compute_event_id(p, rv): p for p in answer["state"] + answer["auth_chain"]}
    for p in served.values():
        _check_refs(rv, p["auth_events"] + p["prev_events"], served)
    create = next(p for p in answer["state"] if p["type"] == "m.room.create")
    assert create["content"]["room_version"] == version and compute_event_id(create, rv) in chain_ids
    assert ("creator" in create["content"]) == rv.create_has_creator
    members = await alice.ok("GET", f"{V3}/rooms/{room}/joined_members")
    assert BOB in members["joined"]

    # a transaction: a message, then a redaction of it in the version's format
    msg_id, msg = await _remote_event(hs, rv, room, 1, "m.room.message", {"msgtype": "m.text", "body": "hi"})
    resp = await _fed(client, hs, "PUT", f"{FED}/send/v{version}a", {"origin": REMOTE, "pdus": [msg], "edus": []})
    assert resp.json() == {"pdus": {msg_id: {}}}, resp.text
    extra = {} if rv.redacts_in_content else {"redacts": msg_id}
    red_content = {"redacts": msg_id} if rv.redacts_in_content else {}
    red_id, red = await _remote_event(hs, rv, room, 2, "m.room.redaction", red_content, **extra)
    resp = await _fed(client, hs, "PUT", f"{FED}/send/v{version}b", {"origin": REMOTE, "pdus": [red], "edus": []})
    assert resp.json() == {"pdus": {red_id: {}}}, resp.text
    ev = await alice.ok("GET", f"{V3}/rooms/{room}/event/{quote(msg_id, safe='')}")
    assert ev["content"] == {} and ev["unsigned"]["redacted_because"]["event_id"] == red_id

    # the local reply builds on the remote events; peers read it back in the version's format
    reply = await alice.send_text(room, "reply")
    got = await _fed(client, hs, "GET", f"{FED}/event/{quote(reply, safe='')}")
    assert got.status_code == 200
    pdu = got.json()["pdus"][0]
    assert _check_served(hs, rv, pdu) == reply and event_refs(pdu["prev_events"]) == [red_id]
    _check_refs(rv, pdu["prev_events"], {red_id: red})
    ids = (await _fed(client, hs, "GET", f"{FED}/state_ids/{quote(room)}?event_id={quote(reply, safe='')}")).json()
    assert join_id in ids["pdu_ids"] and state_ids <= set(ids["pdu_ids"]) | chain_ids
    back = await _fed(client, hs, "GET", f"{FED}/backfill/{quote(room)}?v={quote(reply, safe='')}&limit=4")
    back_ids = [_check_served(hs, rv, p) for p in back.json()["pdus"]]
    assert reply in back_ids and red_id in back_ids

    # the client views: /messages and /sync carry the remote events under their IDs
    page = await alice.ok("GET", f"{V3}/rooms/{room}/messages", params={"dir": "b", "limit": 5})
    assert [e["event_id"] for e in page["chunk"][:4]] == [reply, red_id, msg_id, join_id]
    assert page["chunk"][1]["redacts"] == msg_id and page["chunk"][1]["content"]["redacts"] == msg_id
    timeline = (await alice.sync())["rooms"]["join"][room]["timeline"]["events"]
    assert [e["event_id"] for e in timeline][-3:] == [msg_id, red_id, reply]


@FED_ON
@pytest.mark.parametrize(("version", "winner"), [("1", "Bob's name"), ("2", "Alice's name"), ("6", "Alice's name")])
async def test_forks_merge_with_the_versions_state_resolution(client: MatrixClient, hs: Homeserver, version: str,
                                                               winner: str) -> None:
    """Two renames on two branches: state resolution v1 (room v1) keeps the deeper one (Bob's,
    after his message), v2 orders them by mainline and timestamp (Alice's is the later)."""
    use_transport(hs, remote_keys_handler([]))
    _rewire(hs)
    rv = KNOWN_ROOM_VERSIONS[version]
    alice = await client.register("alice")
    room = await alice.create_room(room_version=version, preset="public_chat")
    await _join(client, hs, rv, room)
    pl = await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.power_levels")
    pl["users"][BOB] = 50
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.power_levels", pl)
    fork_point = [e.event_id for e in await hs.stores.events.forward_extremities(None, room)]
    fork_state = dict(await hs.stores.state.current_all(room))
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.name", {"name": "Alice's name"})
    ours = dict(await hs.stores.state.current_all(room))
    # Bob's branch, from the fork point: a message, then a rename (one deeper than Alice's).
    msg_id, msg = await _remote_event(hs, rv, room, 10, "m.room.message", {"msgtype": "m.text", "body": "b"},
                                      prev=fork_point, auth_from=fork_state)
    resp = await _fed(client, hs, "PUT", f"{FED}/send/f{version}a", {"origin": REMOTE, "pdus": [msg], "edus": []})
    assert resp.json() == {"pdus": {msg_id: {}}}, resp.text
    name_id, name = await _remote_event(hs, rv, room, 11, "m.room.name", {"name": "Bob's name"}, state_key="",
                                        prev=[msg_id], auth_from=fork_state)
    resp = await _fed(client, hs, "PUT", f"{FED}/send/f{version}b", {"origin": REMOTE, "pdus": [name], "edus": []})
    assert resp.json() == {"pdus": {name_id: {}}}, resp.text
    assert len(await hs.stores.events.forward_extremities(None, room)) == 2
    got = await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.name")
    assert got["name"] == winner
    assert (await hs.stores.state.current_all(room))[("m.room.name", "")] == (
        name_id if winner == "Bob's name" else ours[("m.room.name", "")])
    # the next local event merges the branches and keeps the resolved state
    await alice.send_text(room, "merged")
    assert len(await hs.stores.events.forward_extremities(None, room)) == 1
    assert (await alice.ok("GET", f"{V3}/rooms/{room}/state/m.room.name"))["name"] == winner


@FED_ON
@pytest.mark.parametrize(("version", "accepted"), [("1", True), ("4", True), ("5", False), ("10", False)])
async def test_key_validity_enforced_from_v5(client: MatrixClient, hs: Homeserver, version: str,
                                             accepted: bool) -> None:
    """From room v5 a signing key must be valid at the event's origin_server_ts (rooms/v5.md);
    rooms v1-v4 accept events signed with keys whatever their validity period."""
    use_transport(hs, remote_keys_handler([]))
    _rewire(hs)
    rv = KNOWN_ROOM_VERSIONS[version]
    alice = await client.register("alice")
    room = await alice.create_room(room_version=version, preset="public_chat")
    await _join(client, hs, rv, room)
    far = int(time.time() * 1000) + 400 * 86_400_000  # long past the key's valid_until_ts
    eid, pdu = await _remote_event(hs, rv, room, 1, "m.room.message", {"msgtype": "m.text", "body": "later"},
                                   origin_server_ts=far)
    resp = await _fed(client, hs, "PUT", f"{FED}/send/k{version}", {"origin": REMOTE, "pdus": [pdu], "edus": []})
    result = resp.json()["pdus"][eid]
    if accepted:
        assert result == {}
        assert (await hs.stores.events.get(eid)) is not None
    else:
        assert "key" in result["error"].lower()
        assert (await hs.stores.events.get(eid)) is None
