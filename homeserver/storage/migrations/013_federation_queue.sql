-- The outbound federation queue: what each destination still has to receive, in order, and the
-- one transaction in flight to it (retried under the same ID until the destination answers).
--   kind 'pdu': event_id (and its room_id: catch-up keeps the newest per room)
--   kind 'edu': edu_type + content_json
CREATE TABLE federation_queue (
    id BIGINT PRIMARY KEY,
    destination TEXT NOT NULL,
    kind TEXT NOT NULL,
    room_id TEXT,
    event_id TEXT,
    edu_type TEXT,
    content_json TEXT,
    created_ts BIGINT NOT NULL
);
CREATE INDEX federation_queue_destination ON federation_queue (destination, id);
-- Per destination: the transaction counter, the transaction in flight (ID, body, the queue rows
-- it carries) and the retry state (consecutive failures, when to try again).
CREATE TABLE federation_destinations (
    destination TEXT PRIMARY KEY,
    txn_seq BIGINT NOT NULL DEFAULT 0,
    txn_id TEXT,
    txn_json TEXT,
    txn_queue_ids TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    retry_at_ts BIGINT NOT NULL DEFAULT 0
);
