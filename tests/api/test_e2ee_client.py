"""Parley's own E2EE client (`e2ee/`) through a real Parley (both databases): encrypted DMs both
ways, a late joiner who cannot read earlier messages, the example bot answering an encrypted DM,
and no plaintext anywhere in the server's database afterwards."""

from __future__ import annotations

from typing import Any

from e2ee.bot import step
from e2ee.client import V3, E2EEClient
from e2ee.machine import MEGOLM, OlmMachine
from e2ee.store import CryptoStore
from homeserver.app import Homeserver
from tests.conftest import MatrixClient, assert_database_free_of

SECRETS = ["the eagle lands at midnight", "bring the blue folder", "carol may read this one", "ping the bot"]


def _e2ee(user: MatrixClient) -> E2EEClient:
    assert user.token and user.user_id and user.device_id
    return E2EEClient(user.http, user.token, OlmMachine(user.user_id, user.device_id,
                                                        CryptoStore(":memory:", "pw", fast_kdf=True)))


def _texts(client: E2EEClient, room: str, resp: dict[str, Any]) -> list[str]:
    events = resp["rooms"]["join"].get(room, {}).get("timeline", {}).get("events", [])
    return [e["content"]["body"] for e in client.decrypt_timeline(room, events) if e.get("encrypted")]


async def test_encrypted_dm_both_ways_late_joiner_and_bot(client: MatrixClient, hs: Homeserver) -> None:
    alice_u, bob_u, carol_u, bot_u = [await client.register(n) for n in ("alice", "bob", "carol", "echobot")]
    alice, bob, carol, bot = (_e2ee(u) for u in (alice_u, bob_u, carol_u, bot_u))
    for c in (alice, bob, carol, bot):
        await c.upload_keys()
        await c.sync()
    room = await alice_u.create_room(preset="trusted_private_chat", invite=[bob_u.user_id], is_direct=True,
                                     initial_state=[{"type": "m.room.encryption", "state_key": "",
                                                     "content": {"algorithm": MEGOLM}}])
    await bob_u.ok("POST", f"{V3}/join/{room}", {})
    await alice.sync()

    await alice.send_encrypted(room, {"msgtype": "m.text", "body": SECRETS[0]})
    resp, to_device = await bob.sync()
    assert [e["type"] for e in to_device] == ["m.room_key"]
    assert _texts(bob, room, resp) == [SECRETS[0]]

    await bob.send_encrypted(room, {"msgtype": "m.text", "body": SECRETS[1]})
    resp, _ = await alice.sync()
    assert _texts(alice, room, resp) == [SECRETS[0], SECRETS[1]]  # her own message too

    # carol joins later: she reads what is sent after, not what was sent before
    await alice_u.ok("POST", f"{V3}/rooms/{room}/invite", {"user_id": carol_u.user_id})
    await carol_u.ok("POST", f"{V3}/join/{room}", {})
    await alice.send_encrypted(room, {"msgtype": "m.text", "body": SECRETS[2]})
    await carol.sync()
    history = await carol_u.ok("GET", f"{V3}/rooms/{room}/messages", params={"dir": "b", "limit": 50})
    decrypted = carol.decrypt_timeline(room, list(reversed(history["chunk"])))
    readable = [e["content"]["body"] for e in decrypted if e.get("encrypted")]
    unreadable = [e for e in decrypted if "undecryptable" in e]
    assert readable == [SECRETS[2]]
    assert len(unreadable) == 2

    # the example bot joins an encrypted DM and answers, encrypted
    dm = await alice_u.create_room(preset="trusted_private_chat", invite=[bot_u.user_id], is_direct=True,
                                   initial_state=[{"type": "m.room.encryption", "state_key": "",
                                                   "content": {"algorithm": MEGOLM}}])
    assert await step(bot, timeout_ms=0) == []  # joins on invite
    await alice.sync()
    await alice.send_encrypted(dm, {"msgtype": "m.text", "body": SECRETS[3]})
    (answer,) = await step(bot, timeout_ms=0)
    resp, _ = await alice.sync()
    events = alice.decrypt_timeline(dm, resp["rooms"]["join"][dm]["timeline"]["events"])
    (reply,) = [e for e in events if e.get("event_id") == answer]
    assert reply["content"] == {"msgtype": "m.notice", "body": f"You said: {SECRETS[3]}"}
    assert reply["encrypted"] is True

    await assert_database_free_of(hs, [*SECRETS, "You said"])
