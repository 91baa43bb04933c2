-- End-to-end encryption, server side: device keys, one-time and fallback keys, device-list
-- changes and to-device messages. The server only stores and hands out public keys and
-- ciphertexts; it never sees plaintext.

-- A device's identity keys (the signed `device_keys` object), one row per device.
CREATE TABLE e2e_device_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- One-time keys: each row is handed out once (deleted by the claim that takes it).
CREATE TABLE e2e_one_time_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id)
);

-- The fallback key per algorithm, handed out (and marked used) when no one-time key is left.
CREATE TABLE e2e_fallback_keys (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, device_id, algorithm)
);

-- "user_id's device list changed at stream position stream_id" (on the shared stream), news
-- for everyone sharing a room with them, or only for `only_for` (a private cross-signature).
CREATE TABLE device_list_changes (
    user_id TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    only_for TEXT,
    PRIMARY KEY (user_id, stream_id)
);
CREATE INDEX device_list_changes_stream ON device_list_changes (stream_id);

-- To-device messages waiting for their device; deleted once the device syncs past them.
CREATE TABLE to_device_inbox (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    message_json TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, stream_id)
);

-- Transaction IDs of PUT /sendToDevice, so that a retried request is not delivered twice.
-- Kept after delivery: their stream_id also seeds the stream on restart, so that a position
-- whose messages were delivered and deleted is never handed out again.
CREATE TABLE to_device_txns (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    txn_id TEXT NOT NULL,
    stream_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id, txn_id)
);
