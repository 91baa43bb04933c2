"""Deprecated APIs still in use: /initialSync, /rooms/{roomId}/initialSync, /events, and
`POST /rooms/{roomId}/send/{eventType}` (sending without a transaction ID)."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body, query_bool, query_int
from homeserver.accounts.service import Requester
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_room_id
from homeserver.rooms.reads import parse_token

V3 = "/_matrix/client/v3"
MAX_LIMIT = 1000


def _limit(request: Request) -> int | None:
    limit = query_int(request, "limit")
    return None if limit is None else min(limit, MAX_LIMIT)


@endpoint()
async def initial_sync(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    hs.presence.touch(req.user_id, None)  # like /sync, calling it counts as being online
    return await hs.legacy.initial_sync(req.user_id, req.device_id, _limit(request),
                                        query_bool(request, "archived"))


@endpoint()
async def room_initial_sync(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    room_id = request.path_params["room_id"]
    if not is_valid_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid room ID")
    return await hs.legacy.room_initial_sync(req.user_id, req.device_id, room_id, _limit(request))


@endpoint()
async def events(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    timeout = min(query_int(request, "timeout", 0) or 0, hs.config.max_sync_timeout_ms)
    room_id = request.query_params.get("room_id")
    if room_id is not None and not is_valid_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid room ID")
    if room_id is not None and room_id not in await hs.membership.joined_rooms(req.user_id):
        # Not a member: peeking into a world-readable room.
        raw_from = request.query_params.get("from")
        from_pos = parse_token(raw_from) if raw_from is not None else None
        return await hs.peek.events(req.user_id, req.device_id, room_id, from_pos, timeout)
    limit = _limit(request)
    hs.presence.touch(req.user_id, None)
    return await hs.legacy.events(req.user_id, req.device_id, request.query_params.get("from"), timeout,
                                  room_id, limit)


@endpoint()
async def send_without_txn(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    room_id = request.path_params["room_id"]
    if not is_valid_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid room ID")
    event_type = request.path_params["event_type"]
    if not event_type or len(event_type.encode()) > 255:
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid event type")
    await hs.ratelimiter.check("message", req.user_id, hs.config.rate_limits.messages_per_second,
                               hs.config.rate_limits.messages_burst)
    content = await json_body(request)
    # No client transaction: every request is a new event.
    txn = secrets.token_urlsafe(12)
    ev = await hs.rooms.send_event(req.user_id, req.device_id, room_id, event_type, content, txn,
                                   f"{request.url.path}/{txn}")
    return {"event_id": ev.event_id}


routes = [
    Route(f"{V3}/initialSync", initial_sync, methods=["GET"]),
    Route(f"{V3}/rooms/{{room_id}}/initialSync", room_initial_sync, methods=["GET"]),
    Route(f"{V3}/events", events, methods=["GET"]),
    Route(f"{V3}/rooms/{{room_id}}/send/{{event_type}}", send_without_txn, methods=["POST"]),
]
