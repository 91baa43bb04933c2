"""`GET /_matrix/federation/v1/hierarchy/{roomId}`: a space and its children as the requesting
server may see them (homeserver/rooms/hierarchy.py)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import query_bool
from federation.routes.edge import federation_endpoint
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_room_id


@federation_endpoint()
async def hierarchy(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    room_id = request.path_params["room_id"]
    if not is_valid_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid room ID")
    return await hs.hierarchy.for_server(origin, room_id, query_bool(request, "suggested_only"))


routes = [Route("/_matrix/federation/v1/hierarchy/{room_id}", hierarchy, methods=["GET"])]
