"""Spaces: `GET /_matrix/client/v1/rooms/{roomId}/hierarchy` (homeserver/rooms/user_hierarchy.py)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, query_bool, query_int
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_room_id


@endpoint()
async def hierarchy(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    room_id = request.path_params["room_id"]
    if not is_valid_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid room ID")
    return await hs.user_hierarchy.page(req.user_id, room_id, query_bool(request, "suggested_only"),
                                        query_int(request, "max_depth"), query_int(request, "limit"),
                                        request.query_params.get("from"))


routes = [Route("/_matrix/client/v1/rooms/{room_id}/hierarchy", hierarchy, methods=["GET"])]
