"""The plugin SDK: a `Plugin` object whose decorated handlers run on slash commands and events.

    from parley_plugin import Plugin, Command, Event

    plugin = Plugin()

    @plugin.command("poll")
    async def poll(cmd: Command) -> None:
        await cmd.room.send_text("...")

    @plugin.on("m.reaction")
    async def reaction(ev: Event) -> None:
        ...

    @plugin.on_notification
    async def page(n: Notification) -> None:   # with `notifications = "highlight"` granted
        ...

Handlers run one at a time, in the order the server delivers hooks (events in stream order, so
in order per room); each is acknowledged when its handler returns (or raises: the error is
logged and the hook is not retried, so one bad event cannot wedge the plugin)."""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley_plugin.client import ApiError, Client, quote

V3 = "/_matrix/client/v3"
CommandHandler = Callable[["Command"], Awaitable[None]]
EventHandler = Callable[["Event"], Awaitable[None]]
StartHandler = Callable[[], Awaitable[None]]
NotificationHandler = Callable[["Notification"], Awaitable[None]]


class Store:
    """A JSON document in the plugin's working directory, written atomically: survives restarts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        tmp.replace(self.path)


@dataclass
class Room:
    plugin: Plugin
    room_id: str

    async def send(self, event_type: str, content: dict[str, Any]) -> str:
        api = self.plugin.api
        path = f"{V3}/rooms/{quote(self.room_id)}/send/{quote(event_type)}/{quote(api.txn_id())}"
        return str((await api.request("PUT", path, content))["event_id"])

    async def send_text(self, body: str, *, notice: bool = False, html: str | None = None,
                        extra: dict[str, Any] | None = None) -> str:
        content: dict[str, Any] = {"msgtype": "m.notice" if notice else "m.text", "body": body}
        if html is not None:
            content.update({"format": "org.matrix.custom.html", "formatted_body": html})
        content.update(extra or {})
        return await self.send("m.room.message", content)

    async def react(self, event_id: str, key: str) -> str:
        return await self.send("m.reaction", {"m.relates_to": {"rel_type": "m.annotation",
                                                               "event_id": event_id, "key": key}})

    async def join(self) -> None:
        await self.plugin.api.request("POST", f"{V3}/join/{quote(self.room_id)}", {})

    async def event(self, event_id: str) -> dict[str, Any]:
        return await self.plugin.api.request("GET", f"{V3}/rooms/{quote(self.room_id)}/event/{quote(event_id)}")


@dataclass
class Event:
    plugin: Plugin
    raw: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.raw.get("type", ""))

    @property
    def room_id(self) -> str:
        return str(self.raw.get("room_id", ""))

    @property
    def sender(self) -> str:
        return str(self.raw.get("sender", ""))

    @property
    def event_id(self) -> str:
        return str(self.raw.get("event_id", ""))

    @property
    def state_key(self) -> str | None:
        sk = self.raw.get("state_key")
        return sk if isinstance(sk, str) else None

    @property
    def content(self) -> dict[str, Any]:
        c = self.raw.get("content")
        return c if isinstance(c, dict) else {}

    @property
    def room(self) -> Room:
        return Room(self.plugin, self.room_id)


@dataclass
class Command:
    """`/name args` typed by `sender` in `room_id`."""

    plugin: Plugin
    id: str
    room_id: str
    sender: str
    name: str
    args: str

    @property
    def room(self) -> Room:
        return Room(self.plugin, self.room_id)

    async def reply(self, text: str, *, ephemeral: bool = False) -> None:
        """Answer in the room (everyone sees it) or, ephemeral, only to the caller's devices."""
        if ephemeral:
            await self.plugin._send({"type": "notice", "command_id": self.id, "body": text})
        else:
            await self.room.send_text(text, notice=True)


@dataclass
class Notification:
    """A notification the server generated for `user_id` (its push rules said notify) about
    `event`, in a room the plugin may use. `highlight`: a mention or keyword."""

    plugin: Plugin
    user_id: str
    room_id: str
    event_id: str
    highlight: bool
    actions: list[Any]
    event: Event

    @property
    def room(self) -> Room:
        return Room(self.plugin, self.room_id)


@dataclass
class Plugin:
    auto_join: bool = True  # join rooms the bot is invited to
    commands: dict[str, CommandHandler] = field(default_factory=dict)
    handlers: dict[str, list[EventHandler]] = field(default_factory=dict)
    starters: list[StartHandler] = field(default_factory=list)
    notification_handlers: list[NotificationHandler] = field(default_factory=list)
    # Set by the runner before any handler runs.
    api: Client = field(init=False)
    user_id: str = field(init=False, default="")
    settings: dict[str, Any] = field(init=False, default_factory=dict)
    store: Store = field(init=False)
    _out: Any = field(init=False, default=None)

    def command(self, name: str) -> Callable[[CommandHandler], CommandHandler]:
        def deco(fn: CommandHandler) -> CommandHandler:
            self.commands[name] = fn
            return fn
        return deco

    def on(self, event_type: str) -> Callable[[EventHandler], EventHandler]:
        def deco(fn: EventHandler) -> EventHandler:
            self.handlers.setdefault(event_type, []).append(fn)
            return fn
        return deco

    def on_start(self, fn: StartHandler) -> StartHandler:
        """Run once the plugin is connected (e.g. to resume timers from `store`)."""
        self.starters.append(fn)
        return fn

    def on_notification(self, fn: NotificationHandler) -> NotificationHandler:
        """Run for each notification hook (the manifest's `permissions.notifications`)."""
        self.notification_handlers.append(fn)
        return fn

    def room(self, room_id: str) -> Room:
        return Room(self, room_id)

    async def _send(self, msg: dict[str, Any]) -> None:
        self._out.write((json.dumps(msg) + "\n").encode())
        self._out.flush()

    async def _hook(self, msg: dict[str, Any]) -> None:
        try:
            if msg["type"] == "command":
                handler = self.commands.get(msg["command"])
                if handler is not None:
                    await handler(Command(self, msg["command_id"], msg["room_id"], msg["sender"], msg["command"],
                                     msg.get("args", "")))
            elif msg["type"] == "event":
                ev = Event(self, msg["event"])
                if (self.auto_join and ev.type == "m.room.member" and ev.state_key == self.user_id
                        and ev.content.get("membership") == "invite"):
                    await ev.room.join()
                for on_event in self.handlers.get(ev.type, []):
                    await on_event(ev)
            elif msg["type"] == "notification":
                n = msg["notification"]
                note = Notification(self, str(n.get("user_id", "")), str(n.get("room_id", "")),
                                    str(n.get("event_id", "")), bool(n.get("highlight")),
                                    list(n.get("actions", [])), Event(self, n.get("event") or {}))
                for on_notification in self.notification_handlers:
                    await on_notification(note)
        except Exception:  # noqa: BLE001 - a handler's error is logged, the hook acknowledged
            traceback.print_exc(file=sys.stderr)

    async def _serve(self, reader: asyncio.StreamReader) -> None:
        for fn in self.starters:
            await fn()
        await self._send({"type": "ready"})
        while True:
            line = await reader.readline()
            if not line:
                return  # the server closed the channel: stop
            msg = json.loads(line)
            if msg.get("type") == "shutdown":
                return
            await self._hook(msg)
            await self._send({"type": "ack", "id": msg["id"]})


__all__ = ["ApiError", "Command", "Event", "Notification", "Plugin", "Room", "Store"]
