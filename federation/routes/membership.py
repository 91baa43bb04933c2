"""Inbound membership endpoints besides joins: invites (v2), knocks (make_knock, send_knock), and
leaves (make_leave, send_leave v2 and the v1 form) for users of other servers rejecting invites
or retracting knocks."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from federation.routes.edge import federation_endpoint, json_object
from homeserver.app import Homeserver

FED = "/_matrix/federation/v1"
FED2 = "/_matrix/federation/v2"


@federation_endpoint()
async def invite_v2(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    p = request.path_params
    return await hs.federated_invites.receive(origin, p["room_id"], p["event_id"], json_object(content))


@federation_endpoint()
async def make_leave(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    p = request.path_params
    return await hs.remote_joins.make_leave(origin, p["room_id"], p["user_id"])


@federation_endpoint()
async def send_leave_v2(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    p = request.path_params
    return await hs.remote_joins.send_leave(origin, p["room_id"], p["event_id"], content)


@federation_endpoint()
async def send_leave_v1(request: Request, hs: Homeserver, origin: str, content: Any) -> list[Any]:
    """The deprecated v1 form: the same answer wrapped as `[200, {}]`."""
    p = request.path_params
    return [200, await hs.remote_joins.send_leave(origin, p["room_id"], p["event_id"], content)]


@federation_endpoint()
async def make_knock(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    p = request.path_params
    return await hs.remote_joins.make_knock(origin, p["room_id"], p["user_id"], request.query_params.getlist("ver"))


@federation_endpoint()
async def send_knock(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    p = request.path_params
    return await hs.remote_joins.send_knock(origin, p["room_id"], p["event_id"], content)


routes = [
    Route(f"{FED}/make_knock/{{room_id}}/{{user_id}}", make_knock, methods=["GET"]),
    Route(f"{FED}/send_knock/{{room_id}}/{{event_id}}", send_knock, methods=["PUT"]),
    Route(f"{FED2}/invite/{{room_id}}/{{event_id}}", invite_v2, methods=["PUT"]),
    Route(f"{FED}/make_leave/{{room_id}}/{{user_id}}", make_leave, methods=["GET"]),
    Route(f"{FED2}/send_leave/{{room_id}}/{{event_id}}", send_leave_v2, methods=["PUT"]),
    Route(f"{FED}/send_leave/{{room_id}}/{{event_id}}", send_leave_v1, methods=["PUT"]),
]
