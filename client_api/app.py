"""The ASGI application: route table, CORS preflights, Matrix errors for unknown paths."""

from __future__ import annotations

from types import SimpleNamespace

from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from client_api.websocket import PATH as WS_PATH
from client_api.websocket import websocket_endpoint
from client_api.http import CORS_HEADERS, error_response, json_response
from client_api.r0 import r0_to_v3
from client_api.routes import account, directory, discovery, ephemeral, media, rooms, sync, userdata
from client_api.routes import admin, legacy, pushrules
from federation.routes import openid as federation_openid
from homeserver.app import Homeserver
from homeserver.config import Config
from homeserver.protocol.errors import MatrixError

ALL_ROUTES: list[Route] = [
    *discovery.routes, *account.routes, *rooms.routes, *sync.routes, *userdata.routes,
    *directory.routes, *ephemeral.routes, *media.routes,
    *legacy.routes, *pushrules.routes, *admin.routes, *federation_openid.routes,
]


class MatrixRouter:
    """Dispatches to the first full match; 405/404 answer with M_UNRECOGNIZED JSON."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes

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
        for route in self.routes:
            match, child = route.matches(scope)
            if match == Match.FULL:
                scope.update(child)
                await route.handle(scope, receive, send)
                return
            if match == Match.PARTIAL:
                partial = True
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
        self.router = MatrixRouter(ALL_ROUTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        scope["app"] = self
        await self.router(scope, receive, send)

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
