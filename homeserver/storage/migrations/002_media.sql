-- Media repository metadata; the bytes live in the configured storage backend.
CREATE TABLE media (
    media_id TEXT PRIMARY KEY,
    uploader TEXT NOT NULL,
    content_type TEXT,
    filename TEXT,
    size BIGINT,
    sha256 TEXT,
    created_ts BIGINT NOT NULL,
    reserved BOOLEAN NOT NULL DEFAULT FALSE,
    expires_ts BIGINT
);
CREATE TABLE media_thumbnails (
    media_id TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    method TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    PRIMARY KEY (media_id, width, height, method)
);
