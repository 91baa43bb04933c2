"""/admin/whois, content reports and OpenID token requests."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body
from homeserver.accounts.service import Requester
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_event_id, is_valid_room_id

V3 = "/_matrix/client/v3"


def _room_id(request: Request) -> str:
    room_id = request.path_params["room_id"]
    if not is_valid_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid room ID")
    return room_id


@endpoint()
async def whois(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    return await hs.admin.whois(req, request.path_params["user_id"])


@endpoint()
async def report_event(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    room_id = _room_id(request)
    event_id = request.path_params["event_id"]
    if not is_valid_event_id(event_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid event ID")
    await hs.admin.report_event(req.user_id, room_id, event_id, await json_body(request, allow_empty=True))
    return {}


@endpoint()
async def report_room(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    await hs.admin.report_room(req.user_id, _room_id(request), await json_body(request, allow_empty=True))
    return {}


@endpoint()
async def report_user(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    await hs.admin.report_user(req.user_id, request.path_params["user_id"],
                               await json_body(request, allow_empty=True))
    return {}


@endpoint()
async def openid_request_token(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    if request.path_params["user_id"] != req.user_id:
        raise MatrixError(403, "M_FORBIDDEN", "You may only request tokens for yourself")
    await json_body(request, allow_empty=True)
    return await hs.openid.request_token(req.user_id)


routes = [
    Route(f"{V3}/admin/whois/{{user_id}}", whois, methods=["GET"]),
    Route(f"{V3}/rooms/{{room_id}}/report/{{event_id}}", report_event, methods=["POST"]),
    Route(f"{V3}/rooms/{{room_id}}/report", report_room, methods=["POST"]),
    Route(f"{V3}/users/{{user_id}}/report", report_user, methods=["POST"]),
    Route(f"{V3}/user/{{user_id}}/openid/request_token", openid_request_token, methods=["POST"]),
]
