"""The plugin service: management (install, enable, disable, settings), the capability tokens
that plugin processes call the Client-Server API with, slash commands and their listing, room
admins' per-room choices, and the ephemeral notices a plugin sends to a command's caller."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from pathlib import Path
from typing import Any

from homeserver.accounts.service import AccountService, Requester
from homeserver.config import Config
from homeserver.keys.to_device import ToDeviceService
from homeserver.plugins.registry import Registry, Source
from homeserver.plugins.scope import decide
from homeserver.protocol.errors import MatrixError
from homeserver.protocol.power_levels import event_required_level, user_power_level
from homeserver.rooms.service import RoomService
from homeserver.storage.plugins import PluginStore
from homeserver.storage.stores import Stores
from parley_plugin.manifest import Manifest, ManifestError

log = logging.getLogger("parley.plugins")
TOKEN_PREFIX = "ppt_"
PLUGIN_DEVICE = "PARLEY_PLUGIN"
NOTICE_TYPE = "org.parley.plugin.notice"
ROOM_STATE_TYPE = "org.parley.plugins"  # the level to send it is the level to choose plugins
MAX_ARGS = 4096
MANIFEST_TTL_S = 5.0
# How long the list of plugins with notification hooks is reused on the send path (another
# worker's enable or disable is seen within this delay; this worker's at once).
NOTIFY_SUBSCRIBERS_TTL_S = 2.0


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class PluginService:
    def __init__(self, stores: Stores, config: Config, accounts: AccountService, rooms: RoomService,
                 to_device: ToDeviceService) -> None:
        self.stores = stores
        self.store = PluginStore(stores.db)
        self.config = config
        self.accounts = accounts
        self.rooms = rooms
        self.to_device = to_device
        self.registry = Registry(Path(config.plugins.dir or Path(config.data_dir) / "plugins"))
        # name -> (manifest, when read): re-read after MANIFEST_TTL_S, so a reinstall through
        # another worker changes what tokens may do here too.
        self._manifests: dict[str, tuple[Manifest, float]] = {}
        self.on_change: Any = None  # set by the host: wake it after a change
        self._notify_subs: tuple[list[tuple[str, str]], float] | None = None
        self._queueing: set[asyncio.Task[None]] = set()

    def _changed(self) -> None:
        self._notify_subs = None
        if self.on_change is not None:
            self.on_change()

    # ------------------------------------------------------------------ management

    async def list_plugins(self) -> list[dict[str, Any]]:
        rows = {r["name"]: r for r in await self.store.all()}
        found = self.registry.discover()
        out = []
        for name in sorted(set(rows) | set(found)):
            src, row = found.get(name), rows.get(name)
            item: dict[str, Any] = {"name": name, "installed": row is not None,
                                    "enabled": bool(row and row["enabled"])}
            if src is not None:
                m = src.manifest
                item.update({"version": m.version, "origin": src.origin, "bot": self.bot_user(m),
                             "commands": [c.name for c in m.commands], "events": list(m.events),
                             "rooms": m.rooms if isinstance(m.rooms, str) else list(m.rooms),
                             "settings": (row or {}).get("settings", {})})
            else:
                item["missing"] = True
            out.append(item)
        return out

    async def install(self, folder: str | None = None, name: str | None = None) -> dict[str, Any]:
        """Install a plugin folder (copied into the plugins directory) or, by name, a plugin found
        by discovery (an entry point or a folder already there). Installed plugins start disabled."""
        try:
            if folder is not None:
                src = self.registry.install_folder(Path(folder))
            else:
                found = self.registry.get(name or "")
                if found is None:
                    raise MatrixError(404, "M_NOT_FOUND", f"No plugin named {name!r}")
                src = found
        except ManifestError as e:
            raise MatrixError(400, "M_INVALID_PARAM", f"Bad plugin manifest: {e}") from None
        await self.store.install(src.manifest.name, str(src.code_dir), _now())
        self._manifests.pop(src.manifest.name, None)
        return {"name": src.manifest.name, "version": src.manifest.version}

    async def source(self, name: str) -> Source:
        src = self.registry.get(name)
        if src is None or await self.store.get(name) is None:
            raise MatrixError(404, "M_NOT_FOUND", f"Plugin {name!r} is not installed")
        return src

    async def set_enabled(self, name: str, enabled: bool) -> None:
        src = await self.source(name)
        if enabled:
            await self.ensure_bot(src.manifest)
        await self.store.set_enabled(name, enabled)
        if not enabled:
            await self.store.set_token_hash(name, None)
            await self.store.drop_notifications(name)
        self._changed()

    async def configure(self, name: str, settings: Any) -> dict[str, Any]:
        src = await self.source(name)
        if not isinstance(settings, dict):
            raise MatrixError(400, "M_BAD_JSON", "settings must be a JSON object")
        try:
            merged = src.manifest.check_settings(settings)
        except ManifestError as e:
            raise MatrixError(400, "M_INVALID_PARAM", str(e)) from None
        await self.store.set_settings(name, settings)
        self._changed()
        return merged

    async def ensure_bot(self, m: Manifest) -> str:
        user_id = self.bot_user(m)
        if not await self.accounts.user_exists(user_id):
            try:
                await self.accounts.register(m.bot, None, inhibit_login=True)
            except MatrixError as e:
                if e.errcode != "M_USER_IN_USE":
                    raise
        return user_id

    def bot_user(self, m: Manifest) -> str:
        return self.accounts.user_id_for(m.bot)

    async def manifest(self, name: str) -> Manifest:
        cached = self._manifests.get(name)
        if cached is not None and time.monotonic() - cached[1] < MANIFEST_TTL_S:
            return cached[0]
        m = (await self.source(name)).manifest
        self._manifests[name] = (m, time.monotonic())
        return m

    # ------------------------------------------------------------------ capability tokens

    async def issue_token(self, name: str) -> str:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        await self.store.set_token_hash(name, token_hash(token))
        return token

    async def authenticate(self, token: str, method: str, path: str) -> Requester:
        """The bot user behind a plugin token, if the manifest grants this call (checked on every call)."""
        name = await self.store.by_token_hash(token_hash(token))
        if name is None:
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Unrecognised access token", soft_logout=False)
        m = await self.manifest(name)
        bot = self.bot_user(m)
        grant = decide(m, bot, method, path)
        if grant is None:
            raise MatrixError(403, "M_FORBIDDEN", f"Plugin {name} is not granted {method} {path}")
        if grant.room_id is not None and not await self.room_allowed(name, m, grant.room_id, grant.joining):
            raise MatrixError(403, "M_FORBIDDEN", f"Plugin {name} is not granted room {grant.room_id}")
        return Requester(bot, PLUGIN_DEVICE, f"plugin:{name}")

    async def room_allowed(self, name: str, m: Manifest, room_id: str, joining: bool = False) -> bool:
        if await self.store.room_choice(name, room_id) is False:
            return False
        if isinstance(m.rooms, tuple):
            return room_id in m.rooms
        member = await self.stores.state.membership(room_id, self.bot_user(m))
        allowed = ("join", "invite") if joining else ("join",)
        return member is not None and member[0] in allowed

    # ------------------------------------------------------------------ rooms and commands

    async def _enabled_here(self, room_id: str) -> list[Manifest]:
        out = []
        for row in await self.store.all():
            if not row["enabled"]:
                continue
            try:
                m = await self.manifest(row["name"])
            except MatrixError:
                continue
            if await self.room_allowed(row["name"], m, room_id):
                out.append(m)
        return out

    async def check_member(self, user_id: str, room_id: str) -> None:
        member = await self.stores.state.membership(room_id, user_id)
        if member is None or member[0] != "join":
            raise MatrixError(403, "M_FORBIDDEN", "You are not joined to this room")

    async def commands(self, user_id: str, room_id: str) -> list[dict[str, Any]]:
        """The slash commands usable in a room (for the composer's autocomplete)."""
        await self.check_member(user_id, room_id)
        return [{"command": c.name, "description": c.description, "usage": c.usage, "plugin": m.name}
                for m in await self._enabled_here(room_id) for c in m.commands]

    async def run_command(self, user_id: str, room_id: str, command: str, args: Any) -> dict[str, Any]:
        """Queue `/command args` for its plugin; answers at once (the plugin replies later)."""
        if not isinstance(args, str) or len(args) > MAX_ARGS:
            raise MatrixError(400, "M_INVALID_PARAM", f"'args' must be a string of at most {MAX_ARGS} characters")
        await self.check_member(user_id, room_id)
        for m in await self._enabled_here(room_id):
            if any(c.name == command for c in m.commands):
                cid = secrets.token_urlsafe(12)
                await self.store.queue_command(cid, m.name, room_id, user_id, command, args, _now())
                self._changed()
                return {"command_id": cid, "plugin": m.name}
        raise MatrixError(404, "M_NOT_FOUND", f"No plugin in this room handles /{command}")

    async def room_plugins(self, user_id: str, room_id: str) -> list[dict[str, Any]]:
        await self.check_member(user_id, room_id)
        out = []
        for row in await self.store.all():
            if not row["enabled"]:
                continue
            choice = await self.store.room_choice(row["name"], room_id)
            out.append({"plugin": row["name"], "enabled": choice is not False, "room_choice": choice})
        return out

    async def set_room_choice(self, user_id: str, room_id: str, name: str, enabled: Any) -> None:
        """A room admin turns a plugin on or off in their room (the level to send the
        org.parley.plugins state event)."""
        if not isinstance(enabled, bool):
            raise MatrixError(400, "M_BAD_JSON", "'enabled' must be true or false")
        await self.source(name)
        await self.check_member(user_id, room_id)
        if not await self.is_room_admin(user_id, room_id):
            raise MatrixError(403, "M_FORBIDDEN", "Only room admins may choose the room's plugins")
        await self.store.set_room(name, room_id, enabled, user_id)
        self._changed()

    async def is_room_admin(self, user_id: str, room_id: str) -> bool:
        rv = await self.rooms.version_of(room_id)
        ids = {**await self.stores.state.current_of_type(room_id, "m.room.create"),
               **await self.stores.state.current_of_type(room_id, "m.room.power_levels")}
        evs = await self.stores.events.get_many(ids.values())
        create = evs.get(ids.get(("m.room.create", ""), ""))
        pl = evs.get(ids.get(("m.room.power_levels", ""), ""))
        pl_content = pl.pdu.get("content") if pl is not None else None
        level = user_power_level(rv, create.pdu if create else {}, pl_content, user_id)
        return level >= event_required_level(pl_content, ROOM_STATE_TYPE, True)

    # ------------------------------------------------------------------ notification hooks

    async def _notification_subscribers(self) -> list[tuple[str, str]]:
        """(plugin, mode) of the enabled plugins whose manifest asks for notification hooks."""
        cached = self._notify_subs
        if cached is not None and time.monotonic() - cached[1] < NOTIFY_SUBSCRIBERS_TTL_S:
            return cached[0]
        subs = []
        for row in await self.store.all():
            if row["enabled"]:
                try:
                    m = await self.manifest(row["name"])
                except MatrixError:
                    continue
                if m.notifications:
                    subs.append((row["name"], m.notifications))
        self._notify_subs = (subs, time.monotonic())
        return subs

    async def notifications_stored(self, rows: list[tuple[str, int, str, str, list[Any], bool, int]]) -> None:
        """The push pipeline stored these notifications (user, stream position, room, event,
        actions, highlight, ts): queue them for the plugins with notification hooks. Called on
        the send path, so the rows are written by a task of their own (the send does not wait
        for that write); the plugins worker delivers them (host.py)."""
        subs = await self._notification_subscribers()
        if not subs:
            return
        queued = [(name, user, pos, room, event, highlight, actions, ts)
                  for name, mode in subs for user, pos, room, event, actions, highlight, ts in rows
                  if mode == "all" or highlight]
        if queued:
            task = asyncio.ensure_future(self.store.queue_notifications(queued))
            self._queueing.add(task)
            task.add_done_callback(self._queued)

    def _queued(self, task: asyncio.Task[None]) -> None:
        self._queueing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("queueing notifications for plugins failed", exc_info=task.exception())

    # ------------------------------------------------------------------ messages from plugins

    async def notice(self, name: str, msg: dict[str, Any]) -> None:
        """An ephemeral reply: a to-device message to the devices of the command's caller only."""
        cmd = await self.store.command_of(str(msg.get("command_id")))
        body = msg.get("body")
        if cmd is None or cmd["plugin"] != name or not isinstance(body, str):
            raise MatrixError(400, "M_INVALID_PARAM", "notice needs a pending command of this plugin and a body")
        m = await self.manifest(name)
        content = {"room_id": cmd["room_id"], "plugin": name, "command_id": cmd["id"],
                   "msgtype": "m.notice", "body": body[:MAX_ARGS * 4]}
        await self.to_device.send(self.bot_user(m), PLUGIN_DEVICE, NOTICE_TYPE, f"notice.{secrets.token_hex(8)}",
                                  {cmd["user_id"]: {"*": content}})


def _now() -> int:
    return int(time.time() * 1000)
