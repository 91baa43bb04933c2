"""The federation HTTP edge: X-Matrix authentication and Matrix error JSON for every handler."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from client_api.http import read_body_bytes, run_handler
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError

FederationHandler = Callable[..., Awaitable[Any]]


def request_uri(request: Request) -> str:
    """The request target exactly as sent (path and query), which the origin signed."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1").split("?", 1)[0] if isinstance(raw, bytes) else request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    return path + ("?" + query if query else "")


async def request_content(request: Request) -> Any:
    """The JSON body, or None when there is none (then no `content` was signed)."""
    raw = await read_body_bytes(request)
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MatrixError(400, "M_NOT_JSON", "Request body is not valid JSON") from None


def federation_endpoint(signed: bool = True) -> Callable[[FederationHandler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a federation handler: 404 unless federation is on, X-Matrix check when `signed`, and
    for a path naming a room, 403 when the room's server ACL denies the origin.

    Handlers take (request, hs, origin, content); origin is None for unsigned endpoints."""

    def deco(fn: FederationHandler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(fn)
        async def wrapper(request: Request) -> Response:
            hs: Homeserver = request.app.state.hs

            async def call() -> Any:
                hs.federation.require_enabled()
                content = await request_content(request) if request.method in ("PUT", "POST") else None
                origin = None
                if signed:
                    origin = await hs.federation.authenticate(
                        request.method, request_uri(request), request.headers.getlist("authorization"), content)
                    room_id = request.path_params.get("room_id")
                    if isinstance(room_id, str):  # every request naming a room obeys its server ACL
                        await hs.server_acls.check(origin, room_id)
                return await fn(request, hs, origin, content)

            return await run_handler(request, call)

        return wrapper

    return deco


def json_object(content: Any) -> dict[str, Any]:
    if not isinstance(content, dict):
        raise MatrixError(400, "M_BAD_JSON", "Request body must be a JSON object")
    return content
