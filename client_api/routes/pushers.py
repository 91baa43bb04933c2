"""Pushers and notifications (Client-Server API §"Push notifications"), the Web Push key and
the email unsubscribe link (Parley extensions, spec/push.md)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from client_api.http import endpoint, json_body, query_int
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver

V3 = "/_matrix/client/v3"
PARLEY = "/_matrix/client/unstable/org.parley.push"


@endpoint()
async def get_pushers(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return {"pushers": await hs.notifications.pushers.list_json(req.user_id)}


@endpoint()
async def set_pusher(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    await hs.notifications.pushers.set(req.user_id, req.device_id, await json_body(request))
    return {}


@endpoint()
async def get_notifications(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    q = request.query_params
    limit = query_int(request, "limit")
    return await hs.notifications.pushers.notifications(req.user_id, q.get("from"), limit, q.get("only"))


@endpoint(auth=False)
async def webpush_key(request: Request, hs: Homeserver) -> dict[str, Any]:
    return {"public_key": await hs.notifications.delivery.vapid_public_key(), "kind": "org.parley.webpush"}


@endpoint(auth=False)
async def unsubscribe(request: Request, hs: Homeserver) -> Any:
    q = request.query_params
    await hs.notifications.email.unsubscribe(q.get("user_id"), q.get("pushkey"), q.get("token"))
    return HTMLResponse("<!doctype html><title>Unsubscribed</title><p>You will no longer receive "
                        "notification emails at this address.</p>")


routes = [
    Route(f"{V3}/pushers", get_pushers, methods=["GET"]),
    Route(f"{V3}/pushers/set", set_pusher, methods=["POST"]),
    Route(f"{V3}/notifications", get_notifications, methods=["GET"]),
    Route(f"{PARLEY}/webpush_key", webpush_key, methods=["GET"]),
    Route(f"{PARLEY}/unsubscribe", unsubscribe, methods=["GET", "POST"]),
]
