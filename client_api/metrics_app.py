"""The ASGI app of the optional metrics listener: `GET /metrics` in Prometheus text format.

It runs on its own address (config `metrics_listener`) so the numbers stay off the public
listener and the load balancer; `/health` is answered here too for convenience.
"""

from __future__ import annotations

from typing import Any

from starlette.types import Receive, Scope, Send

from homeserver import metrics


class MetricsApp:
    def __init__(self, hs: Any) -> None:
        self.hs = hs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        if scope["type"] != "http":
            return
        if scope["path"] == "/metrics" and scope["method"] in ("GET", "HEAD"):
            status, body, ctype = 200, metrics.exposition(), metrics.CONTENT_TYPE
        elif scope["path"] == "/health" and scope["method"] in ("GET", "HEAD"):
            healthy, _ = await self.hs.health()
            status, body, ctype = (200, b"OK\n", "text/plain") if healthy else (503, b"unavailable\n", "text/plain")
        else:
            status, body, ctype = 404, b"not found\n", "text/plain"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""})
