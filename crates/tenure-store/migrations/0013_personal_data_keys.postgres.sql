-- Personal data sealed under a key per person (see `vault`): the keys, each wrapped under the
-- master key (which is never in the database); a keyed hash of each person's work email, which
-- reconciliation looks people up by now that `data` is sealed; and when a person was
-- forgotten (their key deleted, their record left as a tombstone).
CREATE TABLE IF NOT EXISTS person_keys (
    person_id   TEXT PRIMARY KEY,
    wrapped     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
ALTER TABLE people ADD COLUMN IF NOT EXISTS email_index TEXT;
ALTER TABLE people ADD COLUMN IF NOT EXISTS forgotten_at BIGINT;
CREATE INDEX IF NOT EXISTS people_email_index ON people (email_index);
-- Migration 9's index on the email inside `data` cannot be kept once `data` is sealed (and
-- would hold every email in clear): `email_index` replaces it.
DROP INDEX IF EXISTS people_email;
