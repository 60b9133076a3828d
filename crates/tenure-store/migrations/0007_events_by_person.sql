-- A person's events by time: the evidence of a leave looks up the person's latest `leave`
-- event, which without this index reads every event stored.
CREATE INDEX IF NOT EXISTS events_person ON events (person_id, received_at);
