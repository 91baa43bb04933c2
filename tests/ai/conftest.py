"""Fixtures for the AI tests: a fake inference server on loopback and a homeserver using it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from homeserver.config_ai import AIConfig
from tests.ai.fake_inference import FakeInference


@pytest.fixture
async def fake() -> AsyncIterator[FakeInference]:
    server = await FakeInference().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def ai_config(fake: FakeInference) -> AIConfig:
    return AIConfig(endpoint=fake.url, api_style="openai", token="org-secret", summary_model="llama3.2",
                    suggest_model="llama3.2", topics_model="llama3.2", user_endpoints="any",
                    read_timeout_s=5.0, retries=1, index_embeddings=False)


@pytest.fixture
def config_overrides(ai_config: AIConfig) -> dict[str, Any]:
    return {"ai": ai_config}
