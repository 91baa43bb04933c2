"""Server-side key backup: /room_keys/version and /room_keys/keys (all three levels)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError

V3 = "/_matrix/client/v3"


@endpoint()
async def create_version(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return await hs.key_backup.create_version(req.user_id, await json_body(request))


@endpoint()
async def current_version(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return await hs.key_backup.get_version(req.user_id, None)


@endpoint()
async def get_version(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return await hs.key_backup.get_version(req.user_id, request.path_params["version"])


@endpoint()
async def put_version(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    await hs.key_backup.update_version(req.user_id, request.path_params["version"], await json_body(request))
    return {}


@endpoint()
async def delete_version(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    await hs.key_backup.delete_version(req.user_id, request.path_params["version"])
    return {}


def _level(request: Request) -> tuple[str | None, str | None]:
    return request.path_params.get("room_id"), request.path_params.get("session_id")


def _sessions(value: Any, room_id: str) -> list[tuple[str, str, Any]]:
    if not isinstance(value, dict) or not isinstance(value.get("sessions"), dict):
        raise MatrixError(400, "M_BAD_JSON", "Each room must hold a 'sessions' object")
    return [(room_id, s, k) for s, k in value["sessions"].items()]


@endpoint()
async def keys(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    version = request.query_params.get("version")
    room_id, session_id = _level(request)
    if request.method == "GET":
        return await hs.key_backup.get_keys(req.user_id, version, room_id, session_id)
    if request.method == "DELETE":
        return await hs.key_backup.delete_keys(req.user_id, version, room_id, session_id)
    body = await json_body(request)
    if room_id is None:
        rooms = body.get("rooms")
        if not isinstance(rooms, dict):
            raise MatrixError(400, "M_BAD_JSON", "'rooms' must be an object")
        items = [item for r, v in rooms.items() for item in _sessions(v, r)]
    elif session_id is None:
        items = _sessions(body, room_id)
    else:
        items = [(room_id, session_id, body)]
    return await hs.key_backup.put_keys(req.user_id, version, items)


_KEYS = ["GET", "PUT", "DELETE"]
routes = [
    Route(f"{V3}/room_keys/version", create_version, methods=["POST"]),
    Route(f"{V3}/room_keys/version", current_version, methods=["GET"]),
    Route(f"{V3}/room_keys/version/{{version}}", get_version, methods=["GET"]),
    Route(f"{V3}/room_keys/version/{{version}}", put_version, methods=["PUT"]),
    Route(f"{V3}/room_keys/version/{{version}}", delete_version, methods=["DELETE"]),
    Route(f"{V3}/room_keys/keys", keys, methods=_KEYS),
    Route(f"{V3}/room_keys/keys/{{room_id}}", keys, methods=_KEYS),
    Route(f"{V3}/room_keys/keys/{{room_id}}/{{session_id}}", keys, methods=_KEYS),
]
