"""Guest registration (register?kind=guest) and the guest side of registering a full account."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from client_api.http import json_body
from homeserver.accounts.service import Requester
from homeserver.protocol.errors import MatrixError


async def register_guest(request: Request, hs: Any, ip: str) -> dict[str, Any]:
    if not hs.config.allow_guest_access:
        raise MatrixError(403, "M_GUEST_ACCESS_FORBIDDEN", "Guest access is disabled")
    body = await json_body(request, allow_empty=True)
    # Guests have no username or password: only the device fields count.
    device_id = body.get("device_id")
    name = body.get("initial_device_display_name")
    refresh = body.get("refresh_token", False)
    for key, value, kind in (("device_id", device_id, str), ("initial_device_display_name", name, str),
                             ("refresh_token", refresh, bool)):
        if value is not None and not isinstance(value, kind):
            raise MatrixError(400, "M_BAD_JSON", f"'{key}' has the wrong type")
    if isinstance(device_id, str) and not 0 < len(device_id) <= 255:
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid device_id")
    if isinstance(name, str) and len(name) > 512:
        raise MatrixError(400, "M_BAD_JSON", "'initial_device_display_name' is too long")
    return await hs.accounts.register_guest(device_id, name, bool(refresh), ip)


async def upgrading_guest(hs: Any, body: dict[str, Any]) -> Requester | None:
    """The guest named by `guest_access_token` (registering as that guest's user ID), or None."""
    token = body.get("guest_access_token")
    if token is None:
        return None
    if not isinstance(token, str):
        raise MatrixError(400, "M_BAD_JSON", "'guest_access_token' must be a string")
    try:
        guest: Requester = await hs.accounts.authenticate(token)
    except MatrixError:
        # /register documents 401 only for interactive auth: an unknown token is a refusal.
        raise MatrixError(403, "M_FORBIDDEN", "Unknown guest_access_token") from None
    if not guest.is_guest:
        raise MatrixError(403, "M_FORBIDDEN", "guest_access_token is not a guest's token")
    return guest
