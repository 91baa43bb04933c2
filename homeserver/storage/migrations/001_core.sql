-- Parley core schema, version 1. Written in the SQL common to SQLite and PostgreSQL.

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    password_hash TEXT,
    created_ts BIGINT NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    deactivated BOOLEAN NOT NULL DEFAULT FALSE,
    displayname TEXT,
    avatar_url TEXT
);

CREATE TABLE devices (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    display_name TEXT,
    last_seen_ts BIGINT,
    last_seen_ip TEXT,
    PRIMARY KEY (user_id, device_id)
);

-- One row per live access token (the JWT's jti). Deleting the row revokes the token.
CREATE TABLE access_tokens (
    jti TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    expires_ts BIGINT,
    refresh_token TEXT,
    used BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);

CREATE TABLE refresh_tokens (
    token TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    access_jti TEXT NOT NULL,
    next_token TEXT
);
CREATE INDEX refresh_tokens_device ON refresh_tokens (user_id, device_id);

CREATE TABLE rooms (
    room_id TEXT PRIMARY KEY,
    room_version TEXT NOT NULL,
    creator TEXT NOT NULL,
    is_public BOOLEAN NOT NULL DEFAULT FALSE,
    created_ts BIGINT NOT NULL
);

-- Every persisted event. stream_ordering is the one growing stream position.
CREATE TABLE events (
    stream_ordering BIGINT PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT,
    sender TEXT NOT NULL,
    depth BIGINT NOT NULL,
    origin_server_ts BIGINT NOT NULL,
    json TEXT NOT NULL,
    state_group BIGINT NOT NULL,
    rel_type TEXT,
    relates_to TEXT,
    thread_root TEXT,
    redacted_by TEXT,
    txn_device TEXT,
    txn_id TEXT
);
CREATE INDEX events_room_stream ON events (room_id, stream_ordering);
CREATE INDEX events_relates ON events (relates_to, stream_ordering);
CREATE INDEX events_thread ON events (room_id, thread_root, stream_ordering);

CREATE TABLE event_edges (
    event_id TEXT NOT NULL,
    prev_event_id TEXT NOT NULL,
    PRIMARY KEY (event_id, prev_event_id)
);

CREATE TABLE forward_extremities (
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, event_id)
);

-- State as deltas: a group is its parent's state plus its own rows. Chains are cut by writing a
-- full snapshot (prev_group NULL) every so often so that reads stay bounded.
CREATE TABLE state_groups (
    id BIGINT PRIMARY KEY,
    room_id TEXT NOT NULL,
    prev_group BIGINT,
    chain_len INTEGER NOT NULL
);
CREATE TABLE state_group_entries (
    group_id BIGINT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (group_id, type, state_key)
);

CREATE TABLE current_state (
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    state_key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
);

-- Current membership of every user (local or remote) in every room.
CREATE TABLE memberships (
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    membership TEXT NOT NULL,
    event_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    forgotten BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id, membership);

CREATE TABLE room_aliases (
    alias TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    creator TEXT NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);

CREATE TABLE client_txns (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_key TEXT NOT NULL,
    response TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_key)
);

CREATE TABLE filters (
    user_id TEXT NOT NULL,
    filter_id BIGINT NOT NULL,
    filter_json TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

-- room_id '' = global account data.
CREATE TABLE account_data (
    user_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    type TEXT NOT NULL,
    content TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_stream ON account_data (user_id, stream_id);

CREATE TABLE registration_tokens_used (
    token TEXT NOT NULL,
    user_id TEXT NOT NULL
);
