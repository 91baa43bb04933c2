"""matrix-nio with its end-to-end encryption (vodozemac) on a real Parley process: two users
exchange Megolm-encrypted messages in an encrypted DM, both ways. nio uploads its device and
one-time keys, tracks device lists from /sync, claims keys, shares room keys over to-device
and decrypts; the server only relays ciphertext."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    JoinResponse,
    MegolmEvent,
    RegisterResponse,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)
from nio.api import RoomPreset

ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


def _client(server: str, user: str, store: Path) -> AsyncClient:
    store.mkdir(parents=True, exist_ok=True)
    cfg = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
    return AsyncClient(server, user, store_path=str(store), config=cfg)


async def _sync(client: AsyncClient) -> SyncResponse:
    resp = await client.sync(timeout=2000, full_state=client.next_batch is None)
    assert isinstance(resp, SyncResponse), resp
    if client.should_upload_keys:
        await client.keys_upload()
    if client.should_query_keys:
        await client.keys_query()
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())
    await client.send_to_device_messages()
    return resp


async def _decrypted_texts(client: AsyncClient, room_id: str, want: int, timeout_s: float = 30) -> list[str]:
    texts: list[str] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(texts) < want:
        resp = await _sync(client)
        room = resp.rooms.join.get(room_id)
        for ev in room.timeline.events if room else []:
            assert not isinstance(ev, MegolmEvent), f"undecryptable: {ev}"
            if isinstance(ev, RoomMessageText):
                texts.append(ev.body)
        assert asyncio.get_running_loop().time() < deadline, f"timed out, got {texts}"
    return texts


async def _send(client: AsyncClient, room_id: str, text: str) -> None:
    resp = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": text},
                                  ignore_unverified_devices=True)
    assert isinstance(resp, RoomSendResponse), resp


async def test_encrypted_dm_both_ways(server: str, tmp_path: Path) -> None:
    alice = _client(server, "alice", tmp_path / "alice")
    bob = _client(server, "bob", tmp_path / "bob")
    try:
        for c, name in ((alice, "alice"), (bob, "bob")):
            reg: Any = await c.register(name, f"{name}-password-1", f"{name}-laptop")
            assert isinstance(reg, RegisterResponse), reg
            await _sync(c)  # uploads the device keys and one-time keys
        created = await alice.room_create(preset=RoomPreset.trusted_private_chat, is_direct=True,
                                          invite=[bob.user_id], initial_state=[ENCRYPTION])
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        await _sync(bob)
        assert isinstance(await bob.join(room_id), JoinResponse)
        await _sync(bob)
        await _sync(alice)
        await _sync(alice)
        assert alice.rooms[room_id].encrypted

        await _send(alice, room_id, "hello bob, this is secret")
        assert await _decrypted_texts(bob, room_id, 1) == ["hello bob, this is secret"]
        await _sync(bob)
        await _send(bob, room_id, "hi alice, secret too")
        # alice's sync shows her own (decryptable) message too, then bob's answer
        assert await _decrypted_texts(alice, room_id, 2) == ["hello bob, this is secret", "hi alice, secret too"]
    finally:
        await alice.close()
        await bob.close()
