"""Device keys: upload, query, claim, and the device-list changes they announce.

The server stores public keys only. A device's identity keys, once uploaded, are never replaced
silently (a different key under the same device ID is refused); one-time keys are handed out
exactly once; a device list change (new keys, a deleted device) is a row on the shared stream
that wakes everyone who shares a room with the user.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.keys.cross_signing import CrossSigningService
from homeserver.keys.remote import RemoteKeys
from homeserver.protocol.e2e_keys import check_device_keys, check_one_time_keys, identity_keys
from homeserver.protocol.errors import MatrixError
from homeserver.storage.stores import Stores

#: Most (user, device) pairs one /keys/claim or users one /keys/query may name.
MAX_CLAIM = 1000
MAX_QUERY_USERS = 1000
#: Concurrent claims run by one request.
CLAIM_CONCURRENCY = 8

WakeUsers = Callable[[list[str]], Awaitable[None]]


#: Devices whose key counts are kept.
COUNTS_KEPT = 100_000


class KeyService:
    def __init__(self, stores: Stores, server_name: str, wake_users: WakeUsers) -> None:
        self.stores = stores
        self.server_name = server_name
        self._wake_users = wake_users
        self.cross_signing = CrossSigningService(stores, self._announce_many)
        #: Called with (user, device IDs or None for all, deleted) after a local device change
        #: that other servers must hear of (m.device_list_update).
        self.on_device_change: Callable[[str, list[str] | None, bool], Awaitable[None]] | None = None
        self.remote = RemoteKeys(stores, server_name, wake_users)
        # A device's one-time key counts and unused fallback key types, which every sync
        # reports: kept between the writes that change them (uploads, claims, deletions), on
        # one worker only (`cache_counts`: another worker's claims would not be seen here).
        self.cache_counts = False
        self._counts: dict[tuple[str, str], tuple[dict[str, int], list[str]]] = {}
        self._counts_gen = 0

    def _forget_counts(self, user_id: str, device_id: str | None) -> None:
        self._counts_gen += 1  # a read that started before this change must not be kept
        if device_id is None:
            self._counts.clear()
        else:
            self._counts.pop((user_id, device_id), None)

    async def sync_key_counts(self, user_id: str, device_id: str) -> tuple[dict[str, int], list[str]]:
        """(one_time_key_counts, unused_fallback_key_types) for a sync response."""
        key = (user_id, device_id)
        hit = self._counts.get(key) if self.cache_counts else None
        if hit is not None:
            return dict(hit[0]), list(hit[1])
        gen = self._counts_gen
        counts = await self.one_time_key_counts(user_id, device_id)
        fallback = await self.unused_fallback_key_types(user_id, device_id)
        if self.cache_counts and gen == self._counts_gen:
            if len(self._counts) >= COUNTS_KEPT:
                self._counts.pop(next(iter(self._counts)))
            self._counts[key] = (dict(counts), list(fallback))
        return counts, fallback

    def _is_local(self, user_id: str) -> bool:
        return user_id.partition(":")[2] == self.server_name

    # ------------------------------------------------------------------ upload

    async def upload(self, user_id: str, device_id: str, body: dict[str, Any]) -> dict[str, Any]:
        store = self.stores.e2e_keys
        existing = await store.get_device_keys(user_id, device_id)
        new_keys = None
        if body.get("device_keys") is not None:
            new_keys = check_device_keys(body["device_keys"], user_id, device_id)
            if existing is not None and identity_keys(existing) != identity_keys(new_keys):
                raise MatrixError(400, "M_INVALID_PARAM",
                                  "This device already has different identity keys; log in as a new device")
        known = new_keys or existing
        ed25519 = known["keys"].get(f"ed25519:{device_id}") if known else None
        otks: list[tuple[str, str, Any]] = []
        if body.get("one_time_keys") is not None:
            otks = check_one_time_keys(body["one_time_keys"], user_id, device_id, ed25519)
        fallbacks: list[tuple[str, str, Any]] = []
        if body.get("fallback_keys") is not None:
            fallbacks = check_one_time_keys(body["fallback_keys"], user_id, device_id, ed25519, fallback=True)
        if otks:
            stored = await store.existing_one_time_keys(user_id, device_id, [(a, k) for a, k, _ in otks])
            for alg, kid, key in otks:
                if (alg, kid) in stored and stored[(alg, kid)] != key:
                    raise MatrixError(400, "M_INVALID_PARAM",
                                      f"One-time key {alg}:{kid} already exists with different content")
            otks = [(a, k, v) for a, k, v in otks if (a, k) not in stored]
        changed = new_keys is not None and new_keys != existing
        if changed:
            async with self.stores.stream.write() as (c, pos):
                # Checked again inside the write: two racing uploads cannot both replace the keys.
                raced = await store.get_device_keys(user_id, device_id, c)
                if raced is not None and new_keys is not None and identity_keys(raced) != identity_keys(new_keys):
                    raise MatrixError(400, "M_INVALID_PARAM",
                                      "This device already has different identity keys; log in as a new device")
                await store.set_device_keys(c, user_id, device_id, new_keys or {})
                await store.add_device_list_change(c, user_id, pos)
        if otks or fallbacks:
            async with self.stores.db.transaction() as c:
                if otks:
                    await store.add_one_time_keys(c, user_id, device_id, otks)
                for alg, kid, key in fallbacks:
                    await store.set_fallback_key(c, user_id, device_id, alg, kid, key)
            self._forget_counts(user_id, device_id)
        if changed:
            await self._announce(user_id)
            await self._tell_servers(user_id, [device_id], False)
        return {"one_time_key_counts": await self.one_time_key_counts(user_id, device_id)}

    async def one_time_key_counts(self, user_id: str, device_id: str) -> dict[str, int]:
        counts = await self.stores.e2e_keys.one_time_key_counts(user_id, device_id)
        # Clients expect the signed_curve25519 count even when it is zero.
        counts.setdefault("signed_curve25519", 0)
        return counts

    async def unused_fallback_key_types(self, user_id: str, device_id: str) -> list[str]:
        return await self.stores.e2e_keys.unused_fallback_algorithms(user_id, device_id)

    # ------------------------------------------------------------------ query and claim

    async def query(self, requester: str, device_keys: Any, timeout_ms: int = 10_000,
                    local_only: bool = False) -> dict[str, Any]:
        """`/keys/query`: local users from the database, remote users over federation (or from
        the cache of device lists). `local_only` is the federation answer: other servers' users
        are left out."""
        if not isinstance(device_keys, dict) or not all(
                isinstance(v, list) and all(isinstance(d, str) for d in v) for v in device_keys.values()):
            raise MatrixError(400, "M_BAD_JSON", "device_keys must map user IDs to lists of device IDs")
        if len(device_keys) > MAX_QUERY_USERS:
            raise MatrixError(400, "M_INVALID_PARAM", f"At most {MAX_QUERY_USERS} users per query")
        if not all(isinstance(u, str) and ":" in u for u in device_keys):
            raise MatrixError(400, "M_INVALID_PARAM", "device_keys must be keyed by user IDs")
        local = [u for u in device_keys if self._is_local(u)]
        remote = {u: v for u, v in device_keys.items() if not self._is_local(u)}
        found = await self.stores.e2e_keys.device_keys_for_users(local)
        out: dict[str, dict[str, Any]] = {}
        for user_id in local:
            wanted = device_keys[user_id]
            out[user_id] = {}
            for dev, (keys, name) in found.get(user_id, {}).items():
                if wanted and dev not in wanted:
                    continue
                entry = dict(keys)
                unsigned = dict(entry.get("unsigned") or {})
                if name is not None:
                    unsigned["device_display_name"] = name
                entry["unsigned"] = unsigned
                out[user_id][dev] = entry
        result: dict[str, Any] = {"device_keys": out, "failures": {}}
        await self.cross_signing.decorate(requester, result)
        if remote and not local_only:
            theirs, result["failures"] = await self.remote.query(remote, timeout_ms)
            for user_id, entry in theirs.items():
                out[user_id] = entry["device_keys"]
                if entry.get("master_key") is not None:
                    result["master_keys"][user_id] = entry["master_key"]
                if entry.get("self_signing_key") is not None:
                    result["self_signing_keys"][user_id] = entry["self_signing_key"]
        return result

    async def user_devices(self, user_id: str) -> dict[str, Any]:
        """`GET /_matrix/federation/v1/user/devices/{userId}` for a local user."""
        found = (await self.stores.e2e_keys.device_keys_for_users([user_id])).get(user_id, {})
        devices = []
        for dev, (keys, name) in sorted(found.items()):
            entry: dict[str, Any] = {"device_id": dev, "keys": keys}
            if name is not None:
                entry["device_display_name"] = name
            devices.append(entry)
        out: dict[str, Any] = {"user_id": user_id, "devices": devices,
                               "stream_id": await self.stores.e2e_keys.last_device_list_change(user_id)}
        cross = (await self.stores.cross_signing.keys_for_users([user_id])).get(user_id, {})
        for usage in ("master", "self_signing"):
            if usage in cross:
                out[f"{usage}_key"] = cross[usage]
        return out

    async def remote_device_list_changed(self, user_id: str, stream_id: int = 0,
                                         prev_id: list[int] | None = None) -> None:
        """A remote server announced that one of its users' devices (or cross-signing keys)
        changed: the inbound `m.device_list_update` / `m.signing_key_update` EDU handler calls
        this. The cached device list of that user (if any) is marked stale, so the next
        `/keys/query` fetches it again, and local users sharing a room with the user are told
        through `device_lists.changed`. `prev_id` is accepted for the EDU's sake; a stale mark
        is always safe, so gaps in the remote stream need no special handling."""
        if self._is_local(user_id):
            return
        await self.remote.device_list_changed(user_id, stream_id)

    async def claim(self, one_time_keys: Any, timeout_ms: int = 10_000,
                    local_only: bool = False) -> dict[str, Any]:
        if not isinstance(one_time_keys, dict) or not all(
                isinstance(v, dict) and all(isinstance(a, str) and a for a in v.values())
                for v in one_time_keys.values()):
            raise MatrixError(400, "M_BAD_JSON", "one_time_keys must map users to devices to algorithms")
        if not all(isinstance(u, str) and ":" in u for u in one_time_keys):
            raise MatrixError(400, "M_INVALID_PARAM", "one_time_keys must be keyed by user IDs")
        wanted = [(u, d, a) for u, devs in one_time_keys.items() if self._is_local(u) for d, a in devs.items()]
        if sum(len(v) for v in one_time_keys.values()) > MAX_CLAIM:
            raise MatrixError(400, "M_INVALID_PARAM", f"At most {MAX_CLAIM} keys may be claimed at once")
        out: dict[str, dict[str, Any]] = {}
        slots = asyncio.Semaphore(CLAIM_CONCURRENCY)

        async def one(user_id: str, device_id: str, algorithm: str) -> None:
            async with slots:
                got = await self.stores.e2e_keys.claim(user_id, device_id, algorithm)
            self._forget_counts(user_id, device_id)
            if got is not None:
                kid, key = got
                out.setdefault(user_id, {}).setdefault(device_id, {})[f"{algorithm}:{kid}"] = key

        await asyncio.gather(*(one(u, d, a) for u, d, a in wanted))
        failures: dict[str, Any] = {}
        remote = {u: v for u, v in one_time_keys.items() if not self._is_local(u)}
        if remote and not local_only:
            theirs, failures = await self.remote.claim(remote, timeout_ms)
            out.update(theirs)
        return {"one_time_keys": out, "failures": failures}

    # ------------------------------------------------------------------ device lists

    async def changes(self, user_id: str, after: int, upto: int) -> tuple[list[str], list[str]]:
        """Users whose devices the user should re-fetch (changed) or stop tracking (left)
        between two stream positions."""
        if after >= upto:
            return [], []
        store = self.stores.e2e_keys
        sharing = await store.users_sharing_rooms(user_id)
        changed = await store.device_lists_changed(user_id, sorted(sharing), after, upto)
        joined, left = await store.membership_changes_since(user_id, after, upto)
        changed |= joined & sharing
        left -= sharing
        return sorted(changed), sorted(left - changed)

    async def device_list_changed(self, user_id: str) -> None:
        """A device was added or renamed: whoever tracks the user's devices re-fetches them."""
        async with self.stores.stream.write() as (c, pos):
            await self.stores.e2e_keys.add_device_list_change(c, user_id, pos)
        await self._announce(user_id)
        await self._tell_servers(user_id, None, False)

    async def _tell_servers(self, user_id: str, device_ids: list[str] | None, deleted: bool) -> None:
        if self.on_device_change is not None and self._is_local(user_id):
            await self.on_device_change(user_id, device_ids, deleted)

    async def devices_deleted(self, user_id: str, device_ids: list[str] | None) -> None:
        """A device (or all of a user's devices) was deleted: its keys and pending to-device
        messages go, and the change is announced to everyone sharing a room with the user."""
        async with self.stores.stream.write() as (c, pos):
            await self.stores.e2e_keys.delete_device_keys(c, user_id, device_ids)
            await self.stores.to_device.delete_for_devices(c, user_id, device_ids)
            await self.stores.e2e_keys.add_device_list_change(c, user_id, pos)
        self._forget_counts(user_id, None)
        await self._announce(user_id)
        await self._tell_servers(user_id, device_ids, True)

    async def _announce(self, user_id: str) -> None:
        await self._wake_users(sorted(await self.stores.e2e_keys.users_sharing_rooms(user_id)))

    async def _announce_many(self, public: list[str], private: list[str]) -> None:
        for user_id in public:
            await self._announce(user_id)
        if private:
            await self._wake_users(private)
