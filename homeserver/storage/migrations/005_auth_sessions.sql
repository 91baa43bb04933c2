-- User-interactive auth sessions, shared by every worker. `operation` is "METHOD path" of the
-- request that started the session; `params` its body without `auth`; `completed` a JSON list;
-- `result` what the finished operation produced (the user a registration created, for retries).
CREATE TABLE uia_sessions (
    session_id TEXT PRIMARY KEY,
    user_id TEXT,
    operation TEXT NOT NULL,
    params TEXT NOT NULL,
    completed TEXT NOT NULL,
    result TEXT,
    created_ts BIGINT NOT NULL
);
CREATE INDEX uia_sessions_created ON uia_sessions (created_ts);

-- OpenID tokens handed to third parties (integration managers) to learn who a user is.
CREATE TABLE openid_tokens (
    token TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_ts BIGINT NOT NULL
);

-- Reports of events, rooms and users sent to the server administrators.
CREATE TABLE reports (
    report_id TEXT PRIMARY KEY,
    reporter TEXT NOT NULL,
    room_id TEXT,
    event_id TEXT,
    target_user_id TEXT,
    reason TEXT,
    score BIGINT,
    received_ts BIGINT NOT NULL
);
CREATE INDEX reports_received ON reports (received_ts);

-- The client software of a device's last login, for /admin/whois.
ALTER TABLE devices ADD COLUMN last_seen_user_agent TEXT;
