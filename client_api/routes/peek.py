"""GET /events?room_id=: peeking into a world-readable room (its deprecated global form, the
event stream without `room_id`, is not served here)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, query_int
from homeserver.accounts.service import Requester
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_room_id
from homeserver.rooms.reads import parse_token

V3 = "/_matrix/client/v3"
MAX_TIMEOUT_MS = 60_000


@endpoint()
async def peek_events(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    room_id = request.query_params.get("room_id")
    if room_id is None:
        raise MatrixError(400, "M_MISSING_PARAM", "Only peeking (with 'room_id') is supported")
    if not is_valid_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid room ID")
    raw_from = request.query_params.get("from")
    from_pos = parse_token(raw_from) if raw_from is not None else None
    timeout = min(query_int(request, "timeout", 30_000) or 0, MAX_TIMEOUT_MS)
    return await hs.peek.events(req.user_id, req.device_id, room_id, from_pos, timeout)


routes = [
    Route(f"{V3}/events", peek_events, methods=["GET"]),
]
