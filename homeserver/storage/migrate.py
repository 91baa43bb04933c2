"""Versioned migrations, applied in order at start inside one transaction each."""

from __future__ import annotations

from importlib import resources

from homeserver.storage.database import Database

# (version, file, extra statements for PostgreSQL only)
MIGRATIONS: list[tuple[int, str]] = [
    (1, "001_core.sql"),
    (2, "002_media.sql"),
    (3, "003_realtime.sql"),
    (5, "005_auth_sessions.sql"),
]

_PG_EXTRA = {
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
    async with db.transaction() as c:
        await c.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
        )
        current = await c.fetchval("SELECT MAX(version) FROM schema_version")
    current = current or 0
    for version, name in MIGRATIONS:
        if version <= current:
            continue
        sql = resources.files("homeserver.storage.migrations").joinpath(name).read_text()
        async with db.transaction() as c:
            for stmt in _statements(sql):
                await c.execute(stmt)
            if db.dialect == "postgres":
                for stmt in _PG_EXTRA.get(version, []):
                    await c.execute(stmt)
            await c.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
        current = version
    return current
