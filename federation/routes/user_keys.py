"""End-to-end encryption keys of this server's users, for other servers: `user/devices`,
`user/keys/query` and `user/keys/claim` (server-server API §End-to-End Encryption)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from federation.routes.edge import federation_endpoint, json_object
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_user_id, server_name_of

FED = "/_matrix/federation/v1"


def _only_local(hs: Homeserver, users: Any, field: str) -> dict[str, Any]:
    if not isinstance(users, dict):
        raise MatrixError(400, "M_BAD_JSON", f"'{field}' must be an object keyed by user ID")
    for user_id in users:
        if not is_valid_user_id(user_id) or server_name_of(user_id) != hs.server_name:
            raise MatrixError(400, "M_INVALID_PARAM", f"{user_id} is not a user of this server")
    return users


@federation_endpoint()
async def user_devices(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    user_id = request.path_params["user_id"]
    if not is_valid_user_id(user_id) or server_name_of(user_id) != hs.server_name:
        raise MatrixError(400, "M_INVALID_PARAM", "That user is not hosted on this server")
    return await hs.keys.user_devices(user_id)


@federation_endpoint()
async def keys_query(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    body = json_object(content)
    wanted = _only_local(hs, body.get("device_keys"), "device_keys")
    answer = await hs.keys.query("", wanted, local_only=True)
    # No `failures` (nothing remote is asked) and no user-signing keys (private to their owner).
    return {k: v for k, v in answer.items() if k in ("device_keys", "master_keys", "self_signing_keys")}


@federation_endpoint()
async def keys_claim(request: Request, hs: Homeserver, origin: str, content: Any) -> dict[str, Any]:
    body = json_object(content)
    wanted = _only_local(hs, body.get("one_time_keys"), "one_time_keys")
    answer = await hs.keys.claim(wanted, local_only=True)
    return {"one_time_keys": answer["one_time_keys"]}


routes = [
    Route(f"{FED}/user/devices/{{user_id}}", user_devices, methods=["GET"]),
    Route(f"{FED}/user/keys/query", keys_query, methods=["POST"]),
    Route(f"{FED}/user/keys/claim", keys_claim, methods=["POST"]),
]
