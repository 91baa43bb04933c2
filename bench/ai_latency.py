"""AI measurements: latency to the first token through Parley's SSE endpoint vs straight from
the (fake) inference server, and embedding indexing throughput with the local MiniLM model.

    .venv/bin/python -m bench.ai_latency [-n 20] [--messages 300]

A real Hypercorn listener on loopback serves Parley (SQLite in a temporary directory); the
fake OpenAI-compatible server streams each chunk `--chunk-ms` apart, so the first token is
what a client sees first in both paths.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx

from client_api.app import build_app
from homeserver.app import Homeserver
from homeserver.config_ai import AIConfig
from homeserver.protocol.signing import generate_signing_key
from homeserver.storage.stores import Stores
from tests.ai.fake_inference import FakeInference
from tests.conftest import make_config

AI = "/_matrix/client/unstable/org.parley.ai"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def first_token_direct(fake: FakeInference) -> float:
    async with httpx.AsyncClient() as c:
        t0 = time.perf_counter()
        body = {"model": "llama3.2", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        async with c.stream("POST", f"{fake.url}/v1/chat/completions", json=body) as r:
            async for line in r.aiter_lines():
                if line.startswith("data:") and '"content":"' in line and '"content":""' not in line:
                    return time.perf_counter() - t0
    raise RuntimeError("no token")


async def first_token_parley(base: str, token: str, room: str) -> float:
    async with httpx.AsyncClient(timeout=30) as c:
        t0 = time.perf_counter()
        async with c.stream("POST", f"{base}{AI}/rooms/{room}/summarize", json={"stream": True},
                            headers={"Authorization": f"Bearer {token}"}) as r:
            async for line in r.aiter_lines():
                if line == "event: ai.token":
                    return time.perf_counter() - t0
    raise RuntimeError("no token")


async def main(n: int, messages: int, chunk_ms: float) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config as HyperConfig

    fake = await FakeInference(chunk_delay_s=chunk_ms / 1000).start()
    tmp = Path(tempfile.mkdtemp(prefix="parley-ai-bench-"))
    cfg = make_config(tmp, f"sqlite:///{tmp}/parley.db")
    cfg = replace(cfg, ai=AIConfig(endpoint=fake.url, index_embeddings=False))
    stores = await Stores.open(cfg.database)
    hs = Homeserver(cfg, stores, generate_signing_key("b1"))
    await hs.start_background()
    port = free_port()
    hc = HyperConfig()
    hc.bind = [f"127.0.0.1:{port}"]
    stop = asyncio.Event()
    server = asyncio.create_task(serve(build_app(cfg, hs), hc, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        for _ in range(100):
            try:
                await c.get("/_matrix/client/versions")
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.05)
        reg = (await c.post("/_matrix/client/v3/register", json={
            "username": "bench", "password": "correct horse battery", "auth": {"type": "m.login.dummy"}})).json()
        h = {"Authorization": f"Bearer {reg['access_token']}"}
        room = (await c.post("/_matrix/client/v3/createRoom", json={}, headers=h)).json()["room_id"]
        for i in range(20):
            await c.put(f"/_matrix/client/v3/rooms/{room}/send/m.room.message/t{i}", headers=h,
                        json={"msgtype": "m.text", "body": f"status update {i}: deploy step {i} done"})
        direct, parley = [], []
        for _ in range(n):
            direct.append(await first_token_direct(fake))
            parley.append(await first_token_parley(base, reg["access_token"], room))
        print(f"first token, median of {n}: direct {statistics.median(direct) * 1000:.1f} ms, "
              f"through Parley SSE {statistics.median(parley) * 1000:.1f} ms "
              f"(chunks {chunk_ms:.0f} ms apart)")
        texts = [f"message {i}: the {['deploy', 'database', 'lunch', 'release', 'oncall'][i % 5]} thread, "
                 f"item {i} needs a follow-up from the team before Friday" for i in range(messages)]
        for i, t in enumerate(texts):
            await c.put(f"/_matrix/client/v3/rooms/{room}/send/m.room.message/m{i}", headers=h,
                        json={"msgtype": "m.text", "body": t})
    await hs.ai.index.embedder.embed(["warm up"])  # load the model outside the timing
    t0 = time.perf_counter()
    while await hs.ai.index.index_once():
        pass
    dt = time.perf_counter() - t0
    total = await hs.ai.vectors.count()
    print(f"embedding index, local MiniLM: {total} messages in {dt:.1f} s = {total / dt:.1f} messages/s")
    stop.set()
    await server
    await hs.close()
    await fake.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--chunk-ms", type=float, default=20.0)
    a = ap.parse_args()
    asyncio.run(main(a.n, a.messages, a.chunk_ms))
