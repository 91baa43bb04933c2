"""Shapes and signatures of end-to-end encryption keys (client-server API §End-to-End Encryption,
"Uploading keys"). Pure: the keys service hands in plain JSON and gets checked values back or a
MatrixError (400) explaining what is wrong.
"""

from __future__ import annotations

from typing import Any

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.signing import verify_json_signature

#: Longest key ID / algorithm name accepted, and most keys in one upload.
MAX_ID_LENGTH = 255
MAX_KEYS_PER_UPLOAD = 1000


def _bad(message: str) -> MatrixError:
    return MatrixError(400, "M_BAD_JSON", message)


def _short_str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise _bad(f"{what} must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    return value


def check_signature(obj: dict[str, Any], user_id: str, key_id: str, public_key: str) -> None:
    """`obj` carries a valid ed25519 signature by `user_id`'s key `key_id` (appendices
    §Checking for a Signature); 400 M_INVALID_SIGNATURE otherwise."""
    try:
        verify_json_signature(obj, user_id, key_id, public_key)
    except MatrixError:
        raise MatrixError(400, "M_INVALID_SIGNATURE", f"Invalid signature by {key_id} of {user_id}") from None


def check_device_keys(keys: Any, user_id: str, device_id: str) -> dict[str, Any]:
    """A `device_keys` object (spec: DeviceKeys): for this user and device, algorithms and
    keys well-formed, and self-signed by the device's own ed25519 key."""
    if not isinstance(keys, dict):
        raise _bad("device_keys must be an object")
    if keys.get("user_id") != user_id or keys.get("device_id") != device_id:
        raise MatrixError(400, "M_INVALID_PARAM", "device_keys must name your own user ID and device ID")
    algorithms = keys.get("algorithms")
    if not isinstance(algorithms, list) or not all(isinstance(a, str) and a for a in algorithms):
        raise _bad("device_keys.algorithms must be a list of strings")
    public = keys.get("keys")
    if not isinstance(public, dict) or not public:
        raise _bad("device_keys.keys must be an object of key ID -> key")
    for kid, value in public.items():
        alg, _, kdev = _short_str(kid, "key ID").partition(":")
        if not alg or kdev != device_id:
            raise _bad(f"device key ID {kid!r} must be <algorithm>:{device_id}")
        _short_str(value, "a public key")
    signatures = keys.get("signatures")
    if not isinstance(signatures, dict) or not all(isinstance(v, dict) for v in signatures.values()):
        raise _bad("device_keys.signatures must be an object of objects")
    ed_id = f"ed25519:{device_id}"
    if ed_id not in public:
        raise _bad(f"device_keys.keys must hold the device's {ed_id} key")
    check_signature(keys, user_id, ed_id, public[ed_id])
    return keys


def identity_keys(device_keys: dict[str, Any]) -> dict[str, str]:
    """The part of a device's keys that may never change for that device ID."""
    return dict(device_keys.get("keys", {}))


def check_one_time_keys(
    keys: Any, user_id: str, device_id: str, ed25519_key: str | None, *, fallback: bool = False,
) -> list[tuple[str, str, Any]]:
    """`one_time_keys` / `fallback_keys` (spec: OneTimeKeys): `<algorithm>:<key_id>` -> a key
    string or a signed key object. A signed key's signature by the device is checked when the
    device's ed25519 key is known. Returns (algorithm, key_id, key) triples."""
    what = "fallback_keys" if fallback else "one_time_keys"
    if not isinstance(keys, dict):
        raise _bad(f"{what} must be an object")
    if len(keys) > MAX_KEYS_PER_UPLOAD:
        raise _bad(f"At most {MAX_KEYS_PER_UPLOAD} keys per upload")
    out: list[tuple[str, str, Any]] = []
    seen_algs: set[str] = set()
    for full_id, key in keys.items():
        alg, sep, kid = _short_str(full_id, "key ID").partition(":")
        if not alg or not sep or not kid:
            raise _bad(f"{what} key ID {full_id!r} must be <algorithm>:<key_id>")
        if isinstance(key, str):
            _short_str(key, "a one-time key")
        elif isinstance(key, dict):
            _short_str(key.get("key"), "a signed key's 'key'")
            if fallback and "fallback" in key and not isinstance(key["fallback"], bool):
                raise _bad("'fallback' must be a boolean")
            sigs = key.get("signatures")
            if not isinstance(sigs, dict) or not isinstance(sigs.get(user_id), dict):
                raise _bad(f"signed key {full_id!r} must be signed by {user_id}")
            if ed25519_key is not None:
                check_signature(key, user_id, f"ed25519:{device_id}", ed25519_key)
        else:
            raise _bad(f"{what} values must be strings or signed key objects")
        if fallback:
            if alg in seen_algs:
                raise _bad("At most one fallback key per algorithm")
            seen_algs.add(alg)
        out.append((alg, kid, key))
    return out


CROSS_SIGNING_USAGES = ("master", "self_signing", "user_signing")


def check_cross_signing_key(key: Any, user_id: str, usage: str) -> tuple[str, str]:
    """A cross-signing key (spec: CrossSigningKey) of `user_id` for `usage`: one ed25519 key
    whose ID is its own public key. Returns (key ID, public key)."""
    if not isinstance(key, dict):
        raise _bad(f"the {usage} key must be an object")
    if key.get("user_id") != user_id:
        raise MatrixError(400, "M_INVALID_PARAM", f"the {usage} key must be for {user_id}")
    usages = key.get("usage")
    if not isinstance(usages, list) or usage not in usages or not all(isinstance(u, str) for u in usages):
        raise _bad(f"the {usage} key's usage must include {usage!r}")
    keys = key.get("keys")
    if not isinstance(keys, dict) or len(keys) != 1:
        raise _bad(f"the {usage} key must hold exactly one key")
    (kid, public), = keys.items()
    alg, _, name = _short_str(kid, "key ID").partition(":")
    if alg != "ed25519" or name != public or not isinstance(public, str):
        raise _bad(f"the {usage} key's ID must be ed25519:<its public key>")
    sigs = key.get("signatures", {})
    if not isinstance(sigs, dict) or not all(isinstance(v, dict) for v in sigs.values()):
        raise _bad("signatures must be an object of objects")
    return kid, public


def backup_key_is_better(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether an uploaded backup of a Megolm session replaces the stored one (client-server API
    §Server-side key backups): a verified key beats an unverified one, then the lower
    first_message_index wins, then the lower forwarded_count."""
    if new["is_verified"] != old["is_verified"]:
        return bool(new["is_verified"])
    if new["first_message_index"] != old["first_message_index"]:
        return bool(new["first_message_index"] < old["first_message_index"])
    return bool(new["forwarded_count"] < old["forwarded_count"])


def check_backup_key(data: Any) -> dict[str, Any]:
    """A KeyBackupData object: counts are non-negative integers, session_data an object."""
    if not isinstance(data, dict):
        raise _bad("key backup data must be an object")
    for field in ("first_message_index", "forwarded_count"):
        v = data.get(field)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**53:
            raise _bad(f"'{field}' must be a non-negative integer")
    if not isinstance(data.get("is_verified"), bool):
        raise _bad("'is_verified' must be a boolean")
    if not isinstance(data.get("session_data"), dict):
        raise _bad("'session_data' must be an object")
    return {k: data[k] for k in ("first_message_index", "forwarded_count", "is_verified", "session_data")}
