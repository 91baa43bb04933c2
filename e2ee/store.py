"""The client's key store: one SQLite file whose every value is sealed with a libsodium secretbox.

The box key is derived from the user's passphrase with argon2id (a random salt kept in the file),
so a copied store file reveals nothing without the passphrase. The same 32-byte key also seals
vodozemac's own pickles (accounts, sessions). A wrong passphrase is refused on open: the file
holds a sealed check value.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils
import orjson

_CHECK = b"parley-e2ee-store-v1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (ns, key));
"""


class WrongPassphrase(Exception):
    """The passphrase does not open this store."""


def derive_key(passphrase: str, salt: bytes, *, fast: bool = False) -> bytes:
    """A 32-byte secretbox key from a passphrase (argon2id, libsodium's moderate limits;
    `fast` uses the interactive limits, for tests and throwaway stores)."""
    ops = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE if fast else nacl.pwhash.argon2id.OPSLIMIT_MODERATE
    mem = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE if fast else nacl.pwhash.argon2id.MEMLIMIT_MODERATE
    return bytes(nacl.pwhash.argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(), salt,
                                          opslimit=ops, memlimit=mem))


class CryptoStore:
    """Namespaced key/value records, sealed. `path=":memory:"` keeps nothing on disk."""

    def __init__(self, path: str, passphrase: str, *, fast_kdf: bool = False) -> None:
        self._db = sqlite3.connect(path)
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE name = 'salt'").fetchone()
        if row is None:
            salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
            self.key = derive_key(passphrase, salt, fast=fast_kdf)
            self._box = nacl.secret.SecretBox(self.key)
            with self._db:
                self._db.execute("INSERT INTO meta VALUES ('salt', ?)", (salt,))
                self._db.execute("INSERT INTO meta VALUES ('check', ?)", (bytes(self._box.encrypt(_CHECK)),))
        else:
            self.key = derive_key(passphrase, bytes(row[0]), fast=fast_kdf)
            self._box = nacl.secret.SecretBox(self.key)
            check = self._db.execute("SELECT value FROM meta WHERE name = 'check'").fetchone()
            try:
                if check is None or self._box.decrypt(bytes(check[0])) != _CHECK:
                    raise WrongPassphrase("this passphrase does not open the key store")
            except nacl.exceptions.CryptoError:
                raise WrongPassphrase("this passphrase does not open the key store") from None

    def close(self) -> None:
        self._db.close()

    def get(self, ns: str, key: str) -> Any:
        row = self._db.execute("SELECT value FROM kv WHERE ns = ? AND key = ?", (ns, key)).fetchone()
        return None if row is None else orjson.loads(self._box.decrypt(bytes(row[0])))

    def put(self, ns: str, key: str, value: Any) -> None:
        sealed = bytes(self._box.encrypt(orjson.dumps(value)))
        with self._db:
            self._db.execute("INSERT INTO kv VALUES (?, ?, ?)"
                             " ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value", (ns, key, sealed))

    def delete(self, ns: str, key: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (ns, key))

    def items(self, ns: str) -> list[tuple[str, Any]]:
        rows = self._db.execute("SELECT key, value FROM kv WHERE ns = ? ORDER BY key", (ns,)).fetchall()
        return [(k, orjson.loads(self._box.decrypt(bytes(v)))) for k, v in rows]

    def raw_bytes(self) -> bytes:
        """Everything the file holds, for tests that look for leaked plaintext."""
        out = b""
        for table in ("meta", "kv"):
            for row in self._db.execute(f"SELECT * FROM {table}"):  # noqa: S608 - fixed table names
                out += b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row)
        return out
