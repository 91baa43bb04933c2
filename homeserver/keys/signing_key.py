"""The server's ed25519 signing key file: created once, atomically, shared by every worker.

Access tokens are signed with a secret derived from this key, so every worker of a deployment
must hold the same one. Creation is race-free (the file appears complete or not at all, and
the first creator wins); the database remembers the public half it saw first, and a worker with
another key refuses to start instead of minting tokens nobody else accepts.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from homeserver.protocol.signing import (
    SigningKey,
    encode_signing_key_seed,
    generate_signing_key,
    key_id,
    signing_key_from_seed,
    verify_key_b64,
)

log = logging.getLogger("parley")


class SigningKeyMismatch(Exception):
    """This worker's key is not the one the deployment's database has seen."""


def read_signing_key(path: str) -> SigningKey:
    """`ed25519 <version> <seed>` in one line, the format Synapse uses too."""
    parts = Path(path).read_text().split()
    if len(parts) != 3 or parts[0] != "ed25519":
        raise ValueError(f"{path}: expected 'ed25519 <version> <seed>'")
    return signing_key_from_seed(parts[2], parts[1])


def create_signing_key(path: str) -> bool:
    """Write a new key at `path` unless one exists; True when this call created it.

    The key is written to a private temporary file, synced, then hard-linked into place:
    link() fails if the name exists, so of several workers creating at once exactly one wins
    and the others read its complete file.
    """
    p = Path(path)
    if p.exists():
        return False
    p.parent.mkdir(parents=True, exist_ok=True)
    key = generate_signing_key("a_" + os.urandom(3).hex())
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"ed25519 {key.version} {encode_signing_key_seed(key)}\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, p)
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)
    log.info("generated a new signing key at %s", path)
    return True


def load_or_create_signing_key(path: str) -> SigningKey:
    create_signing_key(path)
    return read_signing_key(path)


def check_against_seen(key: SigningKey, seen_key_id: str, seen_public: str, path: str) -> None:
    if (seen_key_id, seen_public) != (key_id(key), verify_key_b64(key)):
        raise SigningKeyMismatch(
            f"the signing key in {path} ({key_id(key)} {verify_key_b64(key)}) is not the key this "
            f"database was first used with ({seen_key_id} {seen_public}); every worker must use "
            "the same key file (see README, 'Running several workers')"
        )
