"""Encrypted DMs between matrix-js-sdk (Element's SDK, with its Rust crypto: the same
matrix-sdk-crypto as Element) and Parley's Python `e2ee` client, on a real Parley process:
js ↔ js, js → Python and Python → js. Each message is decrypted by the other side and answered
encrypted; the server's database holds none of the plaintexts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2ee.bot import step
from e2ee.client import V3, E2EEClient
from e2ee.machine import MEGOLM, OlmMachine
from e2ee.store import CryptoStore
from tests.e2e.jssdk import DEADLINE_S, PASSWORD, Party, assert_sqlite_free_of, install_jssdk, register


@pytest.fixture(scope="module", autouse=True)
def jssdk_installed() -> None:
    install_jssdk()


def _e2ee(http: httpx.AsyncClient, user: dict[str, Any]) -> E2EEClient:
    store = CryptoStore(":memory:", "pw", fast_kdf=True)
    return E2EEClient(http, user["access_token"], OlmMachine(user["user_id"], user["device_id"], store))


@pytest.fixture
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=60) as client:
        yield client


def _db_free_of(tmp_path: Path, needles: list[str]) -> None:
    assert_sqlite_free_of(tmp_path / "parley.db", needles)


async def test_js_sdk_to_js_sdk(server: str, http: httpx.AsyncClient, tmp_path: Path) -> None:
    alice, bob = await register(http, "jsa"), await register(http, "jsb")
    echo = await Party.start("echo", server, bob)
    try:
        await echo.wait_for("ready")
        sender = await Party.start("send", server, alice, bob["user_id"], "js to js, sealed")
        try:
            got = await sender.wait_for("received")
            assert got == {"received": "echo: js to js, sealed", "sender": bob["user_id"], "encrypted": True,
                           "room": got["room"]}
            heard = await echo.wait_for("received")
            assert heard["received"] == "js to js, sealed" and heard["encrypted"] is True
            assert await sender.proc.wait() == 0
        finally:
            await sender.stop()
    finally:
        await echo.stop()
    _db_free_of(tmp_path, ["js to js, sealed"])


async def test_js_sdk_to_python_e2ee_bot(server: str, http: httpx.AsyncClient, tmp_path: Path) -> None:
    js_user, bot_user = await register(http, "jsc"), await register(http, "pybot")
    bot = _e2ee(http, bot_user)
    await bot.upload_keys()
    await bot.sync()
    sender = await Party.start("send", server, js_user, bot_user["user_id"], "js to python, sealed")
    try:
        answered: list[str] = []
        async with asyncio.timeout(DEADLINE_S):
            while not answered:  # the bot joins on invite, then answers the first message
                assert not sender.reader.done(), f"the js party stopped: {sender.lines}"
                answered = await step(bot, timeout_ms=1000)
        got = await sender.wait_for("received")
        assert got["received"] == "You said: js to python, sealed"
        assert got["encrypted"] is True and got["sender"] == bot_user["user_id"]
    finally:
        await sender.stop()
    _db_free_of(tmp_path, ["js to python, sealed", "You said"])


async def test_python_e2ee_to_js_sdk(server: str, http: httpx.AsyncClient, tmp_path: Path) -> None:
    me, js_user = await register(http, "pyd"), await register(http, "jse")
    client = _e2ee(http, me)
    await client.upload_keys()
    await client.sync()
    echo = await Party.start("echo", server, js_user)
    try:
        await echo.wait_for("ready")
        create = await http.post(f"{V3}/createRoom", headers={"Authorization": f"Bearer {me['access_token']}"}, json={
            "preset": "trusted_private_chat", "is_direct": True, "invite": [js_user["user_id"]],
            "initial_state": [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}]})
        room = create.json()["room_id"]
        assert (await echo.wait_for("joined"))["joined"] == room
        await client.sync()
        await client.send_encrypted(room, {"msgtype": "m.text", "body": "python to js, sealed"})
        assert (await echo.wait_for("received"))["received"] == "python to js, sealed"
        replies: list[str] = []
        async with asyncio.timeout(DEADLINE_S):
            while not replies:
                resp, _ = await client.sync(timeout_ms=1000)
                events = resp.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {}).get("events", [])
                replies = [e["content"]["body"] for e in client.decrypt_timeline(room, events)
                           if e.get("encrypted") and e["sender"] == js_user["user_id"]]
        assert replies == ["echo: python to js, sealed"]
    finally:
        await echo.stop()
    _db_free_of(tmp_path, ["python to js, sealed"])


async def test_js_sdk_key_backup_restores_history_on_a_new_login(server: str, http: httpx.AsyncClient,
                                                                  tmp_path: Path) -> None:
    user = await register(http, "jsbackup")
    first = await Party.start("backup-create", server, user, "correct horse battery", "kept in the backup")
    try:
        made = await first.wait_for("recovery_key")
    finally:
        await first.stop()
    assert made["cross_signing_ready"] is True and made["recovery_key"]
    # the server now publishes the user's cross-signing keys, and the backup holds the room key
    query = await http.post(f"{V3}/keys/query", headers={"Authorization": f"Bearer {user['access_token']}"},
                            json={"device_keys": {user["user_id"]: []}})
    assert user["user_id"] in query.json()["master_keys"]
    assert user["user_id"] in query.json()["self_signing_keys"]

    login = await http.post(f"{V3}/login", json={"type": "m.login.password", "password": "correct horse battery",
                                                 "identifier": {"type": "m.id.user", "user": user["user_id"]}})
    second_device = login.json()
    assert second_device["device_id"] != user["device_id"]
    second = await Party.start("backup-restore", server, second_device, made["recovery_key"], made["version"],
                               made["room"])
    try:
        restored = await second.wait_for("restored")
    finally:
        await second.stop()
    assert restored["restored"] >= 1
    assert restored["messages"] == [{"body": "kept in the backup", "encrypted": True}]
    _db_free_of(tmp_path, ["kept in the backup"])


async def test_js_sdk_cross_signing_each_user_sees_the_other(server: str, http: httpx.AsyncClient) -> None:
    alice, bob = await register(http, "csa"), await register(http, "csb")
    # the SDK tracks the devices and identities of users it shares an encrypted room with
    create = await http.post(f"{V3}/createRoom", headers={"Authorization": f"Bearer {alice['access_token']}"}, json={
        "preset": "trusted_private_chat", "invite": [bob["user_id"]],
        "initial_state": [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}]})
    joined = await http.post(f"{V3}/join/{create.json()['room_id']}", json={},
                             headers={"Authorization": f"Bearer {bob['access_token']}"})
    assert joined.status_code == 200
    a = await Party.start("crosssign", server, alice, "correct horse battery", bob["user_id"])
    b = await Party.start("crosssign", server, bob, "correct horse battery", alice["user_id"])
    try:
        seen_by_a, seen_by_b = await asyncio.gather(a.wait_for("peer_devices"), b.wait_for("peer_devices"))
    finally:
        await a.stop()
        await b.stop()
    assert seen_by_a == {"ready": True, "peer_devices": [bob["device_id"]], "peer_master_key": True}
    assert seen_by_b == {"ready": True, "peer_devices": [alice["device_id"]], "peer_master_key": True}


async def test_js_sdk_late_invitee_reads_history_only_when_its_keys_are_shared(
        server: str, http: httpx.AsyncClient, tmp_path: Path) -> None:
    before, after = "sent before the invites", "sent after the joins"
    host_user, plain_user, sharing_user = [await register(http, n) for n in ("hist", "plain", "shared")]
    plain = await Party.start("reader", server, plain_user, PASSWORD)
    sharing = await Party.start("reader", server, sharing_user, PASSWORD)
    host: Party | None = None
    try:
        # the SDK shares history only with devices their owner has cross-signed
        await asyncio.gather(plain.wait_for("cross_signing_ready"), sharing.wait_for("cross_signing_ready"))
        host = await Party.start("history", server, host_user, PASSWORD, plain_user["user_id"],
                                 sharing_user["user_id"], before, after)
        await host.wait_for("sent", after)
        # both newcomers read what is sent after they joined
        await asyncio.gather(plain.wait_for("received", after), sharing.wait_for("received", after))
        # the one invited with the SDK's invite got the room's earlier keys (MSC4268 key bundle)
        got = await sharing.wait_for("received", before)
        assert got["encrypted"] is True and got["sender"] == host_user["user_id"]
        # the one invited with a bare /invite sees the earlier message but cannot decrypt it
        await plain.wait_for("undecryptable")
        assert before not in plain.seen("received")
        assert plain.seen("received") == [after]
    finally:
        for party in (host, plain, sharing):
            if party is not None:
                await party.stop()
    _db_free_of(tmp_path, [before, after])
