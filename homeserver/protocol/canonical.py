"""Canonical JSON and unpadded base64 (spec appendices: "Canonical JSON", "Unpadded Base64")."""

from __future__ import annotations

import base64
import json
from typing import Any

from homeserver.protocol.errors import MatrixError

MAX_SAFE_INT = 2**53 - 1


def _normalise(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise MatrixError(400, "M_BAD_JSON", "Integer out of the canonical JSON range")
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")) or not value.is_integer():
            raise MatrixError(400, "M_BAD_JSON", "Floats are not allowed in canonical JSON")
        return _normalise(int(value))
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise MatrixError(400, "M_BAD_JSON", "Object keys must be strings")
            out[k] = _normalise(v)
        return out
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    raise MatrixError(400, "M_BAD_JSON", f"Unsupported JSON value of type {type(value).__name__}")


def encode_canonical_json(value: Any) -> bytes:
    """UTF-8, keys sorted by code point, no whitespace, integers only (appendices §Canonical JSON).

    Integral floats (``1e10``, ``-0.0``) become integers; anything else non-integral, or an
    integer outside ±(2^53−1), raises 400 ``M_BAD_JSON``."""
    text = json.dumps(
        _normalise(value), ensure_ascii=False, separators=(",", ":"), sort_keys=True,
        allow_nan=False,
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form
        raise MatrixError(400, "M_BAD_JSON", "Strings must be valid Unicode") from None


def check_canonical_values(value: Any) -> None:
    """Raise M_BAD_JSON if `value` holds floats or out-of-range integers.

    Room versions 6+ require strict canonical JSON (rooms/fragments/v6-canonical-json.md)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise MatrixError(400, "M_BAD_JSON", "Integer out of range")
        return
    if isinstance(value, float):
        raise MatrixError(400, "M_BAD_JSON", "Floats are not allowed")
    if isinstance(value, dict):
        for v in value.values():
            check_canonical_values(v)
    elif isinstance(value, list):
        for v in value:
            check_canonical_values(v)


def unpadded_b64encode(data: bytes) -> str:
    """Standard-alphabet base64 without '=' padding (appendices §Unpadded Base64)."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def urlsafe_unpadded_b64encode(data: bytes) -> str:
    """URL-safe base64 without padding: event IDs of room v4+, room IDs of v12 (rooms/v4 §Event IDs)."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def unpadded_b64decode(s: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not (appendices §Unpadded Base64: decoders
    SHOULD accept padding). Raises ValueError on malformed input."""
    s = s.rstrip("=")
    s += "=" * (-len(s) % 4)
    if "-" in s or "_" in s:
        return base64.b64decode(s, altchars=b"-_", validate=True)
    return base64.b64decode(s, validate=True)
