"""Server keys: publishing ours, fetching and caching other servers', acting as a notary.

Server-server API §Retrieving server keys:
- `GET /_matrix/key/v2/server` publishes this server's `verify_keys`, the keys retired by
  `parley rotate-signing-key` in `old_verify_keys` (with `expired_ts`), and `valid_until_ts`, all
  signed with the current key;
- a remote key is fetched from the server itself (`/key/v2/server`) or, failing that, from the
  configured notaries (`POST /key/v2/query`); a response is only believed when the server's own
  signature (and, from a notary, the notary's too) verifies; verified keys are cached in the
  database until their `valid_until_ts` (at most 7 days ahead, as room versions 5+ require);
- as a notary, `/key/v2/query` answers with the newest verified response of each server asked
  about, countersigned by this server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import orjson

from federation.client import FederationClient
from homeserver.keys.signing_key import RetiredKey
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.signing import SigningKey, key_id, sign_json, verify_json_signature, verify_key_b64
from homeserver.storage.server_keys import CachedKey, ServerKeyStore

log = logging.getLogger("parley.federation")

KEY_VALIDITY_MS = 24 * 3600 * 1000
MAX_KEY_VALIDITY_MS = 7 * 24 * 3600 * 1000
FAILURE_BACKOFF_MS = 30 * 1000
MAX_FAILED_SERVERS = 10_000
KeyTuple = tuple[str, str, int, int | None]  # key_id, verify_key, valid_until_ts, expired_ts


def local_key_response(server_name: str, key: SigningKey, retired: list[RetiredKey], now_ms: int) -> dict[str, Any]:
    """This server's signed `/key/v2/server` object."""
    obj: dict[str, Any] = {
        "server_name": server_name,
        "valid_until_ts": now_ms + KEY_VALIDITY_MS,
        "verify_keys": {key_id(key): {"key": verify_key_b64(key)}},
        "old_verify_keys": {key_id(r.key): {"key": verify_key_b64(r.key), "expired_ts": r.expired_ts}
                            for r in retired},
    }
    return sign_json(obj, server_name, key)


def _bad(server_name: str, why: str) -> MatrixError:
    return MatrixError(401, "M_UNAUTHORIZED", f"Bad key response for {server_name}: {why}")


def check_key_response(resp: Any, server_name: str, now_ms: int) -> list[KeyTuple]:
    """The keys of a `/key/v2/server` object after checking that `server_name` signed it.

    At least one signature must come from a key in `verify_keys`, and every such signature must
    verify. `valid_until_ts` is capped at 7 days from now."""
    if not isinstance(resp, dict) or resp.get("server_name") != server_name:
        raise _bad(server_name, "wrong or missing server_name")
    until = resp.get("valid_until_ts")
    verify_keys = resp.get("verify_keys")
    old = resp.get("old_verify_keys", {})
    if not isinstance(until, int) or isinstance(until, bool) or not isinstance(verify_keys, dict) \
            or not isinstance(old, dict):
        raise _bad(server_name, "malformed valid_until_ts, verify_keys or old_verify_keys")
    sigs = resp.get("signatures", {}).get(server_name) if isinstance(resp.get("signatures"), dict) else None
    if not isinstance(sigs, dict):
        raise _bad(server_name, "not signed by the server")
    checked = 0
    for kid in sigs:
        entry = verify_keys.get(kid)
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            verify_json_signature(resp, server_name, kid, entry["key"])
            checked += 1
    if not checked:
        raise _bad(server_name, "no signature by any of its verify_keys")
    capped = min(until, now_ms + MAX_KEY_VALIDITY_MS)
    keys: list[KeyTuple] = []
    for kid, entry in verify_keys.items():
        if isinstance(entry, dict) and isinstance(entry.get("key"), str) and kid.startswith("ed25519:"):
            keys.append((kid, entry["key"], capped, None))
    for kid, entry in old.items():
        if kid in verify_keys or not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            continue
        expired = entry.get("expired_ts")
        if isinstance(expired, int) and not isinstance(expired, bool) and kid.startswith("ed25519:"):
            keys.append((kid, entry["key"], min(expired, capped), expired))
    return keys


