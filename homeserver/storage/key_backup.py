"""Server-side key backup: versions (algorithm + auth_data) and the encrypted room keys in each."""

from __future__ import annotations

from typing import Any

import orjson

from homeserver.storage.database import Conn, Database


class KeyBackupStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_version(self, user_id: str, algorithm: str, auth_data: dict[str, Any]) -> int:
        async with self.db.transaction() as c:
            last = await c.fetchval("SELECT MAX(version) FROM e2e_room_keys_versions WHERE user_id = $1", user_id)
            version = int(last or 0) + 1
            await c.execute(
                "INSERT INTO e2e_room_keys_versions (user_id, version, algorithm, auth_data, etag, deleted)"
                " VALUES ($1,$2,$3,$4,0,FALSE)", user_id, version, algorithm, orjson.dumps(auth_data).decode())
        return version

    async def get_version(self, user_id: str, version: int | None, c: Conn | None = None) -> dict[str, Any] | None:
        """A live version (None: the newest one)."""
        db = c or self.db
        if version is None:
            row = await db.fetchrow(
                "SELECT version, algorithm, auth_data, etag FROM e2e_room_keys_versions WHERE user_id = $1"
                " AND deleted = FALSE ORDER BY version DESC LIMIT 1", user_id)
        else:
            row = await db.fetchrow(
                "SELECT version, algorithm, auth_data, etag FROM e2e_room_keys_versions WHERE user_id = $1"
                " AND version = $2 AND deleted = FALSE", user_id, version)
        if row is None:
            return None
        return {"version": int(row["version"]), "algorithm": row["algorithm"],
                "auth_data": orjson.loads(row["auth_data"]), "etag": int(row["etag"])}

    async def update_auth_data(self, user_id: str, version: int, auth_data: dict[str, Any]) -> None:
        await self.db.execute(
            "UPDATE e2e_room_keys_versions SET auth_data = $3 WHERE user_id = $1 AND version = $2",
            user_id, version, orjson.dumps(auth_data).decode())

    async def delete_version(self, user_id: str, version: int) -> bool:
        async with self.db.transaction() as c:
            got = await c.fetchval(
                "UPDATE e2e_room_keys_versions SET deleted = TRUE WHERE user_id = $1 AND version = $2"
                " AND deleted = FALSE RETURNING version", user_id, version)
            await c.execute("DELETE FROM e2e_room_keys WHERE user_id = $1 AND version = $2", user_id, version)
        return got is not None

    async def count(self, user_id: str, version: int, c: Conn | None = None) -> int:
        db = c or self.db
        return int(await db.fetchval(
            "SELECT COUNT(*) FROM e2e_room_keys WHERE user_id = $1 AND version = $2", user_id, version) or 0)

    async def get_keys(
        self, user_id: str, version: int, room_id: str | None, session_id: str | None,
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """(room, session, key data) at the chosen level (None: every room / session)."""
        sql = ("SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data"
               " FROM e2e_room_keys WHERE user_id = $1 AND version = $2")
        args: list[Any] = [user_id, version]
        if room_id is not None:
            sql += " AND room_id = $3"
            args.append(room_id)
            if session_id is not None:
                sql += " AND session_id = $4"
                args.append(session_id)
        rows = await self.db.fetch(sql, *args)
        return [(r["room_id"], r["session_id"], {
            "first_message_index": int(r["first_message_index"]), "forwarded_count": int(r["forwarded_count"]),
            "is_verified": bool(r["is_verified"]), "session_data": orjson.loads(r["session_data"]),
        }) for r in rows]

    async def put_keys(self, c: Conn, user_id: str, version: int,
                       keys: list[tuple[str, str, dict[str, Any]]]) -> None:
        await c.executemany(
            "INSERT INTO e2e_room_keys (user_id, version, room_id, session_id, first_message_index,"
            " forwarded_count, is_verified, session_data) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)"
            " ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET"
            " first_message_index = excluded.first_message_index, forwarded_count = excluded.forwarded_count,"
            " is_verified = excluded.is_verified, session_data = excluded.session_data",
            [(user_id, version, r, s, k["first_message_index"], k["forwarded_count"], k["is_verified"],
              orjson.dumps(k["session_data"]).decode()) for r, s, k in keys])

    async def delete_keys(self, c: Conn, user_id: str, version: int, room_id: str | None,
                          session_id: str | None) -> None:
        sql = "DELETE FROM e2e_room_keys WHERE user_id = $1 AND version = $2"
        args: list[Any] = [user_id, version]
        if room_id is not None:
            sql += " AND room_id = $3"
            args.append(room_id)
            if session_id is not None:
                sql += " AND session_id = $4"
                args.append(session_id)
        await c.execute(sql, *args)

    async def bump_etag(self, c: Conn, user_id: str, version: int) -> int:
        return int(await c.fetchval(
            "UPDATE e2e_room_keys_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2"
            " RETURNING etag", user_id, version))

    async def lock_version(self, c: Conn, user_id: str, version: int) -> dict[str, Any] | None:
        """The version row, locked for this transaction on PostgreSQL (writers of one backup
        queue up, so that the better-key comparison sees the latest key)."""
        if self.db.dialect == "postgres":
            await c.execute("SELECT 1 FROM e2e_room_keys_versions WHERE user_id = $1 AND version = $2 FOR UPDATE",
                            user_id, version)
        return await self.get_version(user_id, version, c)

    async def existing(self, c: Conn, user_id: str, version: int,
                       ids: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for room_id, session_id in ids:
            r = await c.fetchrow(
                "SELECT first_message_index, forwarded_count, is_verified FROM e2e_room_keys WHERE user_id = $1"
                " AND version = $2 AND room_id = $3 AND session_id = $4", user_id, version, room_id, session_id)
            if r is not None:
                out[(room_id, session_id)] = {"first_message_index": int(r["first_message_index"]),
                                              "forwarded_count": int(r["forwarded_count"]),
                                              "is_verified": bool(r["is_verified"])}
        return out
