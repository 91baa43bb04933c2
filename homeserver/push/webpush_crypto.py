"""Web Push message encryption and VAPID (pure: no I/O).

- RFC 8291 (Message Encryption for Web Push) over RFC 8188's `aes128gcm` content coding: an
  ephemeral P-256 key agreed with the subscription's `p256dh` key, mixed with its `auth`
  secret, gives the content key and nonce; the body is one record.
- RFC 8292 (VAPID): the application server's P-256 key signs a short-lived ES256 JWT whose
  audience is the push service's origin; `Authorization: vapid t=<jwt>, k=<public key>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
import time
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

RECORD_SIZE = 4096
VAPID_LIFETIME_S = 12 * 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA-256 (RFC 5869) for one output block, as RFC 8291 uses it."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


def public_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def encrypt(plaintext: bytes, ua_public_b64: str, auth_b64: str, *,
            sender_key: ec.EllipticCurvePrivateKey | None = None, salt: bytes | None = None) -> bytes:
    """The `aes128gcm` body for a subscription (RFC 8291 §3.4, RFC 8188 §2)."""
    ua_public = b64url_decode(ua_public_b64)
    auth_secret = b64url_decode(auth_b64)
    ua_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public)
    as_private = sender_key or ec.generate_private_key(ec.SECP256R1())
    as_public = public_bytes(as_private.public_key())
    ecdh = as_private.exchange(ec.ECDH(), ua_key)
    ikm = _hkdf(auth_secret, ecdh, b"WebPush: info\x00" + ua_public + as_public, 32)
    salt = salt or os.urandom(16)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    if len(plaintext) + 1 + 16 > RECORD_SIZE:
        raise ValueError("payload too large for one Web Push record")
    ciphertext = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)
    return salt + struct.pack("!IB", RECORD_SIZE, len(as_public)) + as_public + ciphertext


def decrypt(body: bytes, ua_private: ec.EllipticCurvePrivateKey, auth_secret: bytes) -> bytes:
    """The receiving side (a browser's job; used by tests and tools)."""
    salt, (_rs, idlen) = body[:16], struct.unpack("!IB", body[16:21])
    as_public = body[21:21 + idlen]
    ciphertext = body[21 + idlen:]
    ua_public = public_bytes(ua_private.public_key())
    as_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), as_public)
    ecdh = ua_private.exchange(ec.ECDH(), as_key)
    ikm = _hkdf(auth_secret, ecdh, b"WebPush: info\x00" + ua_public + as_public, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
    return padded.rstrip(b"\x00")[:-1]  # strip padding and the last-record delimiter (0x02)


def new_vapid_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def load_vapid_key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the VAPID key is not an EC key")
    return key


def vapid_authorization(endpoint: str, key: ec.EllipticCurvePrivateKey, contact: str,
                        now: int | None = None) -> str:
    """The RFC 8292 `Authorization` header value for a request to `endpoint`."""
    parts = urlsplit(endpoint)
    now = int(time.time()) if now is None else now
    token = jwt.encode({"aud": f"{parts.scheme}://{parts.netloc}", "exp": now + VAPID_LIFETIME_S, "sub": contact},
                       key, algorithm="ES256", headers={"typ": "JWT"})
    return f"vapid t={token}, k={b64url(public_bytes(key.public_key()))}"
