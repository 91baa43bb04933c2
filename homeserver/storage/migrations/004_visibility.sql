-- Per-event history visibility reads a user's membership history in a room.
CREATE INDEX events_room_type_state ON events (room_id, type, state_key, stream_ordering);
