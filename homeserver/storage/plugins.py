"""Plugins: installation and enablement, capability token hashes, per-room choices, listener
cursors and the queue of slash commands (migration 019); queued notifications for notification
hooks (migration 031)."""

from __future__ import annotations

from typing import Any

import orjson

from homeserver.storage.database import Database, placeholders
from homeserver.storage.events import _COLS, LIVE, StoredEvent, _row_to_event


class PluginStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ installation

    async def install(self, name: str, source: str, now: int) -> None:
        await self.db.execute(
            "INSERT INTO plugins (name, source, enabled, settings, installed_ts) VALUES ($1, $2, FALSE, '{}', $3)"
            " ON CONFLICT (name) DO UPDATE SET source = excluded.source",
            name, source, now,
        )

    async def all(self) -> list[dict[str, Any]]:
        rows = await self.db.fetch("SELECT name, source, enabled, settings, installed_ts FROM plugins ORDER BY name")
        return [{**dict(r), "enabled": bool(r["enabled"]), "settings": orjson.loads(r["settings"])} for r in rows]

    async def get(self, name: str) -> dict[str, Any] | None:
        r = await self.db.fetchrow(
            "SELECT name, source, enabled, settings, installed_ts FROM plugins WHERE name = $1", name)
        if r is None:
            return None
        return {**dict(r), "enabled": bool(r["enabled"]), "settings": orjson.loads(r["settings"])}

    async def set_enabled(self, name: str, enabled: bool) -> bool:
        row = await self.db.fetchrow("UPDATE plugins SET enabled = $2 WHERE name = $1 RETURNING name", name, enabled)
        return row is not None

    async def set_settings(self, name: str, settings: dict[str, Any]) -> bool:
        row = await self.db.fetchrow("UPDATE plugins SET settings = $2 WHERE name = $1 RETURNING name",
                                     name, orjson.dumps(settings).decode())
        return row is not None

    async def uninstall(self, name: str) -> None:
        async with self.db.transaction() as c:
            for table, col in (("plugins", "name"), ("plugin_rooms", "plugin"), ("plugin_cursors", "plugin"),
                               ("plugin_commands", "plugin"), ("plugin_notifications", "plugin")):
                await c.execute(f"DELETE FROM {table} WHERE {col} = $1", name)

    # ------------------------------------------------------------------ capability tokens

    async def set_token_hash(self, name: str, token_hash: str | None) -> None:
        await self.db.execute("UPDATE plugins SET token_hash = $2 WHERE name = $1", name, token_hash)

    async def by_token_hash(self, token_hash: str) -> str | None:
        name = await self.db.fetchval(
            "SELECT name FROM plugins WHERE token_hash = $1 AND enabled = TRUE", token_hash)
        return str(name) if name is not None else None

    # ------------------------------------------------------------------ rooms

    async def set_room(self, name: str, room_id: str, enabled: bool, by: str) -> None:
        await self.db.execute(
            "INSERT INTO plugin_rooms (plugin, room_id, enabled, changed_by) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (plugin, room_id) DO UPDATE SET enabled = excluded.enabled,"
            " changed_by = excluded.changed_by",
            name, room_id, enabled, by,
        )

    async def room_choice(self, name: str, room_id: str) -> bool | None:
        v = await self.db.fetchval(
            "SELECT enabled FROM plugin_rooms WHERE plugin = $1 AND room_id = $2", name, room_id)
        return None if v is None else bool(v)

    async def room_choices(self, name: str) -> dict[str, bool]:
        rows = await self.db.fetch("SELECT room_id, enabled FROM plugin_rooms WHERE plugin = $1", name)
        return {r["room_id"]: bool(r["enabled"]) for r in rows}

    # ------------------------------------------------------------------ event listener

    async def cursor(self, name: str) -> int | None:
        v = await self.db.fetchval("SELECT stream_pos FROM plugin_cursors WHERE plugin = $1", name)
        return None if v is None else int(v)

    async def set_cursor(self, name: str, pos: int) -> None:
        await self.db.execute(
            "INSERT INTO plugin_cursors (plugin, stream_pos) VALUES ($1, $2)"
            " ON CONFLICT (plugin) DO UPDATE SET stream_pos = excluded.stream_pos",
            name, pos,
        )

    async def events_after(self, types: list[str], after: int, upto: int, limit: int) -> list[StoredEvent]:
        """Timeline events of the given types with after < position <= upto, oldest first."""
        if not types or after >= upto:
            return []
        rows = await self.db.fetch(
            f"SELECT {_COLS} FROM events WHERE stream_ordering > $1 AND stream_ordering <= $2 AND {LIVE}"
            f" AND type IN ({placeholders(4, len(types))}) ORDER BY stream_ordering LIMIT $3",
            after, upto, limit, *types,
        )
        return [_row_to_event(r) for r in rows]

    async def all_events_after(self, after: int, upto: int, limit: int) -> list[StoredEvent]:
        """Every timeline event with after < position <= upto, oldest first."""
        if after >= upto:
            return []
        rows = await self.db.fetch(
            f"SELECT {_COLS} FROM events WHERE stream_ordering > $1 AND stream_ordering <= $2 AND {LIVE}"
            " ORDER BY stream_ordering LIMIT $3",
            after, upto, limit,
        )
        return [_row_to_event(r) for r in rows]

    # ------------------------------------------------------------------ application services

    async def receipts_after(self, after: int, upto: int) -> list[dict[str, Any]]:
        """Public receipts that moved with after < position <= upto (every room), oldest first."""
        if after >= upto:
            return []
        rows = await self.db.fetch(
            "SELECT room_id, user_id, receipt_type, thread_id, event_id, ts FROM receipts"
            " WHERE stream_id > $1 AND stream_id <= $2 AND receipt_type != 'm.read.private' ORDER BY stream_id",
            after, upto)
        return [dict(r) for r in rows]

    async def to_device_after(self, after: int, upto: int, positions: int) -> list[dict[str, Any]]:
        """To-device messages still in their inboxes with after < position <= upto, for at most
        `positions` stream positions (a position's messages are never split)."""
        if after >= upto:
            return []
        rows = await self.db.fetch(
            "SELECT user_id, device_id, stream_id, message_json FROM to_device_inbox WHERE stream_id IN"
            " (SELECT DISTINCT stream_id FROM to_device_inbox WHERE stream_id > $1 AND stream_id <= $2"
            f" ORDER BY stream_id LIMIT {int(positions)}) ORDER BY stream_id, user_id, device_id",
            after, upto)
        return [{"user_id": r["user_id"], "device_id": r["device_id"], "stream_id": int(r["stream_id"]),
                 "message": orjson.loads(r["message_json"])} for r in rows]

    async def delete_to_device(self, rows: list[tuple[str, str, int]]) -> None:
        """(user, device, position): delivered to the AS that holds the user exclusively."""
        if rows:
            async with self.db.transaction() as c:
                await c.executemany(
                    "DELETE FROM to_device_inbox WHERE user_id = $1 AND device_id = $2 AND stream_id = $3", rows)

    # ------------------------------------------------------------------ slash commands

    async def queue_command(self, cid: str, name: str, room_id: str, user_id: str, command: str,
                            args: str, now: int) -> None:
        await self.db.execute(
            "INSERT INTO plugin_commands (id, plugin, room_id, user_id, command, args, created_ts)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            cid, name, room_id, user_id, command, args, now,
        )

    async def pending_commands(self, name: str, limit: int) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT id, room_id, user_id, command, args, created_ts FROM plugin_commands WHERE plugin = $1"
            " ORDER BY created_ts, id LIMIT $2",
            name, limit,
        )
        return [dict(r) for r in rows]

    async def command_of(self, cid: str) -> dict[str, Any] | None:
        r = await self.db.fetchrow("SELECT id, plugin, room_id, user_id FROM plugin_commands WHERE id = $1", cid)
        return dict(r) if r else None

    async def done_command(self, cid: str) -> None:
        await self.db.execute("DELETE FROM plugin_commands WHERE id = $1", cid)

    # ------------------------------------------------------------------ notification hooks

    async def queue_notifications(self, rows: list[tuple[str, str, int, str, str, bool, list[Any], int]]) -> None:
        """(plugin, user, stream position, room, event, highlight, actions, now) rows."""
        async with self.db.transaction() as c:
            await c.executemany(
                "INSERT INTO plugin_notifications (plugin, user_id, stream_ordering, room_id, event_id, highlight,"
                " actions, created_ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                [(p, u, s, r, e, h, orjson.dumps(a).decode(), t) for p, u, s, r, e, h, a, t in rows],
            )

    async def pending_notifications(self, name: str, limit: int) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT user_id, stream_ordering, room_id, event_id, highlight, actions FROM plugin_notifications"
            " WHERE plugin = $1 ORDER BY stream_ordering, user_id LIMIT $2",
            name, limit,
        )
        return [{**dict(r), "highlight": bool(r["highlight"]), "actions": orjson.loads(r["actions"])} for r in rows]

    async def done_notifications(self, name: str, done: list[tuple[str, int]]) -> None:
        """(user, stream position) rows acknowledged (or given up on) by the plugin."""
        if done:
            async with self.db.transaction() as c:
                await c.executemany(
                    "DELETE FROM plugin_notifications WHERE plugin = $1 AND user_id = $2 AND stream_ordering = $3",
                    [(name, u, pos) for u, pos in done])

    async def drop_notifications(self, name: str) -> None:
        await self.db.execute("DELETE FROM plugin_notifications WHERE plugin = $1", name)

    # ------------------------------------------------------------------ webhooks

    async def add_webhook(self, hook: dict[str, Any]) -> None:
        await self.db.execute(
            "INSERT INTO webhooks (id, kind, room_id, owner, secret, url, pattern, created_ts)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            hook["id"], hook["kind"], hook["room_id"], hook["owner"], hook["secret"], hook.get("url"),
            hook.get("pattern"), hook["created_ts"],
        )

    async def webhook(self, hook_id: str) -> dict[str, Any] | None:
        r = await self.db.fetchrow(
            "SELECT id, kind, room_id, owner, secret, url, pattern, created_ts FROM webhooks WHERE id = $1", hook_id)
        return dict(r) if r else None

    async def room_webhooks(self, room_id: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT id, kind, room_id, owner, secret, url, pattern, created_ts FROM webhooks WHERE room_id = $1"
            " ORDER BY created_ts, id", room_id)
        return [dict(r) for r in rows]

    async def outgoing_webhooks(self) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT id, kind, room_id, owner, secret, url, pattern, created_ts FROM webhooks"
            " WHERE kind = 'outgoing' ORDER BY created_ts, id")
        return [dict(r) for r in rows]

    async def delete_webhook(self, hook_id: str) -> None:
        await self.db.execute("DELETE FROM webhooks WHERE id = $1", hook_id)
