"""Login, registration, tokens, account management, devices."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint, json_body
from client_api.routes import guests
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_user_id, server_name_of

# UIA sessions live only for the process lifetime; a restart just makes the client start over.
_uia_sessions: dict[str, set[str]] = {}


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _opt_str(body: dict[str, Any], key: str, max_len: int = 512) -> str | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > max_len:
        raise MatrixError(400, "M_BAD_JSON", f"'{key}' must be a string of at most {max_len} characters")
    return v


def _opt_bool(body: dict[str, Any], key: str) -> bool:
    v = body.get(key, False)
    if not isinstance(v, bool):
        raise MatrixError(400, "M_BAD_JSON", f"'{key}' must be a boolean")
    return v


def _uia_challenge(flows: list[list[str]], session: str | None = None, completed: list[str] | None = None,
                   error: MatrixError | None = None) -> tuple[dict[str, Any], int]:
    session = session or secrets.token_urlsafe(16)
    _uia_sessions.setdefault(session, set())
    if len(_uia_sessions) > 10_000:
        _uia_sessions.clear()
        _uia_sessions[session] = set()
    body: dict[str, Any] = {
        "flows": [{"stages": f} for f in flows],
        "params": {},
        "session": session,
    }
    if completed:
        body["completed"] = completed
    if error is not None:
        body.update(error.to_dict())
    return body, 401


async def _uia_password(hs: Homeserver, req: Requester, body: dict[str, Any]) -> tuple[dict[str, Any], int] | None:
    """Re-authentication with m.login.password; returns a 401 challenge or None when satisfied."""
    auth = body.get("auth")
    if auth is None:
        return _uia_challenge([["m.login.password"]])
    if not isinstance(auth, dict):
        raise MatrixError(400, "M_BAD_JSON", "'auth' must be an object")
    if auth.get("type") != "m.login.password":
        return _uia_challenge([["m.login.password"]],
                              auth.get("session") if isinstance(auth.get("session"), str) else None,
                              error=MatrixError(401, "M_UNRECOGNIZED", "Unsupported auth type"))
    ident = auth.get("identifier", {})
    user = auth.get("user")
    if isinstance(ident, dict) and ident.get("type") == "m.id.user":
        user = ident.get("user")
    if isinstance(user, str) and not user.startswith("@"):
        user = hs.accounts.user_id_for(user.lower())
    if user is not None and user != req.user_id:
        raise MatrixError(403, "M_FORBIDDEN", "Authenticated as a different user")
    if not await hs.accounts.verify_password(req.user_id, auth.get("password")):
        return _uia_challenge([["m.login.password"]],
                              auth.get("session") if isinstance(auth.get("session"), str) else None,
                              error=MatrixError(401, "M_FORBIDDEN", "Invalid password"))
    return None


@endpoint(auth=False)
async def get_login(request: Request, hs: Homeserver) -> dict[str, Any]:
    return {"flows": [{"type": "m.login.password"}]}


@endpoint(auth=False)
async def post_login(request: Request, hs: Homeserver) -> dict[str, Any]:
    await hs.ratelimiter.check("login", _client_ip(request), hs.config.rate_limits.login_per_second,
                         hs.config.rate_limits.login_burst)
    body = await json_body(request)
    login_type = body.get("type")
    if login_type != "m.login.password":
        raise MatrixError(400, "M_UNKNOWN", f"Unsupported login type {login_type!r}")
    ident = body.get("identifier")
    user: Any = None
    if ident is not None:
        if not isinstance(ident, dict):
            raise MatrixError(400, "M_BAD_JSON", "'identifier' must be an object")
        if ident.get("type") != "m.id.user":
            raise MatrixError(400, "M_UNKNOWN", "Only m.id.user identifiers are supported")
        user = ident.get("user")
    else:
        user = body.get("user")
    if not isinstance(user, str) or not user or len(user) > 255:
        raise MatrixError(400, "M_BAD_JSON", "Missing or invalid user identifier")
    password = body.get("password")
    if not isinstance(password, str):
        raise MatrixError(400, "M_BAD_JSON", "'password' must be a string")
    if user.startswith("@"):
        if not is_valid_user_id(user):
            raise MatrixError(403, "M_FORBIDDEN", "Invalid username or password")
        if server_name_of(user) != hs.server_name:
            raise MatrixError(403, "M_FORBIDDEN", "Invalid username or password")
        user_id = user
    else:
        user_id = hs.accounts.user_id_for(user.lower())
    return await hs.accounts.login_password(
        user_id, password, _opt_str(body, "device_id", 255),
        _opt_str(body, "initial_device_display_name"), _opt_bool(body, "refresh_token"),
        _client_ip(request),
    )


@endpoint(auth=False)
async def register(request: Request, hs: Homeserver) -> Any:
    await hs.ratelimiter.check("register", _client_ip(request), hs.config.rate_limits.register_per_second,
                         hs.config.rate_limits.register_burst)
    kind = request.query_params.get("kind", "user")
    if kind == "guest":
        return await guests.register_guest(request, hs, _client_ip(request))
    if kind != "user":
        raise MatrixError(400, "M_INVALID_PARAM", "kind must be 'user' or 'guest'")
    body = await json_body(request)
    mode = hs.config.registration
    if mode == "closed":
        raise MatrixError(403, "M_FORBIDDEN", "Registration is disabled")
    guest = await guests.upgrading_guest(hs, body)
    username = body.get("username")
    if username is None:
        username = guest.user_id[1:].split(":")[0] if guest else secrets.token_hex(6)
    hs.accounts.validate_localpart(username)
    password = body.get("password")
    if password is not None and (not isinstance(password, str) or not password):
        raise MatrixError(400, "M_BAD_JSON", "'password' must be a non-empty string")
    device_id = _opt_str(body, "device_id", 255)
    device_name = _opt_str(body, "initial_device_display_name")
    inhibit = _opt_bool(body, "inhibit_login")
    want_refresh = _opt_bool(body, "refresh_token")
    stage = "m.login.registration_token" if mode == "token" else "m.login.dummy"
    auth = body.get("auth")
    if auth is None:
        if guest is None and await hs.accounts.user_exists(hs.accounts.user_id_for(str(username).lower())):
            raise MatrixError(400, "M_USER_IN_USE", "User ID already taken")
        return _uia_challenge([[stage]])
    if not isinstance(auth, dict):
        raise MatrixError(400, "M_BAD_JSON", "'auth' must be an object")
    if auth.get("type") != stage:
        return _uia_challenge([[stage]], auth.get("session") if isinstance(auth.get("session"), str) else None,
                              error=MatrixError(401, "M_UNRECOGNIZED", f"Expected auth stage {stage}"))
    if stage == "m.login.registration_token":
        token = auth.get("token")
        if not isinstance(token, str) or token not in hs.config.registration_tokens:
            return _uia_challenge([[stage]], error=MatrixError(401, "M_FORBIDDEN", "Invalid registration token"))
    if password is None and not inhibit:
        raise MatrixError(400, "M_MISSING_PARAM", "'password' is required")
    session = auth.get("session")
    if isinstance(session, str):
        _uia_sessions.pop(session, None)
    if guest is not None:
        return await hs.accounts.upgrade_guest(guest, username, password, device_id, device_name,
                                               inhibit, want_refresh, _client_ip(request))
    return await hs.accounts.register(
        username, password, device_id=device_id, device_name=device_name,
        inhibit_login=inhibit, want_refresh=want_refresh, ip=_client_ip(request),
    )


@endpoint(auth=False)
async def register_available(request: Request, hs: Homeserver) -> dict[str, Any]:
    username = request.query_params.get("username")
    if username is None:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing 'username'")
    localpart = hs.accounts.validate_localpart(username)
    if await hs.accounts.user_exists(hs.accounts.user_id_for(localpart)):
        raise MatrixError(400, "M_USER_IN_USE", "User ID already taken")
    return {"available": True}


@endpoint(auth=False)
async def token_validity(request: Request, hs: Homeserver) -> dict[str, Any]:
    token = request.query_params.get("token")
    if token is None:
        raise MatrixError(400, "M_MISSING_PARAM", "Missing 'token'")
    return {"valid": token in hs.config.registration_tokens}


@endpoint(auth=False)
async def refresh(request: Request, hs: Homeserver) -> dict[str, Any]:
    body = await json_body(request)
    token = body.get("refresh_token")
    if not isinstance(token, str):
        raise MatrixError(400, "M_BAD_JSON", "'refresh_token' must be a string")
    return await hs.accounts.refresh(token)


@endpoint()
async def logout(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    await hs.accounts.logout(req)
    return {}


@endpoint()
async def logout_all(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    await hs.accounts.logout_all(req.user_id)
    return {}


@endpoint()
async def whoami(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    return {"user_id": req.user_id, "device_id": req.device_id, "is_guest": req.is_guest}


@endpoint()
async def change_password(request: Request, hs: Homeserver, req: Requester) -> Any:
    body = await json_body(request)
    new_password = body.get("new_password")
    if not isinstance(new_password, str) or not new_password:
        raise MatrixError(400, "M_BAD_JSON", "'new_password' must be a non-empty string")
    logout_devices = body.get("logout_devices", True)
    if not isinstance(logout_devices, bool):
        raise MatrixError(400, "M_BAD_JSON", "'logout_devices' must be a boolean")
    challenge = await _uia_password(hs, req, body)
    if challenge is not None:
        return challenge
    await hs.accounts.change_password(req, new_password, logout_devices)
    return {}


@endpoint()
async def deactivate(request: Request, hs: Homeserver, req: Requester) -> Any:
    body = await json_body(request, allow_empty=True)
    challenge = await _uia_password(hs, req, body)
    if challenge is not None:
        return challenge
    await hs.deactivation.deactivate(req.user_id)
    return {"id_server_unbind_result": "no-support"}


# ---------------------------------------------------------------------- devices


def _device_json(user_id: str, d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"device_id": d["device_id"]}
    if d.get("display_name") is not None:
        out["display_name"] = d["display_name"]
    if d.get("last_seen_ts") is not None:
        out["last_seen_ts"] = d["last_seen_ts"]
    if d.get("last_seen_ip") is not None:
        out["last_seen_ip"] = d["last_seen_ip"]
    return out


@endpoint()
async def list_devices(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    devices = await hs.accounts.list_devices(req.user_id)
    return {"devices": [_device_json(req.user_id, d) for d in devices]}


@endpoint()
async def get_device(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    d = await hs.accounts.get_device(req.user_id, request.path_params["device_id"])
    if d is None:
        raise MatrixError(404, "M_NOT_FOUND", "Unknown device")
    return _device_json(req.user_id, d)


@endpoint()
async def put_device(request: Request, hs: Homeserver, req: Requester) -> dict[str, Any]:
    body = await json_body(request)
    name = _opt_str(body, "display_name")
    if not await hs.accounts.rename_device(req.user_id, request.path_params["device_id"], name):
        raise MatrixError(404, "M_NOT_FOUND", "Unknown device")
    return {}


@endpoint()
async def delete_device(request: Request, hs: Homeserver, req: Requester) -> Any:
    body = await json_body(request, allow_empty=True)
    device_id = request.path_params["device_id"]
    if await hs.accounts.get_device(req.user_id, device_id) is None:
        raise MatrixError(404, "M_NOT_FOUND", "Unknown device")
    challenge = await _uia_password(hs, req, body)
    if challenge is not None:
        return challenge
    await hs.accounts.delete_devices(req.user_id, [device_id])
    return {}


@endpoint()
async def delete_devices(request: Request, hs: Homeserver, req: Requester) -> Any:
    body = await json_body(request)
    devices = body.get("devices")
    if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
        raise MatrixError(400, "M_BAD_JSON", "'devices' must be a list of device IDs")
    challenge = await _uia_password(hs, req, body)
    if challenge is not None:
        return challenge
    await hs.accounts.delete_devices(req.user_id, devices)
    return {}


V3 = "/_matrix/client/v3"
V1 = "/_matrix/client/v1"

routes = [
    Route(f"{V3}/login", get_login, methods=["GET"]),
    Route(f"{V3}/login", post_login, methods=["POST"]),
    Route(f"{V3}/register", register, methods=["POST"]),
    Route(f"{V3}/register/available", register_available, methods=["GET"]),
    Route(f"{V1}/register/m.login.registration_token/validity", token_validity, methods=["GET"]),
    Route(f"{V3}/refresh", refresh, methods=["POST"]),
    Route(f"{V3}/logout", logout, methods=["POST"]),
    Route(f"{V3}/logout/all", logout_all, methods=["POST"]),
    Route(f"{V3}/account/whoami", whoami, methods=["GET"]),
    Route(f"{V3}/account/password", change_password, methods=["POST"]),
    Route(f"{V3}/account/deactivate", deactivate, methods=["POST"]),
    Route(f"{V3}/devices", list_devices, methods=["GET"]),
    Route(f"{V3}/devices/{{device_id}}", get_device, methods=["GET"]),
    Route(f"{V3}/devices/{{device_id}}", put_device, methods=["PUT"]),
    Route(f"{V3}/devices/{{device_id}}", delete_device, methods=["DELETE"]),
    Route(f"{V3}/delete_devices", delete_devices, methods=["POST"]),
]
