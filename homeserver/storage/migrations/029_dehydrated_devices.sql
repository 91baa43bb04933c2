-- MSC3814 dehydrated devices: per user at most one device that no client runs, kept so that it
-- receives room keys while the user is offline; `device_data` is the client's encrypted pickle.
CREATE TABLE dehydrated_devices (
    user_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    device_data TEXT NOT NULL
);
