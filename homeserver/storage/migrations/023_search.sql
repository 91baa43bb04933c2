-- Server-side search (POST /search, homeserver/search/): one row per searchable event, the
-- text it is found by (a message's newest edit; removed when redacted). The full-text index
-- itself is per dialect (storage/migrate.py): an FTS5 table keyed by stream_ordering on
-- SQLite, a generated tsvector column with a GIN index on PostgreSQL.
CREATE TABLE event_search (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    type TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    origin_server_ts BIGINT NOT NULL
);
CREATE UNIQUE INDEX event_search_pos ON event_search (stream_ordering);
CREATE INDEX event_search_room ON event_search (room_id, stream_ordering);
