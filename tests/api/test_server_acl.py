"""m.room.server_acl enforced on inbound federation (SQLite and PostgreSQL): a signed remote
server that joined two rooms is then banned from one by its ACL. Requests naming that room answer
403 M_FORBIDDEN, its PDUs in a transaction are dropped while the PDUs of the other room land, its
EDUs about the room are filtered, and lifting the ACL lets it back in."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from homeserver.app import Homeserver
from homeserver.protocol.events import compute_event_id, hash_and_sign_event
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.rooms.remote_joins import TransactionHandler
from tests.api.test_federation_api import FED_ON, REMOTE, REMOTE_KEY, remote_keys_handler, use_transport
from tests.api.test_federation_events import BOB, FED, V3, _fed, _rewire
from tests.conftest import MatrixClient


async def _join(client: MatrixClient, hs: Homeserver, room: str) -> tuple[RoomVersion, str]:
    resp = await _fed(client, hs, "GET", f"{FED}/make_join/{quote(room)}/{quote(BOB)}?ver=10&ver=11&ver=12")
    assert resp.status_code == 200, resp.text
    template = resp.json()
    rv = KNOWN_ROOM_VERSIONS[template["room_version"]]
    join = hash_and_sign_event(template["event"], REMOTE, REMOTE_KEY, rv)
    eid = compute_event_id(join, rv)
    resp = await _fed(client, hs, "PUT", f"/_matrix/federation/v2/send_join/{quote(room)}/{quote(eid)}", join)
    assert resp.status_code == 200, resp.text
    return rv, eid


async def _message(hs: Homeserver, room: str, rv: RoomVersion, body: str) -> tuple[str, dict[str, Any]]:
    extremities = await hs.stores.events.forward_extremities(None, room)
    current = await hs.stores.state.current_all(room)
    auth = [current[k] for k in (("m.room.create", ""), ("m.room.power_levels", ""), ("m.room.member", BOB))]
    if rv.room_id_from_create:
        auth.remove(current[("m.room.create", "")])
    pdu = {"room_id": room, "type": "m.room.message", "sender": BOB, "origin_server_ts": 1_700_000_000_000,
           "content": {"msgtype": "m.text", "body": body}, "depth": max(e.depth for e in extremities) + 1,
           "prev_events": [e.event_id for e in extremities], "auth_events": auth}
    pdu = hash_and_sign_event(pdu, REMOTE, REMOTE_KEY, rv)
    return compute_event_id(pdu, rv), pdu


async def _bodies(alice: MatrixClient, room: str) -> list[str]:
    page = await alice.ok("GET", f"{V3}/rooms/{room}/messages", params={"dir": "b", "limit": 20})
    return [e["content"]["body"] for e in page["chunk"] if e["type"] == "m.room.message"]


@FED_ON
async def test_server_acl_on_requests_transactions_and_edus(client: MatrixClient, hs: Homeserver) -> None:
    use_transport(hs, remote_keys_handler([]))
    _rewire(hs)
    hs.transactions = TransactionHandler(hs.receiver, hs.server_acls)
    alice = await client.register("alice")
    banned = await alice.create_room(preset="public_chat")
    open_room = await alice.create_room(preset="public_chat")
    rv, _ = await _join(client, hs, banned)
    await _join(client, hs, open_room)
    reads = [("GET", f"{FED}/state_ids/{quote(banned)}?event_id={{e}}"),
             ("GET", f"{FED}/state/{quote(banned)}?event_id={{e}}"),
             ("GET", f"{FED}/event_auth/{quote(banned)}/{{e}}"),
             ("GET", f"{FED}/backfill/{quote(banned)}?v={{e}}&limit=2"),
             ("GET", f"{FED}/make_join/{quote(banned)}/{quote(BOB)}?ver={rv.identifier}")]
    anchor = quote(await alice.send_text(banned, "before the ACL"))
    for method, uri in reads:
        resp = await _fed(client, hs, method, uri.format(e=anchor))
        assert resp.status_code == 200, (uri, resp.text)

    acl = {"allow": ["*"], "deny": ["*.example.org", REMOTE], "allow_ip_literals": False}
    await alice.ok("PUT", f"{V3}/rooms/{banned}/state/m.room.server_acl/", acl)
    for method, uri in reads:
        resp = await _fed(client, hs, method, uri.format(e=anchor))
        assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN", (uri, resp.text)
    resp = await _fed(client, hs, "POST", f"{FED}/get_missing_events/{quote(banned)}",
                      {"earliest_events": [], "latest_events": [anchor], "limit": 5})
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    # the other room is not affected
    resp = await _fed(client, hs, "GET", f"{FED}/state_ids/{quote(open_room)}?event_id="
                      + quote(await alice.send_text(open_room, "open")))
    assert resp.status_code == 200

    # One transaction, a PDU in each room: the banned room's is dropped, the other lands.
    denied_id, denied_pdu = await _message(hs, banned, rv, "from a banned server")
    ok_id, ok_pdu = await _message(hs, open_room, rv, "from an allowed room")
    txn = {"origin": REMOTE, "origin_server_ts": 1, "edus": [],
           "pdus": [denied_pdu, {"room_id": banned, "type": "junk"}, ok_pdu]}
    resp = await _fed(client, hs, "PUT", f"{FED}/send/acl1", txn)
    assert resp.status_code == 200, resp.text
    results = resp.json()["pdus"]
    assert results[ok_id] == {} and "acl" in results[denied_id]["error"].lower()
    assert set(results) == {ok_id, denied_id}
    assert await hs.stores.events.get(denied_id) is None
    assert await _bodies(alice, open_room) == ["from an allowed room", "open"]
    assert await _bodies(alice, banned) == ["before the ACL"]

    # EDUs: typing in the banned room is dropped; a receipt keeps only the allowed room.
    typing = {"edu_type": "m.typing", "content": {"room_id": banned, "user_id": BOB, "typing": True}}
    assert await hs.server_acls.filter_edu(REMOTE, typing) is None
    typing_ok = {"edu_type": "m.typing", "content": {"room_id": open_room, "user_id": BOB, "typing": True}}
    assert await hs.server_acls.filter_edu(REMOTE, typing_ok) == typing_ok
    receipt = {"edu_type": "m.receipt", "content": {banned: {"m.read": {}}, open_room: {"m.read": {}}}}
    assert await hs.server_acls.filter_edu(REMOTE, receipt) == {
        "edu_type": "m.receipt", "content": {open_room: {"m.read": {}}}}
    assert await hs.server_acls.filter_edu(REMOTE, {**receipt, "content": {banned: {}}}) is None
    presence = {"edu_type": "m.presence", "content": {"push": []}}
    assert await hs.server_acls.filter_edu(REMOTE, presence) == presence
    # and a transaction hands its EDU handler only what the ACLs leave
    handed: list[Any] = []

    async def record(origin: str, edu: Any) -> None:
        handed.append(edu)

    hs.transactions.edu_handler = record
    resp = await _fed(client, hs, "PUT", f"{FED}/send/acl-edus", {
        "origin": REMOTE, "origin_server_ts": 1, "pdus": [], "edus": [typing, typing_ok, receipt, presence]})
    assert resp.status_code == 200, resp.text
    assert handed == [typing_ok, {"edu_type": "m.receipt", "content": {open_room: {"m.read": {}}}}, presence]
    # Other servers and ports: the ACL matches host names, case-insensitively, ports ignored.
    assert not await hs.server_acls.allows("REMOTE.example:8448", banned)
    assert not await hs.server_acls.allows("a.b.example.org", banned)
    assert not await hs.server_acls.allows("127.0.0.1:8448", banned)
    assert await hs.server_acls.allows("friend.example:8448", banned)

    # Lifting the ACL lets the server back in, and its retried PDU lands.
    await alice.ok("PUT", f"{V3}/rooms/{banned}/state/m.room.server_acl/", {"allow": ["*"]})
    resp = await _fed(client, hs, "GET", reads[0][1].format(e=anchor))
    assert resp.status_code == 200
    resp = await _fed(client, hs, "PUT", f"{FED}/send/acl2", {**txn, "pdus": [denied_pdu]})
    assert resp.json()["pdus"] == {denied_id: {}}
    assert "from a banned server" in await _bodies(alice, banned)


@FED_ON
async def test_an_acl_without_allow_shuts_every_server_out(client: MatrixClient, hs: Homeserver) -> None:
    use_transport(hs, remote_keys_handler([]))
    _rewire(hs)
    alice = await client.register("alice")
    room = await alice.create_room(preset="public_chat")
    await alice.ok("PUT", f"{V3}/rooms/{room}/state/m.room.server_acl/", {"deny": []})
    resp = await _fed(client, hs, "GET", f"{FED}/make_join/{quote(room)}/{quote(BOB)}?ver=10&ver=11&ver=12")
    assert resp.status_code == 403 and resp.json()["errcode"] == "M_FORBIDDEN"
    # A room the server cannot see at all is not an ACL matter: the endpoint's own answer stands.
    resp = await _fed(client, hs, "GET", f"{FED}/make_join/{quote('!nowhere:' + hs.server_name)}/{quote(BOB)}?ver=12")
    assert resp.status_code == 404
