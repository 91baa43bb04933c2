"""Push notifications: send latency with no pusher, with a gateway that answers, and with a
gateway that hangs; and delivery latency from the start of a send to the gateway's request.

One Parley homeserver in-process (SQLite in a temp dir, the delivery worker on the same event
loop as the requests, as in the embedded deployment), clients over an in-memory ASGI transport,
and a push gateway on a loopback socket (tests/push_gateway.py).

    .venv/bin/python -m bench.push_latency [--sends 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from client_api.app import build_app
from homeserver.app import Homeserver
from homeserver.config_push import PushConfig
from homeserver.protocol.signing import generate_signing_key
from homeserver.storage.stores import Stores
from tests.conftest import MatrixClient, make_config
from tests.push_gateway import TestGateway

V3 = "/_matrix/client/v3"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] * 1000


async def scenario(tmp: Path, mode: str, sends: int) -> dict[str, float]:
    gw = await TestGateway().start()
    gw.hang = mode == "hanging"
    cfg = make_config(tmp / mode, f"sqlite:///{tmp / mode}.db",
                      push=PushConfig(ip_range_allowlist=("127.0.0.0/8",), http_timeout_s=60.0, poll_interval_ms=1000))
    hs = Homeserver(cfg, await Stores.open(cfg.database), generate_signing_key("b1"))
    await hs.start_background()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(cfg, hs)), base_url="http://parley.bench")
    try:
        c = MatrixClient(http)
        alice, bob = await c.register("alice"), await c.register("bob")
        room = await alice.create_room(preset="public_chat")
        await bob.ok("POST", f"{V3}/join/{room}")
        if mode != "none":
            await alice.ok("POST", f"{V3}/pushers/set", {
                "kind": "http", "app_id": "bench", "pushkey": "k", "app_display_name": "b",
                "device_display_name": "b", "lang": "en", "data": {"url": gw.url}})
        send_lat: list[float] = []
        deliver_lat: list[float] = []
        for i in range(sends):
            start = time.perf_counter()
            await bob.send_text(room, f"message {i}")
            send_lat.append(time.perf_counter() - start)
            if mode == "answering":
                [*_, last] = await gw.wait_for(i + 1)
                deliver_lat.append(last.at - start)
        out = {"send_p50_ms": pct(send_lat, 50), "send_p95_ms": pct(send_lat, 95),
               "send_mean_ms": statistics.mean(send_lat) * 1000}
        if deliver_lat:
            out.update({"deliver_p50_ms": pct(deliver_lat, 50), "deliver_p95_ms": pct(deliver_lat, 95)})
        if mode == "hanging":
            out["gateway_requests_open"] = float(len(gw.requests))
        return out
    finally:
        await http.aclose()
        await hs.close()
        await gw.close()


async def main(sends: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        for mode in ("none", "answering", "hanging"):
            r = await scenario(Path(d), mode, sends)
            print(f"{mode:10s} " + "  ".join(f"{k}={v:.1f}" for k, v in r.items()), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sends", type=int, default=100)
    asyncio.run(main(ap.parse_args().sends))
