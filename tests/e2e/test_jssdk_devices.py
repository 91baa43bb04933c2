"""Device-level E2EE with matrix-js-sdk (its Rust crypto) on a real Parley: SAS (emoji)
verification between two devices of one user over to-device messages, and fallback keys (the
SDK uploads one; once the one-time keys are gone a peer opens an Olm session with it, and the SDK
replaces it when sync says it was used)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.e2e.jssdk import Party, install_jssdk, login, register


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
