"""Which endpoint the server uses for a user: the AI settings endpoint's (canonical, its token
sealed), never the `org.parley.ai_server` account data the web client wrote before it, and the
organization's endpoint when the user has set none."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from homeserver.app import Homeserver
from tests.ai.fake_inference import FakeInference
from tests.conftest import MatrixClient

AI = "/_matrix/client/unstable/org.parley.ai"


@pytest.fixture
async def personal() -> AsyncIterator[FakeInference]:
    server = await FakeInference(reply=["personal ", "answer"]).start()
    try:
        yield server
    finally:
        await server.stop()


async def test_settings_endpoint_not_account_data_decides(client: MatrixClient, hs: Homeserver,
                                                          fake: FakeInference, personal: FakeInference) -> None:
    alice = await client.register("alice")
    room = await alice.create_room(preset="private_chat")
    await alice.send_text(room, "the deploy is done")
    # The web client's old place for the URL: stored like any account data, not read by the AI.
    await alice.ok("PUT", f"/_matrix/client/v3/user/{alice.user_id}/account_data/org.parley.ai_server",
                   {"url": personal.url})
    out = await alice.ok("POST", f"{AI}/rooms/{room}/summarize", {})
    assert out["summary"] == "The team fixed the outage." and len(fake.chats()) == 1 and personal.chats() == []
    assert fake.chats()[0].headers.get("authorization") == "Bearer org-secret"

    # The settings endpoint: the user's own server, with their sealed token, from now on.
    await alice.ok("PUT", f"{AI}/settings", {"endpoint": personal.url, "api_style": "openai",
                                             "token": "alice-token"})
    out = await alice.ok("POST", f"{AI}/rooms/{room}/summarize", {})
    assert out["summary"] == "personal answer" and len(fake.chats()) == 1 and len(personal.chats()) == 1
    assert personal.chats()[0].headers.get("authorization") == "Bearer alice-token"

    # Cleared: back to the organization's, whatever the account data still says.
    await alice.ok("DELETE", f"{AI}/settings")
    await alice.ok("POST", f"{AI}/rooms/{room}/summarize", {})
    assert len(fake.chats()) == 2 and len(personal.chats()) == 1
