"""Inbound federation of events, in-process on both databases: a remote server (a signing key
whose key server answers from an in-memory transport) joins a local room with make_join and
send_join, pushes transactions, and reads events, state and history back."""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import quote

from federation.intake import FederationEventSource, FederationKeySource
from homeserver.app import Homeserver
from homeserver.events.receiver import EventReceiver
from homeserver.protocol.events import compute_event_id, hash_and_sign_event
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.rooms.remote_joins import RemoteJoins, TransactionHandler
from tests.api.test_federation_api import FED_ON, REMOTE, REMOTE_KEY, remote_keys_handler, signed, use_transport
from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"
FED = "/_matrix/federation/v1"
BOB = f"@bob:{REMOTE}"


def _rewire(hs: Homeserver) -> None:
    """use_transport swaps hs.federation: rebuild what holds the old one."""
    hs.receiver = EventReceiver(hs.stores, hs.persister, FederationKeySource(hs.federation.keys),
                                FederationEventSource(hs.federation.client))
    hs.remote_joins = RemoteJoins(hs.stores, hs.server_name, hs.receiver, hs.server_reads)
    hs.transactions = TransactionHandler(hs.receiver)


async def _fed(client: MatrixClient, hs: Homeserver, method: str, uri: str, content: Any = None,
               origin: str = REMOTE) -> Any:
    headers = signed(REMOTE_KEY, origin, hs.server_name, method, uri, content)
    return await client.request(method, uri, content, headers=headers, token="")


async def _joined_room(client: MatrixClient, hs: Homeserver) -> tuple[MatrixClient, str, dict[str, Any]]:
    use_transport(hs, remote_keys_handler([]))
    _rewire(hs)
    alice = await client.register("alice")
    room = await alice.create_room(preset="public_chat")
    resp = await _fed(client, hs, "GET", f"{FED}/make_join/{quote(room)}/{quote(BOB)}?ver=10&ver=11&ver=12")
    assert resp.status_code == 200, resp.text
    template = resp.json()
    rv = KNOWN_ROOM_VERSIONS[template["room_version"]]
    join = hash_and_sign_event(template["event"], REMOTE, REMOTE_KEY, rv)
    eid = compute_event_id(join, rv)
    resp = await _fed(client, hs, "PUT", f"/_matrix/federation/v2/send_join/{quote(room)}/{quote(eid)}", join)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["event"]["sender"] == BOB
    state_types = {(e["type"], e["state_key"]) for e in answer["state"]}
    assert ("m.room.member", alice.user_id) in state_types and ("m.room.join_rules", "") in state_types
    assert {REMOTE, hs.server_name} <= set(answer["servers_in_room"])
    return alice, room, {"join_id": eid, "rv": rv}


def _message(hs: Homeserver, room: str, rv: Any, prev: str, depth: int, auth: list[str],
             body: str) -> tuple[str, dict[str, Any]]:
    pdu = {"room_id": room, "type": "m.room.message", "sender": BOB, "origin_server_ts": 1_700_000_000_000 + depth,
           "content": {"msgtype": "m.text", "body": body}, "depth": depth, "prev_events": [prev],
           "auth_events": auth}
    pdu = hash_and_sign_event(pdu, REMOTE, REMOTE_KEY, rv)
    return compute_event_id(pdu, rv), pdu


