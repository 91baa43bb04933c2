-- AI features (homeserver/ai/): per-user inference settings, the job queue, message embeddings.

-- A user's own inference server. The token is sealed with the server's secretbox key
-- (base64 of nonce + ciphertext) and never returned by the API.
CREATE TABLE ai_user_settings (
    user_id TEXT PRIMARY KEY,
    endpoint TEXT,
    api_style TEXT NOT NULL,
    token_sealed TEXT,
    models TEXT NOT NULL,
    updated_ts BIGINT NOT NULL
);

-- Background jobs. A worker claims a queued job (or one whose lease ran out: its worker died)
-- by a conditional UPDATE, so each claim has exactly one winner on SQLite and PostgreSQL alike.
CREATE TABLE ai_jobs (
    job_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    user_id TEXT NOT NULL,
    room_id TEXT,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    progress INTEGER NOT NULL,
    result TEXT,
    error TEXT,
    attempts INTEGER NOT NULL,
    worker TEXT,
    lease_until BIGINT NOT NULL,
    created_ts BIGINT NOT NULL,
    updated_ts BIGINT NOT NULL
);
CREATE INDEX ai_jobs_claim ON ai_jobs (status, lease_until);
CREATE INDEX ai_jobs_room ON ai_jobs (room_id, kind);

-- One embedding per message (the newest edit's text), float32 little-endian, base64.
CREATE TABLE ai_embeddings (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    model TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX ai_embeddings_room ON ai_embeddings (room_id, stream_ordering);

-- Where the embedding indexer has got to in the event stream.
CREATE TABLE ai_index_position (
    name TEXT PRIMARY KEY,
    stream_ordering BIGINT NOT NULL
);
