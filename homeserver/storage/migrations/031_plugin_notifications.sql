-- Notifications waiting for the plugins whose manifest asks for notification hooks: one row per
-- (plugin, notified user, event), written when the push pipeline stores the notification and
-- deleted once the plugin acknowledged it (or it was given up on). Delivery is in stream order.
CREATE TABLE plugin_notifications (
    plugin TEXT NOT NULL,
    user_id TEXT NOT NULL,
    stream_ordering BIGINT NOT NULL,
    room_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    highlight BOOLEAN NOT NULL,
    actions TEXT NOT NULL,
    created_ts BIGINT NOT NULL,
    PRIMARY KEY (plugin, stream_ordering, user_id)
);
