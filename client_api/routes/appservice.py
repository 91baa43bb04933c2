"""Application Service API endpoints on the client side: /appservice/{id}/ping, and the
third-party lookups that application services answer (/thirdparty/...)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver


@endpoint()
async def ping(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request, allow_empty=True)
    return await hs.appservices.ping(req, request.path_params["as_id"], body)


def _fields(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.query_params.multi_items() if k != "access_token"]


@endpoint()
async def protocols(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return await hs.appservices.thirdparty.protocols()


@endpoint()
async def protocol(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return await hs.appservices.thirdparty.protocol(request.path_params["protocol"])


@endpoint()
async def location_by_protocol(request: Request, hs: Homeserver, req: Requester) -> list[dict[str, Any]]:
    return await hs.appservices.thirdparty.by_protocol("location", request.path_params["protocol"], _fields(request))


@endpoint()
async def user_by_protocol(request: Request, hs: Homeserver, req: Requester) -> list[dict[str, Any]]:
    return await hs.appservices.thirdparty.by_protocol("user", request.path_params["protocol"], _fields(request))


@endpoint()
async def location_by_alias(request: Request, hs: Homeserver, req: Requester) -> list[dict[str, Any]]:
    return await hs.appservices.thirdparty.location_of_alias(request.query_params.get("alias"))


@endpoint()
async def user_by_id(request: Request, hs: Homeserver, req: Requester) -> list[dict[str, Any]]:
    return await hs.appservices.thirdparty.user_of_id(request.query_params.get("userid"))


_TP = "/_matrix/client/v3/thirdparty"
routes = [
    Route("/_matrix/client/v1/appservice/{as_id}/ping", ping, methods=["POST"]),
    Route(f"{_TP}/protocols", protocols, methods=["GET"]),
    Route(f"{_TP}/protocol/{{protocol}}", protocol, methods=["GET"]),
    Route(f"{_TP}/location/{{protocol}}", location_by_protocol, methods=["GET"]),
    Route(f"{_TP}/user/{{protocol}}", user_by_protocol, methods=["GET"]),
    Route(f"{_TP}/location", location_by_alias, methods=["GET"]),
    Route(f"{_TP}/user", user_by_id, methods=["GET"]),
]
