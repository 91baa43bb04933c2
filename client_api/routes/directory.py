"""Room aliases and the public rooms directory."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body, query_int
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_room_id

V3 = "/_matrix/client/v3"


@endpoint()
async def put_alias(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request)
    await hs.directory.create_alias(req.user_id, request.path_params["alias"], body.get("room_id"))
    return {}


@endpoint(auth=False)
async def get_alias(request: Request, hs: Homeserver) -> dict[str, Any]:
    return await hs.directory.resolve(request.path_params["alias"])


@endpoint()
async def delete_alias(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    await hs.directory.delete_alias(req.user_id, req.is_admin, request.path_params["alias"])
    return {}


@endpoint()
async def room_aliases(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    room_id = request.path_params["room_id"]
    if not is_valid_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid room ID")
    await hs.reader.check_history_access(req.user_id, room_id)
    return {"aliases": await hs.directory.aliases(room_id)}


@endpoint(auth=False)
async def get_visibility(request: Request, hs: Homeserver) -> dict[str, Any]:
    return {"visibility": await hs.directory.get_visibility(request.path_params["room_id"])}


@endpoint()
async def put_visibility(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request)
    await hs.directory.set_visibility(req.user_id, request.path_params["room_id"],
                                      body.get("visibility", "public"))
    return {}


@endpoint(auth=False)
async def get_public_rooms(request: Request, hs: Homeserver) -> dict[str, Any]:
    server = request.query_params.get("server")
    if server is not None and server != hs.server_name:
        raise MatrixError(404, "M_NOT_FOUND", "Remote room directories are not available yet")
    return await hs.directory.public_rooms(
        query_int(request, "limit"), request.query_params.get("since"), None
    )


@endpoint()
async def post_public_rooms(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request)
    server = request.query_params.get("server")
    if server is not None and server != hs.server_name:
        raise MatrixError(404, "M_NOT_FOUND", "Remote room directories are not available yet")
    return await hs.directory.public_rooms_query(body)


routes = [
    Route(f"{V3}/directory/room/{{alias}}", put_alias, methods=["PUT"]),
    Route(f"{V3}/directory/room/{{alias}}", get_alias, methods=["GET"]),
    Route(f"{V3}/directory/room/{{alias}}", delete_alias, methods=["DELETE"]),
    Route(f"{V3}/rooms/{{room_id}}/aliases", room_aliases, methods=["GET"]),
    Route(f"{V3}/directory/list/room/{{room_id}}", get_visibility, methods=["GET"]),
    Route(f"{V3}/directory/list/room/{{room_id}}", put_visibility, methods=["PUT"]),
    Route(f"{V3}/publicRooms", get_public_rooms, methods=["GET"]),
    Route(f"{V3}/publicRooms", post_public_rooms, methods=["POST"]),
]
