"""Login, registration, tokens, account management, devices."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import access_token_of, endpoint, json_body
from client_api.routes import guests
from homeserver.accounts.service import Requester
from homeserver.accounts.uia import StageChecker, UIAOutcome
from homeserver.app import Homeserver
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_user_id, server_name_of


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _user_agent(request: Request) -> str | None:
    return request.headers.get("user-agent")


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


def _operation(request: Request) -> str:
    """What a UIA session is bound to: the method and the (v3) path of the request."""
    return f"{request.method} {request.url.path}"


def _password_stage(hs: Any, req: Requester) -> StageChecker:
    """m.login.password for re-authentication: the password of the requesting user."""

    async def check(auth: dict[str, Any]) -> None:
        ident = auth.get("identifier", {})
        user = auth.get("user")
        if isinstance(ident, dict) and ident.get("type") == "m.id.user":
            user = ident.get("user")
        if isinstance(user, str) and not user.startswith("@"):
            user = hs.accounts.user_id_for(user.lower())
        if user is not None and user != req.user_id:
            raise MatrixError(403, "M_FORBIDDEN", "Authenticated as a different user")
        if not await hs.accounts.verify_password(req.user_id, auth.get("password")):
            raise MatrixError(401, "M_FORBIDDEN", "Invalid password")

    return check


async def _reauth(request: Request, hs: Any, req: Requester, body: dict[str, Any]) -> UIAOutcome:
    """Re-authentication with m.login.password for a sensitive operation of `req`'s account."""
    return await hs.uia.check(
        operation=_operation(request), user_id=req.user_id, body=body,
        flows=[["m.login.password"]], stages={"m.login.password": _password_stage(hs, req)},
    )


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
        _client_ip(request), _user_agent(request),
    )


def _registration_params(hs: Any, params: dict[str, Any]) -> dict[str, Any]:
    username = params.get("username")
    if username is not None:
        username = hs.accounts.validate_localpart(username)
    password = params.get("password")
    if password is not None and (not isinstance(password, str) or not password):
        raise MatrixError(400, "M_BAD_JSON", "'password' must be a non-empty string")
    return {
        "username": username, "password": password,
        "device_id": _opt_str(params, "device_id", 255),
        "device_name": _opt_str(params, "initial_device_display_name"),
        "inhibit": _opt_bool(params, "inhibit_login"),
        "want_refresh": _opt_bool(params, "refresh_token"),
    }


def _registration_stages(hs: Any) -> dict[str, StageChecker]:
    async def dummy(auth: dict[str, Any]) -> None:
        return None

    async def token(auth: dict[str, Any]) -> None:
        value = auth.get("token")
        if not isinstance(value, str) or value not in hs.config.registration_tokens:
            raise MatrixError(401, "M_FORBIDDEN", "Invalid registration token")

    if hs.config.registration == "token":
        return {"m.login.registration_token": token}
    return {"m.login.dummy": dummy}


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
    if body.get("type") == "m.login.application_service":
        return await hs.appservices.register(access_token_of(request), body)
    if hs.config.registration == "closed":
        raise MatrixError(403, "M_FORBIDDEN", "Registration is disabled")
    guest = await guests.upgrading_guest(hs, body)
    early = _registration_params(hs, body)  # bad input fails before any session is opened
    if early["username"] is not None:
        hs.appservices.check_not_exclusive(hs.accounts.user_id_for(early["username"]))
    if early["username"] is not None and body.get("auth") is None and guest is None \
            and await hs.accounts.user_exists(hs.accounts.user_id_for(early["username"])):
        raise MatrixError(400, "M_USER_IN_USE", "User ID already taken")
    stages = _registration_stages(hs)
    outcome = await hs.uia.check(operation=_operation(request), user_id=None, body=body,
                                 flows=[[s] for s in stages], stages=stages)
    if outcome.challenge is not None:
        return outcome.challenge, 401
    p = _registration_params(hs, outcome.params)
    if outcome.result is not None:
        # A retry of a registration this session already completed: the same account again.
        if p["inhibit"]:
            return {"user_id": outcome.result}
        return await hs.accounts.login_registered(outcome.result, p["device_id"], p["device_name"],
                                                  p["want_refresh"], _client_ip(request), _user_agent(request))
    if p["password"] is None and not p["inhibit"]:
        raise MatrixError(400, "M_MISSING_PARAM", "'password' is required")
    if guest is not None:
        username = p["username"] if p["username"] is not None else guest.user_id[1:].split(":")[0]
        result = await hs.accounts.upgrade_guest(guest, username, p["password"], p["device_id"],
                                                 p["device_name"], p["inhibit"], p["want_refresh"],
                                                 _client_ip(request))
        await hs.uia.finish(outcome.session_id, result["user_id"])
        return result
    result = await hs.accounts.register(
        p["username"] if p["username"] is not None else secrets.token_hex(6), p["password"],
        device_id=p["device_id"], device_name=p["device_name"], inhibit_login=p["inhibit"],
        want_refresh=p["want_refresh"], ip=_client_ip(request), user_agent=_user_agent(request),
    )
    await hs.uia.finish(outcome.session_id, result["user_id"])
    return result


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


def _password_change(params: dict[str, Any]) -> tuple[str, bool]:
    new_password = params.get("new_password")
    if not isinstance(new_password, str) or not new_password:
        raise MatrixError(400, "M_BAD_JSON", "'new_password' must be a non-empty string")
    logout_devices = params.get("logout_devices", True)
    if not isinstance(logout_devices, bool):
        raise MatrixError(400, "M_BAD_JSON", "'logout_devices' must be a boolean")
    return new_password, logout_devices


@endpoint()
async def change_password(request: Request, hs: Homeserver, req: Requester) -> Any:
    body = await json_body(request)
    if "new_password" in body or "auth" not in body:
        _password_change(body)
    outcome = await _reauth(request, hs, req, body)
    if outcome.challenge is not None:
        return outcome.challenge, 401
    new_password, logout_devices = _password_change(outcome.params)
    await hs.accounts.change_password(req, new_password, logout_devices)
    await hs.uia.finish(outcome.session_id)
    return {}


@endpoint()
async def deactivate(request: Request, hs: Homeserver, req: Requester) -> Any:
    body = await json_body(request, allow_empty=True)
    outcome = await _reauth(request, hs, req, body)
    if outcome.challenge is not None:
        return outcome.challenge, 401
    await hs.uia.finish(outcome.session_id)
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
    outcome = await _reauth(request, hs, req, body)
    if outcome.challenge is not None:
        return outcome.challenge, 401
    await hs.accounts.delete_devices(req.user_id, [device_id])
    await hs.uia.finish(outcome.session_id)
    return {}


def _device_list(params: dict[str, Any]) -> list[str]:
    devices = params.get("devices")
    if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
        raise MatrixError(400, "M_BAD_JSON", "'devices' must be a list of device IDs")
    return devices


@endpoint()
async def delete_devices(request: Request, hs: Homeserver, req: Requester) -> Any:
    body = await json_body(request)
    if "devices" in body or "auth" not in body:
        _device_list(body)
    outcome = await _reauth(request, hs, req, body)
    if outcome.challenge is not None:
        return outcome.challenge, 401
    await hs.accounts.delete_devices(req.user_id, _device_list(outcome.params))
    await hs.uia.finish(outcome.session_id)
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
