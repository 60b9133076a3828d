-- `[retention] event_payloads`: when an event's raw payload was dropped (its body is then
-- JSON null). The partial index is what the retention pass scans: payloads still kept, oldest
-- first.
ALTER TABLE events ADD COLUMN IF NOT EXISTS payload_dropped_at BIGINT;
CREATE INDEX IF NOT EXISTS events_payload_kept ON events (received_at) WHERE payload_dropped_at IS NULL;