class KeyFetcher:
    """Remote keys, from memory, then the database, then the server, then notaries."""

    def __init__(self, server_name: str, signing_key: SigningKey, retired: list[RetiredKey], store: ServerKeyStore,
                 client: FederationClient, notaries: tuple[str, ...],
                 clock: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.server_name = server_name
        self.signing_key = signing_key
        self.retired = retired
        self.store = store
        self.client = client
        self.notaries = notaries
        self.clock = clock
        self._memory: dict[tuple[str, str], CachedKey] = {}
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._failed_until: dict[str, int] = {}

    def own_response(self) -> dict[str, Any]:
        return local_key_response(self.server_name, self.signing_key, self.retired, self.clock())

    async def verify_key(self, server_name: str, kid: str, minimum_valid_until_ts: int) -> str:
        """The public key `kid` of `server_name`, valid until at least the given time; 401 if none."""
        if server_name == self.server_name:
            return self._own_key(kid, minimum_valid_until_ts)
        cached = await self._cached(server_name, kid)
        if cached is not None and cached.valid_until_ts >= minimum_valid_until_ts:
            return cached.verify_key
        await self._refresh(server_name)
        cached = await self._cached(server_name, kid)
        if cached is not None and cached.valid_until_ts >= minimum_valid_until_ts:
            return cached.verify_key
        raise MatrixError(401, "M_UNAUTHORIZED", f"No key {kid} of {server_name} valid at that time")

    def _own_key(self, kid: str, minimum: int) -> str:
        if kid == key_id(self.signing_key):
            return verify_key_b64(self.signing_key)
        for r in self.retired:
            if kid == key_id(r.key) and r.expired_ts >= minimum:
                return verify_key_b64(r.key)
        raise MatrixError(401, "M_UNAUTHORIZED", f"This server has no key {kid} valid at that time")

    async def _cached(self, server_name: str, kid: str) -> CachedKey | None:
        hit = self._memory.get((server_name, kid))
        if hit is None:
            hit = await self.store.get_key(server_name, kid)
            if hit is not None:
                self._memory[(server_name, kid)] = hit
        return hit

    async def _refresh(self, server_name: str) -> None:
        """Fetch `server_name`'s keys once, however many callers ask at the same time."""
        if self._failed_until.get(server_name, 0) > self.clock():
            return
        pending = self._inflight.get(server_name)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._inflight[server_name] = pending
            try:
                if not await self._fetch_and_store(server_name):
                    if len(self._failed_until) >= MAX_FAILED_SERVERS:  # origins are chosen by strangers
                        now = self.clock()
                        self._failed_until = {k: v for k, v in self._failed_until.items() if v > now}
                        if len(self._failed_until) >= MAX_FAILED_SERVERS:
                            self._failed_until.clear()
                    self._failed_until[server_name] = self.clock() + FAILURE_BACKOFF_MS
            finally:
                del self._inflight[server_name]
                pending.set_result(None)
        else:
            await asyncio.shield(pending)

    async def _fetch_and_store(self, server_name: str) -> bool:
        try:
            await self.fetch_direct(server_name)
            return True
        except MatrixError as e:
            log.info("fetching the keys of %s directly failed: %s", server_name, e.error)
        for notary in self.notaries:
            if notary == server_name:
                continue
            try:
                if await self.fetch_via_notary(notary, server_name):
                    return True
            except MatrixError as e:
                log.info("fetching the keys of %s through %s failed: %s", server_name, notary, e.error)
        return False

    async def _remember(self, server_name: str, resp: dict[str, Any], keys: list[KeyTuple]) -> None:
        now = self.clock()
        await self.store.store_response(server_name, resp, keys, now)
        for kid, vk, until, expired in keys:
            self._memory[(server_name, kid)] = CachedKey(vk, until, expired)
        self._failed_until.pop(server_name, None)

    async def fetch_direct(self, server_name: str) -> dict[str, Any]:
        """GET the server's own keys, check its signatures, cache them; the signed response."""
        resp = await self.client.get_json(server_name, "/_matrix/key/v2/server", signed=False)
        keys = check_key_response(resp, server_name, self.clock())
        await self._remember(server_name, resp, keys)
        return resp

    async def fetch_via_notary(self, notary: str, server_name: str) -> bool:
        """Ask `notary` for `server_name`'s keys; keep each response both of them signed."""
        now = self.clock()
        body: dict[str, Any] = {"server_keys": {server_name: {}}}
        resp = await self.client.post_json(notary, "/_matrix/key/v2/query", body, signed=False, idempotent=True)
        found = False
        for entry in resp.get("server_keys") or []:
            if not isinstance(entry, dict) or entry.get("server_name") != server_name:
                continue
            try:
                keys = check_key_response(entry, server_name, now)
                await self._check_notary_signature(notary, entry)
            except MatrixError as e:
                log.info("notary %s gave a bad key response for %s: %s", notary, server_name, e.error)
                continue
            await self._remember(server_name, entry, keys)
            found = True
        return found

    async def _check_notary_signature(self, notary: str, entry: dict[str, Any]) -> None:
        sigs = entry.get("signatures", {}).get(notary)
        if not isinstance(sigs, dict) or not sigs:
            raise _bad(notary, "the notary did not sign it")
        for kid in sigs:
            if kid.startswith("ed25519:"):
                vk = await self.verify_key(notary, kid, self.clock())
                verify_json_signature(entry, notary, kid, vk)
                return
        raise _bad(notary, "no ed25519 signature by the notary")

    # ------------------------------------------------------------------ notary

    async def query(self, requests: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """As a notary: verified key responses of each server asked about, countersigned.

        `requests` maps server names to {key_id: {"minimum_valid_until_ts": ts}} (possibly empty)."""
        out = []
        for server_name, criteria in requests.items():
            wanted = criteria if isinstance(criteria, dict) else {}
            stated = [c.get("minimum_valid_until_ts") for c in wanted.values() if isinstance(c, dict)]
            ints = [m for m in stated if isinstance(m, int) and not isinstance(m, bool)]
            out.extend(await self.query_server(server_name, tuple(wanted), max(ints) if ints else None))
        return out

    async def query_server(self, server_name: str, key_ids: tuple[str, ...] = (),
                           minimum: int | None = None) -> list[dict[str, Any]]:
        """One server's key responses for the notary endpoints: for each wanted key (or every
        known key), the newest verified response holding it.

        The server is asked again when a wanted key is unknown or every response expires before
        `minimum` (default: now); whatever is known is returned even when that fails, so a
        notary never forgets a key because its server stopped listing it."""
        minimum = self.clock() if minimum is None else minimum
        if server_name == self.server_name:
            return [self.own_response()]
        known = await self.store.get_responses(server_name, key_ids)
        fresh = [r for r in known.values() if int(r.get("valid_until_ts", 0)) >= minimum]
        if not fresh or any(kid not in known for kid in key_ids):
            try:
                await self.fetch_direct(server_name)
                known = await self.store.get_responses(server_name, key_ids)
            except MatrixError as e:
                log.info("notary: could not refresh the keys of %s: %s", server_name, e.error)
        distinct = {orjson.dumps(r, option=orjson.OPT_SORT_KEYS): r for r in known.values()}
        return [sign_json(r, self.server_name, self.signing_key) for r in distinct.values()]


def key_server_path(server_name: str) -> str:
    return "/_matrix/key/v2/query/" + quote(server_name, safe="")
