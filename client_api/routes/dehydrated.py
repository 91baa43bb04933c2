"""Dehydrated devices (MSC3814): `/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver

PREFIX = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"


@endpoint()
async def get_device(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return await hs.dehydrated_devices.get(req.user_id)


@endpoint()
async def put_device(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return await hs.dehydrated_devices.put(req.user_id, await json_body(request))


@endpoint()
async def delete_device(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return await hs.dehydrated_devices.delete(req.user_id)


@endpoint()
async def events(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    # GET ?from=<next_batch> (the MSC's current form); POST {"next_batch": ...} (its first one)
    since = request.query_params.get("from")
    if request.method == "POST":
        got = (await json_body(request, allow_empty=True)).get("next_batch")
        since = got if isinstance(got, str) else None
    return await hs.dehydrated_devices.events(req.user_id, request.path_params["device_id"], since)


routes = [
    Route(PREFIX, get_device, methods=["GET"]),
    Route(PREFIX, put_device, methods=["PUT"]),
    Route(PREFIX, delete_device, methods=["DELETE"]),
    Route(f"{PREFIX}/{{device_id}}/events", events, methods=["GET", "POST"]),
]
