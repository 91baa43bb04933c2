"""Application services (Application Service API): who an `as_token` speaks for (identity
assertion with `user_id`), registration of users in their namespaces, exclusivity against
everyone else, `/ping`, and the queries a homeserver makes of an AS."""

from __future__ import annotations

import hmac
import time
from typing import Any
from urllib.parse import quote

import httpx

from homeserver.accounts.service import AccountService, Requester
from homeserver.appservice.registration import AppService, load_registrations
from homeserver.appservice.thirdparty import ThirdPartyLookups
from homeserver.config import Config
from homeserver.protocol.errors import MatrixError

AS_DEVICE_PREFIX = "AS_"


class AppServices:
    def __init__(self, config: Config, accounts: AccountService,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.accounts = accounts
        self.services = load_registrations(config.plugins.app_service_config_files)
        self.transport = transport
        self.thirdparty = ThirdPartyLookups(self.services, transport)

    def by_token(self, token: str) -> AppService | None:
        for a in self.services:
            if hmac.compare_digest(a.as_token.encode(), token.encode()):
                return a
        return None

    def by_id(self, as_id: str) -> AppService | None:
        return next((a for a in self.services if a.id == as_id), None)

    def sender(self, a: AppService) -> str:
        return self.accounts.user_id_for(a.sender_localpart)

    async def ensure_senders(self) -> None:
        for a in self.services:
            if not await self.accounts.user_exists(self.sender(a)):
                try:
                    await self.accounts.register(a.sender_localpart, None, inhibit_login=True)
                except MatrixError as e:
                    if e.errcode != "M_USER_IN_USE":
                        raise

    async def authenticate(self, a: AppService, assert_user: str | None) -> Requester:
        """The AS itself, or (identity assertion) a registered user of its namespace."""
        user_id = assert_user or self.sender(a)
        if user_id != self.sender(a):
            if not a.is_user(user_id):
                raise MatrixError(403, "M_FORBIDDEN", "The user is outside the application service's namespace")
            if not await self.accounts.user_exists(user_id):
                raise MatrixError(403, "M_FORBIDDEN", "The application service has not registered this user")
        return Requester(user_id, AS_DEVICE_PREFIX + a.id, f"as:{a.id}")

    def check_not_exclusive(self, user_id: str) -> None:
        """Ordinary registration may not take a user ID an AS holds exclusively."""
        if any(a.is_user(user_id, exclusive_only=True) for a in self.services):
            raise MatrixError(400, "M_EXCLUSIVE", "This user ID is reserved by an application service")

    def alias_reserved(self, alias: str, user_id: str) -> bool:
        """True when an AS holds `alias` exclusively and `user_id` is not one of its users."""
        return any(a.is_alias(alias, exclusive_only=True) and not (a.is_user(user_id) or user_id == self.sender(a))
                   for a in self.services)

    async def register(self, token: str | None, body: dict[str, Any]) -> dict[str, Any]:
        """POST /register with type m.login.application_service."""
        a = self.by_token(token or "")
        if a is None:
            raise MatrixError(401, "M_MISSING_TOKEN" if not token else "M_UNKNOWN_TOKEN",
                              "Registering as an application service needs its as_token")
        localpart = self.accounts.validate_localpart(body.get("username"))
        user_id = self.accounts.user_id_for(localpart)
        if not a.is_user(user_id) and user_id != self.sender(a):
            raise MatrixError(400, "M_EXCLUSIVE", "The user ID is outside the application service's namespace")
        inhibit = body.get("inhibit_login") is True
        device_id = body.get("device_id") if isinstance(body.get("device_id"), str) else None
        return await self.accounts.register(localpart, None, device_id=device_id, inhibit_login=inhibit)

    async def ping(self, req: Requester, as_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /_matrix/client/v1/appservice/{id}/ping: the homeserver pings the AS."""
        a = self.by_id(as_id)
        if a is None or req.jti != f"as:{as_id}":
            raise MatrixError(403, "M_FORBIDDEN", "Only the application service itself may ping it")
        if a.url is None:
            raise MatrixError(400, "M_URL_NOT_SET", "The application service has no URL")
        txn = body.get("transaction_id")
        payload = {"transaction_id": txn} if isinstance(txn, str) else {}
        start = time.monotonic()
        try:
            async with httpx.AsyncClient(timeout=15, transport=self.transport) as http:
                r = await http.post(f"{a.url}/_matrix/app/v1/ping", json=payload,
                                    headers={"Authorization": f"Bearer {a.hs_token}"})
        except httpx.TimeoutException:
            raise MatrixError(504, "M_CONNECTION_TIMEOUT", "The application service did not answer") from None
        except httpx.HTTPError as e:
            raise MatrixError(502, "M_CONNECTION_FAILED", f"Could not reach the application service: {e}") from None
        if r.status_code >= 300:
            err = MatrixError(502, "M_BAD_STATUS", "The application service answered with an error")
            err.extra.update({"status": r.status_code, "body": r.text[:1000]})  # the spec's extra fields
            raise err
        return {"duration_ms": int((time.monotonic() - start) * 1000)}

    async def query_user(self, user_id: str) -> bool:
        """Ask the AS whose namespace holds `user_id` to create it (GET /_matrix/app/v1/users/{userId})."""
        return await self._query(lambda a: a.is_user(user_id), f"users/{quote(user_id, safe='')}")

    async def query_alias(self, alias: str) -> bool:
        return await self._query(lambda a: a.is_alias(alias), f"rooms/{quote(alias, safe='')}")

    async def _query(self, matches: Any, path: str) -> bool:
        for a in self.services:
            if a.url is None or not matches(a):
                continue
            try:
                async with httpx.AsyncClient(timeout=10, transport=self.transport) as http:
                    r = await http.get(f"{a.url}/_matrix/app/v1/{path}",
                                       headers={"Authorization": f"Bearer {a.hs_token}"})
            except httpx.HTTPError:
                continue
            if r.status_code == 200:
                return True
        return False
