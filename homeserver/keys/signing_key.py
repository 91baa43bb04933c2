"""The server's ed25519 signing key file: created once, atomically, shared by every worker.

Access tokens are signed with a secret derived from this key, so every worker of a deployment
must hold the same one. Creation is race-free (the file appears complete or not at all, and
the first creator wins); the database remembers the public half it saw first, and a worker with
another key refuses to start instead of minting tokens nobody else accepts.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class RetiredKey:
    """A key replaced by `parley rotate-signing-key`: still published in `old_verify_keys`."""

    key: SigningKey
    expired_ts: int


def read_key_file(path: str) -> tuple[SigningKey, list[RetiredKey]]:
    """The current key (first line, `ed25519 <version> <seed>`, the format Synapse uses too) and
    the retired ones after it (`ed25519 <version> <seed> expired_ts=<ms>`), newest first."""
    lines = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    if not lines or len(lines[0]) != 3 or lines[0][0] != "ed25519":
        raise ValueError(f"{path}: expected 'ed25519 <version> <seed>'")
    current = signing_key_from_seed(lines[0][2], lines[0][1])
    retired = []
    for parts in lines[1:]:
        if len(parts) != 4 or parts[0] != "ed25519" or not parts[3].startswith("expired_ts="):
            raise ValueError(f"{path}: expected 'ed25519 <version> <seed> expired_ts=<ms>' after the first line")
        retired.append(RetiredKey(signing_key_from_seed(parts[2], parts[1]), int(parts[3].split("=", 1)[1])))
    return current, retired


def read_signing_key(path: str) -> SigningKey:
    return read_key_file(path)[0]


def token_key(current: SigningKey, retired: list[RetiredKey]) -> SigningKey:
    """The key access tokens are derived from: the deployment's first one, so that rotating
    the federation signing key does not log every user out."""
    return retired[-1].key if retired else current


def write_rotated_key_file(path: str, now_ms: int | None = None) -> tuple[SigningKey, SigningKey]:
    """Put a new key first in the file and retire the current one; returns (old, new).

    The file is replaced atomically (write, fsync, rename), so a reader sees either version."""
    current, retired = read_key_file(path)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    new = generate_signing_key("a_" + os.urandom(3).hex())
    lines = [f"ed25519 {new.version} {encode_signing_key_seed(new)}",
             f"ed25519 {current.version} {encode_signing_key_seed(current)} expired_ts={now_ms}"]
    lines += [f"ed25519 {r.key.version} {encode_signing_key_seed(r.key)} expired_ts={r.expired_ts}"
              for r in retired]
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("rotated the signing key in %s: %s replaces %s", path, key_id(new), key_id(current))
    return current, new


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
