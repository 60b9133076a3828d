-- Whether a call of the step went out and got no answer (a timeout, a connection lost while
-- waiting): the system may have done it. A step that then fails for good leaves its account or
-- grant `uncertain` rather than forgetting it, so a leave still takes it away. 0 or 1.
ALTER TABLE steps ADD COLUMN IF NOT EXISTS maybe_applied BIGINT NOT NULL DEFAULT 0;
