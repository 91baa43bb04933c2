-- Application services read receipts and to-device messages by stream position across all rooms
-- and users (appservice/ephemeral.py): indexes for those range scans.
CREATE INDEX receipts_by_stream ON receipts (stream_id);
CREATE INDEX to_device_inbox_by_stream ON to_device_inbox (stream_id);
