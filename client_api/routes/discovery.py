"""Discovery and capability endpoints, plus the stubs clients probe at start-up."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS

SUPPORTED_VERSIONS = ["r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9",
                      "v1.10", "v1.11"]


@endpoint(auth=False)
async def versions(request: Request, hs: Homeserver) -> dict[str, Any]:
    return {"versions": SUPPORTED_VERSIONS, "unstable_features": {}}


@endpoint(auth=False)
async def well_known_client(request: Request, hs: Homeserver) -> dict[str, Any]:
    return {"m.homeserver": {"base_url": hs.config.public_baseurl.rstrip("/")}}


@endpoint(auth=False)
async def auth_metadata(request: Request, hs: Homeserver) -> dict[str, Any]:
    raise MatrixError(404, "M_UNRECOGNIZED", "OAuth 2.0 authentication is not offered")


@endpoint()
async def capabilities(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return {
        "capabilities": {
            "m.room_versions": {
                "default": hs.config.default_room_version,
                "available": {v: "stable" for v in KNOWN_ROOM_VERSIONS},
            },
            "m.change_password": {"enabled": True},
            "m.set_displayname": {"enabled": True},
            "m.set_avatar_url": {"enabled": True},
            "m.3pid_changes": {"enabled": False},
            "m.get_login_token": {"enabled": False},
        }
    }


@endpoint()
async def turn_server(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return {}


routes = [
    Route("/_matrix/client/versions", versions, methods=["GET"]),
    Route("/.well-known/matrix/client", well_known_client, methods=["GET"]),
    Route("/_matrix/client/v1/auth_metadata", auth_metadata, methods=["GET"]),
    Route("/_matrix/client/v3/capabilities", capabilities, methods=["GET"]),
    Route("/_matrix/client/v3/voip/turnServer", turn_server, methods=["GET"]),
]
