-- Personal data sealed under a key per person (see the PostgreSQL file). SQLite has no
-- `ADD COLUMN IF NOT EXISTS`: the data step adds `people.email_index` and
-- `people.forgotten_at`, and the index on the first, when the table lacks them.
CREATE TABLE IF NOT EXISTS person_keys (
    person_id   TEXT PRIMARY KEY,
    wrapped     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
-- Migration 9's index on the email inside `data` cannot be kept once `data` is sealed (and
-- would hold every email in clear): `email_index` replaces it.
DROP INDEX IF EXISTS people_email;
