"""Registration with the operator's shared secret, as Synapse's admin API defines it.

`GET /_synapse/admin/v1/register` hands out a nonce; `POST` creates the account when `mac` is
the hex HMAC-SHA1, keyed with `registration_shared_secret`, of
`nonce NUL username NUL password NUL ("admin" | "notadmin") [NUL user_type]`. Tools such as
`register_new_matrix_user` speak this.

Nonces carry their own issue time and an HMAC of it, so any worker accepts a nonce another
worker issued; replaying a used nonce cannot create a second account, because the MAC binds
the username, which is then taken.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

from homeserver.accounts.profile import ProfileService
from homeserver.accounts.service import AccountService
from homeserver.protocol.errors import MatrixError

NONCE_LIFETIME_MS = 60_000


class SharedSecretRegistration:
    def __init__(self, secret: str | None, accounts: AccountService, profile: ProfileService) -> None:
        self._secret = secret.encode() if secret else None
        self._nonce_key = hashlib.sha256(b"parley-register-nonce-v1" + (self._secret or b"")).digest()
        self.accounts = accounts
        self.profile = profile

    def _enabled_secret(self) -> bytes:
        if self._secret is None:
            raise MatrixError(400, "M_UNKNOWN", "Shared secret registration is not enabled")
        return self._secret

    def _nonce_mac(self, body: str) -> str:
        return hmac.new(self._nonce_key, body.encode(), hashlib.sha256).hexdigest()[:32]

    def new_nonce(self, now_ms: int | None = None) -> str:
        self._enabled_secret()
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        body = f"{now_ms}.{secrets.token_hex(12)}"
        return f"{body}.{self._nonce_mac(body)}"

    def _check_nonce(self, nonce: str, now_ms: int) -> None:
        body, _, mac = nonce.rpartition(".")
        issued = body.split(".", 1)[0]
        if not body or not issued.isdigit() or not hmac.compare_digest(mac, self._nonce_mac(body)):
            raise MatrixError(400, "M_UNKNOWN", "Unrecognised nonce")
        if not 0 <= now_ms - int(issued) <= NONCE_LIFETIME_MS:
            raise MatrixError(400, "M_UNKNOWN", "Nonce has expired")

    async def register(self, body: dict[str, Any], now_ms: int | None = None) -> dict[str, Any]:
        secret = self._enabled_secret()
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        nonce, username, password = body.get("nonce"), body.get("username"), body.get("password")
        admin, user_type, mac = body.get("admin", False), body.get("user_type"), body.get("mac")
        for name, value in (("nonce", nonce), ("username", username), ("password", password), ("mac", mac)):
            if not isinstance(value, str) or not value:
                raise MatrixError(400, "M_INVALID_PARAM", f"'{name}' must be a non-empty string")
        if not isinstance(admin, bool):
            raise MatrixError(400, "M_INVALID_PARAM", "'admin' must be a boolean")
        if user_type is not None and not isinstance(user_type, str):
            raise MatrixError(400, "M_INVALID_PARAM", "'user_type' must be a string")
        displayname = body.get("displayname")
        if displayname is not None and not isinstance(displayname, str):
            raise MatrixError(400, "M_INVALID_PARAM", "'displayname' must be a string")
        assert isinstance(nonce, str) and isinstance(username, str) and isinstance(password, str)
        assert isinstance(mac, str)
        self._check_nonce(nonce, now_ms)
        if "\x00" in username or "\x00" in password:
            raise MatrixError(400, "M_INVALID_PARAM", "NUL characters are not allowed")
        want = expected_mac(secret, nonce, username, password, admin, user_type)
        if not hmac.compare_digest(want, mac.lower()):
            raise MatrixError(403, "M_FORBIDDEN", "HMAC incorrect")
        result = await self.accounts.register(username.lower(), password, admin=admin)
        if displayname:
            await self.profile.set(result["user_id"], "displayname", displayname)
        return {k: result[k] for k in ("user_id", "access_token", "device_id", "home_server") if k in result}


def expected_mac(secret: bytes, nonce: str, username: str, password: str, admin: bool,
                 user_type: str | None = None) -> str:
    """The hex HMAC-SHA1 a client must send (the algorithm Synapse documents)."""
    mac = hmac.new(secret, digestmod=hashlib.sha1)
    mac.update(nonce.encode() + b"\x00" + username.encode() + b"\x00" + password.encode() + b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    if user_type:
        mac.update(b"\x00" + user_type.encode())
    return mac.hexdigest()
