-- What this server keeps of other servers' data: remote users' device lists (while a local
-- user shares a room with them) and remote media (fetched once, served from here afterwards).

-- One row per remote user whose keys we cache: the answer of their server for the user's
-- device keys and cross-signing keys, and whether an m.device_list_update has made it stale.
CREATE TABLE remote_device_lists (
    user_id TEXT PRIMARY KEY,
    keys_json TEXT NOT NULL,
    stream_id BIGINT NOT NULL DEFAULT 0,
    stale BOOLEAN NOT NULL DEFAULT FALSE,
    updated_ts BIGINT NOT NULL
);

-- Remote media cached locally; the bytes live in the media backend under storage_key.
CREATE TABLE remote_media (
    origin TEXT NOT NULL,
    media_id TEXT NOT NULL,
    storage_key TEXT NOT NULL,
    content_type TEXT,
    filename TEXT,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (origin, media_id)
);
