"""Read endpoints that need no received events: version, profile and directory queries,
the public room directory, and `.well-known/matrix/server`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import query_int
from federation.routes.edge import federation_endpoint, json_object
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_room_alias, is_valid_user_id, server_name_of

FED = "/_matrix/federation/v1"


@federation_endpoint(signed=False)
async def version(request: Request, hs: Homeserver, origin: None, content: Any) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        v = dist_version("parley")
    except PackageNotFoundError:
        v = "unknown"
    return {"server": {"name": "Parley", "version": v}}


@federation_endpoint()
async def query_profile(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    user_id = request.query_params.get("user_id", "")
    if not is_valid_user_id(user_id):
        raise MatrixError(400, "M_INVALID_PARAM", "'user_id' must be a valid user ID")
    if server_name_of(user_id) != hs.server_name:
        raise MatrixError(400, "M_INVALID_PARAM", "That user is not hosted on this server")
    field = request.query_params.get("field")
    if field is not None and field not in ("displayname", "avatar_url"):
        raise MatrixError(400, "M_INVALID_PARAM", "'field' must be displayname or avatar_url")
    profile = await hs.profile.get(user_id)
    return {field: profile[field]} if field is not None and field in profile else (
        {} if field is not None else profile)


@federation_endpoint()
async def query_directory(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    alias = request.query_params.get("room_alias", "")
    if not is_valid_room_alias(alias):
        raise MatrixError(400, "M_INVALID_PARAM", "'room_alias' must be a valid room alias")
    if server_name_of(alias) != hs.server_name:
        raise MatrixError(404, "M_NOT_FOUND", "Room alias not found")
    return await hs.directory.resolve(alias)


@federation_endpoint()
async def get_public_rooms(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    limit = query_int(request, "limit")
    return await hs.directory.public_rooms(limit or None, request.query_params.get("since"), None)


@federation_endpoint()
async def post_public_rooms(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    return await hs.directory.public_rooms_query(json_object(content) if content is not None else {})


@federation_endpoint(signed=False)
async def well_known_server(request: Request, hs: Homeserver, origin: None, content: Any) -> dict[str, Any]:
    delegated = hs.config.federation.well_known_server
    if delegated is None:
        raise MatrixError(404, "M_NOT_FOUND", "This server does not delegate federation")
    return {"m.server": delegated}


routes = [
    Route(f"{FED}/version", version, methods=["GET"]),
    Route(f"{FED}/query/profile", query_profile, methods=["GET"]),
    Route(f"{FED}/query/directory", query_directory, methods=["GET"]),
    Route(f"{FED}/publicRooms", get_public_rooms, methods=["GET"]),
    Route(f"{FED}/publicRooms", post_public_rooms, methods=["POST"]),
    Route("/.well-known/matrix/server", well_known_server, methods=["GET"]),
]
