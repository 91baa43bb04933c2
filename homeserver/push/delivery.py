"""The push delivery queue: one worker (LeaderLease "push-delivery") takes due rows from
`push_deliveries` and POSTs them, each in its own task and one at a time per pusher, so a
hanging gateway holds one slot until its timeout and never anything on a request path.

- HTTP pushers get the Push Gateway API's notification (`event_id_only` when the pusher's data
  asks for it); pushkeys the gateway lists in `rejected` lose their pushers.
- Web Push pushers get an RFC 8291-encrypted JSON summary with a VAPID authorization; a 404 or
  410 from the push service means the subscription is gone.
- Failures (no answer, 429, 5xx) retry with exponential backoff up to `max_attempts`; other
  answers give up. A row is deleted once delivered, so a failover sends nothing twice except a
  request whose answer was lost (gateways deduplicate by event_id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from homeserver.config_push import PushConfig
from homeserver.lease import LeaderLease
from homeserver.push.outbound_http import PostResult, PushHttp
from homeserver.push.pushers import KIND_HTTP, KIND_WEBPUSH
from homeserver.push.webpush_crypto import (
    b64url,
    encrypt,
    load_vapid_key,
    new_vapid_key_pem,
    public_bytes,
    vapid_authorization,
)
from homeserver.storage.events import StoredEvent
from homeserver.storage.pushers import Delivery, Pusher
from homeserver.storage.stores import Stores

log = logging.getLogger("parley.push")
VAPID_KEY = "vapid_private_key"
MAX_BODY_CHARS = 1000  # Web Push payloads must stay under one 4 KiB record


def _tweaks(actions: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in actions:
        if isinstance(a, dict) and isinstance(a.get("set_tweak"), str):
            out[a["set_tweak"]] = a.get("value", True)
    return out


class PushDelivery:
    def __init__(self, stores: Stores, config: PushConfig, contact: str, http: PushHttp,
                 extra_jobs: list[Callable[[], Awaitable[None]]] | None = None) -> None:
        self.stores = stores
        self.config = config
        self.contact = contact
        self.http = http
        self.extra_jobs = extra_jobs if extra_jobs is not None else []
        self._wake = asyncio.Event()
        self._in_flight: dict[tuple[str, str, str, int], asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(config.concurrency)
        self._task: asyncio.Task[None] | None = None
        self._vapid_pem: str | None = None
        self._stopping = False
        self.lease = LeaderLease(stores.db, "push-delivery")

    # ------------------------------------------------------------------ lifecycle

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self.config.enabled and self._task is None:
            self._task = asyncio.ensure_future(self.lease.run_forever(self._loop))

    async def stop(self) -> None:
        self._stopping = True
        tasks = [t for t in (self._task, *self._in_flight.values()) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._task = None
        await self.http.close()

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.run_once()
                for job in self.extra_jobs:
                    await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("push delivery round failed")
            # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that arrives
            # just as the event is set (a finishing delivery sets it), and stop() would wait forever.
            waiter = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({waiter}, timeout=self.config.poll_interval_ms / 1000)
            finally:
                waiter.cancel()

    async def run_once(self, now_ms: int | None = None) -> int:
        """Start a task for the oldest due delivery of each pusher with none in flight; returns
        how many started."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        started = 0
        busy = {k[:3] for k in self._in_flight}
        for d in await self.stores.pushers.due(now, self.config.concurrency * 4):
            key = (d.user_id, d.app_id, d.pushkey, d.stream_ordering)
            if key[:3] in busy:  # one request at a time per pusher: a hanging gateway holds one slot
                continue
            busy.add(key[:3])
            task = asyncio.ensure_future(self._deliver_guarded(d))
            self._in_flight[key] = task
            task.add_done_callback(lambda _t, k=key: self._done(k))  # type: ignore[misc]
            started += 1
        return started

    def _done(self, key: tuple[str, str, str, int]) -> None:
        self._in_flight.pop(key, None)
        self._wake.set()  # a finished slot may let more through

    async def _deliver_guarded(self, d: Delivery) -> None:
        async with self._slots:
            try:
                await self.deliver(d)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("push delivery to %s failed", d.pushkey[:40])
                await self._retry(d)

    # ------------------------------------------------------------------ one delivery

    async def deliver(self, d: Delivery) -> None:
        # The queue was read before an earlier task for this row finished: that one sent it.
        if not await self.stores.pushers.is_pending(d):
            return
        pusher = await self.stores.pushers.get(d.user_id, d.app_id, d.pushkey)
        if pusher is not None and pusher.kind == KIND_HTTP and d.event_id is None:
            await self._finish(pusher, d, await self._post_counts(pusher, d))
            return
        ev = await self.stores.events.get(d.event_id) if d.event_id is not None else None
        if pusher is None or ev is None:
            await self.stores.pushers.delivered(d)
            return
        if pusher.kind == KIND_HTTP:
            result = await self._post_gateway(pusher, d, ev)
        elif pusher.kind == KIND_WEBPUSH:
            result = await self._post_webpush(pusher, d, ev)
        else:
            await self.stores.pushers.delivered(d)
            return
        await self._finish(pusher, d, result)

    async def _finish(self, pusher: Pusher, d: Delivery, result: PostResult) -> None:
        if 200 <= result.status < 300:
            await self.stores.pushers.delivered(d)
            if pusher.kind == KIND_HTTP:
                await self._drop_rejected(pusher, result.body)
        elif pusher.kind == KIND_WEBPUSH and result.status in (404, 410):
            log.info("web push subscription gone (%s): removing the pusher", result.status)
            await self.stores.pushers.delete(pusher.user_id, pusher.app_id, pusher.pushkey)
        elif result.status in (0, 429) or result.status >= 500:
            log.info("push to %s failed (%s %s); retrying", pusher.app_id, result.status, result.error or "")
            await self._retry(d)
        else:
            log.warning("push to %s refused (%s %s); giving up", pusher.app_id, result.status, result.error or "")
            await self.stores.pushers.delivered(d)

    async def _retry(self, d: Delivery) -> None:
        if d.attempts + 1 >= self.config.max_attempts:
            await self.stores.pushers.delivered(d)
            return
        delay = min(self.config.retry_base_ms * 2 ** d.attempts, self.config.retry_max_ms)
        await self.stores.pushers.retry_at(d, int(time.time() * 1000) + delay)

    async def _drop_rejected(self, pusher: Pusher, body: bytes) -> None:
        try:
            rejected = orjson.loads(body).get("rejected", [])
        except (orjson.JSONDecodeError, AttributeError):
            return
        if isinstance(rejected, list) and pusher.pushkey in rejected:
            log.info("gateway rejected a pushkey of %s: removing the pusher", pusher.user_id)
            await self.stores.pushers.delete(pusher.user_id, pusher.app_id, pusher.pushkey)

    async def _counts(self, user_id: str) -> dict[str, int]:
        unread = await self.stores.pushers.unread_count(user_id)
        return {"unread": unread} if unread else {}

    async def _room_facts(self, ev: StoredEvent) -> dict[str, Any]:
        keys = [("m.room.name", ""), ("m.room.canonical_alias", ""), ("m.room.member", ev.sender),
                ("m.room.encryption", "")]
        ids = await self.stores.state.current_ids(ev.room_id, keys)
        got = await self.stores.events.get_many(ids.values())

        def content(k: tuple[str, str]) -> dict[str, Any]:
            e = got.get(ids.get(k, ""))
            c = e.pdu.get("content") if e else None
            return c if isinstance(c, dict) else {}

        facts: dict[str, Any] = {"encrypted": bool(ids.get(("m.room.encryption", "")))}
        for field, key, name in (("room_name", ("m.room.name", ""), "name"),
                                 ("room_alias", ("m.room.canonical_alias", ""), "alias"),
                                 ("sender_display_name", ("m.room.member", ev.sender), "displayname")):
            v = content(key).get(name)
            if isinstance(v, str) and v:
                facts[field] = v
        return facts

    async def gateway_payload(self, pusher: Pusher, d: Delivery, ev: StoredEvent) -> dict[str, Any]:
        """The body of POST /_matrix/push/v1/notify (Push Gateway API)."""
        tweaks = _tweaks(d.actions)
        device = self._device(pusher)
        if tweaks:
            device["tweaks"] = tweaks
        n: dict[str, Any] = {"event_id": ev.event_id, "room_id": ev.room_id, "counts": await self._counts(d.user_id),
                             "devices": [device], "prio": "high" if tweaks.get("highlight") or
                             ev.type in ("m.room.message", "m.room.encrypted", "m.call.invite") else "low"}
        if pusher.data.get("format") != "event_id_only":
            n.update({"type": ev.type, "sender": ev.sender})
            facts = await self._room_facts(ev)
            n.update({k: v for k, v in facts.items() if k != "encrypted"})
            content = ev.pdu.get("content")
            if isinstance(content, dict) and content and not ev.redacted_by:
                n["content"] = content
            if ev.type == "m.room.member":
                n["user_is_target"] = ev.state_key == d.user_id
        return {"notification": n}

    def _device(self, pusher: Pusher) -> dict[str, Any]:
        return {"app_id": pusher.app_id, "pushkey": pusher.pushkey, "pushkey_ts": pusher.pushkey_ts,
                "data": {k: v for k, v in pusher.data.items() if k != "url"}}

    async def _post_counts(self, pusher: Pusher, d: Delivery) -> PostResult:
        """A badge update without an event (the Push Gateway API allows counts alone)."""
        body = {"notification": {"counts": await self._counts(d.user_id), "devices": [self._device(pusher)],
                                 "prio": "low"}}
        return await self.http.post(str(pusher.data["url"]), orjson.dumps(body), {"Content-Type": "application/json"})

    async def _post_gateway(self, pusher: Pusher, d: Delivery, ev: StoredEvent) -> PostResult:
        body = orjson.dumps(await self.gateway_payload(pusher, d, ev))
        return await self.http.post(str(pusher.data["url"]), body, {"Content-Type": "application/json"})

    # ------------------------------------------------------------------ Web Push

    async def _vapid(self) -> str:
        if self._vapid_pem is None:
            self._vapid_pem = await self.stores.pushers.key(VAPID_KEY, new_vapid_key_pem())
        return self._vapid_pem

    async def vapid_public_key(self) -> str:
        """The application server key browsers subscribe with (base64url, uncompressed P-256)."""
        return b64url(public_bytes(load_vapid_key(await self._vapid()).public_key()))

    async def webpush_payload(self, d: Delivery, ev: StoredEvent) -> dict[str, Any]:
        facts = await self._room_facts(ev)
        out: dict[str, Any] = {"event_id": ev.event_id, "room_id": ev.room_id, "type": ev.type, "sender": ev.sender,
                               "counts": await self._counts(d.user_id),
                               "highlight": bool(_tweaks(d.actions).get("highlight"))}
        out.update({k: v for k, v in facts.items() if k in ("room_name", "sender_display_name")})
        body = ev.pdu.get("content", {}).get("body")
        if not facts["encrypted"] and ev.type == "m.room.message" and isinstance(body, str) and not ev.redacted_by:
            out["body"] = body[:MAX_BODY_CHARS]
        return out

    async def _post_webpush(self, pusher: Pusher, d: Delivery, ev: StoredEvent) -> PostResult:
        payload = orjson.dumps(await self.webpush_payload(d, ev))
        body = encrypt(payload, str(pusher.data["p256dh"]), str(pusher.data["auth"]))
        headers = {"Content-Encoding": "aes128gcm", "Content-Type": "application/octet-stream", "TTL": "86400",
                   "Urgency": "high",
                   "Authorization": vapid_authorization(pusher.pushkey, load_vapid_key(await self._vapid()),
                                                        self.contact)}
        return await self.http.post(pusher.pushkey, body, headers)
