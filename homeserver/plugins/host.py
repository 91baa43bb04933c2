"""Runs the enabled plugins (on one worker: the `plugins` leader lease) and feeds them hooks.

For each running plugin one delivery loop, off every request path (a send never waits on it):
queued slash commands first, then the events it declared, in stream order (so in order per
room), each acknowledged before the next, then queued notifications (notification hooks); the
event cursor is persisted after each acknowledgement, so a restart (of the plugin or the server)
resumes where it stopped and an unacknowledged hook is delivered again (at-least-once)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from homeserver.appservice.sender import AppServiceSender
from homeserver.config import Config
from homeserver.lease import LeaderLease
from homeserver.plugins.process import HookFailed, Launch, PluginProcess
from homeserver.plugins.service import PluginService
from homeserver.plugins.webhooks import WebhookSender
from homeserver.rooms.serialize import EventSerializer
from homeserver.storage.events import StoredEvent
from homeserver.storage.stores import Stores
from parley_plugin.manifest import Manifest

log = logging.getLogger("parley.plugins")
POLL_S = 0.25  # events committed by other workers are seen within this delay
RECONCILE_S = 2.0
BATCH = 100
MAX_ATTEMPTS = 3


def server_url(config: Config) -> tuple[str, int]:
    if config.plugins.server_url:
        u = urlsplit(config.plugins.server_url)
        return config.plugins.server_url.rstrip("/"), u.port or (443 if u.scheme == "https" else 80)
    listener = config.listeners[0]
    host = "127.0.0.1" if listener.host in ("0.0.0.0", "", "::") else listener.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{listener.port}", listener.port


class Running:
    def __init__(self, name: str, manifest: Manifest, process: PluginProcess, revision: tuple[int, int]) -> None:
        self.name = name
        self.manifest = manifest
        self.revision = revision
        self.process = process
        self.task: asyncio.Task[None] | None = None
        self.failures: dict[str, int] = {}


class PluginHost:
    def __init__(self, service: PluginService, stores: Stores, serializer: EventSerializer,
                 config: Config, appservices: AppServiceSender | None = None) -> None:
        self.service = service
        self.stores = stores
        self.serializer = serializer
        self.config = config
        self.running: dict[str, Running] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._as_task: asyncio.Task[None] | None = None
        self.appservices = appservices
        service.on_change = self._wake.set

    def start(self) -> None:
        if self.config.plugins.enabled:
            self._task = asyncio.ensure_future(LeaderLease(self.stores.db, "plugins").run_forever(self._work))
        if self.appservices is not None and self.appservices.appservices.services:
            # Application services are pushed to whether or not plugins run here.
            self._as_task = asyncio.ensure_future(
                LeaderLease(self.stores.db, "appservices").run_forever(self.appservices.run))

    async def stop(self) -> None:
        for task in (self._task, self._as_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._stop_all()

    def status(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name, r in self.running.items():
            s = r.process.status
            out[name] = {"state": s.state, "pid": s.pid, "restarts": s.restarts, "last_exit": s.last_exit,
                         "last_error": s.last_error, "confinement": s.confinement,
                         "stderr_tail": list(s.stderr)[-10:]}
        return out

    async def _work(self) -> None:
        webhooks = asyncio.ensure_future(
            WebhookSender(self.service.store, self.stores.stream, self.config).run())
        try:
            while True:
                await self._reconcile()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), RECONCILE_S)
        finally:
            webhooks.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await webhooks
            await self._stop_all()

    async def _stop_all(self) -> None:
        for name in list(self.running):
            await self._stop(name)

    async def _stop(self, name: str) -> None:
        r = self.running.pop(name)
        if r.task is not None:
            r.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await r.task
        await r.process.stop()
        await self.service.store.set_token_hash(name, None)

    async def _reconcile(self) -> None:
        rows = {r["name"]: r for r in await self.service.store.all() if r["enabled"]}
        for name in [n for n in self.running if n not in rows]:
            await self._stop(name)
        for name, row in rows.items():
            src = self.service.registry.get(name)
            if src is None:
                continue
            r = self.running.get(name)
            settings = src.manifest.check_settings(row["settings"])
            if r is not None and (r.manifest != src.manifest or r.revision != src.revision
                                  or r.process.launch.settings != settings):
                log.info("plugin %s: restarting for its new code, manifest or settings", name)
                await self._stop(name)  # a new install or new settings: start afresh
                r = None
            if r is None:
                await self._launch(name, src.manifest, src.code_dir, settings, src.revision)

    async def _launch(self, name: str, m: Manifest, code_dir: Path, settings: dict[str, Any],
                      revision: tuple[int, int]) -> None:
        url, port = server_url(self.config)
        user_id = await self.service.ensure_bot(m)
        work = Path(self.config.plugins.work_dir or Path(self.config.data_dir) / "plugin-work") / name
        launch = Launch(m, code_dir, work.resolve(), url, port, user_id, settings)

        async def issue() -> str:
            return await self.service.issue_token(name)

        proc = PluginProcess(launch, self.config.plugins, issue)

        async def from_plugin(msg: dict[str, Any]) -> None:
            if msg.get("type") == "notice":
                await self.service.notice(name, msg)

        proc.on_message(from_plugin)
        if await self.service.store.cursor(name) is None:
            # A newly enabled plugin starts from now, not from the whole history.
            await self.service.store.set_cursor(name, self.stores.stream.current())
        r = Running(name, m, proc, revision)
        self.running[name] = r
        proc.start()
        log.info("plugin %s %s: started as %s", name, m.version, user_id)
        r.task = asyncio.ensure_future(self._deliver(r))

    async def _deliver(self, r: Running) -> None:
        while True:
            await r.process.ready.wait()
            try:
                busy = (await self._deliver_commands(r) | await self._deliver_events(r)
                        | await self._deliver_notifications(r))
            except HookFailed:
                continue  # the process is restarting; the hook is delivered again afterwards
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep delivering; the next round retries
                log.exception("plugin %s: delivery failed", r.name)
                busy = False
            if not busy:
                await asyncio.sleep(POLL_S)

    async def _hook(self, r: Running, msg: dict[str, Any]) -> bool:
        """Deliver one hook; False when it was given up on after MAX_ATTEMPTS failures (a hook
        that crashes or hangs the plugin every time must not block everything after it)."""
        if r.failures.get(msg["id"], 0) >= MAX_ATTEMPTS:
            log.warning("plugin %s: giving up on hook %s after %d attempts", r.name, msg["id"], MAX_ATTEMPTS)
            r.failures.pop(msg["id"], None)
            return False
        try:
            await r.process.hook(msg)
        except HookFailed:
            r.failures[msg["id"]] = r.failures.get(msg["id"], 0) + 1
            raise
        r.failures.pop(msg["id"], None)
        return True

    async def _deliver_commands(self, r: Running) -> bool:
        cmds = await self.service.store.pending_commands(r.name, BATCH)
        for c in cmds:
            await self._hook(r, {"type": "command", "id": f"c:{c['id']}", "command_id": c["id"],
                                  "room_id": c["room_id"], "sender": c["user_id"], "command": c["command"],
                                  "args": c["args"]})
            await self.service.store.done_command(c["id"])
        return bool(cmds)

    async def _deliver_events(self, r: Running) -> bool:
        m = r.manifest
        cursor = await self.service.store.cursor(r.name) or 0
        upto = self.stores.stream.current()
        types = sorted({*m.events, "m.room.member"})
        evs = await self.service.store.events_after(types, cursor, upto, BATCH)
        bot = self.service.bot_user(m)
        allowed: dict[str, bool] = {}
        done = cursor
        try:
            for ev in evs:
                if await self._wanted(r, ev, bot, allowed):
                    (client_ev,) = await self.serializer.serialize([ev])
                    await self._hook(r, {"type": "event", "id": f"e:{ev.stream_ordering}", "event": client_ev})
                done = ev.stream_ordering
        finally:
            # One cursor write per batch, covering what was acknowledged (a crash before it
            # means those hooks come again: at-least-once).
            if not evs and upto > cursor:
                done = upto
            if done > cursor:
                await self.service.store.set_cursor(r.name, done)
        return len(evs) == BATCH

    async def _deliver_notifications(self, r: Running) -> bool:
        """Notifications queued by the push pipeline (PluginService.notifications_stored), in
        stream order; those of rooms the plugin may not use are dropped undelivered."""
        if not r.manifest.notifications:
            return False
        rows = await self.service.store.pending_notifications(r.name, BATCH)
        allowed: dict[str, bool] = {}
        done: list[tuple[str, int]] = []
        try:
            for n in rows:
                room_id = n["room_id"]
                if room_id not in allowed:
                    allowed[room_id] = await self.service.room_allowed(r.name, r.manifest, room_id)
                ev = (await self.stores.events.get_many([n["event_id"]])).get(n["event_id"]) \
                    if allowed[room_id] else None
                if ev is not None:
                    (client_ev,) = await self.serializer.serialize([ev])
                    await self._hook(r, {"type": "notification", "id": f"n:{n['stream_ordering']}:{n['user_id']}",
                                         "notification": {"user_id": n["user_id"], "room_id": room_id,
                                                          "event_id": n["event_id"], "highlight": n["highlight"],
                                                          "actions": n["actions"], "event": client_ev}})
                done.append((n["user_id"], n["stream_ordering"]))
        finally:
            await self.service.store.done_notifications(r.name, done)
        return len(rows) == BATCH

    async def _wanted(self, r: Running, ev: StoredEvent, bot: str, allowed: dict[str, bool]) -> bool:
        if ev.type == "m.room.member" and ev.state_key == bot:
            # Its own invites (to join) and membership changes always reach the bot.
            return ev.pdu.get("content", {}).get("membership") == "invite"
        if ev.type not in r.manifest.events or ev.sender == bot:
            return False  # its own events are not echoed back
        if ev.room_id not in allowed:
            allowed[ev.room_id] = await self.service.room_allowed(r.name, r.manifest, ev.room_id)
        return allowed[ev.room_id]
