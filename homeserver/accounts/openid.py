"""OpenID tokens (Client-Server API §"OpenID"; Server-Server API §"OpenID"): a client asks for a
short-lived token and hands it to a third party, which asks this server whose token it is."""

from __future__ import annotations

import secrets
import time
from typing import Any

from homeserver.protocol.errors import MatrixError
from homeserver.storage.stores import Stores

TOKEN_LIFETIME_S = 3600


class OpenIDService:
    def __init__(self, stores: Stores, server_name: str) -> None:
        self.stores = stores
        self.server_name = server_name

    async def request_token(self, user_id: str) -> dict[str, Any]:
        now = int(time.time() * 1000)
        await self.stores.auth.expire_openid_tokens(now)
        token = secrets.token_urlsafe(32)
        await self.stores.auth.add_openid_token(token, user_id, now + TOKEN_LIFETIME_S * 1000)
        return {"access_token": token, "token_type": "Bearer", "matrix_server_name": self.server_name,
                "expires_in": TOKEN_LIFETIME_S}

    async def userinfo(self, token: str | None) -> dict[str, Any]:
        if not token:
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Missing OpenID access token")
        user_id = await self.stores.auth.openid_user(token, int(time.time() * 1000))
        if user_id is None:
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Unknown or expired OpenID access token")
        return {"sub": user_id}
