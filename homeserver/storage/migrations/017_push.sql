-- Pushers, stored notifications, the push delivery queue and server-wide push keys.

-- One pusher per (user, app_id, pushkey), created by one device (removed with it).
-- data is the client's JSON; since_stream: events at or below it are never pushed to it.
CREATE TABLE pushers (
    user_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    kind TEXT NOT NULL,
    device_id TEXT,
    app_display_name TEXT NOT NULL,
    device_display_name TEXT NOT NULL,
    profile_tag TEXT,
    lang TEXT NOT NULL,
    data TEXT NOT NULL,
    pushkey_ts BIGINT NOT NULL,
    since_stream BIGINT NOT NULL,
    -- email pushers: the newest notification position already emailed (or skipped as read)
    emailed_stream BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, app_id, pushkey)
);
CREATE INDEX pushers_pushkey ON pushers (app_id, pushkey);

-- Events a user was notified about (GET /notifications), by the event's stream position.
CREATE TABLE push_notifications (
    user_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    actions TEXT NOT NULL,
    highlight BOOLEAN NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (user_id, stream_ordering)
);
CREATE INDEX push_notifications_room ON push_notifications (user_id, room_id, stream_ordering);

-- Pending deliveries to HTTP and Web Push pushers; a row is deleted once delivered or given up.
CREATE TABLE push_deliveries (
    user_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    pushkey TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, app_id, pushkey, stream_ordering)
);
CREATE INDEX push_deliveries_due ON push_deliveries (next_attempt_ms);

-- Server-wide secrets of the push subsystem (the VAPID key pair, the unsubscribe-link key):
-- the first worker to start writes them, every worker reads the same ones.
CREATE TABLE push_keys (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
