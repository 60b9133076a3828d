-- A person's audit entries in chain order, either way: the console's timeline of a person
-- reads their latest entries newest first, which with `audit_person` (person_id) alone sorted
-- every entry of the person. This index serves what `audit_person` did, so it goes.
CREATE INDEX IF NOT EXISTS audit_person_seq ON audit_log (person_id, seq);
DROP INDEX IF EXISTS audit_person;
