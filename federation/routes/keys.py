"""Key server endpoints: this server's keys, and the notary queries (no request signing)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from federation.routes.edge import federation_endpoint, json_object
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_server_name

KEY = "/_matrix/key/v2"


@federation_endpoint(signed=False)
async def server_keys(request: Request, hs: Homeserver, origin: None, content: Any) -> dict[str, Any]:
    return hs.federation.keys.own_response()


@federation_endpoint(signed=False)
async def query_one(request: Request, hs: Homeserver, origin: None, content: Any) -> dict[str, Any]:
    server_name = request.path_params["server_name"]
    if not is_valid_server_name(server_name):
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid server name")
    key_id = request.path_params.get("key_id")
    value = request.query_params.get("minimum_valid_until_ts")
    if value is not None and not value.isdigit():
        raise MatrixError(400, "M_INVALID_PARAM", "minimum_valid_until_ts must be an integer")
    found = await hs.federation.keys.query_server(server_name, (key_id,) if key_id else (),
                                                  int(value) if value is not None else None)
    return {"server_keys": found}


@federation_endpoint(signed=False)
async def query_many(request: Request, hs: Homeserver, origin: None, content: Any) -> dict[str, Any]:
    wanted = json_object(content).get("server_keys")
    if not isinstance(wanted, dict) or not all(isinstance(v, dict) for v in wanted.values()):
        raise MatrixError(400, "M_BAD_JSON", "'server_keys' must map server names to objects")
    if len(wanted) > 100:
        raise MatrixError(400, "M_BAD_JSON", "At most 100 servers per query")
    if sum(len(v) for v in wanted.values()) > 1000:
        raise MatrixError(400, "M_BAD_JSON", "At most 1000 keys per query")
    for name in wanted:
        if not is_valid_server_name(name):
            raise MatrixError(400, "M_INVALID_PARAM", f"Invalid server name {name!r}")
    return {"server_keys": await hs.federation.keys.query(wanted)}


routes = [
    Route(f"{KEY}/server", server_keys, methods=["GET"]),
    Route(f"{KEY}/server/{{key_id}}", server_keys, methods=["GET"]),  # deprecated form, still asked for
    Route(f"{KEY}/query/{{server_name}}", query_one, methods=["GET"]),
    Route(f"{KEY}/query/{{server_name}}/{{key_id}}", query_one, methods=["GET"]),
    Route(f"{KEY}/query", query_many, methods=["POST"]),
]
