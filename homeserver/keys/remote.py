"""Remote users' keys: /keys/query and /keys/claim for users of other servers, over federation.

Requests are grouped per server and sent in parallel, each bounded by the client's `timeout`;
a server that cannot be reached (or answers with an error) is listed in `failures` and the
other servers' answers are still returned. What a server answers about users that are not
its own is dropped.

Device lists of remote users that share a room with a local user are cached (migration 016)
until their server announces a change (`m.device_list_update`, `m.signing_key_update`): the
EDU handler calls `remote_device_list_changed`, which marks the cached list stale (the next
query fetches it again) and wakes the local users who share a room with that user, so their
clients see the user in `device_lists.changed` and query again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from homeserver.protocol.errors import MatrixError
from homeserver.protocol.ids import server_name_of
from homeserver.storage.stores import Stores

log = logging.getLogger("parley.keys")

WakeUsers = Callable[[list[str]], Awaitable[None]]


class KeyFederation(Protocol):
    """The two federation requests this module needs (federation/service.py:Federation)."""

    async def query_user_keys(self, server: str, device_keys: dict[str, list[str]],
                              timeout_s: float) -> dict[str, Any]: ...

    async def claim_user_keys(self, server: str, one_time_keys: dict[str, dict[str, str]],
                              timeout_s: float) -> dict[str, Any]: ...


def _failure(e: BaseException) -> dict[str, Any]:
    if isinstance(e, TimeoutError):
        return {"status": 504, "errcode": "M_UNKNOWN", "error": "Timed out waiting for the server"}
    if isinstance(e, MatrixError):
        return {"status": 503, "errcode": e.errcode, "error": e.error}
    return {"status": 503, "errcode": "M_UNKNOWN", "error": "The server could not be reached"}


def _signed_obj_for(user_id: str, obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("user_id") == user_id and isinstance(obj.get("keys"), dict)


def user_keys_from_answer(server: str, answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """user -> {"device_keys", "master_key", "self_signing_key"} from a server's
    /user/keys/query answer, keeping only well-formed entries about that server's own users."""
    out: dict[str, dict[str, Any]] = {}
    devices = answer.get("device_keys")
    if isinstance(devices, dict):
        for user_id, devs in devices.items():
            if not isinstance(user_id, str) or server_name_of(user_id) != server or not isinstance(devs, dict):
                continue
            kept = {d: k for d, k in devs.items()
                    if isinstance(d, str) and _signed_obj_for(user_id, k) and k.get("device_id") == d}
            out[user_id] = {"device_keys": kept, "master_key": None, "self_signing_key": None}
    for field, name in (("master_keys", "master_key"), ("self_signing_keys", "self_signing_key")):
        found = answer.get(field)
        if not isinstance(found, dict):
            continue
        for user_id, key in found.items():
            if user_id in out and _signed_obj_for(user_id, key):
                out[user_id][name] = key
    return out


class RemoteKeys:
    def __init__(self, stores: Stores, server_name: str, wake_users: WakeUsers) -> None:
        self.stores = stores
        self.server_name = server_name
        self._wake_users = wake_users
        #: Set by homeserver/app.py when federation is enabled.
        self.federation: KeyFederation | None = None

    async def query(self, device_keys: dict[str, list[str]], timeout_ms: int
                    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """(user -> cached-shape keys, failures per server) for remote users."""
        cached = await self.stores.remote_device_lists.fresh(list(device_keys))
        # Once nobody here shares a room with a user, their server stops telling us about
        # changes: the cached list can no longer be trusted.
        gone = [u for u in cached
                if not await self.stores.remote_device_lists.shares_room_with_local(u, self.server_name)]
        if gone:
            await self.stores.remote_device_lists.forget(gone)
            for user_id in gone:
                del cached[user_id]
        by_server: dict[str, list[str]] = {}
        for user_id in device_keys:
            if user_id not in cached:
                by_server.setdefault(server_name_of(user_id), []).append(user_id)
        found: dict[str, dict[str, Any]] = dict(cached)
        failures: dict[str, dict[str, Any]] = {}

        async def one(server: str, users: list[str]) -> None:
            try:
                if self.federation is None:
                    raise MatrixError(503, "M_UNKNOWN", "Federation is not enabled on this server")
                # All devices, whatever was asked: the answer is what the cache keeps.
                answer = await asyncio.wait_for(
                    self.federation.query_user_keys(server, {u: [] for u in users}, timeout_ms / 1000),
                    timeout_ms / 1000)
            except (MatrixError, TimeoutError, OSError) as e:
                log.info("keys query to %s failed: %s", server, e)
                failures[server] = _failure(e)
                return
            got = user_keys_from_answer(server, answer)
            for user_id in users:
                if user_id in got:
                    found[user_id] = got[user_id]
                    if await self.stores.remote_device_lists.shares_room_with_local(user_id, self.server_name):
                        await self.stores.remote_device_lists.put(user_id, got[user_id], int(time.time() * 1000))

        await asyncio.gather(*(one(s, us) for s, us in by_server.items()))
        for user_id, wanted in device_keys.items():
            if wanted and user_id in found:
                entry = dict(found[user_id])
                entry["device_keys"] = {d: k for d, k in entry["device_keys"].items() if d in wanted}
                found[user_id] = entry
        return found, failures

    async def claim(self, wanted: dict[str, dict[str, str]], timeout_ms: int
                    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """(user -> device -> {"alg:id": key}, failures per server) for remote users' one-time keys."""
        by_server: dict[str, dict[str, dict[str, str]]] = {}
        for user_id, devices in wanted.items():
            by_server.setdefault(server_name_of(user_id), {})[user_id] = devices
        out: dict[str, dict[str, Any]] = {}
        failures: dict[str, dict[str, Any]] = {}

        async def one(server: str, asked: dict[str, dict[str, str]]) -> None:
            try:
                if self.federation is None:
                    raise MatrixError(503, "M_UNKNOWN", "Federation is not enabled on this server")
                answer = await asyncio.wait_for(
                    self.federation.claim_user_keys(server, asked, timeout_ms / 1000), timeout_ms / 1000)
            except (MatrixError, TimeoutError, OSError) as e:
                log.info("keys claim to %s failed: %s", server, e)
                failures[server] = _failure(e)
                return
            keys = answer.get("one_time_keys")
            if not isinstance(keys, dict):
                return
            for user_id, devices in keys.items():
                if user_id not in asked or not isinstance(devices, dict):
                    continue
                for device_id, otks in devices.items():
                    if device_id in asked[user_id] and isinstance(otks, dict):
                        kept = {k: v for k, v in otks.items() if isinstance(k, str) and ":" in k}
                        if kept:
                            out.setdefault(user_id, {})[device_id] = kept

        await asyncio.gather(*(one(s, a) for s, a in by_server.items()))
        return out, failures

    async def device_list_changed(self, user_id: str, stream_id: int) -> None:
        """See KeyService.remote_device_list_changed."""
        await self.stores.remote_device_lists.mark_stale(user_id, stream_id)
        async with self.stores.stream.write() as (c, pos):
            await self.stores.e2e_keys.add_device_list_change(c, user_id, pos)
        await self._wake_users(sorted(await self.stores.e2e_keys.users_sharing_rooms(user_id)))
