"""EDUs both ways, in-process on SQLite and PostgreSQL: a remote server's typing, receipts,
presence, to-device messages and device-list changes reach local clients' syncs (after the
checks: the origin owns the user, the user is in the room), and local changes of those kinds
are queued for the room's other servers."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from homeserver.app import Homeserver
from tests.api.federation_peer import RemotePeer, attach, until
from tests.api.test_cross_signing import CrossSigning
from tests.api.test_e2ee_keys import Device
from tests.api.test_federation_api import FED_ON, REMOTE
from tests.api.test_federation_events import BOB, FED, _fed, _joined_room
from tests.conftest import MatrixClient

V3 = "/_matrix/client/v3"


async def _push_edus(client: MatrixClient, hs: Homeserver, txn_id: str, edus: list[dict[str, Any]],
                     origin: str = REMOTE) -> None:
    resp = await _fed(client, hs, "PUT", f"{FED}/send/{txn_id}",
                      {"origin": origin, "origin_server_ts": 1, "pdus": [], "edus": edus}, origin=origin)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"pdus": {}}


def _ephemeral(sync: dict[str, Any], room: str, kind: str) -> list[dict[str, Any]]:
    room_data = sync.get("rooms", {}).get("join", {}).get(room, {})
    return [e for e in room_data.get("ephemeral", {}).get("events", []) if e["type"] == kind]


@FED_ON
async def test_inbound_edus_reach_local_syncs(client: MatrixClient, hs: Homeserver) -> None:
    alice, room, _ = await _joined_room(client, hs)
    attach(hs, RemotePeer())
    mine = await alice.send_text(room, "read me")
    first = await alice.sync()
    since = first["next_batch"]
    eve = "@eve:elsewhere.example"
    await _push_edus(client, hs, "e1", [
        {"edu_type": "m.typing", "content": {"room_id": room, "user_id": BOB, "typing": True}},
        # refused: another server's user; a user not in the room; malformed; unknown type
        {"edu_type": "m.typing", "content": {"room_id": room, "user_id": eve, "typing": True}},
        {"edu_type": "m.typing", "content": {"room_id": room, "user_id": f"@carol:{REMOTE}", "typing": True}},
        {"edu_type": "m.typing", "content": "not an object"},
        {"edu_type": "org.example.unknown", "content": {}},
        {"edu_type": "m.receipt", "content": {room: {"m.read": {
            BOB: {"event_ids": [mine], "data": {"ts": 1_700_000_000_000}},
            eve: {"event_ids": [mine], "data": {"ts": 1}}}}}},
        {"edu_type": "m.presence", "content": {"push": [
            {"user_id": BOB, "presence": "online", "status_msg": "from afar", "currently_active": True,
             "last_active_ago": 0},
            {"user_id": eve, "presence": "online"}]}},
        {"edu_type": "m.direct_to_device", "content": {
            "sender": BOB, "type": "m.test", "message_id": "msg1",
            "messages": {alice.user_id: {alice.device_id: {"hello": "device"}}}}},
        {"edu_type": "m.direct_to_device", "content": {
            "sender": eve, "type": "m.test", "message_id": "msg2",
            "messages": {alice.user_id: {alice.device_id: {"hello": "forged"}}}}},
        {"edu_type": "m.device_list_update", "content": {
            "user_id": BOB, "device_id": "BOBDEV", "stream_id": 5, "prev_id": [], "deleted": False}},
    ])
    sync = await alice.sync(since=since, timeout=0)
    (typing,) = _ephemeral(sync, room, "m.typing")
    assert typing["content"]["user_ids"] == [BOB]
    receipts = _ephemeral(sync, room, "m.receipt")
    readers = {u for r in receipts for u in r["content"].get(mine, {}).get("m.read", {})}
    assert readers == {BOB}
    presence = {e["sender"]: e["content"] for e in sync.get("presence", {}).get("events", [])}
    assert presence[BOB]["presence"] == "online" and presence[BOB]["status_msg"] == "from afar"
    assert eve not in presence
    status = await alice.ok("GET", f"{V3}/presence/{quote(BOB)}/status")
    assert status["presence"] == "online" and status["status_msg"] == "from afar"
    assert (await alice.get(f"{V3}/presence/{quote(eve)}/status")).status_code == 404
    to_device = sync.get("to_device", {}).get("events", [])
    assert [(m["sender"], m["content"]) for m in to_device] == [(BOB, {"hello": "device"})]
    assert BOB in sync["device_lists"]["changed"]
    # the same message ID again (a retried EDU) is not delivered twice; typing stops
    await _push_edus(client, hs, "e2", [
        {"edu_type": "m.direct_to_device", "content": {
            "sender": BOB, "type": "m.test", "message_id": "msg1",
            "messages": {alice.user_id: {alice.device_id: {"hello": "device"}}}}},
        {"edu_type": "m.typing", "content": {"room_id": room, "user_id": BOB, "typing": False}},
        {"edu_type": "m.signing_key_update", "content": {"user_id": BOB, "master_key": {}}},
        {"edu_type": "m.signing_key_update", "content": {"user_id": eve, "master_key": {}}},
    ])
    later = await alice.sync(since=sync["next_batch"], timeout=0)
    assert later["device_lists"]["changed"] == [BOB]
    assert later.get("to_device", {}).get("events", []) == []
    (typing,) = _ephemeral(later, room, "m.typing")
    assert typing["content"]["user_ids"] == []


@FED_ON
async def test_local_changes_become_edus(client: MatrixClient, hs: Homeserver) -> None:
    peer = RemotePeer()
    alice, room, _ = await _joined_room(client, hs)
    attach(hs, peer)
    event_id = await alice.send_text(room, "hello")
    await alice.ok("PUT", f"{V3}/rooms/{room}/typing/{quote(alice.user_id)}", {"typing": True, "timeout": 10_000})
    await alice.ok("POST", f"{V3}/rooms/{room}/receipt/m.read/{quote(event_id)}", {})
    await alice.ok("POST", f"{V3}/rooms/{room}/receipt/m.read.private/{quote(event_id)}", {})
    await alice.ok("PUT", f"{V3}/presence/{quote(alice.user_id)}/status",
                   {"presence": "unavailable", "status_msg": "lunch"})
    await alice.ok("PUT", f"{V3}/sendToDevice/m.test/t1",
                   {"messages": {BOB: {"BOBDEV": {"secret": 1}}, alice.user_id: {alice.device_id: {"self": 1}}}})
    dev = Device(alice)
    await alice.ok("POST", f"{V3}/keys/upload", {"device_keys": dev.device_keys()})
    cs = CrossSigning(alice.user_id or "")
    await alice.ok("POST", f"{V3}/keys/device_signing/upload", cs.body())
    await until(lambda: len(peer.edus("m.signing_key_update")) >= 1, what="all EDUs")
    assert peer.edus("m.typing") == [{"room_id": room, "user_id": alice.user_id, "typing": True}]
    (receipt,) = peer.edus("m.receipt")  # the private receipt stays here
    entry = receipt[room]["m.read"][alice.user_id]
    assert entry["event_ids"] == [event_id] and isinstance(entry["data"]["ts"], int)
    (presence,) = [p for p in peer.edus("m.presence") if p["push"][0]["presence"] == "unavailable"]
    assert presence["push"][0]["user_id"] == alice.user_id and presence["push"][0]["status_msg"] == "lunch"
    (to_device,) = peer.edus("m.direct_to_device")
    assert to_device["sender"] == alice.user_id and to_device["type"] == "m.test"
    assert to_device["messages"] == {BOB: {"BOBDEV": {"secret": 1}}}  # only the remote's users
    (update,) = peer.edus("m.device_list_update")
    assert update["user_id"] == alice.user_id and update["device_id"] == alice.device_id
    assert update["deleted"] is False and update["keys"]["keys"] == dev.device_keys()["keys"]
    (keys,) = peer.edus("m.signing_key_update")  # the user-signing key stays private
    assert keys == {"user_id": alice.user_id, "master_key": cs.objs["master"],
                    "self_signing_key": cs.objs["self_signing"]}
    # EDUs and PDUs share the one queue: the message went first
    assert peer.pdu_bodies() == ["hello"]
