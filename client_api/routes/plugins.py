"""Plugins (Parley extension, spec/plugins.md): slash commands for the composer, per-room
choices by room admins, and the server admins' management API."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_room_id

PREFIX = "/_matrix/client/unstable/org.parley.plugins"
ADMIN = "/_parley/admin/v1/plugins"


def _room_id(request: Request) -> str:
    room_id = request.path_params["room_id"]
    if not is_valid_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid room ID")
    return room_id


def _admin(req: Requester) -> None:
    if not req.is_admin:
        raise MatrixError(403, "M_FORBIDDEN", "You are not a server admin")


@endpoint()
async def list_commands(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return {"commands": await hs.plugins.commands(req.user_id, _room_id(request))}


@endpoint()
async def run_command(request: Request, hs: Homeserver, req: Requester) -> tuple[dict[str, Any], int]:
    body = await json_body(request, allow_empty=True)
    out = await hs.plugins.run_command(req.user_id, _room_id(request), request.path_params["command"],
                                       body.get("args", ""))
    return out, 202


@endpoint()
async def room_plugins(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return {"plugins": await hs.plugins.room_plugins(req.user_id, _room_id(request))}


@endpoint()
async def set_room_plugin(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request)
    await hs.plugins.set_room_choice(req.user_id, _room_id(request), request.path_params["name"],
                                     body.get("enabled"))
    return {}


@endpoint()
async def admin_list(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    _admin(req)
    status = hs.plugin_host.status()
    plugins = await hs.plugins.list_plugins()
    for p in plugins:
        if p["name"] in status:
            p["process"] = status[p["name"]]
    return {"plugins": plugins}


@endpoint()
async def admin_install(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    _admin(req)
    body = await json_body(request)
    path, name = body.get("path"), body.get("name")
    if not isinstance(path, str | None) or not isinstance(name, str | None) or (path is None) == (name is None):
        raise MatrixError(400, "M_BAD_JSON", "Give either 'path' (a plugin folder on the server) or 'name'")
    return await hs.plugins.install(path, name)


@endpoint()
async def admin_enabled(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    _admin(req)
    enabled = (await json_body(request)).get("enabled")
    if not isinstance(enabled, bool):
        raise MatrixError(400, "M_BAD_JSON", "'enabled' must be true or false")
    await hs.plugins.set_enabled(request.path_params["name"], enabled)
    return {}


@endpoint()
async def admin_settings(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    _admin(req)
    return {"settings": await hs.plugins.configure(request.path_params["name"], await json_body(request))}


R = f"{PREFIX}/rooms/{{room_id}}"
routes = [
    Route(f"{R}/commands", list_commands, methods=["GET"]),
    Route(f"{R}/commands/{{command}}", run_command, methods=["POST"]),
    Route(f"{R}/plugins", room_plugins, methods=["GET"]),
    Route(f"{R}/plugins/{{name}}", set_room_plugin, methods=["PUT"]),
    Route(ADMIN, admin_list, methods=["GET"]),
    Route(f"{ADMIN}/install", admin_install, methods=["POST"]),
    Route(f"{ADMIN}/{{name}}/enabled", admin_enabled, methods=["PUT"]),
    Route(f"{ADMIN}/{{name}}/settings", admin_settings, methods=["PUT"]),
]
