-- The event intake: received events are not all timeline events.
--   outlier      held for its auth chain or state, never part of the timeline (negative position,
--                state_group -1: the state at it is not known)
--   rejected     failed authorization (the reason); kept so it is never fetched again
--   soft_failed  passed its own auth but not the room's current state: stored, not shown
--   in_timeline  none of the three: what timelines, sync and state reads may use
--   state_before the state group of the state before the event (NULL: the empty state)
ALTER TABLE events ADD COLUMN outlier BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE events ADD COLUMN rejected TEXT;
ALTER TABLE events ADD COLUMN soft_failed BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE events ADD COLUMN in_timeline BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE events ADD COLUMN state_before BIGINT;
-- Existing history is linear: the state before an event is the state after its one prev event.
UPDATE events SET state_before = state_group WHERE state_key IS NULL;
UPDATE events SET state_before = (
    SELECT p.state_group FROM event_edges ed JOIN events p ON p.event_id = ed.prev_event_id
    WHERE ed.event_id = events.event_id LIMIT 1
) WHERE state_key IS NOT NULL;
CREATE INDEX event_edges_prev ON event_edges (prev_event_id);
-- Topological order within a room: (depth, stream position).
CREATE INDEX events_room_topo ON events (room_id, depth, stream_ordering);
