"""Fallback keys end to end with Parley's Python `e2ee` client (both databases): the client
uploads one with its one-time keys; once those are all claimed, a peer gets the fallback key and
opens an Olm session with it; sync reports it used and the client uploads a new one."""

from __future__ import annotations

from typing import Any

from e2ee.client import V3, E2EEClient
from e2ee.machine import MEGOLM, OlmMachine
from e2ee.store import CryptoStore
from homeserver.app import Homeserver
from tests.conftest import MatrixClient, assert_database_free_of

SECRET = "sent over a session opened with the fallback key"


def _e2ee(user: MatrixClient) -> E2EEClient:
    assert user.token and user.user_id and user.device_id
    return E2EEClient(user.http, user.token, OlmMachine(user.user_id, user.device_id,
                                                        CryptoStore(":memory:", "pw", fast_kdf=True)))


async def _claim(user: MatrixClient, target: MatrixClient) -> tuple[str, dict[str, Any]]:
    got = await user.ok("POST", f"{V3}/keys/claim",
                        {"one_time_keys": {target.user_id: {target.device_id: "signed_curve25519"}}})
    ((key_id, key),) = got["one_time_keys"][target.user_id][target.device_id].items()
    return str(key_id), dict(key)


async def test_fallback_key_used_then_replaced(client: MatrixClient, hs: Homeserver) -> None:
    alice_u, bob_u, carol_u = [await client.register(n) for n in ("alice", "bob", "carol")]
    alice, bob = _e2ee(alice_u), _e2ee(bob_u)
    for c in (alice, bob):
        await c.upload_keys()
    first = await bob.sync()
    assert first[0]["device_unused_fallback_key_types"] == ["signed_curve25519"]
    otks = first[0]["device_one_time_keys_count"]["signed_curve25519"]
    assert otks > 0

    # carol takes every one-time key; then the claims give the fallback key, again and again
    for _ in range(otks):
        _, key = await _claim(carol_u, bob_u)
        assert "fallback" not in key
    old_id, old_key = await _claim(carol_u, bob_u)
    assert old_key["fallback"] is True

    room = await alice_u.create_room(preset="trusted_private_chat", invite=[bob_u.user_id], is_direct=True,
                                     initial_state=[{"type": "m.room.encryption", "state_key": "",
                                                     "content": {"algorithm": MEGOLM}}])
    await bob_u.ok("POST", f"{V3}/join/{room}", {})
    await alice.sync()
    await alice.send_encrypted(room, {"msgtype": "m.text", "body": SECRET})  # claims the fallback key

    # bob's sync: the room key (over the fallback-key session), the message, and "fallback used";
    # the client answers with a new fallback key (and one-time keys) in the same round
    resp, to_device = await bob.sync()
    assert [e["type"] for e in to_device] == ["m.room_key"]
    events = resp["rooms"]["join"][room]["timeline"]["events"]
    assert [e["content"]["body"] for e in bob.decrypt_timeline(room, events) if e.get("encrypted")] == [SECRET]
    assert resp["device_unused_fallback_key_types"] == []
    assert resp["device_one_time_keys_count"]["signed_curve25519"] == 0
    again, _ = await bob.sync()
    assert again["device_unused_fallback_key_types"] == ["signed_curve25519"]
    assert again["device_one_time_keys_count"]["signed_curve25519"] > 0

    for _ in range(again["device_one_time_keys_count"]["signed_curve25519"]):
        await _claim(carol_u, bob_u)
    new_id, new_key = await _claim(carol_u, bob_u)
    assert new_key["fallback"] is True and new_id != old_id and new_key["key"] != old_key["key"]
    await assert_database_free_of(hs, [SECRET])
