"""The Matrix error family: every failure that reaches a client or peer is one of these."""

from __future__ import annotations

from typing import Any


class MatrixError(Exception):
    """An error with a Matrix errcode and HTTP status (Client-Server API, "Standard error response")."""

    def __init__(self, status: int, errcode: str, error: str, **extra: Any) -> None:
        super().__init__(f"{status} {errcode}: {error}")
        self.status = status
        self.errcode = errcode
        self.error = error
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.error, **self.extra}


class AuthError(MatrixError):
    """An event was rejected by the authorization rules."""

    def __init__(self, message: str) -> None:
        super().__init__(403, "M_FORBIDDEN", message)
