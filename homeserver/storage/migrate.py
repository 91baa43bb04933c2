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
    (31, "031_plugin_notifications.sql"),
    (32, "032_appservice_streams.sql"),
]

_PG_EXTRA = {
    13: ["CREATE SEQUENCE IF NOT EXISTS federation_queue_seq"],
    10: ["CREATE SEQUENCE IF NOT EXISTS outlier_seq"],
    1: [
        "CREATE SEQUENCE IF NOT EXISTS stream_seq",
        "CREATE SEQUENCE IF NOT EXISTS state_group_seq",
        "CREATE SEQUENCE IF NOT EXISTS filter_seq",
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
                if db.dialect == "postgres":
                    for stmt in _PG_EXTRA.get(version, []):
                        await c.execute(stmt)
                await c.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
            applied.add(version)
    return max(applied) if applied else 0
