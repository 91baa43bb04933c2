"""Facts shared by every worker of one deployment (migration 007)."""

from __future__ import annotations

import time

from homeserver.storage.database import Database


class DeploymentStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def seen_signing_key(self, key_id: str, public_key: str) -> tuple[str, str]:
        """Record this key if the database has seen none yet; return the one it has seen
        (the first writer wins, atomically, however many workers start together)."""
        async with self._db.transaction() as c:
            await c.execute(
                "INSERT INTO deployment_signing_key (id, key_id, public_key, created_ts)"
                " VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
                key_id, public_key, int(time.time() * 1000),
            )
            row = await c.fetchrow("SELECT key_id, public_key FROM deployment_signing_key WHERE id = 1")
        assert row is not None
        return str(row["key_id"]), str(row["public_key"])

    async def replace_signing_key(self, old_key_id: str, old_public: str, key_id: str, public_key: str) -> bool:
        """Record a rotated key, if the database still holds the one it replaces (else False)."""
        async with self._db.transaction() as c:
            row = await c.fetchrow("SELECT key_id, public_key FROM deployment_signing_key WHERE id = 1")
            if row is not None and (str(row["key_id"]), str(row["public_key"])) != (old_key_id, old_public):
                return False
            await c.execute("DELETE FROM deployment_signing_key WHERE id = 1")
            await c.execute(
                "INSERT INTO deployment_signing_key (id, key_id, public_key, created_ts) VALUES (1, $1, $2, $3)",
                key_id, public_key, int(time.time() * 1000))
        return True
