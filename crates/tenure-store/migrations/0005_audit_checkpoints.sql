-- Signed checkpoints of the audit chain's head (see `tenure_core::checkpoint`): one row per
-- checkpoint, by the sequence number it vouches for. `sink_sent_at` is when it reached the sink
-- outside the database (a file or a webhook); NULL until then, so a failed delivery is tried
-- again. Instances that sign the same head write one row (the first wins).
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq          BIGINT PRIMARY KEY,
    hash         TEXT NOT NULL,
    at_ms        BIGINT NOT NULL,
    public_key   TEXT NOT NULL,
    signature    TEXT NOT NULL,
    sink_sent_at BIGINT
);
CREATE INDEX IF NOT EXISTS audit_checkpoints_unsent ON audit_checkpoints (sink_sent_at, seq);
