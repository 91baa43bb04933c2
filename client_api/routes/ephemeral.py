"""Typing, receipts, read markers, presence."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_event_id, is_valid_room_id, is_valid_user_id

V3 = "/_matrix/client/v3"


def _room(request: Request) -> str:
    room_id = request.path_params["room_id"]
    if not is_valid_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid room ID")
    return room_id


@endpoint()
async def typing(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    room_id = _room(request)
    if request.path_params["user_id"] != req.user_id:
        raise MatrixError(403, "M_FORBIDDEN", "You may only set your own typing state")
    body = await json_body(request)
    is_typing = body.get("typing")
    if not isinstance(is_typing, bool):
        raise MatrixError(400, "M_BAD_JSON", "'typing' must be a boolean")
    timeout = body.get("timeout", 30000)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0:
        raise MatrixError(400, "M_BAD_JSON", "'timeout' must be a non-negative integer")
    await hs.reader.require_joined(req.user_id, room_id)
    await hs.set_typing(room_id, req.user_id, is_typing, timeout)
    return {}


@endpoint()
async def receipt(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    room_id = _room(request)
    event_id = request.path_params["event_id"]
    if not is_valid_event_id(event_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid event ID")
    body = await json_body(request, allow_empty=True)
    if "thread_id" in body and body["thread_id"] is None:
        raise MatrixError(400, "M_INVALID_PARAM", "thread_id must not be null")
    await hs.receipts.receipt(req.user_id, room_id, request.path_params["receipt_type"], event_id,
                              body.get("thread_id"))
    return {}


@endpoint()
async def read_markers(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request)
    await hs.receipts.read_markers(req.user_id, _room(request), body)
    return {}


@endpoint()
async def put_presence(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    if request.path_params["user_id"] != req.user_id:
        raise MatrixError(403, "M_FORBIDDEN", "You may only set your own presence")
    body = await json_body(request)
    if not hs.presence.enabled:
        return {}
    await hs.set_presence(req.user_id, body.get("presence"), body.get("status_msg", ...))
    return {}


@endpoint()
async def get_presence(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    user_id = request.path_params["user_id"]
    if not is_valid_user_id(user_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid user ID")
    # Other servers' users are known by the presence their servers sent (m.presence EDUs).
    if not hs.presence.known(user_id) and not await hs.accounts.user_exists(user_id):
        raise MatrixError(404, "M_NOT_FOUND", "Unknown user")
    if not hs.presence.enabled:
        return {"presence": "offline"}
    return hs.presence.get(user_id)


R = f"{V3}/rooms/{{room_id}}"
routes = [
    Route(f"{R}/typing/{{user_id}}", typing, methods=["PUT"]),
    Route(f"{R}/receipt/{{receipt_type}}/{{event_id}}", receipt, methods=["POST"]),
    Route(f"{R}/read_markers", read_markers, methods=["POST"]),
    Route(f"{V3}/presence/{{user_id}}/status", put_presence, methods=["PUT"]),
    Route(f"{V3}/presence/{{user_id}}/status", get_presence, methods=["GET"]),
]
