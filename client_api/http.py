"""HTTP edge helpers: JSON bodies, Matrix error responses, the endpoint wrapper."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from client_api.guest_access import guest_may_call
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver
from homeserver.plugins.service import TOKEN_PREFIX as PLUGIN_TOKEN_PREFIX
from homeserver.protocol.errors import MatrixError

log = logging.getLogger("parley.http")

MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 100
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization, Date",
}


# Stands for an encoded slash (%2F) while a path is matched against the route table.
_ENCODED_SLASH = "\ufffe"
_PCT_2F = re.compile(r"%2[fF]")


def routing_scope(scope: Scope) -> Scope:
    """The scope to match routes against. The ASGI `path` is percent-decoded, so an encoded `/`
    inside one segment would split it: room v3 event IDs are standard base64 and contain `/`
    (rooms/v3.md §Event IDs; clients send it as %2F). Here such slashes stay one segment, and
    `restore_encoded_slashes` turns them back into `/` in the matched path parameters."""
    raw = scope.get("raw_path")
    if not isinstance(raw, bytes) or b"%2" not in raw or not _PCT_2F.search(raw.decode("latin-1")):
        return scope
    raw_path = raw.split(b"?", 1)[0].decode("latin-1")
    path = unquote(_PCT_2F.sub(_ENCODED_SLASH, raw_path))
    if path.replace(_ENCODED_SLASH, "/") != scope.get("path"):
        return scope  # a path rewritten by a proxy or root_path: keep the server's own
    return {**scope, "path": path}


def restore_encoded_slashes(child_scope: Scope) -> Scope:
    """Undo `routing_scope`'s placeholder in the path parameters of a matched route."""
    params = child_scope.get("path_params")
    if not params:
        return child_scope
    fixed = {k: v.replace(_ENCODED_SLASH, "/") if isinstance(v, str) else v for k, v in params.items()}
    return {**child_scope, "path_params": fixed}


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    h = dict(CORS_HEADERS)
    if headers:
        h.update(headers)
    return JSONResponse(content, status_code=status, headers=h)


def error_response(err: MatrixError) -> Response:
    headers = {}
    if err.errcode == "M_LIMIT_EXCEEDED" and "retry_after_ms" in err.extra:
        headers["Retry-After"] = str(max(1, int(err.extra["retry_after_ms"]) // 1000 + 1))
    return json_response(err.to_dict(), err.status, headers)


async def read_body_bytes(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise MatrixError(413, "M_TOO_LARGE", "Request body too large")
        except ValueError:
            raise MatrixError(400, "M_BAD_JSON", "Bad Content-Length") from None
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise MatrixError(413, "M_TOO_LARGE", "Request body too large")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request's JSON object; M_NOT_JSON for unparsable bodies, M_BAD_JSON for non-objects."""
    raw = await read_body_bytes(request)
    if not raw.strip():
        if allow_empty:
            return {}
        raise MatrixError(400, "M_NOT_JSON", "Request body must be JSON")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MatrixError(400, "M_NOT_JSON", "Request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise MatrixError(400, "M_BAD_JSON", "Request body must be a JSON object")
    if _too_deep(value, MAX_JSON_DEPTH):
        raise MatrixError(400, "M_BAD_JSON", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _too_deep(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)
    return False


def query_bool(request: Request, name: str, default: bool = False) -> bool:
    v = request.query_params.get(name)
    if v is None:
        return default
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise MatrixError(400, "M_INVALID_PARAM", f"'{name}' must be true or false")


def query_int(request: Request, name: str, default: int | None = None, *, minimum: int = 0) -> int | None:
    v = request.query_params.get(name)
    if v is None:
        return default
    try:
        n = int(v)
    except ValueError:
        raise MatrixError(400, "M_INVALID_PARAM", f"'{name}' must be an integer") from None
    if n < minimum or n > 2**53:
        raise MatrixError(400, "M_INVALID_PARAM", f"'{name}' is out of range")
    return n


Handler = Callable[..., Awaitable[Any]]


async def run_handler(request: Request, call: Callable[[], Awaitable[Any]]) -> Response:
    """Run a handler and turn what it gives into a response: a Response as is, a dict (200) or
    a (dict, status) tuple as JSON, a MatrixError as its JSON error, anything else as a 500."""
    try:
        result = await call()
    except MatrixError as e:
        return error_response(e)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return error_response(MatrixError(500, "M_UNKNOWN", "Internal server error"))
    if isinstance(result, Response):
        return result
    if isinstance(result, tuple):
        return json_response(result[0], result[1])
    return json_response(result)


def endpoint(
    auth: bool = True, optional_auth: bool = False
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Wrap a handler: authenticate, map MatrixError/unknown errors to JSON, serialize dicts.

    Handlers take (request, hs, requester) when auth is on, else (request, hs); they return a
    dict (200), a (dict, status) tuple, or a Response.
    """

    def deco(fn: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(fn)
        async def wrapper(request: Request) -> Response:
            hs: Homeserver = request.app.state.hs

            async def call() -> Any:
                if auth or optional_auth:
                    return await fn(request, hs, await authenticate(request, hs, optional=optional_auth))
                return await fn(request, hs)

            return await run_handler(request, call)

        return wrapper

    return deco


def access_token_of(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MatrixError(401, "M_MISSING_TOKEN", "Malformed Authorization header")
        return token.strip()
    return request.query_params.get("access_token")


async def authenticate(request: Request, hs: Homeserver, optional: bool = False) -> Requester | None:
    token = access_token_of(request)
    if token is None:
        if optional:
            return None
        raise MatrixError(401, "M_MISSING_TOKEN", "Missing access token")
    if token.startswith(PLUGIN_TOKEN_PREFIX):  # a plugin: only what its manifest grants
        return await hs.plugins.authenticate(token, request.method, request.url.path)
    if (appservice := hs.appservices.by_token(token)) is not None:  # identity assertion: ?user_id=
        return await hs.appservices.authenticate(appservice, request.query_params.get("user_id"))
    requester: Requester = await hs.accounts.authenticate(token)
    if requester.is_guest and not guest_may_call(request.method, request.url.path):
        raise MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN", "Guest accounts may not use this endpoint")
    return requester
