"""Versioned migrations, applied in order at start inside one transaction each.

Several workers may start at once on one database: the whole check-and-apply runs under the
database's migration lock (a PostgreSQL advisory lock), so exactly one of them migrates and the
others find the schema already current. A version is applied when it is missing from
`schema_version`, not only when it is above the highest one, so migrations developed on parallel
branches (004, 005, ...) still run after a later number landed first.
"""

from __future__ import annotations

from importlib import resources

from homeserver.storage.database import Database

# (version, file)
MIGRATIONS: list[tuple[int, str]] = [
    (1, "001_core.sql"),
    (2, "002_media.sql"),
    (3, "003_realtime.sql"),
    (4, "004_visibility.sql"),
    (5, "005_auth_sessions.sql"),
    (6, "006_guests.sql"),
    (7, "007_deployment.sql"),
    (9, "009_server_keys.sql"),
    (10, "010_intake.sql"),
    (11, "011_e2ee.sql"),
    (12, "012_cross_signing_backup.sql"),
    (13, "013_federation_queue.sql"),
    (14, "014_remote_invites.sql"),
    (16, "016_remote_caches.sql"),
    (17, "017_push.sql"),
    (18, "018_ai.sql"),
    (19, "019_plugins.sql"),
    (20, "020_federation_watermark.sql"),
    (23, "023_search.sql"),
    (29, "029_dehydrated_devices.sql"),
    (31, "031_plugin_notifications.sql"),
    (32, "032_appservice_streams.sql"),
    (33, "033_ai_vectors.sql"),
    (34, "034_ai_pgvector.sql"),
]

# pgvector when the server has it (034_ai_pgvector.sql says why it is optional). One statement:
# the subtransaction keeps a refused CREATE EXTENSION from aborting the migration.
_PG_VECTOR = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS vector;
            ALTER TABLE ai_vectors ADD COLUMN embedding vector;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'pgvector could not be enabled: %', SQLERRM;
        END;
    END IF;
END
$$
"""

# The events already stored when search arrives are indexed by the migration (edits of them
# are not replayed: those messages are found by their first text until edited again).
_SEARCH_BACKFILL = (
    "INSERT INTO event_search (event_id, room_id, sender, type, key, value, stream_ordering, origin_server_ts)"
    " SELECT event_id, room_id, sender, type, key, SUBSTR(value, 1, 20000), stream_ordering, origin_server_ts"
    " FROM (SELECT event_id, room_id, sender, type, stream_ordering, origin_server_ts,"
    " CASE type WHEN 'm.room.message' THEN 'content.body' WHEN 'm.room.name' THEN 'content.name'"
    " ELSE 'content.topic' END AS key,"
    " CASE type WHEN 'm.room.message' THEN {body} WHEN 'm.room.name' THEN {name} ELSE {topic} END AS value,"
    " {rel} AS rel FROM events WHERE in_timeline = TRUE AND redacted_by IS NULL"
    " AND type IN ('m.room.message', 'm.room.name', 'm.room.topic')) AS t"
    " WHERE value IS NOT NULL AND TRIM(value) <> '' AND (rel IS NULL OR rel <> 'm.replace')"
)


def _sqlite_text(key: str) -> str:
    return f"(CASE WHEN json_type(json, '$.content.{key}') = 'text' THEN json_extract(json, '$.content.{key}') END)"


def _pg_text(key: str) -> str:
    return (f"(CASE WHEN jsonb_typeof(json::jsonb -> 'content' -> '{key}') = 'string'"
            f" THEN json::jsonb -> 'content' ->> '{key}' END)")


_PG_EXTRA = {
    34: [_PG_VECTOR],
    23: [
        "ALTER TABLE event_search ADD COLUMN vec tsvector"
        " GENERATED ALWAYS AS (to_tsvector('simple', value)) STORED",
        "CREATE INDEX event_search_vec ON event_search USING GIN (vec)",
        _SEARCH_BACKFILL.format(body=_pg_text("body"), name=_pg_text("name"), topic=_pg_text("topic"),
                                rel="json::jsonb -> 'content' -> 'm.relates_to' ->> 'rel_type'"),
    ],
    13: ["CREATE SEQUENCE IF NOT EXISTS federation_queue_seq"],
    10: ["CREATE SEQUENCE IF NOT EXISTS outlier_seq"],
    1: [
        "CREATE SEQUENCE IF NOT EXISTS stream_seq",
        "CREATE SEQUENCE IF NOT EXISTS state_group_seq",
        "CREATE SEQUENCE IF NOT EXISTS filter_seq",
    ],
}


# Statements only SQLite understands (FTS5), run after the migration's file.
_SQLITE_EXTRA = {
    23: [
        # A table of its own (not external content): rowid = the event's stream_ordering,
        # so a row is replaced or deleted by that one integer.
        "CREATE VIRTUAL TABLE event_search_fts USING fts5(value, tokenize = 'unicode61 remove_diacritics 2')",
        _SEARCH_BACKFILL.format(body=_sqlite_text("body"), name=_sqlite_text("name"), topic=_sqlite_text("topic"),
                                rel="json_extract(json, '$.content.\"m.relates_to\".rel_type')"),
        "INSERT INTO event_search_fts (rowid, value) SELECT stream_ordering, value FROM event_search",
    ],
}


def _statements(sql: str) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


async def migrate(db: Database) -> int:
    """Bring the schema to the newest version; returns that version."""
    async with db.migration_lock():
        async with db.transaction() as c:
            await c.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
            )
            rows = await c.fetch("SELECT version FROM schema_version")
        applied = {int(r["version"]) for r in rows}
        for version, name in sorted(MIGRATIONS):
            if version in applied:
                continue
            sql = resources.files("homeserver.storage.migrations").joinpath(name).read_text()
            async with db.transaction() as c:
                for stmt in _statements(sql):
                    await c.execute(stmt)
                extra = _PG_EXTRA if db.dialect == "postgres" else _SQLITE_EXTRA
                for stmt in extra.get(version, []):
                    await c.execute(stmt)
                await c.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
            applied.add(version)
    return max(applied) if applied else 0
