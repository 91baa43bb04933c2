-- Invites and knocks of rooms this server is not in: the membership event is an outlier (no state
-- here), so the stripped room state that came with it (`invite_room_state`, `knock_room_state`)
-- is kept for the sync's invite and knock sections.
CREATE TABLE membership_room_state (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    stripped_state TEXT NOT NULL
);
