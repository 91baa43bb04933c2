-- Federation: other servers' signing keys, each verified when it was fetched (directly or
-- through a notary). Keys from old_verify_keys carry their expired_ts.
CREATE TABLE remote_server_keys (
    server_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    verify_key TEXT NOT NULL,
    valid_until_ts BIGINT NOT NULL,
    expired_ts BIGINT,
    fetched_ts BIGINT NOT NULL,
    PRIMARY KEY (server_name, key_id)
);

-- For each key, the newest verified /_matrix/key/v2/server response holding it, exactly as the
-- server signed it: what this server hands out when asked as a notary. Kept per key, so that a
-- server that later stops listing a key cannot make this notary forget it.
CREATE TABLE remote_server_key_json (
    server_name TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    valid_until_ts BIGINT NOT NULL,
    fetched_ts BIGINT NOT NULL,
    PRIMARY KEY (server_name, key_id)
);
