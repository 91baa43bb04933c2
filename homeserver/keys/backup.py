"""Server-side key backups (client-server API §Server-side key backups).

A user has numbered backup versions; only the newest live one accepts uploads (others answer
M_WRONG_ROOM_KEYS_VERSION). Each change of a version's keys moves its etag, so clients can
tell whether the backup changed without downloading it. The session data stays encrypted
with the user's backup key: the server never sees a room key.
"""

from __future__ import annotations

from typing import Any

from homeserver.protocol.e2e_keys import backup_key_is_better, check_backup_key
from homeserver.protocol.errors import MatrixError
from homeserver.storage.stores import Stores

#: Most sessions in one upload.
MAX_SESSIONS_PER_UPLOAD = 10_000


def _parse_version(version: Any) -> int:
    if not isinstance(version, str) or not version.isascii() or not version.isdigit() or len(version) > 18:
        raise MatrixError(404, "M_NOT_FOUND", "Unknown backup version")
    return int(version)


def _version_json(v: dict[str, Any], count: int) -> dict[str, Any]:
    return {"version": str(v["version"]), "algorithm": v["algorithm"], "auth_data": v["auth_data"],
            "etag": str(v["etag"]), "count": count}


def _check_version_body(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    algorithm, auth_data = body.get("algorithm"), body.get("auth_data")
    if not isinstance(algorithm, str) or not algorithm:
        raise MatrixError(400, "M_BAD_JSON", "'algorithm' must be a string")
    if not isinstance(auth_data, dict):
        raise MatrixError(400, "M_BAD_JSON", "'auth_data' must be an object")
    return algorithm, auth_data


class KeyBackupService:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    async def create_version(self, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
        algorithm, auth_data = _check_version_body(body)
        return {"version": str(await self.stores.key_backup.create_version(user_id, algorithm, auth_data))}

    async def get_version(self, user_id: str, version: str | None) -> dict[str, Any]:
        v = await self.stores.key_backup.get_version(user_id, None if version is None else _parse_version(version))
        if v is None:
            raise MatrixError(404, "M_NOT_FOUND", "No current backup version" if version is None
                              else "Unknown backup version")
        return _version_json(v, await self.stores.key_backup.count(user_id, v["version"]))

    async def update_version(self, user_id: str, version: str, body: dict[str, Any]) -> None:
        number = _parse_version(version)
        algorithm, auth_data = _check_version_body(body)
        if "version" in body and body["version"] != version:
            raise MatrixError(400, "M_INVALID_PARAM", "The version in the body does not match the path")
        v = await self.stores.key_backup.get_version(user_id, number)
        if v is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown backup version")
        if algorithm != v["algorithm"]:
            raise MatrixError(400, "M_INVALID_PARAM", "A backup version's algorithm cannot change")
        await self.stores.key_backup.update_auth_data(user_id, number, auth_data)

    async def delete_version(self, user_id: str, version: str) -> None:
        if not await self.stores.key_backup.delete_version(user_id, _parse_version(version)):
            raise MatrixError(404, "M_NOT_FOUND", "Unknown backup version")

    # ------------------------------------------------------------------ keys

    async def _readable(self, user_id: str, version: Any) -> int:
        if version is None:
            raise MatrixError(400, "M_MISSING_PARAM", "'version' is required")
        number = _parse_version(version)
        if await self.stores.key_backup.get_version(user_id, number) is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown backup version")
        return number

    async def get_keys(self, user_id: str, version: Any, room_id: str | None,
                       session_id: str | None) -> dict[str, Any]:
        number = await self._readable(user_id, version)
        keys = await self.stores.key_backup.get_keys(user_id, number, room_id, session_id)
        if session_id is not None:
            if not keys:
                raise MatrixError(404, "M_NOT_FOUND", "No backup of that session")
            return keys[0][2]
        rooms: dict[str, Any] = {}
        for r, s, k in keys:
            rooms.setdefault(r, {"sessions": {}})["sessions"][s] = k
        if room_id is not None:
            return rooms.get(room_id, {"sessions": {}})
        return {"rooms": rooms}

    async def put_keys(self, user_id: str, version: Any, keys: list[tuple[str, str, Any]]) -> dict[str, Any]:
        if version is None:
            raise MatrixError(400, "M_MISSING_PARAM", "'version' is required")
        number = _parse_version(version)
        if len(keys) > MAX_SESSIONS_PER_UPLOAD:
            raise MatrixError(400, "M_INVALID_PARAM", f"At most {MAX_SESSIONS_PER_UPLOAD} sessions per upload")
        checked = [(r, s, check_backup_key(k)) for r, s, k in keys]
        store = self.stores.key_backup
        async with self.stores.db.transaction() as c:
            current = await store.get_version(user_id, None, c)
            if current is None:
                raise MatrixError(404, "M_NOT_FOUND", "Unknown backup version")
            if current["version"] != number:
                raise MatrixError(403, "M_WRONG_ROOM_KEYS_VERSION", "Not the current backup version",
                                  current_version=str(current["version"]))
            await store.lock_version(c, user_id, number)
            existing = await store.existing(c, user_id, number, [(r, s) for r, s, _ in checked])
            better = [(r, s, k) for r, s, k in checked
                      if (r, s) not in existing or backup_key_is_better(k, existing[(r, s)])]
            etag = current["etag"]
            if better:
                await store.put_keys(c, user_id, number, better)
                etag = await store.bump_etag(c, user_id, number)
            count = await store.count(user_id, number, c)
        return {"etag": str(etag), "count": count}

    async def delete_keys(self, user_id: str, version: Any, room_id: str | None,
                          session_id: str | None) -> dict[str, Any]:
        number = await self._readable(user_id, version)
        store = self.stores.key_backup
        async with self.stores.db.transaction() as c:
            await store.delete_keys(c, user_id, number, room_id, session_id)
            etag = await store.bump_etag(c, user_id, number)
            count = await store.count(user_id, number, c)
        return {"etag": str(etag), "count": count}
