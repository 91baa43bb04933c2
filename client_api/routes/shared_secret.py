"""Synapse-compatible shared-secret registration (`/_synapse/admin/v1/register`)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body
from homeserver.app import Homeserver

PATH = "/_synapse/admin/v1/register"


@endpoint(auth=False)
async def get_nonce(request: Request, hs: Homeserver) -> dict[str, Any]:
    return {"nonce": hs.shared_secret_registration.new_nonce()}


@endpoint(auth=False)
async def register(request: Request, hs: Homeserver) -> dict[str, Any]:
    return await hs.shared_secret_registration.register(await json_body(request))


routes = [
    Route(PATH, get_nonce, methods=["GET"]),
    Route(PATH, register, methods=["POST"]),
]
