"""Application Service API endpoints on the client side: /appservice/{id}/ping."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver


@endpoint()
async def ping(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request, allow_empty=True)
    return await hs.appservices.ping(req, request.path_params["as_id"], body)


routes = [Route("/_matrix/client/v1/appservice/{as_id}/ping", ping, methods=["POST"])]
