"""Pushers, stored notifications, the push delivery queue and the push subsystem's keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from homeserver.storage.database import Database, chunks, placeholders

_PUSHER_COLS = ("user_id, app_id, pushkey, kind, device_id, app_display_name, device_display_name,"
                " profile_tag, lang, data, pushkey_ts, since_stream, emailed_stream")
# A notification counts as read once the user has a read receipt at or after it (any thread).
_UNREAD = ("NOT EXISTS (SELECT 1 FROM receipts r WHERE r.room_id = n.room_id AND r.user_id = n.user_id"
           " AND r.receipt_type IN ('m.read', 'm.read.private') AND r.event_stream >= n.stream_ordering)")


@dataclass(frozen=True)
class Pusher:
    user_id: str
    app_id: str
    pushkey: str
    kind: str
    device_id: str | None
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: dict[str, Any]
    pushkey_ts: int
    since_stream: int
    emailed_stream: int


# The stream position of a counts-only delivery (no event; the badge changed). Below every
# event, so it goes first, and repeated reads before it is sent coalesce into one row.
COUNTS_ONLY = -1


@dataclass(frozen=True)
class Delivery:
    user_id: str
    app_id: str
    pushkey: str
    stream_ordering: int
    attempts: int
    created_ms: int
    event_id: str | None  # None: a counts-only update (COUNTS_ONLY), e.g. after the user read
    room_id: str | None
    actions: list[Any]


def _pusher(r: Any) -> Pusher:
    return Pusher(r["user_id"], r["app_id"], r["pushkey"], r["kind"], r["device_id"], r["app_display_name"],
                  r["device_display_name"], r["profile_tag"], r["lang"], orjson.loads(r["data"]),
                  int(r["pushkey_ts"]), int(r["since_stream"]), int(r["emailed_stream"]))


class PusherStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ pushers

    async def upsert(self, p: Pusher, replace_other_users: bool) -> None:
        """Create or update a pusher; without `append`, other users' pushers with the same
        app ID and pushkey go (the spec's default)."""
        async with self.db.transaction() as c:
            if replace_other_users:
                await c.execute("DELETE FROM pushers WHERE app_id = $1 AND pushkey = $2 AND user_id <> $3",
                                p.app_id, p.pushkey, p.user_id)
            await c.execute(
                f"INSERT INTO pushers ({_PUSHER_COLS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)"
                " ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET kind = excluded.kind,"
                " device_id = excluded.device_id, app_display_name = excluded.app_display_name,"
                " device_display_name = excluded.device_display_name, profile_tag = excluded.profile_tag,"
                " lang = excluded.lang, data = excluded.data, pushkey_ts = excluded.pushkey_ts",
                p.user_id, p.app_id, p.pushkey, p.kind, p.device_id, p.app_display_name, p.device_display_name,
                p.profile_tag, p.lang, orjson.dumps(p.data).decode(), p.pushkey_ts, p.since_stream,
                p.emailed_stream,
            )

    async def delete(self, user_id: str, app_id: str, pushkey: str) -> bool:
        async with self.db.transaction() as c:
            found = await c.fetchval("SELECT 1 FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3",
                                     user_id, app_id, pushkey)
            await c.execute("DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3",
                            user_id, app_id, pushkey)
            await c.execute("DELETE FROM push_deliveries WHERE user_id = $1 AND app_id = $2 AND pushkey = $3",
                            user_id, app_id, pushkey)
        return found is not None

    async def delete_for_devices(self, user_id: str, device_ids: list[str] | None,
                                 keep_device: str | None = None) -> None:
        """Pushers of these devices (None: every device except `keep_device`)."""
        async with self.db.transaction() as c:
            if device_ids is None:
                await c.execute("DELETE FROM pushers WHERE user_id = $1 AND (device_id IS NULL OR device_id <> $2)",
                                user_id, keep_device or "")
            else:
                for chunk in chunks(device_ids):
                    await c.execute(f"DELETE FROM pushers WHERE user_id = $1 AND device_id IN "
                                    f"({placeholders(2, len(chunk))})", user_id, *chunk)
            await c.execute(
                "DELETE FROM push_deliveries WHERE user_id = $1 AND NOT EXISTS (SELECT 1 FROM pushers p"
                " WHERE p.user_id = push_deliveries.user_id AND p.app_id = push_deliveries.app_id"
                " AND p.pushkey = push_deliveries.pushkey)", user_id)

    async def for_user(self, user_id: str) -> list[Pusher]:
        rows = await self.db.fetch(f"SELECT {_PUSHER_COLS} FROM pushers WHERE user_id = $1"
                                   " ORDER BY app_id, pushkey", user_id)
        return [_pusher(r) for r in rows]

    async def get(self, user_id: str, app_id: str, pushkey: str) -> Pusher | None:
        r = await self.db.fetchrow(f"SELECT {_PUSHER_COLS} FROM pushers WHERE user_id = $1 AND app_id = $2"
                                   " AND pushkey = $3", user_id, app_id, pushkey)
        return _pusher(r) if r else None

    async def users_with_pushers(self, user_ids: list[str], kinds: tuple[str, ...]) -> dict[str, list[Pusher]]:
        out: dict[str, list[Pusher]] = {}
        for chunk in chunks(user_ids):
            rows = await self.db.fetch(
                f"SELECT {_PUSHER_COLS} FROM pushers WHERE kind IN ({placeholders(1, len(kinds))})"
                f" AND user_id IN ({placeholders(1 + len(kinds), len(chunk))})", *kinds, *chunk)
            for r in rows:
                out.setdefault(r["user_id"], []).append(_pusher(r))
        return out

    async def of_kind(self, kind: str) -> list[Pusher]:
        rows = await self.db.fetch(f"SELECT {_PUSHER_COLS} FROM pushers WHERE kind = $1", kind)
        return [_pusher(r) for r in rows]

    async def set_emailed(self, user_id: str, app_id: str, pushkey: str, stream: int) -> None:
        await self.db.execute("UPDATE pushers SET emailed_stream = $4 WHERE user_id = $1 AND app_id = $2"
                              " AND pushkey = $3 AND emailed_stream < $4", user_id, app_id, pushkey, stream)

    # ------------------------------------------------------------------ notifications + queue

    async def add_notifications(self, rows: list[tuple[str, int, str, str, list[Any], bool, int]],
                                deliveries: list[tuple[str, str, str, int, int]]) -> None:
        """Notifications (user, stream, room, event, actions, highlight, ts) and deliveries
        (user, app_id, pushkey, stream, now_ms) in one transaction; repeats are ignored."""
        async with self.db.transaction() as c:
            for u, pos, room, ev, actions, hl, ts in rows:
                await c.execute(
                    "INSERT INTO push_notifications (user_id, stream_ordering, room_id, event_id, actions,"
                    " highlight, ts) VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT DO NOTHING",
                    u, pos, room, ev, orjson.dumps(actions).decode(), hl, ts)
            for u, app, key, pos, now in deliveries:
                await c.execute(
                    "INSERT INTO push_deliveries (user_id, app_id, pushkey, stream_ordering, next_attempt_ms,"
                    " created_ms) VALUES ($1,$2,$3,$4,$5,$5) ON CONFLICT DO NOTHING", u, app, key, pos, now)

    async def notifications(self, user_id: str, before: int | None, limit: int,
                            highlight_only: bool) -> list[dict[str, Any]]:
        """Newest first, below `before`; each row says whether the user has read it."""
        sql = (f"SELECT n.stream_ordering, n.room_id, n.event_id, n.actions, n.ts, {_UNREAD} AS unread"
               " FROM push_notifications n WHERE n.user_id = $1 AND n.stream_ordering < $2")
        if highlight_only:
            sql += " AND n.highlight = TRUE"
        sql += " ORDER BY n.stream_ordering DESC LIMIT $3"
        rows = await self.db.fetch(sql, user_id, before if before is not None else 2**62, limit)
        return [{"stream": int(r["stream_ordering"]), "room_id": r["room_id"], "event_id": r["event_id"],
                 "actions": orjson.loads(r["actions"]), "ts": int(r["ts"]), "read": not r["unread"]}
                for r in rows]

    async def unread_count(self, user_id: str) -> int:
        return int(await self.db.fetchval(
            f"SELECT COUNT(*) FROM push_notifications n WHERE n.user_id = $1 AND {_UNREAD}", user_id))

    async def unread_since(self, user_id: str, after: int, ts_upto: int, limit: int) -> list[dict[str, Any]]:
        """Unread notifications after position `after` that are at least as old as `ts_upto`."""
        rows = await self.db.fetch(
            f"SELECT n.stream_ordering, n.room_id, n.event_id FROM push_notifications n WHERE n.user_id = $1"
            f" AND n.stream_ordering > $2 AND n.ts <= $3 AND {_UNREAD} ORDER BY n.stream_ordering LIMIT $4",
            user_id, after, ts_upto, limit)
        return [dict(r) for r in rows]

    async def newest_old_enough(self, user_id: str, after: int, ts_upto: int) -> int | None:
        v = await self.db.fetchval("SELECT MAX(stream_ordering) FROM push_notifications WHERE user_id = $1"
                                   " AND stream_ordering > $2 AND ts <= $3", user_id, after, ts_upto)
        return int(v) if v is not None else None

    async def due(self, now_ms: int, limit: int) -> list[Delivery]:
        """The oldest pending delivery of each pusher, when it is due."""
        rows = await self.db.fetch(
            "SELECT d.user_id, d.app_id, d.pushkey, d.stream_ordering, d.attempts, d.created_ms, n.event_id,"
            " n.room_id, n.actions FROM push_deliveries d LEFT JOIN push_notifications n ON n.user_id = d.user_id"
            " AND n.stream_ordering = d.stream_ordering WHERE d.next_attempt_ms <= $1"
            # Only each pusher's oldest row: one pusher's backlog (a dead gateway) never fills the
            # batch, and a pusher gets its notifications in order.
            " AND d.stream_ordering = (SELECT MIN(d2.stream_ordering) FROM push_deliveries d2"
            " WHERE d2.user_id = d.user_id AND d2.app_id = d.app_id AND d2.pushkey = d.pushkey)"
            " ORDER BY d.next_attempt_ms, d.stream_ordering LIMIT $2", now_ms, limit)
        return [Delivery(r["user_id"], r["app_id"], r["pushkey"], int(r["stream_ordering"]), int(r["attempts"]),
                         int(r["created_ms"]), r["event_id"], r["room_id"],
                         orjson.loads(r["actions"]) if r["actions"] is not None else [])
                for r in rows]

    async def next_due_ms(self) -> int | None:
        v = await self.db.fetchval("SELECT MIN(next_attempt_ms) FROM push_deliveries")
        return int(v) if v is not None else None

    async def is_pending(self, d: Delivery) -> bool:
        return await self.db.fetchval(
            "SELECT 1 FROM push_deliveries WHERE user_id = $1 AND app_id = $2 AND pushkey = $3"
            " AND stream_ordering = $4", d.user_id, d.app_id, d.pushkey, d.stream_ordering) is not None

    async def delivered(self, d: Delivery) -> None:
        await self.db.execute("DELETE FROM push_deliveries WHERE user_id = $1 AND app_id = $2 AND pushkey = $3"
                              " AND stream_ordering = $4", d.user_id, d.app_id, d.pushkey, d.stream_ordering)

    async def retry_at(self, d: Delivery, next_ms: int) -> None:
        await self.db.execute("UPDATE push_deliveries SET attempts = attempts + 1, next_attempt_ms = $5"
                              " WHERE user_id = $1 AND app_id = $2 AND pushkey = $3 AND stream_ordering = $4",
                              d.user_id, d.app_id, d.pushkey, d.stream_ordering, next_ms)

    async def pending_count(self) -> int:
        return int(await self.db.fetchval("SELECT COUNT(*) FROM push_deliveries"))

    # ------------------------------------------------------------------ keys

    async def key(self, name: str, make: str) -> str:
        """The stored value of `name`; `make` is stored first when there is none yet."""
        async with self.db.transaction() as c:
            await c.execute("INSERT INTO push_keys (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                            name, make)
            return str(await c.fetchval("SELECT value FROM push_keys WHERE name = $1", name))
