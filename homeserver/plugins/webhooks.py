"""Webhooks (Parley extension, spec/plugins.md §Webhooks).

Incoming: a room admin creates one and gets a secret URL; a JSON POST to it (Slack's shape,
`{"text": ..., "username": ...}`, also as a form field `payload`) becomes an m.text message sent
by that admin, marked `org.parley.webhook`.

Outgoing: a room admin gives a URL and a regular expression; every later m.room.message of the
room whose body matches is POSTed there as JSON with `X-Parley-Signature: sha256=<hex HMAC of
the body with the webhook's secret>`, in stream order, retried with backoff. Delivery runs on
the plugins worker, off the request path, and keeps a persisted cursor (at-least-once)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from homeserver.config import Config
from homeserver.outbound import AddressPolicy, url_host
from homeserver.plugins.service import PluginService
from homeserver.protocol.errors import MatrixError
from homeserver.rooms.service import RoomService
from homeserver.storage.events import StoredEvent
from homeserver.storage.plugins import PluginStore

log = logging.getLogger("parley.webhooks")
CURSOR = "webhooks"
MAX_TEXT = 40_000
RETRIES = 5
POLL_S = 0.25
SIGNATURE_HEADER = "X-Parley-Signature"
WEBHOOK_DEVICE = "PARLEY_WEBHOOK"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _public(hook: dict[str, Any], base_url: str, with_secret: bool) -> dict[str, Any]:
    out = {"id": hook["id"], "kind": hook["kind"], "room_id": hook["room_id"], "owner": hook["owner"]}
    if hook["kind"] == "incoming" and with_secret:
        out["url"] = f"{base_url}_parley/webhooks/{hook['id']}/{hook['secret']}"
    if hook["kind"] == "outgoing":
        out.update({"url": hook["url"], "pattern": hook["pattern"]})
        if with_secret:
            out["secret"] = hook["secret"]
    return out


class WebhookService:
    def __init__(self, plugins: PluginService, rooms: RoomService, config: Config) -> None:
        self.plugins = plugins
        self.store: PluginStore = plugins.store
        self.rooms = rooms
        self.base_url = config.public_baseurl

    async def create(self, user_id: str, room_id: str, body: dict[str, Any]) -> dict[str, Any]:
        kind = body.get("kind")
        if kind not in ("incoming", "outgoing"):
            raise MatrixError(400, "M_INVALID_PARAM", "'kind' must be 'incoming' or 'outgoing'")
        await self.plugins.check_member(user_id, room_id)
        if not await self.plugins.is_room_admin(user_id, room_id):
            raise MatrixError(403, "M_FORBIDDEN", "Only room admins may add webhooks")
        hook: dict[str, Any] = {"id": secrets.token_urlsafe(9), "kind": kind, "room_id": room_id, "owner": user_id,
                                "secret": secrets.token_urlsafe(24), "created_ts": int(time.time() * 1000)}
        if kind == "outgoing":
            url, pattern = body.get("url"), body.get("pattern", "")
            if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise MatrixError(400, "M_INVALID_PARAM", "'url' must be an http(s) URL")
            if not isinstance(pattern, str) or len(pattern) > 500:
                raise MatrixError(400, "M_INVALID_PARAM", "'pattern' must be a regular expression string")
            try:
                re.compile(pattern)
            except re.error as e:
                raise MatrixError(400, "M_INVALID_PARAM", f"bad 'pattern': {e}") from None
            hook.update({"url": url, "pattern": pattern})
        await self.store.add_webhook(hook)
        return _public(hook, self.base_url, with_secret=True)

    async def list(self, user_id: str, room_id: str) -> list[dict[str, Any]]:
        await self.plugins.check_member(user_id, room_id)
        admin = await self.plugins.is_room_admin(user_id, room_id)
        return [_public(h, self.base_url, with_secret=admin) for h in await self.store.room_webhooks(room_id)]

    async def delete(self, user_id: str, room_id: str, hook_id: str) -> None:
        hook = await self.store.webhook(hook_id)
        if hook is None or hook["room_id"] != room_id:
            raise MatrixError(404, "M_NOT_FOUND", "No such webhook in this room")
        if not await self.plugins.is_room_admin(user_id, room_id):
            raise MatrixError(403, "M_FORBIDDEN", "Only room admins may remove webhooks")
        await self.store.delete_webhook(hook_id)

    async def receive(self, hook_id: str, secret: str, payload: Any) -> str:
        """An incoming POST: the event ID of the message it became."""
        hook = await self.store.webhook(hook_id)
        if hook is None or hook["kind"] != "incoming" or not hmac.compare_digest(hook["secret"], secret):
            raise MatrixError(404, "M_NOT_FOUND", "Unknown webhook")
        if not isinstance(payload, dict):
            raise MatrixError(400, "M_BAD_JSON", "The payload must be a JSON object")
        text = payload.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            raise MatrixError(400, "M_BAD_JSON", f"'text' must be a non-empty string of at most {MAX_TEXT} characters")
        username = payload.get("username")
        mark: dict[str, Any] = {"id": hook_id}
        if isinstance(username, str) and username:
            mark["username"] = username[:100]
        content = {"msgtype": "m.text", "body": text, "org.parley.webhook": mark}
        ev = await self.rooms.send_event(hook["owner"], WEBHOOK_DEVICE, hook["room_id"], "m.room.message",
                                         content, None, None)
        return ev.event_id


class WebhookSender:
    """Posts matching messages to outgoing webhooks, one at a time in stream order."""

    def __init__(self, store: PluginStore, stream: Any, config: Config,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.store = store
        self.stream = stream
        self.policy = AddressPolicy(config.plugins.webhook_ip_allowlist)
        self.transport = transport

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=10, transport=self.transport, follow_redirects=False) as http:
            while True:
                try:
                    busy = await self._round(http)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - keep delivering; the cursor did not move
                    log.exception("webhook delivery failed")
                    busy = False
                if not busy:
                    await asyncio.sleep(POLL_S)

    async def _round(self, http: httpx.AsyncClient) -> bool:
        upto = self.stream.current()
        cursor = await self.store.cursor(CURSOR)
        if cursor is None:
            await self.store.set_cursor(CURSOR, upto)
            return False
        hooks = await self.store.outgoing_webhooks()
        if not hooks:
            if upto > cursor:
                await self.store.set_cursor(CURSOR, upto)
            return False
        evs = await self.store.events_after(["m.room.message"], cursor, upto, 100)
        for ev in evs:
            for hook in hooks:
                if self._matches(hook, ev):
                    await self._post(http, hook, ev)
            await self.store.set_cursor(CURSOR, ev.stream_ordering)
        if not evs and upto > cursor:
            await self.store.set_cursor(CURSOR, upto)
        return len(evs) == 100

    @staticmethod
    def _matches(hook: dict[str, Any], ev: StoredEvent) -> bool:
        content = ev.pdu.get("content", {})
        body = content.get("body")
        if ev.room_id != hook["room_id"] or not isinstance(body, str) or "org.parley.webhook" in content:
            return False  # messages that came in through a webhook never go out again (no loops)
        return re.search(hook["pattern"] or "", body) is not None

    async def _post(self, http: httpx.AsyncClient, hook: dict[str, Any], ev: StoredEvent) -> None:
        body = orjson.dumps({
            "webhook_id": hook["id"], "room_id": ev.room_id, "event_id": ev.event_id, "sender": ev.sender,
            "origin_server_ts": ev.origin_server_ts, "content": ev.pdu.get("content", {}),
            "timestamp": int(time.time() * 1000),
        })
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(hook["secret"], body)}
        delay = 1.0
        for attempt in range(1, RETRIES + 1):
            try:
                url, extra = await self._pinned(hook["url"])
                r = await http.post(url, content=body, headers={**headers, **extra})
                if r.status_code < 300:
                    return
                log.warning("webhook %s: %s answered %d (attempt %d)", hook["id"], hook["url"], r.status_code, attempt)
            except (httpx.HTTPError, MatrixError) as e:
                log.warning("webhook %s: %s (attempt %d)", hook["id"], e, attempt)
            if attempt < RETRIES:
                await asyncio.sleep(delay)
                delay *= 2
        log.error("webhook %s: giving up on %s", hook["id"], ev.event_id)

    async def _pinned(self, url: str) -> tuple[str, dict[str, str]]:
        """The URL to connect to after the address check: for plain HTTP the checked address
        itself (the name stays in Host), so DNS cannot move the connection afterwards."""
        u = urlsplit(url)
        host = u.hostname or ""
        port = u.port or (443 if u.scheme == "https" else 80)
        ip = await self.policy.checked_address(host, port)
        if u.scheme != "http":
            return url, {}
        netloc = f"{url_host(ip)}:{port}"
        return u._replace(netloc=netloc).geturl(), {"Host": u.netloc}
