"""Pushers (Client-Server API §"Push notifications": GET /pushers, POST /pushers/set) and the
stored notifications behind GET /notifications.

Kinds: `http` (a push gateway, /_matrix/push/v1/notify), `email` (digests of unread messages,
app ID `m.email`) and Parley's `org.parley.webpush` (a browser's Web Push subscription, see
spec/push.md). A pusher belongs to the device that created it and goes with it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from homeserver.protocol.errors import MatrixError
from homeserver.rooms.serialize import EventSerializer
from homeserver.storage.pushers import Pusher
from homeserver.storage.stores import Stores

KIND_HTTP = "http"
KIND_EMAIL = "email"
KIND_WEBPUSH = "org.parley.webpush"
KINDS = (KIND_HTTP, KIND_EMAIL, KIND_WEBPUSH)
EMAIL_APP_ID = "m.email"
NOTIFY_PATH = "/_matrix/push/v1/notify"
MAX_APP_ID = 64
MAX_PUSHKEY_BYTES = 512
MAX_NOTIFICATIONS_LIMIT = 100
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$|^[^@\s<>]+@localhost$")
_B64URL = re.compile(r"^[A-Za-z0-9_-]+=*$")


def _str(body: dict[str, Any], key: str) -> str:
    v = body.get(key)
    if not isinstance(v, str) or not v:
        raise MatrixError(400, "M_INVALID_PARAM", f"'{key}' must be a non-empty string")
    return v


def _check_http_data(data: dict[str, Any]) -> None:
    url = data.get("url")
    if not isinstance(url, str):
        raise MatrixError(400, "M_INVALID_PARAM", "'data.url' is required for http pushers")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path != NOTIFY_PATH:
        raise MatrixError(400, "M_INVALID_PARAM", f"'data.url' must be an http(s) URL with the path {NOTIFY_PATH}")
    fmt = data.get("format")
    if fmt is not None and not isinstance(fmt, str):
        raise MatrixError(400, "M_INVALID_PARAM", "'data.format' must be a string")


def _check_webpush(pushkey: str, data: dict[str, Any]) -> None:
    parts = urlsplit(pushkey)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MatrixError(400, "M_INVALID_PARAM", "a Web Push pushkey is the subscription's endpoint URL")
    for key in ("p256dh", "auth"):
        v = data.get(key)
        if not isinstance(v, str) or not _B64URL.match(v):
            raise MatrixError(400, "M_INVALID_PARAM", f"'data.{key}' must be the subscription's base64url key")


class PusherService:
    def __init__(self, stores: Stores, serializer: EventSerializer,
                 on_change: Callable[[], None] | None = None) -> None:
        self.stores = stores
        self.serializer = serializer
        self.on_change = on_change

    async def list_json(self, user_id: str) -> list[dict[str, Any]]:
        return [self.to_json(p) for p in await self.stores.pushers.for_user(user_id)]

    @staticmethod
    def to_json(p: Pusher) -> dict[str, Any]:
        out: dict[str, Any] = {"pushkey": p.pushkey, "kind": p.kind, "app_id": p.app_id,
                               "app_display_name": p.app_display_name,
                               "device_display_name": p.device_display_name, "lang": p.lang, "data": p.data}
        if p.profile_tag is not None:
            out["profile_tag"] = p.profile_tag
        return out

    async def set(self, user_id: str, device_id: str | None, body: dict[str, Any]) -> None:
        missing = [k for k in ("kind", "app_id", "pushkey") if k not in body]
        if missing:
            raise MatrixError(400, "M_MISSING_PARAM", f"Missing parameters: {', '.join(missing)}")
        app_id, pushkey = _str(body, "app_id"), _str(body, "pushkey")
        if len(app_id) > MAX_APP_ID:
            raise MatrixError(400, "M_INVALID_PARAM", f"'app_id' is longer than {MAX_APP_ID} characters")
        if len(pushkey.encode()) > MAX_PUSHKEY_BYTES:
            raise MatrixError(400, "M_INVALID_PARAM", f"'pushkey' is longer than {MAX_PUSHKEY_BYTES} bytes")
        kind = body["kind"]
        if kind is None:
            await self.stores.pushers.delete(user_id, app_id, pushkey)
            return
        if not isinstance(kind, str) or kind not in KINDS:
            raise MatrixError(400, "M_INVALID_PARAM", f"Unknown pusher kind {kind!r}; known: {', '.join(KINDS)}")
        missing = [k for k in ("app_display_name", "device_display_name", "lang", "data") if k not in body]
        if missing:
            raise MatrixError(400, "M_MISSING_PARAM", f"Missing parameters: {', '.join(missing)}")
        data = body["data"]
        if not isinstance(data, dict):
            raise MatrixError(400, "M_INVALID_PARAM", "'data' must be an object")
        profile_tag = body.get("profile_tag")
        if profile_tag is not None and not isinstance(profile_tag, str):
            raise MatrixError(400, "M_INVALID_PARAM", "'profile_tag' must be a string")
        append = body.get("append", False)
        if not isinstance(append, bool):
            raise MatrixError(400, "M_INVALID_PARAM", "'append' must be a boolean")
        if kind == KIND_HTTP:
            _check_http_data(data)
        elif kind == KIND_EMAIL:
            if app_id != EMAIL_APP_ID:
                raise MatrixError(400, "M_INVALID_PARAM", f"email pushers use the app ID {EMAIL_APP_ID!r}")
            if not _EMAIL.match(pushkey):
                raise MatrixError(400, "M_INVALID_PARAM", "the pushkey of an email pusher is an email address")
        else:
            _check_webpush(pushkey, data)
        pusher = Pusher(
            user_id=user_id, app_id=app_id, pushkey=pushkey, kind=kind, device_id=device_id,
            app_display_name=_str(body, "app_display_name"), device_display_name=_str(body, "device_display_name"),
            profile_tag=profile_tag, lang=_str(body, "lang"), data=data, pushkey_ts=int(time.time()),
            since_stream=self.stores.stream.current(), emailed_stream=self.stores.stream.current(),
        )
        await self.stores.pushers.upsert(pusher, replace_other_users=not append)
        if self.on_change is not None:
            self.on_change()

    async def devices_deleted(self, user_id: str, device_ids: list[str] | None) -> None:
        await self.stores.pushers.delete_for_devices(user_id, device_ids)

    async def password_changed(self, user_id: str, device_id: str | None) -> None:
        """A new password removes every pusher except those of the device that changed it."""
        await self.stores.pushers.delete_for_devices(user_id, None, keep_device=device_id)

    async def notifications(self, user_id: str, from_token: str | None, limit: int | None,
                            only: str | None) -> dict[str, Any]:
        before: int | None = None
        if from_token is not None:
            if not from_token.isdigit():
                raise MatrixError(400, "M_INVALID_PARAM", "Unknown 'from' token")
            before = int(from_token)
        if only is not None and only != "highlight":
            raise MatrixError(400, "M_INVALID_PARAM", "'only' may only be 'highlight'")
        n = min(limit if limit is not None else 20, MAX_NOTIFICATIONS_LIMIT)
        if n <= 0:
            return {"notifications": []}
        rows = await self.stores.pushers.notifications(user_id, before, n + 1, only == "highlight")
        more = len(rows) > n
        rows = rows[:n]
        evs = await self.stores.events.get_many([r["event_id"] for r in rows])
        found = [r for r in rows if r["event_id"] in evs]
        serialized = await self.serializer.serialize([evs[r["event_id"]] for r in found])
        out: list[dict[str, Any]] = []
        for r, ev in zip(found, serialized):
            ev.pop("room_id", None)
            out.append({"actions": r["actions"], "event": ev, "read": r["read"], "room_id": r["room_id"],
                        "ts": r["ts"]})
        result: dict[str, Any] = {"notifications": out}
        if more and rows:
            result["next_token"] = str(rows[-1]["stream"])
        return result
