"""The local embedding model is loaded lazily and off the event loop: a server with the indexer
on (the default) does not load it before there is a message, loads it once in a worker thread
however many callers want it at once, and serves requests while it loads."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from typing import Any

import pytest

from homeserver.ai.local_embed import LocalEmbedder, shared_embedder
from homeserver.app import Homeserver
from homeserver.config_ai import AIConfig
from tests.conftest import MatrixClient

AI = "/_matrix/client/unstable/org.parley.ai"


@pytest.fixture
def ai_config(ai_config: AIConfig) -> AIConfig:
    # The default configuration's indexer, with no embedding model on the endpoint: local model.
    return replace(ai_config, index_embeddings=True, embedding_model="")


@pytest.fixture(params=["sqlite"])
def backend(request: Any, tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path}/parley.db"


async def wait_for(cond: Any, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_model_loads_at_the_first_message_in_a_thread_once(client: MatrixClient, hs: Homeserver) -> None:
    gate = threading.Event()
    loads: list[str] = []

    def gated_load() -> LocalEmbedder:
        loads.append(threading.current_thread().name)
        assert gate.wait(120), "the test never opened the gate"
        return shared_embedder()

    embedder = hs.ai.index.embedder
    embedder._load = gated_load
    try:
        alice = await client.register("alice")
        room = await alice.create_room(preset="public_chat")
        # Without messages the indexer runs (and finds nothing) and never loads the model.
        assert await hs.ai.index.index_once() == 0
        assert loads == [] and embedder._local is None

        await alice.send_text(room, "The release notes for 3.2 are ready for review.")

        async def loading() -> bool:
            return len(loads) == 1

        await wait_for(loading)  # the background indexer has asked for the model
        # A search wants it too, and waits for the same load instead of starting another.
        search = asyncio.create_task(alice.ok("POST", f"{AI}/search", {"search_term": "release notes"}))
        # The event loop is free meanwhile: other requests are answered while the load is held.
        await alice.send_text(room, "Second message while the model loads.")
        assert (await alice.ok("GET", "/_matrix/client/v3/account/whoami"))["user_id"].startswith("@alice")
        assert not search.done()
        assert loads[0] != threading.main_thread().name
        gate.set()
        found = await asyncio.wait_for(search, 120)
        assert len(loads) == 1, "the model was loaded more than once"

        async def indexed() -> bool:
            return await hs.ai.vectors.count() == 2

        await wait_for(indexed)
        assert isinstance(found["results"], list)
    finally:
        gate.set()
