"""Ed25519 signing keys and JSON signatures (appendices §Signing JSON)."""

from __future__ import annotations

from typing import Any

import nacl.exceptions
import nacl.signing

from homeserver.protocol.canonical import encode_canonical_json, unpadded_b64decode, unpadded_b64encode
from homeserver.protocol.errors import MatrixError


class SigningKey:
    """An ed25519 key with its key version (the part after `ed25519:`)."""

    def __init__(self, key: nacl.signing.SigningKey, version: str) -> None:
        self.key = key
        self.version = version
        self.alg = "ed25519"

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data).signature


def generate_signing_key(version: str) -> SigningKey:
    """A fresh ed25519 key `ed25519:<version>` (server-server API §Retrieving server keys)."""
    return SigningKey(nacl.signing.SigningKey.generate(), version)


def signing_key_from_seed(seed_b64: str, version: str) -> SigningKey:
    """The key whose 32-byte seed is `seed_b64` (unpadded base64; appendices §Signing Key)."""
    return SigningKey(nacl.signing.SigningKey(unpadded_b64decode(seed_b64)), version)


def encode_signing_key_seed(key: SigningKey) -> str:
    """The seed as unpadded base64, the inverse of `signing_key_from_seed` (appendices §Signing Key)."""
    return unpadded_b64encode(bytes(key.key))


def verify_key_b64(key: SigningKey) -> str:
    """The public half, unpadded base64, as published in `/key/v2/server` `verify_keys`."""
    return unpadded_b64encode(bytes(key.key.verify_key))


def key_id(key: SigningKey) -> str:
    """`ed25519:<version>` (appendices §Signing JSON)."""
    return f"ed25519:{key.version}"


def sign_json(obj: dict[str, Any], signing_name: str, key: SigningKey) -> dict[str, Any]:
    """A copy of `obj` with `signatures[signing_name][key_id]` added (appendices §Signing JSON).

    Existing signatures and `unsigned` are kept; neither is covered by the signature."""
    to_sign = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    sig = unpadded_b64encode(key.sign(encode_canonical_json(to_sign)))
    out = dict(obj)
    signatures = {name: dict(sigs) for name, sigs in obj.get("signatures", {}).items()}
    signatures.setdefault(signing_name, {})[key_id(key)] = sig
    out["signatures"] = signatures
    return out


def verify_json_signature(obj: dict[str, Any], signing_name: str, key_id_: str, verify_key: str) -> None:
    """Check one ed25519 signature (appendices §Checking for a Signature).

    Raises 401 M_UNAUTHORIZED when it is missing, malformed, of an unknown algorithm or wrong."""
    if not key_id_.startswith("ed25519:"):
        raise MatrixError(401, "M_UNAUTHORIZED", f"Unsupported signing algorithm in {key_id_!r}")
    try:
        sig_b64 = obj["signatures"][signing_name][key_id_]
        sig = unpadded_b64decode(sig_b64)
        vk = nacl.signing.VerifyKey(unpadded_b64decode(verify_key))
        body = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
        vk.verify(encode_canonical_json(body), sig)
    except (KeyError, TypeError, ValueError, nacl.exceptions.BadSignatureError,
            AttributeError, nacl.exceptions.CryptoError) as e:
        raise MatrixError(401, "M_UNAUTHORIZED", f"Bad signature from {signing_name}: {e}") from None
