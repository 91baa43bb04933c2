"""Incoming and outgoing webhooks of a room (Parley extension, spec/plugins.md §Webhooks)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body, read_body_bytes
from client_api.routes.plugins import PREFIX, _room_id
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError

INCOMING = "/_parley/webhooks/{hook_id}/{secret}"


@endpoint()
async def create(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return await hs.webhooks.create(req.user_id, _room_id(request), await json_body(request))


@endpoint()
async def list_hooks(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return {"webhooks": await hs.webhooks.list(req.user_id, _room_id(request))}


@endpoint()
async def delete(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    await hs.webhooks.delete(req.user_id, _room_id(request), request.path_params["hook_id"])
    return {}


@endpoint(auth=False)
async def incoming(request: Request, hs: Homeserver) -> dict[str, Any]:
    raw = await read_body_bytes(request, 256 * 1024)
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raw = (parse_qs(raw.decode(errors="replace")).get("payload") or [""])[0].encode()
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MatrixError(400, "M_NOT_JSON", "The payload is not JSON") from None
    event_id = await hs.webhooks.receive(request.path_params["hook_id"], request.path_params["secret"], payload)
    return {"ok": True, "event_id": event_id}


routes = [
    Route(f"{PREFIX}/rooms/{{room_id}}/webhooks", create, methods=["POST"]),
    Route(f"{PREFIX}/rooms/{{room_id}}/webhooks", list_hooks, methods=["GET"]),
    Route(f"{PREFIX}/rooms/{{room_id}}/webhooks/{{hook_id}}", delete, methods=["DELETE"]),
    Route(INCOMING, incoming, methods=["POST"]),
]
