"""Cross-signing keys (master, self-signing, user-signing) and the signatures made with them."""

from __future__ import annotations

from typing import Any

import orjson

from homeserver.storage.database import Conn, Database, chunks, placeholders


class CrossSigningStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def keys_for_users(self, user_ids: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
        """user -> key_type -> key."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for chunk in chunks(user_ids):
            rows = await self.db.fetch(
                "SELECT user_id, key_type, key_json FROM e2e_cross_signing_keys"
                f" WHERE user_id IN ({placeholders(1, len(chunk))})", *chunk)
            for r in rows:
                out.setdefault(r["user_id"], {})[r["key_type"]] = orjson.loads(r["key_json"])
        return out

    async def set_key(self, c: Conn, user_id: str, key_type: str, key: dict[str, Any]) -> None:
        await c.execute(
            "INSERT INTO e2e_cross_signing_keys (user_id, key_type, key_json) VALUES ($1,$2,$3)"
            " ON CONFLICT (user_id, key_type) DO UPDATE SET key_json = excluded.key_json",
            user_id, key_type, orjson.dumps(key).decode())

    async def add_signatures(self, c: Conn, rows: list[tuple[str, str, str, str, str]]) -> None:
        """(signer user, signer key ID, target user, target key ID, signature)."""
        await c.executemany(
            "INSERT INTO e2e_cross_signing_sigs (signer_user_id, signer_key_id, target_user_id, target_key_id,"
            " signature) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (signer_user_id, signer_key_id, target_user_id,"
            " target_key_id) DO UPDATE SET signature = excluded.signature", rows)

    async def signatures_on(self, target_user_ids: list[str]) -> dict[tuple[str, str], list[tuple[str, str, str]]]:
        """(target user, target key ID) -> [(signer user, signer key ID, signature)]."""
        out: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
        for chunk in chunks(target_user_ids):
            rows = await self.db.fetch(
                "SELECT signer_user_id, signer_key_id, target_user_id, target_key_id, signature"
                f" FROM e2e_cross_signing_sigs WHERE target_user_id IN ({placeholders(1, len(chunk))})", *chunk)
            for r in rows:
                out.setdefault((r["target_user_id"], r["target_key_id"]), []).append(
                    (r["signer_user_id"], r["signer_key_id"], r["signature"]))
        return out
