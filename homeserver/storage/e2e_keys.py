"""End-to-end encryption keys: device keys, one-time keys, fallback keys, device-list changes."""

from __future__ import annotations

from typing import Any

import orjson

from homeserver.storage.database import Conn, Database, chunks, placeholders

#: Candidates read per attempt when claiming; a claim races other claims for the same rows.
CLAIM_CANDIDATES = 5


class E2EKeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ device keys

    async def get_device_keys(self, user_id: str, device_id: str, c: Conn | None = None) -> dict[str, Any] | None:
        raw = await (c or self.db).fetchval(
            "SELECT key_json FROM e2e_device_keys WHERE user_id = $1 AND device_id = $2", user_id, device_id)
        return orjson.loads(raw) if raw is not None else None

    async def set_device_keys(self, c: Conn, user_id: str, device_id: str, keys: dict[str, Any]) -> None:
        await c.execute(
            "INSERT INTO e2e_device_keys (user_id, device_id, key_json) VALUES ($1,$2,$3)"
            " ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json",
            user_id, device_id, orjson.dumps(keys).decode())

    async def device_keys_for_users(
        self, user_ids: list[str],
    ) -> dict[str, dict[str, tuple[dict[str, Any], str | None]]]:
        """user -> device -> (device keys, display name), for devices that still exist."""
        out: dict[str, dict[str, tuple[dict[str, Any], str | None]]] = {}
        for chunk in chunks(user_ids):
            rows = await self.db.fetch(
                "SELECT k.user_id, k.device_id, k.key_json, d.display_name FROM e2e_device_keys k"
                " JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id"
                f" WHERE k.user_id IN ({placeholders(1, len(chunk))})",
                *chunk)
            for r in rows:
                out.setdefault(r["user_id"], {})[r["device_id"]] = (orjson.loads(r["key_json"]), r["display_name"])
        return out

    async def delete_device_keys(self, c: Conn, user_id: str, device_ids: list[str] | None) -> None:
        """Forget every key of these devices (None: all of the user's devices)."""
        tables = ("e2e_device_keys", "e2e_one_time_keys", "e2e_fallback_keys")
        for table in tables:
            if device_ids is None:
                await c.execute(f"DELETE FROM {table} WHERE user_id = $1", user_id)
            else:
                await c.executemany(f"DELETE FROM {table} WHERE user_id = $1 AND device_id = $2",
                                    [(user_id, d) for d in device_ids])

    # ------------------------------------------------------------------ one-time and fallback keys

    async def existing_one_time_keys(
        self, user_id: str, device_id: str, ids: list[tuple[str, str]],
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """(algorithm, key_id) -> stored key, for those of `ids` already uploaded."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        wanted = set(ids)
        for chunk in chunks(sorted({k for _, k in ids})):
            rows = await self.db.fetch(
                "SELECT algorithm, key_id, key_json FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2"
                f" AND key_id IN ({placeholders(3, len(chunk))})",
                user_id, device_id, *chunk)
            for r in rows:
                if (r["algorithm"], r["key_id"]) in wanted:
                    out[(r["algorithm"], r["key_id"])] = orjson.loads(r["key_json"])
        return out

    async def add_one_time_keys(
        self, c: Conn, user_id: str, device_id: str, keys: list[tuple[str, str, Any]],
    ) -> None:
        await c.executemany(
            "INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, key_id, key_json)"
            " VALUES ($1,$2,$3,$4,$5) ON CONFLICT (user_id, device_id, algorithm, key_id) DO NOTHING",
            [(user_id, device_id, alg, kid, orjson.dumps(key).decode()) for alg, kid, key in keys])

    async def one_time_key_counts(self, user_id: str, device_id: str) -> dict[str, int]:
        rows = await self.db.fetch(
            "SELECT algorithm, COUNT(*) AS n FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2"
            " GROUP BY algorithm", user_id, device_id)
        return {r["algorithm"]: int(r["n"]) for r in rows}

    async def set_fallback_key(
        self, c: Conn, user_id: str, device_id: str, algorithm: str, key_id: str, key: Any,
    ) -> None:
        """A new fallback key replaces the old one and starts unused; the same key again keeps
        its used flag (clients re-upload it)."""
        raw = orjson.dumps(key).decode()
        await c.execute(
            "INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json, used)"
            " VALUES ($1,$2,$3,$4,$5,FALSE) ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET"
            " used = CASE WHEN e2e_fallback_keys.key_id = excluded.key_id"
            " AND e2e_fallback_keys.key_json = excluded.key_json THEN e2e_fallback_keys.used ELSE FALSE END,"
            " key_id = excluded.key_id, key_json = excluded.key_json",
            user_id, device_id, algorithm, key_id, raw)

    async def unused_fallback_algorithms(self, user_id: str, device_id: str) -> list[str]:
        rows = await self.db.fetch(
            "SELECT algorithm FROM e2e_fallback_keys WHERE user_id = $1 AND device_id = $2 AND used = FALSE"
            " ORDER BY algorithm", user_id, device_id)
        return [r["algorithm"] for r in rows]

    async def claim(self, user_id: str, device_id: str, algorithm: str) -> tuple[str, Any] | None:
        """Take one one-time key (deleted: nobody else ever gets it), else the fallback key
        (marked used, handed out again). The DELETE ... RETURNING of a given row succeeds for
        exactly one of any number of concurrent claimers; a loser retries with another row."""
        while True:
            rows = await self.db.fetch(
                "SELECT key_id FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3"
                f" ORDER BY key_id LIMIT {CLAIM_CANDIDATES}", user_id, device_id, algorithm)
            if not rows:
                break
            for r in rows:
                async with self.db.transaction() as c:
                    got = await c.fetchrow(
                        "DELETE FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3"
                        " AND key_id = $4 RETURNING key_id, key_json",
                        user_id, device_id, algorithm, r["key_id"])
                if got is not None:
                    return str(got["key_id"]), orjson.loads(got["key_json"])
        async with self.db.transaction() as c:
            fb = await c.fetchrow(
                "UPDATE e2e_fallback_keys SET used = TRUE WHERE user_id = $1 AND device_id = $2"
                " AND algorithm = $3 RETURNING key_id, key_json", user_id, device_id, algorithm)
        if fb is None:
            return None
        return str(fb["key_id"]), orjson.loads(fb["key_json"])

    # ------------------------------------------------------------------ device-list changes

    async def add_device_list_change(self, c: Conn, user_id: str, pos: int, only_for: str | None = None) -> None:
        await c.execute(
            "INSERT INTO device_list_changes (user_id, stream_id, only_for) VALUES ($1,$2,$3)"
            " ON CONFLICT DO NOTHING", user_id, pos, only_for)

    async def device_lists_changed(self, viewer: str, user_ids: list[str], after: int, upto: int) -> set[str]:
        """Those of `user_ids` whose device list changed in (after, upto], as `viewer` sees it."""
        out: set[str] = set()
        if after >= upto:
            return out
        for chunk in chunks(user_ids):
            rows = await self.db.fetch(
                "SELECT DISTINCT user_id FROM device_list_changes WHERE stream_id > $1 AND stream_id <= $2"
                f" AND (only_for IS NULL OR only_for = $3) AND user_id IN ({placeholders(4, len(chunk))})",
                after, upto, viewer, *chunk)
            out.update(r["user_id"] for r in rows)
        return out

    async def last_device_list_change(self, user_id: str) -> int:
        """The stream position of the user's latest public device-list change (0 if none)."""
        n = await self.db.fetchval(
            "SELECT MAX(stream_id) FROM device_list_changes WHERE user_id = $1 AND only_for IS NULL", user_id)
        return int(n or 0)

    async def users_sharing_rooms(self, user_id: str) -> set[str]:
        """Everyone joined to a room the user is joined to (the user included)."""
        rows = await self.db.fetch(
            "SELECT DISTINCT o.user_id FROM memberships m JOIN memberships o ON o.room_id = m.room_id"
            " WHERE m.user_id = $1 AND m.membership = 'join' AND o.membership = 'join'", user_id)
        return {r["user_id"] for r in rows} | {user_id}

    async def membership_changes_since(
        self, user_id: str, after: int, upto: int,
    ) -> tuple[set[str], set[str]]:
        """(users who joined a room the user shares since `after`, users who left or were
        removed from one of them, or were in a room the user left, since `after`)."""
        joined: set[str] = set()
        left: set[str] = set()
        rows = await self.db.fetch(
            "SELECT o.user_id, o.membership FROM memberships m JOIN memberships o ON o.room_id = m.room_id"
            " WHERE m.user_id = $1 AND m.membership = 'join' AND o.stream_ordering > $2"
            " AND o.stream_ordering <= $3", user_id, after, upto)
        for r in rows:
            (joined if r["membership"] == "join" else left).add(r["user_id"])
        rows = await self.db.fetch(
            "SELECT o.user_id FROM memberships m JOIN memberships o ON o.room_id = m.room_id"
            " WHERE m.user_id = $1 AND m.membership IN ('leave', 'ban') AND m.stream_ordering > $2"
            " AND m.stream_ordering <= $3 AND o.membership = 'join'", user_id, after, upto)
        left.update(r["user_id"] for r in rows)
        return joined, left
