"""Knocking on rooms and upgrading rooms to a new room version."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body
from homeserver.accounts.service import Requester
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_room_alias, is_valid_room_id

V3 = "/_matrix/client/v3"


@endpoint()
async def knock(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    target = request.path_params["room"]
    if not (is_valid_room_id(target) or is_valid_room_alias(target)):
        raise MatrixError(400, "M_INVALID_PARAM", "Expected a room ID or alias")
    body = await json_body(request, allow_empty=True)
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 4096):
        raise MatrixError(400, "M_BAD_JSON", "'reason' must be a string")
    via = request.query_params.getlist("via") + request.query_params.getlist("server_name")
    return {"room_id": await hs.remote_membership.knock_room(req.user_id, target, via, reason)}


@endpoint()
async def upgrade(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    room_id = request.path_params["room_id"]
    if not is_valid_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid room ID")
    body = await json_body(request)
    if "new_version" not in body:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing 'new_version'")
    new_room = await hs.upgrades.upgrade(req.user_id, room_id, body["new_version"],
                                         body.get("additional_creators"))
    return {"replacement_room": new_room}


routes = [
    Route(f"{V3}/knock/{{room}}", knock, methods=["POST"]),
    Route(f"{V3}/rooms/{{room_id}}/upgrade", upgrade, methods=["POST"]),
]
