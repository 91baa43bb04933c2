"""End-to-end encryption: /keys/upload, /keys/query, /keys/claim, /keys/changes, /sendToDevice."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body
from client_api.routes.account import _reauth
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError
from homeserver.sync.token import SyncToken

V3 = "/_matrix/client/v3"
UNSTABLE = "/_matrix/client/unstable"  # where cross-signing lived before Matrix 1.1; clients still call it


@endpoint()
async def upload(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request)
    return await hs.keys.upload(req.user_id, req.device_id, body)


@endpoint()
async def query(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request)
    timeout = body.get("timeout", 10000)
    if not isinstance(timeout, int) or isinstance(timeout, bool):
        raise MatrixError(400, "M_BAD_JSON", "'timeout' must be an integer")
    return await hs.keys.query(req.user_id, body.get("device_keys"), min(max(timeout, 1), 60_000))


@endpoint()
async def claim(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request)
    timeout = body.get("timeout", 10000)
    if not isinstance(timeout, int) or isinstance(timeout, bool):
        raise MatrixError(400, "M_BAD_JSON", "'timeout' must be an integer")
    return await hs.keys.claim(body.get("one_time_keys"), min(max(timeout, 1), 60_000))


@endpoint()
async def changes(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    q = request.query_params
    raw_from, raw_to = q.get("from"), q.get("to")
    if not raw_from or not raw_to:
        raise MatrixError(400, "M_MISSING_PARAM", "'from' and 'to' are required")
    now = hs.sync.current_token()
    start = SyncToken.parse(raw_from).clamp(now)
    end = SyncToken.parse(raw_to).clamp(now)
    changed, left = await hs.keys.changes(req.user_id, start.stream, end.stream)
    return {"changed": changed, "left": left}


@endpoint()
async def send_to_device(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request)
    await hs.to_device.send(req.user_id, req.device_id, request.path_params["event_type"],
                            request.path_params["txn_id"], body.get("messages"))
    return {}


@endpoint()
async def device_signing_upload(request: Request, hs: Homeserver, req: Requester) -> Any:
    body = await json_body(request)
    if await hs.keys.cross_signing.needs_auth(req.user_id, {k: v for k, v in body.items() if k != "auth"}):
        outcome = await _reauth(request, hs, req, body)
        if outcome.challenge is not None:
            return outcome.challenge, 401
        await hs.keys.cross_signing.upload(req.user_id, outcome.params)
        await hs.uia.finish(outcome.session_id)
        return {}
    await hs.keys.cross_signing.upload(req.user_id, body)
    return {}


@endpoint()
async def signatures_upload(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request)
    return await hs.keys.cross_signing.upload_signatures(req.user_id, body)


routes = [
    Route(f"{V3}/keys/upload", upload, methods=["POST"]),
    Route(f"{V3}/keys/query", query, methods=["POST"]),
    Route(f"{V3}/keys/claim", claim, methods=["POST"]),
    Route(f"{V3}/keys/changes", changes, methods=["GET"]),
    Route(f"{V3}/keys/device_signing/upload", device_signing_upload, methods=["POST"]),
    Route(f"{V3}/keys/signatures/upload", signatures_upload, methods=["POST"]),
    Route(f"{UNSTABLE}/keys/device_signing/upload", device_signing_upload, methods=["POST"]),
    Route(f"{UNSTABLE}/keys/signatures/upload", signatures_upload, methods=["POST"]),
    Route(f"{V3}/sendToDevice/{{event_type}}/{{txn_id}}", send_to_device, methods=["PUT"]),
]
