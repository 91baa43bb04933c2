"""`POST /_matrix/client/v3/search`: server-side search of room events (homeserver/search/)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError


@endpoint()
async def search(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    next_batch = request.query_params.get("next_batch")
    if next_batch is not None and (not next_batch or len(next_batch) > 2000):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid next_batch token")
    return await hs.search.search(req.user_id, await json_body(request), next_batch)


routes = [Route("/_matrix/client/v3/search", search, methods=["POST"])]
