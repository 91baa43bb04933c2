"""The inference client against the fake OpenAI and Ollama servers: streaming, models,
embeddings, errors, retries, timeouts and cancellation."""

from __future__ import annotations

import asyncio
import socket

import pytest

from homeserver.ai.client import InferenceClient
from homeserver.ai.endpoint import Endpoint
from homeserver.config_ai import AIConfig
from homeserver.protocol.errors import MatrixError
from tests.ai.fake_inference import FakeInference

STYLES = ["openai", "ollama"]


def client(**kw: object) -> InferenceClient:
    cfg = AIConfig(**{"read_timeout_s": 5.0, "retries": 1, **kw})  # type: ignore[arg-type]
    return InferenceClient(cfg)


@pytest.mark.parametrize("style", STYLES)
async def test_stream_arrives_in_order(fake: FakeInference, style: str) -> None:
    fake.reply = [f"t{i} " for i in range(20)]
    c = client()
    try:
        pieces = [p async for p in c.chat_stream(Endpoint(fake.url, style, "tok"), "llama3.2",
                                                  [{"role": "user", "content": "hi"}])]
    finally:
        await c.close()
    assert pieces == fake.reply
    rec = fake.chats()[0]
    assert rec.path == ("/api/chat" if style == "ollama" else "/v1/chat/completions")
    assert rec.body["stream"] is True and rec.body["messages"] == [{"role": "user", "content": "hi"}]
    assert rec.headers["authorization"] == "Bearer tok"


@pytest.mark.parametrize("style", STYLES)
async def test_models_and_embeddings(fake: FakeInference, style: str) -> None:
    c = client()
    ep = Endpoint(fake.url, style)
    try:
        models = await c.models(ep)
        vecs = await c.embed(ep, "nomic-embed-text", ["deploy failed", "deploy failed again", "lunch"])
    finally:
        await c.close()
    assert any(m.startswith("llama3.2") for m in models) and any(m.startswith("nomic") for m in models)
    assert len(vecs) == 3 and len(vecs[0]) == 64
    sim = [sum(a * b for a, b in zip(vecs[0], v, strict=True)) for v in vecs]
    assert sim[1] > sim[2]


@pytest.mark.parametrize("style", STYLES)
async def test_missing_model_is_a_clear_error(fake: FakeInference, style: str) -> None:
    c = client()
    try:
        with pytest.raises(MatrixError) as e:
            await c.chat(Endpoint(fake.url, style), "no-such-model", [{"role": "user", "content": "x"}])
    finally:
        await c.close()
    assert (e.value.status, e.value.errcode) == (404, "ORG.PARLEY.AI_MODEL_NOT_FOUND")
    assert "no-such-model" in e.value.to_dict()["error"]


async def test_endpoint_down() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    c = client(retries=0)
    try:
        with pytest.raises(MatrixError) as e:
            await c.models(Endpoint(f"http://127.0.0.1:{port}", "openai"))
    finally:
        await c.close()
    assert (e.value.status, e.value.errcode) == (502, "ORG.PARLEY.AI_UNAVAILABLE")


async def test_server_errors_are_retried(fake: FakeInference) -> None:
    fake.fail_next = [503]
    c = client(retries=1)
    try:
        text = await c.chat(Endpoint(fake.url, "openai"), "llama3.2", [{"role": "user", "content": "x"}])
    finally:
        await c.close()
    assert text == "The team fixed the outage."
    assert len(fake.chats()) == 2
    fake.fail_next = [500, 500]
    c = client(retries=1)
    try:
        with pytest.raises(MatrixError) as e:
            await c.chat(Endpoint(fake.url, "openai"), "llama3.2", [{"role": "user", "content": "x"}])
    finally:
        await c.close()
    assert (e.value.status, e.value.errcode) == (502, "ORG.PARLEY.AI_UPSTREAM_ERROR")


async def test_hung_stream_times_out(fake: FakeInference) -> None:
    fake.hang = True
    c = client(read_timeout_s=0.3)
    try:
        with pytest.raises(MatrixError) as e:
            await c.chat(Endpoint(fake.url, "ollama"), "llama3.2", [{"role": "user", "content": "x"}])
    finally:
        await c.close()
    assert (e.value.status, e.value.errcode) == (504, "ORG.PARLEY.AI_TIMEOUT")


@pytest.mark.parametrize("style", STYLES)
async def test_cancel_closes_the_upstream_request(fake: FakeInference, style: str) -> None:
    fake.hang = True
    c = client()

    async def consume() -> None:
        async for _ in c.chat_stream(Endpoint(fake.url, style), "llama3.2", [{"role": "user", "content": "x"}]):
            pass

    task = asyncio.create_task(consume())
    await asyncio.wait_for(fake.stream_started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    fake.release.set()  # the fake now writes its chunks into a closed connection
    await asyncio.wait_for(fake.disconnected.wait(), 5)
    await c.close()
