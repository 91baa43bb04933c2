-- The stream position up to which local events have been written to the federation queue
-- (homeserver/peering/outbound.py). The queue rows of an event are written after its commit; when
-- the sender's lease holder starts it queues the local events after this position, which a crash
-- between an event's commit and its queueing would otherwise never send.
CREATE TABLE federation_watermark (
    id INTEGER PRIMARY KEY,
    stream_pos BIGINT NOT NULL
);
INSERT INTO federation_watermark (id, stream_pos) SELECT 1, COALESCE(MAX(stream_ordering), 0) FROM events;
