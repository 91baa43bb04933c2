"""User-interactive authentication (Client-Server API §"User-Interactive Authentication API").

A session is created by the first request of an operation and lives in the database, so any
worker can continue it. It remembers that request's parameters and is bound to the operation
("METHOD path") and the user that started it: a session opened to delete one device cannot be
completed to delete another.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from homeserver.protocol.errors import MatrixError
from homeserver.storage.stores import Stores

SESSION_LIFETIME_MS = 60 * 60 * 1000

# A stage checker validates the client's `auth` dict for its stage and raises MatrixError
# (status 401 keeps the session alive and re-challenges; other statuses are final).
StageChecker = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class UIAOutcome:
    """Either a 401 challenge to return, or the operation's parameters once every stage passed."""

    challenge: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    session_id: str = ""
    result: str | None = None  # what an earlier completion of this session produced


class UIAService:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    @staticmethod
    def _challenge(session_id: str, flows: list[list[str]], completed: list[str],
                   params: dict[str, Any], error: MatrixError | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "flows": [{"stages": f} for f in flows],
            "params": params,
            "session": session_id,
            "completed": completed,
        }
        if error is not None:
            body.update(error.to_dict())
        return body

    async def _new_session(self, user_id: str | None, operation: str, params: dict[str, Any]) -> str:
        now = int(time.time() * 1000)
        await self.stores.auth.expire_uia_sessions(now - SESSION_LIFETIME_MS)
        session_id = secrets.token_urlsafe(18)
        await self.stores.auth.create_uia_session(session_id, user_id, operation, params, now)
        return session_id

    async def check(
        self, *, operation: str, user_id: str | None, body: dict[str, Any],
        flows: list[list[str]], stages: dict[str, StageChecker],
        stage_params: dict[str, Any] | None = None,
    ) -> UIAOutcome:
        """Run one round of UIA for `operation` on behalf of `user_id` (None: registration)."""
        shown = stage_params or {}
        request_params = {k: v for k, v in body.items() if k != "auth"}
        auth = body.get("auth")
        if auth is None:
            sid = await self._new_session(user_id, operation, request_params)
            return UIAOutcome(challenge=self._challenge(sid, flows, [], shown), session_id=sid)
        if not isinstance(auth, dict):
            raise MatrixError(400, "M_BAD_JSON", "'auth' must be an object")
        requested = auth.get("session")
        if requested is None:
            # Credentials without a session: a one-round flow, started and finished here.
            sid = await self._new_session(user_id, operation, request_params)
            session: dict[str, Any] = {"params": request_params, "completed": [], "result": None}
        else:
            if not isinstance(requested, str):
                raise MatrixError(400, "M_BAD_JSON", "'auth.session' must be a string")
            sid = requested
            found = await self.stores.auth.get_uia_session(sid)
            if found is None or found["created_ts"] < int(time.time() * 1000) - SESSION_LIFETIME_MS:
                raise MatrixError(400, "M_UNKNOWN", "Unknown or expired auth session")
            if found["operation"] != operation or found["user_id"] != user_id:
                raise MatrixError(403, "M_FORBIDDEN",
                                  "Requested operation has changed during the UI authentication session")
            if user_id is not None and request_params and request_params != found["params"]:
                raise MatrixError(403, "M_FORBIDDEN",
                                  "Requested operation has changed during the UI authentication session")
            session = found
        params = {**session["params"], **request_params}
        if session.get("result") is not None:
            return UIAOutcome(params=params, session_id=sid, result=session["result"])
        completed: list[str] = list(session["completed"])
        stage = auth.get("type")
        allowed = {s for f in flows for s in f}
        if not isinstance(stage, str) or stage not in allowed or stage not in stages:
            err = MatrixError(401, "M_UNRECOGNIZED", f"Unsupported auth type {stage!r}")
            return UIAOutcome(challenge=self._challenge(sid, flows, completed, shown, err), session_id=sid)
        if stage not in completed:
            try:
                await stages[stage](auth)
            except MatrixError as e:
                if e.status != 401:
                    raise
                return UIAOutcome(challenge=self._challenge(sid, flows, completed, shown, e), session_id=sid)
            completed = await self.stores.auth.complete_uia_stage(sid, stage)
        if not any(all(s in completed for s in f) for f in flows):
            return UIAOutcome(challenge=self._challenge(sid, flows, completed, shown), session_id=sid)
        return UIAOutcome(params=params, session_id=sid)

    async def finish(self, session_id: str, result: str | None = None) -> None:
        """The operation succeeded: keep what it produced (registration retries) or forget the session."""
        if result is not None:
            await self.stores.auth.set_uia_result(session_id, result)
        else:
            await self.stores.auth.delete_uia_session(session_id)
