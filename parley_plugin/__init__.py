"""Parley's plugin SDK: write a plugin as a `manifest.toml` plus a Python file defining
`plugin = Plugin()` with decorated handlers. See docs/plugins.md."""

from parley_plugin.client import ApiError
from parley_plugin.plugin import Command, Event, Notification, Plugin, Room, Store

__all__ = ["ApiError", "Command", "Event", "Notification", "Plugin", "Room", "Store"]
