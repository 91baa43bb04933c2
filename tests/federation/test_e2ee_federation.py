"""Encrypted DMs across federation, matrix-js-sdk (Element's SDK, Rust crypto) on both sides: a
Parley user and a Synapse user, each DM created once from each side. Key queries and one-time key
claims go through federation, room keys travel as `m.direct_to_device` EDUs, and neither server's
database holds a plaintext afterwards."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.e2e.jssdk import Party, assert_sqlite_free_of, install_jssdk, register
from tests.federation.peers import Peer


@pytest.fixture(scope="module", autouse=True)
def jssdk_installed() -> None:
    install_jssdk()


async def _dm(creator_peer: Peer, answerer_peer: Peer, text: str) -> None:
    async with httpx.AsyncClient(base_url=creator_peer.client_base, timeout=60) as c, \
            httpx.AsyncClient(base_url=answerer_peer.client_base, timeout=60) as a:
        creator, answerer = await register(c, "fedjs"), await register(a, "fedjs")
    echo = await Party.start("echo", answerer_peer.client_base, answerer)
    try:
        await echo.wait_for("ready")
        sender = await Party.start("send", creator_peer.client_base, creator, answerer["user_id"], text)
        try:
            heard, got = await asyncio.gather(echo.wait_for("received"), sender.wait_for("received"))
            assert await sender.proc.wait() == 0
        finally:
            await sender.stop()
    finally:
        await echo.stop()
    assert heard == {"received": text, "sender": creator["user_id"], "encrypted": True, "room": heard["room"]}
    assert got == {"received": f"echo: {text}", "sender": answerer["user_id"], "encrypted": True,
                   "room": heard["room"]}
    for peer in (creator_peer, answerer_peer):
        db = peer.data / ("parley.db" if (peer.data / "parley.db").exists() else "homeserver.db")
        assert_sqlite_free_of(db, [text])


async def test_parley_user_opens_an_encrypted_dm_with_a_synapse_user(parley: Peer, synapse: Peer) -> None:
    await _dm(parley, synapse, "from parley to synapse, sealed")


async def test_synapse_user_opens_an_encrypted_dm_with_a_parley_user(parley: Peer, synapse: Peer) -> None:
    await _dm(synapse, parley, "from synapse to parley, sealed")
