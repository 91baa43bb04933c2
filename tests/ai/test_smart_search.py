"""Smart search on SQLite and PostgreSQL with the local model: indexed as messages arrive,
re-done on edit, dropped on redaction, and never showing what the user may not read."""

from __future__ import annotations

from dataclasses import replace

import pytest

from homeserver.app import Homeserver
from homeserver.config_ai import AIConfig
from tests.conftest import MatrixClient

AI = "/_matrix/client/unstable/org.parley.ai"


@pytest.fixture
def ai_config(ai_config: AIConfig) -> AIConfig:
    return replace(ai_config, index_embeddings=True)  # the background indexer runs here


async def index_all(hs: Homeserver) -> None:
    while await hs.ai.index.index_once():
        pass


async def search(user: MatrixClient, term: str, **kw: object) -> list[str]:
    out = await user.ok("POST", f"{AI}/search", {"search_term": term, **kw})
    return [r["result"]["content"].get("body") for r in out["results"]]


async def test_search_by_meaning_respects_visibility_edits_and_redactions(client: MatrixClient,
                                                                           hs: Homeserver) -> None:
    alice = await client.register("alice")
    bob = await client.register("bob")
    room = await alice.create_room(preset="public_chat", initial_state=[
        {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "joined"}}])
    await alice.send_text(room, "The secret acquisition of our competitor closes in March.")
    other = await alice.create_room(preset="public_chat")
    await alice.send_text(other, "Salary bands for next year are attached.")
    await bob.ok("POST", f"/_matrix/client/v3/join/{room}", {})
    failover = await alice.send_text(room, "The database failover to the replica finished and writes are back.")
    await alice.send_text(room, "Pizza for lunch on Friday.")
    release = await bob.send_text(room, "We ship the mobile release on Thursday.")
    await index_all(hs)

    found = await search(bob, "when did the primary db recover")
    assert found[0].startswith("The database failover")
    assert not any("acquisition" in f or "Salary" in f for f in found)
    assert not any("acquisition" in f for f in await search(bob, "company merger plans"))
    assert all("Salary" not in f for f in await search(bob, "pay levels and compensation"))
    # Keyword hits merge in: an exact word finds its message.
    assert "Pizza for lunch on Friday." in (await search(bob, "pizza", limit=3))
    # Limited to the rooms asked for.
    assert await search(bob, "database", rooms=[other]) == []

    # An edit re-embeds the message with its new text.
    await bob.ok("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/e1", {
        "msgtype": "m.text", "body": "* We ship the desktop app in June.",
        "m.new_content": {"msgtype": "m.text", "body": "We ship the desktop app in June."},
        "m.relates_to": {"rel_type": "m.replace", "event_id": release}})
    await index_all(hs)
    top = await bob.ok("POST", f"{AI}/search", {"search_term": "desktop application launch date", "limit": 1})
    assert top["results"][0]["result"]["event_id"] == release

    # A redaction drops the vector.
    before = await hs.ai.vectors.count()
    await alice.ok("PUT", f"/_matrix/client/v3/rooms/{room}/redact/{failover}/r1", {})
    await index_all(hs)
    assert await hs.ai.vectors.count() == before - 1
    assert not any(f and f.startswith("The database failover") for f in await search(bob, "database failover"))

    for bad in ({"search_term": ""}, {"search_term": "x", "limit": 0}, {"search_term": "x", "rooms": "!a:b"}, {}):
        r = await bob.post(f"{AI}/search", bad)
        assert r.status_code == 400, bad


async def test_messages_are_indexed_in_the_background(client: MatrixClient, hs: Homeserver) -> None:
    import asyncio

    assert hs.ai.cfg.index_embeddings
    alice = await client.register("alice")
    room = await alice.create_room()
    await alice.send_text(room, "Background indexing picks this up without being asked.")
    deadline = asyncio.get_running_loop().time() + 60
    while await hs.ai.vectors.count() < 1:
        assert asyncio.get_running_loop().time() < deadline, "not indexed in time"
        await asyncio.sleep(0.05)
    assert (await search(alice, "automatic indexing"))[0].startswith("Background indexing")
