"""POST /user_directory/search."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body
from homeserver.accounts.service import Requester
from homeserver.protocol.errors import MatrixError

V3 = "/_matrix/client/v3"


@endpoint()
async def search(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    body = await json_body(request)
    if "search_term" not in body:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing 'search_term'")
    return await hs.user_directory.search(req.user_id, body["search_term"], body.get("limit"))


routes = [
    Route(f"{V3}/user_directory/search", search, methods=["POST"]),
]
