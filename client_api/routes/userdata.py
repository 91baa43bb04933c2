"""Profile, account data, tags."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_room_id, is_valid_user_id

V3 = "/_matrix/client/v3"


def _self(request: Request, req: Requester) -> str:
    user_id = request.path_params["user_id"]
    if user_id != req.user_id:
        raise MatrixError(403, "M_FORBIDDEN", "You may only act for yourself")
    return user_id


def _room(request: Request) -> str:
    room_id = request.path_params["room_id"]
    if not is_valid_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid room ID")
    return room_id


def _profile_user(request: Request) -> str:
    user_id = request.path_params["user_id"]
    if not is_valid_user_id(user_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid user ID")
    return user_id


@endpoint(auth=False, optional_auth=True)
async def get_profile(request: Request, hs: Homeserver, req: Requester | None) -> dict[str, Any]:
    return await hs.profile.get(_profile_user(request))


@endpoint(auth=False, optional_auth=True)
async def get_profile_field(request: Request, hs: Homeserver, req: Requester | None) -> dict[str, Any]:
    field = request.path_params["field"]
    profile = await hs.profile.get(_profile_user(request))
    if field not in profile:
        if field in ("displayname", "avatar_url"):
            return {}  # an unset standard field, as Synapse answers (SyTest relies on it)
        raise MatrixError(404, "M_NOT_FOUND", f"No {field} set")
    return {field: profile[field]}


@endpoint()
async def put_profile_field(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    user_id = _self(request, req)
    field = request.path_params["field"]
    body = await json_body(request)
    if field not in body:
        raise MatrixError(400, "M_MISSING_PARAM", f"Missing '{field}'")
    await hs.profile.set(user_id, field, body[field])
    return {}


@endpoint()
async def delete_profile_field(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    user_id = _self(request, req)
    await hs.profile.set(user_id, request.path_params["field"], None)
    return {}


@endpoint()
async def put_account_data(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    user_id = _self(request, req)
    room_id = _room(request) if "room_id" in request.path_params else ""
    body = await json_body(request)
    await hs.account_data.put(user_id, room_id, request.path_params["type"], body)
    return {}


@endpoint()
async def get_account_data(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    user_id = _self(request, req)
    room_id = _room(request) if "room_id" in request.path_params else ""
    return await hs.account_data.get(user_id, room_id, request.path_params["type"])


@endpoint()
async def get_tags(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    user_id = _self(request, req)
    return {"tags": await hs.account_data.tags(user_id, _room(request))}


@endpoint()
async def put_tag(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    user_id = _self(request, req)
    body = await json_body(request)
    await hs.account_data.set_tag(user_id, _room(request), request.path_params["tag"], body)
    return {}


@endpoint()
async def delete_tag(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    user_id = _self(request, req)
    await hs.account_data.delete_tag(user_id, _room(request), request.path_params["tag"])
    return {}


U = f"{V3}/user/{{user_id}}"
routes = [
    Route(f"{V3}/profile/{{user_id}}", get_profile, methods=["GET"]),
    Route(f"{V3}/profile/{{user_id}}/{{field}}", get_profile_field, methods=["GET"]),
    Route(f"{V3}/profile/{{user_id}}/{{field}}", put_profile_field, methods=["PUT"]),
    Route(f"{V3}/profile/{{user_id}}/{{field}}", delete_profile_field, methods=["DELETE"]),
    Route(f"{U}/account_data/{{type}}", put_account_data, methods=["PUT"]),
    Route(f"{U}/account_data/{{type}}", get_account_data, methods=["GET"]),
    Route(f"{U}/rooms/{{room_id}}/account_data/{{type}}", put_account_data, methods=["PUT"]),
    Route(f"{U}/rooms/{{room_id}}/account_data/{{type}}", get_account_data, methods=["GET"]),
    Route(f"{U}/rooms/{{room_id}}/tags", get_tags, methods=["GET"]),
    Route(f"{U}/rooms/{{room_id}}/tags/{{tag}}", put_tag, methods=["PUT"]),
    Route(f"{U}/rooms/{{room_id}}/tags/{{tag}}", delete_tag, methods=["DELETE"]),
]
