"""Device-level E2EE with matrix-js-sdk (its Rust crypto) on a real Parley: SAS (emoji)
verification between two devices of one user over to-device messages, fallback keys (the SDK
uploads one; once the one-time keys are gone a peer opens an Olm session with it), and dehydrated
devices (MSC3814: room keys sent while all of a user's clients are offline reach a new login)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2ee.client import V3, E2EEClient
from e2ee.machine import MEGOLM, OlmMachine
from e2ee.store import CryptoStore
from tests.e2e.jssdk import DEADLINE_S, PASSWORD, Party, assert_sqlite_free_of, install_jssdk, login, register


@pytest.fixture(scope="module", autouse=True)
def jssdk_installed() -> None:
    install_jssdk()


@pytest.fixture
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=60) as client:
        yield client


async def test_sas_verification_between_two_devices(server: str, http: httpx.AsyncClient) -> None:
    first = await register(http, "sas")
    second = await login(http, first["user_id"])
    accepter = await Party.start("sas-accept", server, second, first["device_id"])
    requester = await Party.start("sas-request", server, first, second["device_id"])
    try:
        before = await asyncio.gather(requester.wait_for("before"), accepter.wait_for("before"))
        assert [b["before"] for b in before] == [{"local": False, "verified": False}] * 2
        shown_r, shown_a = await asyncio.gather(requester.wait_for("sas"), accepter.wait_for("sas"))
        # both sides derived the same short authentication string from the exchanged keys
        assert shown_r["sas"] == shown_a["sas"]
        assert len(shown_r["sas"]["emoji"]) == 7 and len(shown_r["sas"]["decimal"]) == 3
        assert all(1000 <= n <= 9191 for n in shown_r["sas"]["decimal"])
        await requester.tell("confirm")
        await accepter.tell("confirm")
        after = await asyncio.gather(requester.wait_for("after"), accepter.wait_for("after"))
    finally:
        await requester.stop()
        await accepter.stop()
    for line in after:
        assert line == {"after": {"local": True, "verified": True}, "done": True}


def _fallback_key(db_path: Path, user: dict[str, Any]) -> tuple[str, bool] | None:
    """The device's stored fallback key: (key ID, used), or None."""
    db = sqlite3.connect(db_path)
    try:
        row = db.execute("SELECT key_id, used FROM e2e_fallback_keys WHERE user_id = ? AND device_id = ?"
                         " AND algorithm = 'signed_curve25519'", (user["user_id"], user["device_id"])).fetchone()
    finally:
        db.close()
    return (str(row[0]), bool(row[1])) if row else None


async def _until(what: str, cond: Callable[[], Any]) -> Any:
    async with asyncio.timeout(DEADLINE_S):
        while not (got := cond()):
            await asyncio.sleep(0.2)  # polling the server's database, with a deadline
    return got