@FED_ON
async def test_remote_join_transactions_and_reads(client: MatrixClient, hs: Homeserver) -> None:
    alice, room, info = await _joined_room(client, hs)
    rv, join_id = info["rv"], info["join_id"]
    members = await alice.ok("GET", f"{V3}/rooms/{room}/joined_members")
    assert BOB in members["joined"]
    join = await hs.stores.events.get(join_id)
    assert join is not None
    auth = [a for a in join.pdu["auth_events"]
            if (ev := await hs.stores.events.get(a)) is not None and ev.type == "m.room.power_levels"] + [join_id]
    mid, msg = _message(hs, room, rv, join_id, join.depth + 1, auth, "hello over federation")
    forged_id, forged = _message(hs, room, rv, mid, join.depth + 2, auth, "forged")
    forged["content"]["body"] = "changed after signing, and the signature replaced"
    forged["signatures"][REMOTE] = {k: "A" * 86 for k in forged["signatures"][REMOTE]}
    txn = {"origin": REMOTE, "origin_server_ts": 1, "pdus": [msg, forged], "edus": []}
    resp = await _fed(client, hs, "PUT", f"{FED}/send/t1", txn)
    assert resp.status_code == 200, resp.text
    results = resp.json()["pdus"]
    assert results[mid] == {} and "signature" in results[forged_id]["error"].lower()
    again = await _fed(client, hs, "PUT", f"{FED}/send/t1", txn)
    assert again.json() == resp.json()
    page = await alice.ok("GET", f"{V3}/rooms/{room}/messages", params={"dir": "b", "limit": 10})
    bodies = [e["content"].get("body") for e in page["chunk"] if e["type"] == "m.room.message"]
    assert bodies == ["hello over federation"]
    # reads back
    got = await _fed(client, hs, "GET", f"{FED}/event/{quote(mid)}")
    assert got.status_code == 200 and got.json()["pdus"][0]["content"]["body"] == "hello over federation"
    ids = await _fed(client, hs, "GET", f"{FED}/state_ids/{quote(room)}?event_id={quote(mid)}")
    assert ids.status_code == 200 and join_id in ids.json()["pdu_ids"]
    full = await _fed(client, hs, "GET", f"{FED}/state/{quote(room)}?event_id={quote(mid)}")
    assert {e["type"] for e in full.json()["pdus"]} >= {"m.room.create", "m.room.member"}
    chain = await _fed(client, hs, "GET", f"{FED}/event_auth/{quote(room)}/{quote(mid)}")
    assert join_id in {compute_event_id(copy.deepcopy(e), rv) for e in chain.json()["auth_chain"]}
    local = await alice.send_text(room, "local reply")
    missing = await _fed(client, hs, "POST", f"{FED}/get_missing_events/{quote(room)}",
                         {"earliest_events": [mid], "latest_events": [local], "limit": 10})
    assert missing.status_code == 200 and missing.json()["events"] == []
    back = await _fed(client, hs, "GET", f"{FED}/backfill/{quote(room)}?v={quote(local)}&limit=3")
    assert back.status_code == 200 and len(back.json()["pdus"]) == 3


@FED_ON
async def test_federation_event_endpoints_refuse(client: MatrixClient, hs: Homeserver) -> None:
    alice, room, info = await _joined_room(client, hs)
    # a make_join for another server's user, and for a room version the peer does not know
    resp = await _fed(client, hs, "GET", f"{FED}/make_join/{quote(room)}/{quote('@eve:elsewhere.example')}?ver=12")
    assert resp.status_code == 403
    resp = await _fed(client, hs, "GET", f"{FED}/make_join/{quote(room)}/{quote(BOB)}?ver=1")
    assert resp.status_code == 400 and resp.json()["errcode"] == "M_INCOMPATIBLE_ROOM_VERSION"
    # unsigned, oversized and malformed transactions
    unsigned = await client.request("PUT", f"{FED}/send/t2", {"pdus": []}, token="")
    assert unsigned.status_code == 401
    big = await _fed(client, hs, "PUT", f"{FED}/send/t3", {"origin": REMOTE, "pdus": [{}] * 51, "edus": []})
    assert big.status_code == 400
    odd = await _fed(client, hs, "PUT", f"{FED}/send/t4", {"origin": REMOTE, "pdus": [1, "x", None], "edus": []})
    assert odd.status_code == 200 and odd.json() == {"pdus": {}}
    # a server with no user in the room reads nothing
    other = await alice.create_room(preset="private_chat")
    event_id = await alice.send_text(other, "private")
    assert (await _fed(client, hs, "GET", f"{FED}/event/{quote(event_id)}")).status_code == 404
    resp = await _fed(client, hs, "GET", f"{FED}/state_ids/{quote(other)}?event_id={quote(event_id)}")
    assert resp.status_code == 403
