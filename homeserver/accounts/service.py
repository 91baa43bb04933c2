"""Accounts: registration, password login, JWT access tokens bound to devices, refresh tokens."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import is_valid_localpart
from homeserver.storage.stores import Stores

# OWASP's minimum for argon2id: 19 MiB, 2 iterations, 1 lane.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
MAX_PASSWORD_LENGTH = 512


@dataclass(frozen=True)
class Requester:
    user_id: str
    device_id: str
    jti: str
    is_admin: bool = False
    is_guest: bool = False


# Each hash takes 19 MiB: hashing at most two at a time bounds memory (and there are 2 cores).
# One semaphore per event loop (a semaphore is bound to the loop it first waits on).
_hash_slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


def _slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    sem = _hash_slots.get(loop)
    if sem is None:
        for old in [lp for lp in _hash_slots if lp.is_closed()]:
            del _hash_slots[old]
        sem = _hash_slots[loop] = asyncio.Semaphore(2)
    return sem


async def hash_password(password: str) -> str:
    async with _slots():
        return await asyncio.to_thread(_hasher.hash, password)


async def check_password(stored_hash: str | None, password: str) -> bool:
    if not stored_hash:
        return False

    def verify() -> bool:
        try:
            return _hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async with _slots():
        return await asyncio.to_thread(verify)


class AccountService:
    def __init__(self, stores: Stores, server_name: str, token_secret: bytes, admins: tuple[str, ...],
                 access_token_lifetime_ms: int) -> None:
        self.stores = stores
        self.server_name = server_name
        self._secret = token_secret
        self._admins = set(admins)
        self.access_token_lifetime_ms = access_token_lifetime_ms
        #: Called after devices are deleted (None: all of the user's devices), so that their
        #: encryption keys go too and the change is announced; wired by the Homeserver.
        self.on_devices_deleted: Callable[[str, list[str] | None], Awaitable[None]] | None = None
        #: Called after a device is added (a login) or renamed: the user's device list changed.
        self.on_device_list_changed: Callable[[str], Awaitable[None]] | None = None
        # (user_id, the device that changed it): pushers of other devices go with the old password.
        self.on_password_changed: Callable[[str, str | None], Awaitable[None]] | None = None

    async def _device_list_changed(self, out: dict[str, Any]) -> dict[str, Any]:
        """After a login committed (`out` is its response): announce the new device."""
        if self.on_device_list_changed is not None and "device_id" in out:
            await self.on_device_list_changed(str(out["user_id"]))
        return out

    async def _devices_deleted(self, user_id: str, device_ids: list[str] | None) -> None:
        if self.on_devices_deleted is not None and (device_ids is None or device_ids):
            await self.on_devices_deleted(user_id, device_ids)

    def user_id_for(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    def is_local(self, user_id: str) -> bool:
        return user_id.endswith(":" + self.server_name)

    def validate_localpart(self, localpart: Any) -> str:
        if not isinstance(localpart, str) or not localpart:
            raise MatrixError(400, "M_INVALID_USERNAME", "Username must be a non-empty string")
        localpart = localpart.lower()
        if not is_valid_localpart(localpart):
            raise MatrixError(
                400, "M_INVALID_USERNAME", "Username may contain only a-z, 0-9, and . _ = - / +"
            )
        if len(self.user_id_for(localpart).encode()) > 255:
            raise MatrixError(400, "M_INVALID_USERNAME", "User ID would be longer than 255 bytes")
        return localpart

    async def register(
        self,
        localpart: str,
        password: str | None,
        *,
        admin: bool = False,
        device_id: str | None = None,
        device_name: str | None = None,
        inhibit_login: bool = False,
        want_refresh: bool = False,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> dict[str, Any]:
        localpart = self.validate_localpart(localpart)
        user_id = self.user_id_for(localpart)
        if password is not None and len(password) > MAX_PASSWORD_LENGTH:
            raise MatrixError(400, "M_INVALID_PARAM", "Password too long")
        pw_hash = await hash_password(password) if password else None
        now = int(time.time() * 1000)
        async with self.stores.db.transaction() as c:
            created = await self.stores.accounts.create_user(
                c, user_id, pw_hash, now, admin or user_id in self._admins, localpart
            )
            if not created:
                raise MatrixError(400, "M_USER_IN_USE", "User ID already taken")
            if inhibit_login:
                return {"user_id": user_id}
            out = await self._issue(c, user_id, device_id, device_name, want_refresh, ip, user_agent=user_agent)
        return await self._device_list_changed(out)

    async def register_guest(
        self, device_id: str | None, device_name: str | None, want_refresh: bool, ip: str | None,
    ) -> dict[str, Any]:
        """A guest account: a numeric localpart, no password (client-server API §Guest access)."""
        now = int(time.time() * 1000)
        for _ in range(10):
            localpart = str(secrets.randbelow(10**12))
            user_id = self.user_id_for(localpart)
            async with self.stores.db.transaction() as c:
                if await self.stores.accounts.create_user(c, user_id, None, now, False, localpart, True):
                    out = await self._issue(c, user_id, device_id, device_name, want_refresh, ip, guest=True)
                else:
                    continue
            return await self._device_list_changed(out)
        raise MatrixError(500, "M_UNKNOWN", "Could not allocate a guest user ID")

    async def upgrade_guest(
        self, guest: Requester, localpart: Any, password: str | None, device_id: str | None,
        device_name: str | None, inhibit_login: bool, want_refresh: bool, ip: str | None,
    ) -> dict[str, Any]:
        """Turn a guest into a full account with the same user ID; the guest's tokens end."""
        if not guest.is_guest:
            raise MatrixError(403, "M_FORBIDDEN", "guest_access_token is not a guest's token")
        if self.user_id_for(self.validate_localpart(localpart)) != guest.user_id:
            raise MatrixError(403, "M_FORBIDDEN", "A guest may only upgrade their own account")
        if password is not None and len(password) > MAX_PASSWORD_LENGTH:
            raise MatrixError(400, "M_INVALID_PARAM", "Password too long")
        pw_hash = await hash_password(password) if password else None
        async with self.stores.db.transaction() as c:
            if not await self.stores.accounts.is_guest(guest.user_id, c):
                raise MatrixError(400, "M_USER_IN_USE", "User ID already taken")
            await self.stores.accounts.upgrade_guest(c, guest.user_id, pw_hash)
            await self.stores.accounts.delete_devices(c, guest.user_id, None)
            if inhibit_login:
                return {"user_id": guest.user_id}
            out = await self._issue(c, guest.user_id, device_id or guest.device_id, device_name,
                                    want_refresh, ip)
        return await self._device_list_changed(out)

    async def login_password(
        self, user_id: str, password: str, device_id: str | None, device_name: str | None,
        want_refresh: bool, ip: str | None, user_agent: str | None = None,
    ) -> dict[str, Any]:
        user = await self.stores.accounts.get_user(user_id)
        ok = await check_password(user["password_hash"] if user else None, password)
        if not user or not ok:
            raise MatrixError(403, "M_FORBIDDEN", "Invalid username or password")
        if user["deactivated"]:
            raise MatrixError(403, "M_USER_DEACTIVATED", "This account has been deactivated")
        async with self.stores.db.transaction() as c:
            if device_id is not None:
                # Re-using a device ID replaces that device's old tokens but keeps the device
                # (and its encryption keys).
                await self.stores.accounts.revoke_device_tokens(c, user_id, device_id)
            out = await self._issue(c, user_id, device_id, device_name, want_refresh, ip, user_agent=user_agent)
        return await self._device_list_changed(out)

    async def login_registered(self, user_id: str, device_id: str | None, device_name: str | None,
                               want_refresh: bool, ip: str | None,
                               user_agent: str | None = None) -> dict[str, Any]:
        """A new device and token for an account whose registration the caller already
        authenticated (a retried registration of a finished UIA session)."""
        user = await self.stores.accounts.get_user(user_id)
        if user is None or user["deactivated"]:
            raise MatrixError(403, "M_FORBIDDEN", "This account is no longer available")
        async with self.stores.db.transaction() as c:
            out = await self._issue(c, user_id, device_id, device_name, want_refresh, ip, user_agent=user_agent)
        return await self._device_list_changed(out)

    async def _issue(
        self, c: Any, user_id: str, device_id: str | None, device_name: str | None,
        want_refresh: bool, ip: str | None, guest: bool = False, user_agent: str | None = None,
    ) -> dict[str, Any]:
        device_id = device_id or secrets.token_urlsafe(8).upper().replace("-", "A").replace("_", "B")
        now = int(time.time() * 1000)
        await self.stores.accounts.upsert_device(c, user_id, device_id, device_name, now, ip,
                                                 user_agent[:512] if user_agent else None)
        out = await self._mint(c, user_id, device_id, want_refresh, now, guest)
        out.update({"user_id": user_id, "device_id": device_id, "home_server": self.server_name})
        return out

    async def _mint(self, c: Any, user_id: str, device_id: str, want_refresh: bool, now: int,
                    guest: bool = False) -> dict[str, Any]:
        jti = secrets.token_urlsafe(16)
        claims: dict[str, Any] = {"sub": user_id, "dev": device_id, "jti": jti, "iat": now // 1000}
        if guest:
            claims["gst"] = True  # guests' tokens are revoked when the account is upgraded
        expires = None
        if want_refresh:
            expires = now + self.access_token_lifetime_ms
            claims["exp"] = expires // 1000
        await self.stores.accounts.add_access_token(c, jti, user_id, device_id, expires)
        out: dict[str, Any] = {"access_token": "syt_" + jwt.encode(claims, self._secret, "HS256")}
        if want_refresh:
            refresh = "syr_" + secrets.token_urlsafe(32)
            await self.stores.accounts.add_refresh_token(c, refresh, user_id, device_id, jti)
            out["refresh_token"] = refresh
            out["expires_in_ms"] = self.access_token_lifetime_ms
        return out

    async def authenticate(self, token: str) -> Requester:
        if not token.startswith("syt_"):
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Unrecognised access token", soft_logout=False)
        try:
            claims = jwt.decode(token[4:], self._secret, algorithms=["HS256"],
                                options={"require": ["sub", "dev", "jti"]})
        except jwt.ExpiredSignatureError:
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Access token has expired", soft_logout=True) from None
        except jwt.PyJWTError:
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Unrecognised access token", soft_logout=False) from None
        row = await self.stores.accounts.token_valid(str(claims["jti"]))
        if row is None:
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Access token has been revoked", soft_logout=False)
        user_id, device_id, _ = row
        return Requester(user_id, device_id, str(claims["jti"]), user_id in self._admins,
                         claims.get("gst") is True)

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        """Rotate: the old refresh token stays usable until the new access token is first used
        (here: until the new refresh token is used), as the spec allows."""
        async with self.stores.db.transaction() as c:
            row = await self.stores.accounts.get_refresh_token(c, refresh_token)
            if row is None:
                raise MatrixError(401, "M_UNKNOWN_TOKEN", "Unknown refresh token", soft_logout=True)
            now = int(time.time() * 1000)
            if row["next_token"]:
                # A retry of an earlier refresh: retire the previous pair issued from this token.
                prev = await self.stores.accounts.get_refresh_token(c, row["next_token"])
                if prev is not None:
                    await self.stores.accounts.delete_access_token(c, prev["access_jti"])
                    await self.stores.accounts.delete_refresh_token(c, row["next_token"])
            guest = await self.stores.accounts.is_guest(row["user_id"], c)
            out = await self._mint(c, row["user_id"], row["device_id"], True, now, guest)
            await self.stores.accounts.set_next_refresh(c, refresh_token, out["refresh_token"])
            # The access token minted with the old refresh token is retired now.
            await self.stores.accounts.delete_access_token(c, row["access_jti"])
            # The refresh token that produced this one is done once its successor is used.
            await self.stores.accounts.delete_refresh_predecessor(c, refresh_token)
            return out

    async def logout(self, req: Requester) -> None:
        await self.delete_devices(req.user_id, [req.device_id])

    async def logout_all(self, user_id: str) -> None:
        await self.delete_devices(user_id, None)

    async def delete_devices(self, user_id: str, device_ids: list[str] | None) -> None:
        """Delete devices and revoke their tokens at once (None: every device)."""
        async with self.stores.db.transaction() as c:
            await self.stores.accounts.delete_devices(c, user_id, device_ids)
        await self._devices_deleted(user_id, device_ids)

    async def deactivate(self, user_id: str) -> None:
        async with self.stores.db.transaction() as c:
            await self.stores.accounts.deactivate(c, user_id)
            await self.stores.accounts.delete_devices(c, user_id, None)
        await self._devices_deleted(user_id, None)

    async def change_password(self, req: Requester, new_password: str, logout_devices: bool) -> None:
        if len(new_password) > MAX_PASSWORD_LENGTH:
            raise MatrixError(400, "M_INVALID_PARAM", "Password too long")
        pw_hash = await hash_password(new_password)
        async with self.stores.db.transaction() as c:
            await self.stores.accounts.set_password(c, req.user_id, pw_hash)
            others: list[str] = []
            if logout_devices:
                others = [str(d["device_id"]) for d in await self.stores.accounts.list_devices(req.user_id)
                          if d["device_id"] != req.device_id]
                await self.stores.accounts.delete_other_devices(c, req.user_id, req.device_id)
        await self._devices_deleted(req.user_id, others)
        if self.on_password_changed is not None:
            await self.on_password_changed(req.user_id, req.device_id)

    async def user_exists(self, user_id: str) -> bool:
        """Whether the ID is taken (deactivated accounts included: IDs are never reused)."""
        return await self.stores.accounts.user_exists(user_id)

    # ------------------------------------------------------------------ devices

    async def list_devices(self, user_id: str) -> list[dict[str, Any]]:
        return await self.stores.accounts.list_devices(user_id)

    async def get_device(self, user_id: str, device_id: str) -> dict[str, Any] | None:
        return await self.stores.accounts.get_device(user_id, device_id)

    async def rename_device(self, user_id: str, device_id: str, name: str | None) -> bool:
        """Set (or clear) a device's display name; False for an unknown device."""
        renamed = await self.stores.accounts.rename_device(user_id, device_id, name)
        if renamed:
            await self._device_list_changed({"user_id": user_id, "device_id": device_id})
        return renamed

    async def verify_password(self, user_id: str, password: Any) -> bool:
        if not isinstance(password, str):
            return False
        user = await self.stores.accounts.get_user(user_id)
        return await check_password(user["password_hash"] if user else None, password)


def token_secret_from_seed(seed: bytes) -> bytes:
    return hashlib.sha256(b"parley-access-token-v1" + seed).digest()