async def test_js_sdk_fallback_key_opens_a_session_when_one_time_keys_run_out(
        server: str, http: httpx.AsyncClient, tmp_path: Path) -> None:
    js_user, py_user = await register(http, "jsfb"), await register(http, "pyfb")
    db = tmp_path / "parley.db"
    echo = await Party.start("echo", server, js_user)
    try:
        await echo.wait_for("ready")
        _, used = await _until("the SDK's fallback key", lambda: _fallback_key(db, js_user))
        assert used is False
        py = E2EEClient(http, py_user["access_token"], OlmMachine(py_user["user_id"], py_user["device_id"],
                                                                   CryptoStore(":memory:", "pw", fast_kdf=True)))
        await py.upload_keys()
        auth = {"Authorization": f"Bearer {py_user['access_token']}"}
        create = await http.post(f"{V3}/createRoom", headers=auth, json={
            "preset": "trusted_private_chat", "is_direct": True, "invite": [js_user["user_id"]],
            "initial_state": [{"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}]})
        room = create.json()["room_id"]
        assert (await echo.wait_for("joined"))["joined"] == room
        await py.sync()
        py.machine.track_users([js_user["user_id"]])
        py.machine.keys_queried((await http.post(f"{V3}/keys/query", headers=auth,
                                                 json=py.machine.keys_query_body())).json())

        # take the SDK's one-time keys until the server hands out its fallback key, and open the
        # Olm session with that (the SDK may upload more one-time keys meanwhile: keep taking)
        # in bursts, so that the SDK's top-ups (it uploads more when sync shows the count falling)
        # do not keep pace
        want = {"one_time_keys": {js_user["user_id"]: {js_user["device_id"]: "signed_curve25519"}}}

        def only_key(answer: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            ((kid, k),) = answer["one_time_keys"][js_user["user_id"]][js_user["device_id"]].items()
            return kid, k

        async with asyncio.timeout(DEADLINE_S):
            while True:
                burst = await asyncio.gather(*(http.post(f"{V3}/keys/claim", headers=auth, json=want)
                                               for _ in range(60)))
                fallbacks = [r.json() for r in burst if only_key(r.json())[1].get("fallback")]
                if fallbacks:
                    claimed = fallbacks[0]
                    break
        key_id, key = only_key(claimed)
        assert key.get("fallback") is True
        handed_out = key_id.split(":", 1)[1]  # maybe not the first the SDK uploaded: it may replace it
        py.machine.keys_claimed(claimed)

        await py.send_encrypted(room, {"msgtype": "m.text", "body": "over the fallback key"})
        assert (await echo.wait_for("received"))["received"] == "over the fallback key"
        replies: list[str] = []
        async with asyncio.timeout(DEADLINE_S):
            while not replies:
                resp, _ = await py.sync(timeout_ms=1000)
                events = resp.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {}).get("events", [])
                replies = [e["content"]["body"] for e in py.decrypt_timeline(room, events) if e.get("encrypted")
                           and e["sender"] == js_user["user_id"]]
        assert replies == ["echo: over the fallback key"]
        # the key handed out is now marked used (sync's device_unused_fallback_key_types no longer
        # lists it), unless the SDK has already replaced it with a fresh, unused one
        now = _fallback_key(db, js_user)
        assert now == (handed_out, True) or (now is not None and now[0] != handed_out and now[1] is False), now
    finally:
        await echo.stop()
    assert_sqlite_free_of(db, ["over the fallback key"])


async def test_js_sdk_dehydrated_device_brings_room_keys_to_a_new_login(
        server: str, http: httpx.AsyncClient, tmp_path: Path) -> None:
    owner, peer_user = await register(http, "dehy"), await register(http, "dehypeer")
    peer = E2EEClient(http, peer_user["access_token"], OlmMachine(peer_user["user_id"], peer_user["device_id"],
                                                                 CryptoStore(":memory:", "pw", fast_kdf=True)))
    await peer.upload_keys()
    create = await http.post(f"{V3}/createRoom", headers={"Authorization": f"Bearer {peer_user['access_token']}"},
                             json={"preset": "trusted_private_chat", "is_direct": True, "invite": [owner["user_id"]],
                                   "initial_state": [{"type": "m.room.encryption", "state_key": "",
                                                      "content": {"algorithm": MEGOLM}}]})
    room = create.json()["room_id"]
    joined = await http.post(f"{V3}/join/{room}", json={},
                             headers={"Authorization": f"Bearer {owner['access_token']}"})
    assert joined.status_code == 200
    first = await Party.start("dehydrate", server, owner, PASSWORD)
    try:
        made = await first.wait_for("dehydrated")
        recovery_key = (await first.wait_for("recovery_key"))["recovery_key"]
    finally:
        await first.stop()  # every client of the owner is offline now
    assert made["supported"] is True
    dehydrated = made["dehydrated"]
    query = await http.post(f"{V3}/keys/query", headers={"Authorization": f"Bearer {peer_user['access_token']}"},
                            json={"device_keys": {owner["user_id"]: []}})
    devices = query.json()["device_keys"][owner["user_id"]]
    assert set(devices) == {owner["device_id"], dehydrated} and devices[dehydrated].get("dehydrated") is True

    await peer.sync()
    await peer.send_encrypted(room, {"msgtype": "m.text", "body": "for the dehydrated device"})
    second_device = await login(http, owner["user_id"])
    second = await Party.start("rehydrate", server, second_device, recovery_key, room)
    try:
        got = await second.wait_for("rehydrated")
    finally:
        await second.stop()
    room_keys, to_device = got["rehydrated"]
    assert room_keys >= 1 and to_device >= 1
    assert got["messages"] == [{"body": "for the dehydrated device", "encrypted": True}]
    # the SDK then dehydrates a fresh device, which replaces the used one
    auth = {"Authorization": f"Bearer {owner['access_token']}"}
    now = await http.get("/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device", headers=auth)
    assert now.status_code == 200 and now.json()["device_id"] != dehydrated
    query = await http.post(f"{V3}/keys/query", headers=auth, json={"device_keys": {owner["user_id"]: []}})
    assert set(query.json()["device_keys"][owner["user_id"]]) == {
        owner["device_id"], second_device["device_id"], now.json()["device_id"]}
    assert_sqlite_free_of(tmp_path / "parley.db", ["for the dehydrated device"])
