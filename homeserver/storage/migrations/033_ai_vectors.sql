-- Message vectors as raw bytes (float32, little-endian) instead of base64 text, so the database
-- itself can score them: sqlite-vec's distance functions on SQLite, and pgvector's operators on
-- PostgreSQL when the extension is there (migration 034 adds that column); else numpy scores the
-- bytes as fetched. The old base64 table is dropped and the indexer starts again from the first
-- message: vectors are derived data, rebuilt in the background.
CREATE TABLE ai_vectors (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    model TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vec BYTEA NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX ai_vectors_room ON ai_vectors (room_id, model, stream_ordering);
DROP TABLE ai_embeddings;
DELETE FROM ai_index_position WHERE name = 'messages';
