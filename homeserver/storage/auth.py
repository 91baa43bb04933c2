"""User-interactive auth sessions, OpenID tokens and abuse reports."""

from __future__ import annotations

from typing import Any

import orjson

from homeserver.storage.database import Database


class AuthStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ UIA sessions

    async def create_uia_session(self, session_id: str, user_id: str | None, operation: str,
                                 params: dict[str, Any], now: int) -> None:
        await self.db.execute(
            "INSERT INTO uia_sessions (session_id, user_id, operation, params, completed, created_ts)"
            " VALUES ($1,$2,$3,$4,$5,$6)",
            session_id, user_id, operation, orjson.dumps(params).decode(), "[]", now,
        )

    async def get_uia_session(self, session_id: str) -> dict[str, Any] | None:
        row = await self.db.fetchrow(
            "SELECT session_id, user_id, operation, params, completed, result, created_ts FROM uia_sessions"
            " WHERE session_id = $1",
            session_id,
        )
        if row is None:
            return None
        out = dict(row)
        out["params"] = orjson.loads(out["params"])
        out["completed"] = orjson.loads(out["completed"])
        return out

    async def complete_uia_stage(self, session_id: str, stage: str) -> list[str]:
        async with self.db.transaction() as c:
            raw = await c.fetchval("SELECT completed FROM uia_sessions WHERE session_id = $1", session_id)
            done: list[str] = orjson.loads(raw) if raw is not None else []
            if stage not in done:
                done.append(stage)
            await c.execute("UPDATE uia_sessions SET completed = $1 WHERE session_id = $2",
                            orjson.dumps(done).decode(), session_id)
            return done

    async def set_uia_result(self, session_id: str, result: str) -> None:
        await self.db.execute("UPDATE uia_sessions SET result = $1 WHERE session_id = $2", result, session_id)

    async def delete_uia_session(self, session_id: str) -> None:
        await self.db.execute("DELETE FROM uia_sessions WHERE session_id = $1", session_id)

    async def expire_uia_sessions(self, before_ts: int) -> None:
        await self.db.execute("DELETE FROM uia_sessions WHERE created_ts < $1", before_ts)

    # ------------------------------------------------------------------ OpenID

    async def add_openid_token(self, token: str, user_id: str, expires_ts: int) -> None:
        await self.db.execute(
            "INSERT INTO openid_tokens (token, user_id, expires_ts) VALUES ($1,$2,$3)",
            token, user_id, expires_ts,
        )

    async def openid_user(self, token: str, now: int) -> str | None:
        user_id: str | None = await self.db.fetchval(
            "SELECT user_id FROM openid_tokens WHERE token = $1 AND expires_ts > $2", token, now
        )
        return user_id

    async def expire_openid_tokens(self, now: int) -> None:
        await self.db.execute("DELETE FROM openid_tokens WHERE expires_ts <= $1", now)

    # ------------------------------------------------------------------ reports

    async def add_report(self, report_id: str, reporter: str, room_id: str | None, event_id: str | None,
                         target_user_id: str | None, reason: str | None, score: int | None,
                         now: int) -> None:
        await self.db.execute(
            "INSERT INTO reports (report_id, reporter, room_id, event_id, target_user_id, reason, score,"
            " received_ts) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
            report_id, reporter, room_id, event_id, target_user_id, reason, score, now,
        )

    async def reports(self, limit: int) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT report_id, reporter, room_id, event_id, target_user_id, reason, score, received_ts"
            " FROM reports ORDER BY received_ts DESC LIMIT $1",
            limit,
        )
        return [dict(r) for r in rows]
