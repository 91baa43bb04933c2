"""Accounts, devices, access and refresh tokens."""

from __future__ import annotations

from typing import Any

from homeserver.storage.database import Conn, Database, chunks, placeholders


class AccountStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_user(
        self, c: Conn, user_id: str, password_hash: str | None, now: int, admin: bool, displayname: str,
        is_guest: bool = False,
    ) -> bool:
        existing = await c.fetchval("SELECT 1 FROM users WHERE user_id = $1", user_id)
        if existing:
            return False
        await c.execute(
            "INSERT INTO users (user_id, password_hash, created_ts, is_admin, displayname, is_guest)"
            " VALUES ($1,$2,$3,$4,$5,$6)",
            user_id, password_hash, now, admin, displayname, is_guest,
        )
        return True

    async def is_guest(self, user_id: str, c: Conn | None = None) -> bool:
        sql = "SELECT is_guest FROM users WHERE user_id = $1"
        return bool(await (c.fetchval(sql, user_id) if c else self.db.fetchval(sql, user_id)))

    async def guests_among(self, user_ids: list[str]) -> set[str]:
        out: set[str] = set()
        for chunk in chunks(user_ids):
            rows = await self.db.fetch(
                f"SELECT user_id FROM users WHERE is_guest = TRUE AND user_id IN"
                f" ({placeholders(1, len(chunk))})",
                *chunk,
            )
            out.update(r["user_id"] for r in rows)
        return out

    async def upgrade_guest(self, c: Conn, user_id: str, password_hash: str | None) -> None:
        await c.execute(
            "UPDATE users SET is_guest = FALSE, password_hash = $1 WHERE user_id = $2",
            password_hash, user_id,
        )

    async def get_user(self, user_id: str) -> dict[str, Any] | None:
        return await self.db.fetchrow(
            "SELECT user_id, password_hash, is_admin, deactivated, displayname, avatar_url"
            " FROM users WHERE user_id = $1",
            user_id,
        )

    async def user_exists(self, user_id: str) -> bool:
        return bool(await self.db.fetchval("SELECT 1 FROM users WHERE user_id = $1", user_id))

    async def set_password(self, c: Conn, user_id: str, password_hash: str | None) -> None:
        await c.execute("UPDATE users SET password_hash = $1 WHERE user_id = $2", password_hash, user_id)

    async def deactivate(self, c: Conn, user_id: str) -> None:
        await c.execute(
            "UPDATE users SET deactivated = TRUE, password_hash = NULL WHERE user_id = $1", user_id
        )

    async def set_profile_field(self, user_id: str, field: str, value: str | None) -> None:
        assert field in ("displayname", "avatar_url")
        await self.db.execute(f"UPDATE users SET {field} = $1 WHERE user_id = $2", value, user_id)

    # ------------------------------------------------------------------ devices

    async def upsert_device(
        self, c: Conn, user_id: str, device_id: str, display_name: str | None, now: int, ip: str | None,
        user_agent: str | None = None,
    ) -> None:
        await c.execute(
            "INSERT INTO devices (user_id, device_id, display_name, last_seen_ts, last_seen_ip,"
            " last_seen_user_agent) VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (user_id, device_id) DO UPDATE SET"
            " last_seen_ts = excluded.last_seen_ts, last_seen_ip = excluded.last_seen_ip,"
            " last_seen_user_agent = excluded.last_seen_user_agent,"
            " display_name = COALESCE(excluded.display_name, devices.display_name)",
            user_id, device_id, display_name, now, ip, user_agent,
        )

    async def list_devices(self, user_id: str) -> list[dict[str, Any]]:
        return await self.db.fetch(
            "SELECT device_id, display_name, last_seen_ts, last_seen_ip FROM devices"
            " WHERE user_id = $1 ORDER BY device_id",
            user_id,
        )

    async def device_connections(self, user_id: str) -> list[dict[str, Any]]:
        return await self.db.fetch(
            "SELECT device_id, last_seen_ts, last_seen_ip, last_seen_user_agent FROM devices"
            " WHERE user_id = $1 ORDER BY device_id",
            user_id,
        )

    async def get_device(self, user_id: str, device_id: str) -> dict[str, Any] | None:
        return await self.db.fetchrow(
            "SELECT device_id, display_name, last_seen_ts, last_seen_ip FROM devices"
            " WHERE user_id = $1 AND device_id = $2",
            user_id, device_id,
        )

    async def rename_device(self, user_id: str, device_id: str, name: str | None) -> bool:
        async with self.db.transaction() as c:
            if not await c.fetchval(
                "SELECT 1 FROM devices WHERE user_id = $1 AND device_id = $2", user_id, device_id
            ):
                return False
            await c.execute(
                "UPDATE devices SET display_name = $1 WHERE user_id = $2 AND device_id = $3",
                name, user_id, device_id,
            )
            return True

    async def delete_devices(self, c: Conn, user_id: str, device_ids: list[str] | None) -> None:
        """Delete devices and revoke their tokens; None = every device of the user."""
        if device_ids is None:
            for table in ("devices", "access_tokens", "refresh_tokens"):
                await c.execute(f"DELETE FROM {table} WHERE user_id = $1", user_id)
            return
        for table in ("devices", "access_tokens", "refresh_tokens"):
            await c.executemany(
                f"DELETE FROM {table} WHERE user_id = $1 AND device_id = $2",
                [(user_id, d) for d in device_ids],
            )

    async def revoke_device_tokens(self, c: Conn, user_id: str, device_id: str) -> None:
        """Revoke a device's tokens, keeping the device itself."""
        for table in ("access_tokens", "refresh_tokens"):
            await c.execute(f"DELETE FROM {table} WHERE user_id = $1 AND device_id = $2", user_id, device_id)

    async def delete_other_devices(self, c: Conn, user_id: str, keep_device: str) -> None:
        for table in ("access_tokens", "refresh_tokens", "devices"):
            await c.execute(
                f"DELETE FROM {table} WHERE user_id = $1 AND device_id != $2", user_id, keep_device
            )

    # ------------------------------------------------------------------ tokens

    async def add_access_token(
        self, c: Conn, jti: str, user_id: str, device_id: str, expires_ts: int | None
    ) -> None:
        await c.execute(
            "INSERT INTO access_tokens (jti, user_id, device_id, expires_ts) VALUES ($1,$2,$3,$4)",
            jti, user_id, device_id, expires_ts,
        )

    async def token_valid(self, jti: str) -> tuple[str, str, int | None] | None:
        r = await self.db.fetchrow(
            "SELECT user_id, device_id, expires_ts FROM access_tokens WHERE jti = $1", jti
        )
        return (r["user_id"], r["device_id"], r["expires_ts"]) if r else None

    async def delete_access_token(self, c: Conn, jti: str) -> None:
        await c.execute("DELETE FROM access_tokens WHERE jti = $1", jti)

    async def add_refresh_token(
        self, c: Conn, token: str, user_id: str, device_id: str, access_jti: str
    ) -> None:
        await c.execute(
            "INSERT INTO refresh_tokens (token, user_id, device_id, access_jti) VALUES ($1,$2,$3,$4)",
            token, user_id, device_id, access_jti,
        )

    async def get_refresh_token(self, c: Conn, token: str) -> dict[str, Any] | None:
        return await c.fetchrow(
            "SELECT token, user_id, device_id, access_jti, next_token FROM refresh_tokens"
            " WHERE token = $1",
            token,
        )

    async def set_next_refresh(self, c: Conn, token: str, next_token: str) -> None:
        await c.execute("UPDATE refresh_tokens SET next_token = $1 WHERE token = $2", next_token, token)

    async def delete_refresh_predecessor(self, c: Conn, token: str) -> None:
        """Retire the refresh token whose successor is `token` (it has now been used)."""
        await c.execute("DELETE FROM refresh_tokens WHERE next_token = $1", token)

    async def delete_refresh_token(self, c: Conn, token: str) -> None:
        await c.execute("DELETE FROM refresh_tokens WHERE token = $1", token)
