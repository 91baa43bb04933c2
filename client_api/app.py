"""The ASGI application: route table, CORS preflights, Matrix errors for unknown paths."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from client_api.http import CORS_HEADERS, error_response, json_response, restore_encoded_slashes, routing_scope
from client_api.r0 import r0_to_v3
from client_api.routes import (
    account,
    admin,
    ai,
    appservice,
    dehydrated,
    directory,
    discovery,
    ephemeral,
    keys,
    legacy,
    media,
    operations,
    peek,
    plugins,
    pushers,
    pushrules,
    room_keys,
    room_upgrades,
    rooms,
    search,
    shared_secret,
    spaces,
    sync,
    user_directory,
    userdata,
    webhooks,
)
from client_api.webclient import WebClient, default_root
from client_api.websocket import PATH as WS_PATH
from client_api.websocket import websocket_endpoint
from federation.routes import openid as federation_openid
from federation.routes import routes as federation_routes
from homeserver import metrics
from homeserver.app import Homeserver
from homeserver.config import Config
from homeserver.logs import log_access
from homeserver.protocol.errors import MatrixError

ALL_ROUTES: list[Route] = [
    *discovery.routes, *account.routes, *rooms.routes, *sync.routes, *userdata.routes,
    *directory.routes, *ephemeral.routes, *media.routes, *operations.routes,
    *room_upgrades.routes, *user_directory.routes, *keys.routes, *room_keys.routes, *dehydrated.routes,
    *legacy.routes, *pushrules.routes, *admin.routes, *federation_openid.routes,
    *shared_secret.routes, *federation_routes, *spaces.routes, *pushers.routes, *ai.routes,
    *plugins.routes, *webhooks.routes, *appservice.routes, *search.routes,
    *peek.routes,  # last: a fuller GET /events elsewhere takes precedence
]
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"))


class MatrixRouter:
    """Dispatches to the first full match; 405/404 answer with M_UNRECOGNIZED JSON."""

    def __init__(self, routes: list[Route], web: WebClient | None = None) -> None:
        self.routes = routes
        self.web = web

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        if scope["type"] == "websocket":
            if scope["path"] == WS_PATH:
                await websocket_endpoint(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 4004})
            return
        if scope["type"] != "http":
            return
        if scope["method"] == "OPTIONS":
            await json_response({}, 200, dict(CORS_HEADERS))(scope, receive, send)
            return
        legacy = r0_to_v3(scope["path"])
        if legacy is not None:
            raw = scope.get("raw_path") or scope["path"].encode()
            scope = {**scope, "path": legacy, "raw_path": raw.replace(b"/r0/", b"/v3/", 1)}
        partial = False
        match_scope = routing_scope(scope)
        for route in self.routes:
            match, child = route.matches(match_scope)
            if match == Match.FULL:
                scope.update(restore_encoded_slashes(child))
                scope["parley.route"] = route.path  # the template: a bounded metrics label
                await route.handle(scope, receive, send)
                return
            if match == Match.PARTIAL:
                partial = True
        if not partial and self.web is not None and self.web.handles(scope):
            scope["parley.route"] = "web"  # the web client owns every non-API GET
            await self.web(scope, receive, send)
            return
        if partial:
            err = MatrixError(405, "M_UNRECOGNIZED", "Method not allowed for this endpoint")
        else:
            err = MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request")
        await error_response(err)(scope, receive, send)


class ParleyApp:
    """The ASGI callable. With `hs` given, the caller owns the homeserver's lifecycle (tests)."""

    def __init__(self, config: Config, hs: Homeserver | None = None) -> None:
        self.config = config
        self.state = SimpleNamespace(hs=hs)
        self._owns_hs = hs is None
        web_root = Path(config.web_client_dir) if config.web_client_dir else default_root()
        self.router = MatrixRouter(ALL_ROUTES, WebClient(web_root))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        scope["app"] = self
        if scope["type"] != "http":
            await self.router(scope, receive, send)
            return
        await self._observed(scope, receive, send)

    async def _observed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route the request, then count it, time it and write its access log line."""
        start = time.perf_counter()
        status = 500

        async def send_and_see(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.router(scope, receive, send_and_see)
        finally:
            elapsed = time.perf_counter() - start
            method = scope["method"] if scope["method"] in _METHODS else "other"
            route = scope.get("parley.route", "unmatched" if scope["method"] != "OPTIONS" else "preflight")
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            metrics.HTTP_LATENCY.labels(method, route).observe(elapsed)
            client = scope.get("client")
            log_access(client[0] if client else "-", method, scope["path"], route, status, elapsed)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self._owns_hs:
                        self.state.hs = await Homeserver.start(self.config)
                except BaseException as e:
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._owns_hs and self.state.hs is not None:
                    await self.state.hs.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def build_app(config: Config, hs: Homeserver | None = None) -> ParleyApp:
    return ParleyApp(config, hs)
