"""WebSocket sync (Parley extension `org.parley.ws`; see spec/websocket-sync.md).

One socket carries the /sync stream (frames in the /sync response shape, assembled by the same
SyncService) and the client's own actions (send, typing, receipts, read markers), each answered
with the request id. A slow reader is closed with a resume token rather than buffered forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import anyio
import msgpack
import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from client_api.ws_ai import AIFrames
from homeserver import metrics
from homeserver.accounts.service import Requester
from homeserver.app import Homeserver
from homeserver.logs import log_access
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.filters import SyncFilter
from homeserver.sync.assembly import is_empty_response
from homeserver.sync.token import SyncToken

log = logging.getLogger("parley.ws")

PATH = "/_matrix/client/unstable/org.parley.ws"
HEARTBEAT_S = 30.0
IDLE_TIMEOUT_S = 90.0
AUTH_TIMEOUT_S = 10.0
SYNC_WAIT_MS = 30_000
MAX_FRAME_BYTES = 1024 * 1024

CLOSE_AUTH = 4001
CLOSE_BAD_REQUEST = 4002
CLOSE_IDLE = 4000
CLOSE_SLOW = 4008
CLOSE_GOING_AWAY = 1001  # server shutdown: reconnect (to another worker) with the last token


class _Closed(Exception):
    pass


class SyncSocket:
    def __init__(self, ws: WebSocket, hs: Homeserver) -> None:
        self.ws = ws
        self.hs = hs
        self.binary = ws.query_params.get("format") == "msgpack"
        self.out: asyncio.Queue[tuple[bytes | str, str | None]] = asyncio.Queue(hs.config.ws_max_queued_frames)
        self.requester: Requester | None = None
        self.token: SyncToken | None = None
        self.delivered: str | None = None  # newest sync token the client has acknowledged
        self.in_flight: list[str] = []  # sync tokens sent and not yet acknowledged
        self.window = hs.config.ws_max_queued_frames
        self.subscriptions: set[str] | None = None
        self.sync_started = asyncio.Event()
        self.filter = SyncFilter()
        self.last_seen = anyio.current_time()
        self.ai = AIFrames(hs, lambda obj: self.out.put((self._encode(obj), None)))

    # ------------------------------------------------------------------ framing

    def _encode(self, obj: dict[str, Any]) -> bytes | str:
        if self.binary:
            packed: bytes = msgpack.packb(obj, use_bin_type=True)
            return packed
        return orjson.dumps(obj).decode()

    def push(self, obj: dict[str, Any], token: str | None = None) -> None:
        """Queue a frame; a full queue means the client is not reading: close it."""
        try:
            self.out.put_nowait((self._encode(obj), token))
        except asyncio.QueueFull:
            raise _Closed("slow consumer") from None

    async def _receive(self) -> dict[str, Any]:
        msg = await self.ws.receive()
        if msg["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(msg.get("code", 1000))
        self.last_seen = anyio.current_time()
        raw: bytes | str | None = msg.get("bytes") if msg.get("bytes") is not None else msg.get("text")
        if raw is None or len(raw) > MAX_FRAME_BYTES:
            raise MatrixError(400, "M_TOO_LARGE", "Frame too large")
        try:
            data = msgpack.unpackb(raw, raw=False) if isinstance(raw, bytes) else orjson.loads(raw)
        except Exception:
            raise MatrixError(400, "M_NOT_JSON", "Frame is not valid JSON or msgpack") from None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise MatrixError(400, "M_BAD_JSON", "Frames are objects with a 'type'")
        return data

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        header = self.ws.headers.get("authorization")
        await self.ws.accept()
        try:
            if header is not None:
                scheme, _, token = header.partition(" ")
                bearer = token.strip() if scheme.lower() == "bearer" else ""
                self.requester = await self.hs.accounts.authenticate(bearer)
            else:
                with anyio.fail_after(AUTH_TIMEOUT_S):
                    first = await self._receive()
                if first.get("type") != "auth" or not isinstance(first.get("access_token"), str):
                    raise MatrixError(401, "M_MISSING_TOKEN", "The first frame must be 'auth'")
                if first.get("format") == "msgpack":
                    self.binary = True
                self.requester = await self.hs.accounts.authenticate(first["access_token"])
        except (MatrixError, TimeoutError) as e:
            err = e if isinstance(e, MatrixError) else MatrixError(401, "M_MISSING_TOKEN", "No auth frame")
            await self._send_now({"type": "error", **err.to_dict()})
            await self.ws.close(CLOSE_AUTH, err.errcode)
            return
        except WebSocketDisconnect:
            return
        await self._send_now({"type": "authenticated", "user_id": self.requester.user_id,
                              "device_id": self.requester.device_id})
        close_code, reason = 1000, ""
        gone = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._writer)
                tg.start_soon(self._sync_loop)
                tg.start_soon(self._heartbeat)
                tg.start_soon(self._until_stopping)
                try:
                    await self._reader()
                finally:
                    self.ai.close()
                    tg.cancel_scope.cancel()
        except* _Closed as eg:
            why = str(eg.exceptions[0])
            if why == "slow consumer":
                close_code, reason = CLOSE_SLOW, f"resume:{self.delivered or ''}"
            elif why == "shutdown":
                close_code, reason = CLOSE_GOING_AWAY, f"resume:{self.delivered or ''}"
            else:
                close_code, reason = CLOSE_IDLE, "idle"
        except* WebSocketDisconnect:
            gone = True
        if gone:
            return
        try:
            await self.ws.close(close_code, reason[:120])
        except Exception:
            pass

    async def _send_now(self, obj: dict[str, Any]) -> None:
        frame = self._encode(obj)
        if isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        else:
            await self.ws.send_text(frame)

    async def _writer(self) -> None:
        while True:
            frame, token = await self.out.get()
            try:
                if isinstance(frame, bytes):
                    await self.ws.send_bytes(frame)
                else:
                    await self.ws.send_text(frame)
            except Exception:
                raise WebSocketDisconnect(1006) from None


    async def _until_stopping(self) -> None:
        await self.hs.stopping.wait()
        raise _Closed("shutdown")

    async def _heartbeat(self) -> None:
        while True:
            await anyio.sleep(HEARTBEAT_S)
            if anyio.current_time() - self.last_seen > IDLE_TIMEOUT_S:
                raise _Closed("idle")
            self.push({"type": "ping"})

    async def _reader(self) -> None:
        while True:
            try:
                msg = await self._receive()
            except MatrixError as e:
                self.push({"type": "error", **e.to_dict()})
                continue
            await self._handle(msg)

    # ------------------------------------------------------------------ requests

    async def _handle(self, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        kind = msg["type"]
        try:
            if kind == "pong":
                return
            if kind == "ack":
                token = msg.get("next_batch")
                if token in self.in_flight:
                    i = self.in_flight.index(token)
                    self.in_flight = self.in_flight[i + 1:]
                    self.delivered = token
                return
            if kind == "ping":
                self.push({"type": "pong", "id": rid})
                return
            if kind.startswith("ai."):
                assert self.requester is not None
                await self.ai.handle(self.requester.user_id, msg)
                return
            if kind == "sync":
                await self._start_sync(msg)
                result: dict[str, Any] = {}
            elif kind == "subscribe" or kind == "unsubscribe":
                rooms = msg.get("rooms")
                if not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms):
                    raise MatrixError(400, "M_BAD_JSON", "'rooms' must be a list of room IDs")
                if kind == "subscribe":
                    self.subscriptions = (self.subscriptions or set()) | set(rooms)
                elif self.subscriptions is not None:
                    self.subscriptions -= set(rooms)
                result = {"subscriptions": sorted(self.subscriptions or ())}
            else:
                result = await self._action(kind, msg)
            self.push({"type": "result", "id": rid, "result": result})
        except MatrixError as e:
            self.push({"type": "error", "id": rid, **e.to_dict()})

    async def _start_sync(self, msg: dict[str, Any]) -> None:
        if self.sync_started.is_set():
            raise MatrixError(400, "M_BAD_JSON", "The sync stream is already running")
        since = msg.get("since")
        if since is not None and not isinstance(since, str):
            raise MatrixError(400, "M_BAD_JSON", "'since' must be a token string")
        flt = msg.get("filter")
        if isinstance(flt, str):
            assert self.requester is not None  # the sync frame is only handled after authentication
            stored = await self.hs.filters.get(self.requester.user_id, flt)
            if stored is None:
                raise MatrixError(400, "M_INVALID_PARAM", "Unknown filter ID")
            flt = stored
        self.filter = SyncFilter.parse(flt)
        self.token = SyncToken.parse(since) if since else None
        self.delivered = since
        if msg.get("format") == "msgpack":
            self.binary = True
        self.sync_started.set()

    async def _action(self, kind: str, msg: dict[str, Any]) -> dict[str, Any]:
        req = self.requester
        assert req is not None
        hs = self.hs
        room_id = msg.get("room_id")
        if not isinstance(room_id, str):
            raise MatrixError(400, "M_BAD_JSON", "'room_id' is required")
        if kind == "send":
            etype, txn, content = msg.get("event_type"), msg.get("txn_id"), msg.get("content")
            if not isinstance(etype, str) or not etype or not isinstance(txn, str) or not txn \
                    or not isinstance(content, dict):
                raise MatrixError(400, "M_BAD_JSON", "send needs event_type, txn_id and content")
            await hs.ratelimiter.check("message", req.user_id, hs.config.rate_limits.messages_per_second,
                                 hs.config.rate_limits.messages_burst)
            # Same idempotency scope as the REST path, so a retry over either transport dedupes.
            path = f"/_matrix/client/v3/rooms/{room_id}/send/{etype}/{txn}"
            ev = await hs.rooms.send_event(req.user_id, req.device_id, room_id, etype, content, txn, path)
            return {"event_id": ev.event_id}
        if kind == "typing":
            typing = msg.get("typing")
            timeout = msg.get("timeout", 30000)
            if not isinstance(typing, bool) or not isinstance(timeout, int) or isinstance(timeout, bool):
                raise MatrixError(400, "M_BAD_JSON", "typing needs a boolean 'typing'")
            await hs.reader.require_joined(req.user_id, room_id)
            await hs.set_typing(room_id, req.user_id, typing, max(0, timeout))
            return {}
        if kind == "receipt":
            event_id = msg.get("event_id")
            if not isinstance(event_id, str):
                raise MatrixError(400, "M_BAD_JSON", "receipt needs an event_id")
            await hs.receipts.receipt(req.user_id, room_id, msg.get("receipt_type", "m.read"), event_id,
                                      msg.get("thread_id"))
            return {}
        if kind == "read_markers":
            await hs.receipts.read_markers(req.user_id, room_id, msg)
            return {}
        raise MatrixError(400, "M_UNRECOGNIZED", f"Unknown frame type {kind!r}")

    # ------------------------------------------------------------------ the stream

    async def _sync_loop(self) -> None:
        await self.sync_started.wait()
        req = self.requester
        assert req is not None
        first = True
        while True:
            if self.hs.stopping.is_set():
                # A stopping server's sync answers at once; from memory it may not even yield,
                # so this loop would spin and starve the rest of the shutdown.
                raise _Closed("shutdown")
            # Only what the client acknowledged counts as received (to-device messages are
            # deleted up to there), never a frame merely sent.
            acked = SyncToken.parse(self.delivered) if self.delivered else None
            resp = await self.hs.sync.sync(req.user_id, req.device_id, self.token, self.filter, False,
                                           0 if first else SYNC_WAIT_MS, ack_since=False, acked=acked)
            self.token = SyncToken.parse(resp["next_batch"])
            if self.subscriptions is not None:
                for section in ("join", "invite", "leave"):
                    rooms = resp.get("rooms", {}).get(section)
                    if rooms:
                        for r in list(rooms):
                            if r not in self.subscriptions:
                                del rooms[r]
            if first or not is_empty_response(resp):
                if len(self.in_flight) >= self.window:
                    # The client is not keeping up: close with the last token it acknowledged.
                    raise _Closed("slow consumer")
                self.in_flight.append(resp["next_batch"])
                self.push({"type": "sync", **resp}, resp["next_batch"])
            first = False


async def websocket_endpoint(scope: Any, receive: Any, send: Any) -> None:
    ws = WebSocket(scope, receive, send)
    start = time.perf_counter()
    metrics.WS_CONNECTIONS.inc()
    try:
        await SyncSocket(ws, scope["app"].state.hs).run()
    finally:
        metrics.WS_CONNECTIONS.dec()
        client = scope.get("client")
        log_access(client[0] if client else "-", "GET", scope["path"], PATH, 101, time.perf_counter() - start)
