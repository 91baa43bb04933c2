"""/sync and filters."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body, query_bool, query_int
from homeserver.accounts.service import Requester
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.filters import SyncFilter
from homeserver.sync.token import SyncToken

V3 = "/_matrix/client/v3"


def _check_user(request: Request, req: Requester) -> str:
    user_id = request.path_params["user_id"]
    if user_id != req.user_id:
        raise MatrixError(403, "M_FORBIDDEN", "You may only act for yourself")
    return user_id


@endpoint()
async def post_filter(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    user_id = _check_user(request, req)
    body = await json_body(request)
    SyncFilter.parse(body)  # validate
    fid = await hs.stores.userdata.add_filter(user_id, body)
    return {"filter_id": str(fid)}


@endpoint()
async def get_filter(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    user_id = _check_user(request, req)
    raw = request.path_params["filter_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise MatrixError(404, "M_NOT_FOUND", "Unknown filter")
    flt = await hs.stores.userdata.get_filter(user_id, int(raw))
    if flt is None:
        raise MatrixError(404, "M_NOT_FOUND", "Unknown filter")
    return flt


async def _load_filter(hs: Any, user_id: str, raw: str | None) -> SyncFilter:
    if raw is None or raw == "":
        return SyncFilter()
    if raw.lstrip().startswith("{"):
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise MatrixError(400, "M_INVALID_PARAM", "filter is not valid JSON") from None
    else:
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            raise MatrixError(400, "M_INVALID_PARAM", "Unknown filter ID")
        obj = await hs.stores.userdata.get_filter(user_id, int(raw))
        if obj is None:
            raise MatrixError(400, "M_INVALID_PARAM", "Unknown filter ID")
    try:
        return SyncFilter.parse(obj)
    except MatrixError as e:
        raise MatrixError(400, "M_INVALID_PARAM", e.error) from None


@endpoint()
async def sync(request: Request, hs: Any, req: Requester) -> dict[str, Any]:
    q = request.query_params
    raw_since = q.get("since")
    since = SyncToken.parse(raw_since) if raw_since else None
    flt = await _load_filter(hs, req.user_id, q.get("filter"))
    full_state = query_bool(request, "full_state")
    timeout = query_int(request, "timeout", 0) or 0
    timeout = min(timeout, hs.config.max_sync_timeout_ms)
    set_presence = q.get("set_presence")
    if set_presence is not None and set_presence not in ("online", "offline", "unavailable"):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid set_presence")
    hs.presence.touch(req.user_id, set_presence)
    return await hs.sync.sync(req.user_id, req.device_id, since, flt, full_state, timeout)


routes = [
    Route(f"{V3}/user/{{user_id}}/filter", post_filter, methods=["POST"]),
    Route(f"{V3}/user/{{user_id}}/filter/{{filter_id}}", get_filter, methods=["GET"]),
    Route(f"{V3}/sync", sync, methods=["GET"]),
]
