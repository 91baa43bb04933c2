-- Plugins: which are installed and enabled, their settings, the hash of the capability token of
-- the running process, per-room enablement, listener cursors and queued slash commands.

CREATE TABLE plugins (
    name TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT FALSE,
    settings TEXT NOT NULL DEFAULT '{}',
    token_hash TEXT,
    installed_ts BIGINT NOT NULL
);

-- A room admin's choice; no row means the plugin's default (on where its bot is joined).
CREATE TABLE plugin_rooms (
    plugin TEXT NOT NULL,
    room_id TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    changed_by TEXT NOT NULL,
    PRIMARY KEY (plugin, room_id)
);

-- The stream position up to which the plugin acknowledged its events.
CREATE TABLE plugin_cursors (
    plugin TEXT PRIMARY KEY,
    stream_pos BIGINT NOT NULL
);

-- Slash commands waiting for (or being handled by) their plugin; deleted when acknowledged.
CREATE TABLE plugin_commands (
    id TEXT PRIMARY KEY,
    plugin TEXT NOT NULL,
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    command TEXT NOT NULL,
    args TEXT NOT NULL,
    created_ts BIGINT NOT NULL
);
CREATE INDEX plugin_commands_by_plugin ON plugin_commands (plugin, created_ts);

-- Webhooks of a room: incoming (a secret URL that posts as `owner`) and outgoing (POSTed to
-- `url` for messages matching `pattern`, signed with `secret`). Outgoing delivery keeps its
-- stream position in plugin_cursors under the name 'webhooks'.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    room_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    secret TEXT NOT NULL,
    url TEXT,
    pattern TEXT,
    created_ts BIGINT NOT NULL
);
CREATE INDEX webhooks_by_room ON webhooks (room_id);
