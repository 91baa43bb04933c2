"""Operator endpoints: `/health` for load balancers and orchestrators (always on)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint
from homeserver.app import Homeserver


@endpoint(auth=False)
async def health(request: Request, hs: Homeserver) -> tuple[dict[str, Any], int]:
    """200 while this worker can serve (its database answers); 503 when it cannot or while it
    is shutting down, so a balancer stops sending it new requests."""
    healthy, details = await hs.health()
    return details, 200 if healthy else 503


routes = [Route("/health", health, methods=["GET", "HEAD"])]
