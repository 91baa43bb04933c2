"""`GET /_matrix/federation/v1/openid/userinfo`: a third party exchanges an OpenID token for the
user ID it was issued to. Authenticated by the token itself, not by X-Matrix."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from client_api.http import endpoint


@endpoint(auth=False)
async def userinfo(request: Request, hs: Any) -> dict[str, Any]:
    return await hs.openid.userinfo(request.query_params.get("access_token"))


routes = [
    Route("/_matrix/federation/v1/openid/userinfo", userinfo, methods=["GET"]),
]
