"""The plugin manifest (`manifest.toml` beside the plugin's code): who the plugin is and what it
may do. The server reads it to grant a capability token; the SDK reads it to run the plugin.
Standard library only: this file is also imported inside the sandbox."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
COMMAND_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
LOCALPART_RE = re.compile(r"^[a-z0-9._=/+-]{1,64}$")
NOTIFICATION_MODES = ("", "highlight", "all")
SETTING_TYPES: dict[str, type | tuple[type, ...]] = {"string": str, "integer": int, "boolean": bool,
                                                     "number": (int, float)}


class ManifestError(ValueError):
    pass


@dataclass(frozen=True)
class CommandSpec:
    name: str
    description: str = ""
    usage: str = ""


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    entry: str  # a .py file beside the manifest, defining `plugin`
    bot: str  # the bot user's localpart
    display_name: str
    events: tuple[str, ...] = ()
    commands: tuple[CommandSpec, ...] = ()
    # "joined": rooms its bot is joined to; otherwise the listed room IDs only.
    rooms: str | tuple[str, ...] = "joined"
    send: tuple[str, ...] = ("m.room.message", "m.reaction")
    network: bool = False
    # Notification hooks: "" none, "highlight" mentions and keywords only, "all" every notification.
    notifications: str = ""
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""

    def default_settings(self) -> dict[str, Any]:
        return {k: v["default"] for k, v in self.settings.items() if "default" in v}

    def check_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        """The settings merged over their defaults; ManifestError naming the first bad one."""
        for k, v in values.items():
            spec = self.settings.get(k)
            if spec is None:
                raise ManifestError(f"unknown setting {k!r}")
            want = SETTING_TYPES[spec["type"]]
            if isinstance(v, bool) and spec["type"] != "boolean" or not isinstance(v, want):
                raise ManifestError(f"setting {k!r} must be of type {spec['type']}")
        return {**self.default_settings(), **values}


def _strs(key: str, v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(s, str) and s for s in v):
        raise ManifestError(f"{key} must be a list of strings")
    return tuple(v)


def parse_manifest(raw: dict[str, Any]) -> Manifest:
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ManifestError("name must be 1-32 characters of a-z, 0-9, - and _, starting with a letter")
    version = raw.get("version")
    if not isinstance(version, str) or not version:
        raise ManifestError("version must be a non-empty string")
    entry = raw.get("entry", "plugin.py")
    if not isinstance(entry, str) or "/" in entry or not entry.endswith(".py"):
        raise ManifestError("entry must be the name of a .py file beside the manifest")
    perms = raw.get("permissions", {})
    if not isinstance(perms, dict):
        raise ManifestError("[permissions] must be a table")
    bot = perms.get("bot", name)
    if not isinstance(bot, str) or not LOCALPART_RE.match(bot):
        raise ManifestError("permissions.bot must be a user localpart")
    commands = []
    for i, c in enumerate(perms.get("commands", [])):
        if isinstance(c, str):
            c = {"name": c}
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not COMMAND_RE.match(c["name"]):
            raise ManifestError(f"permissions.commands[{i}] needs a name of a-z, 0-9, - and _")
        commands.append(CommandSpec(c["name"], str(c.get("description", "")), str(c.get("usage", ""))))
    rooms: str | tuple[str, ...] = perms.get("rooms", "joined")
    if rooms != "joined":
        rooms = _strs("permissions.rooms", rooms)
        if not all(r.startswith("!") for r in rooms):
            raise ManifestError('permissions.rooms must be "joined" or a list of room IDs')
    settings = raw.get("settings", {})
    if not isinstance(settings, dict):
        raise ManifestError("[settings] must be a table")
    for k, spec in settings.items():
        if not isinstance(spec, dict) or spec.get("type") not in SETTING_TYPES:
            raise ManifestError(f"settings.{k} needs a type: {', '.join(SETTING_TYPES)}")
    network = perms.get("network", False)
    if not isinstance(network, bool):
        raise ManifestError("permissions.network must be true or false")
    notifications = perms.get("notifications", "")
    if notifications not in NOTIFICATION_MODES:
        raise ManifestError('permissions.notifications must be "highlight" or "all"')
    m = Manifest(
        name=name, version=version, entry=entry, bot=bot,
        display_name=str(raw.get("display_name", name)),
        events=_strs("permissions.events", perms.get("events", [])),
        commands=tuple(commands), rooms=rooms,
        send=_strs("permissions.send", perms.get("send", ["m.room.message", "m.reaction"])),
        network=network, notifications=notifications, settings=settings, description=str(raw.get("description", "")),
    )
    m.check_settings(m.default_settings())  # the defaults must have their declared types
    return m


def load_manifest(folder: Path) -> Manifest:
    path = folder / "manifest.toml"
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as e:
        raise ManifestError(f"{path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(f"{path}: {e}") from None
    m = parse_manifest(raw)
    if not (folder / m.entry).is_file():
        raise ManifestError(f"{folder / m.entry} does not exist")
    return m
