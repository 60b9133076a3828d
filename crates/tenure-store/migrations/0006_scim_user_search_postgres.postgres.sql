-- PostgreSQL's counterpart of migration 4: a substring filter that matches thousands of users
-- (`userName co "smi"`) must not read a value row and a user row for each match to count
-- them. `scim_users_search` holds one row per live user, keyed by its id, with one column per
-- attribute a `co` answers from it (userName, displayName, emails' values, name's formatted,
-- family and given parts; a user's several values of one attribute joined by a newline), each
-- with a pg_trgm GIN index (the extension is migration 3's). A `co` on one of them is one
-- `LIKE` on one column: its matches are counted and a page of them is read in id order (the
-- listing order on PostgreSQL) without touching `scim_users` or `scim_values`.
--
-- The store writes this table in the same transaction as the user (put, replace, delete).
-- Filling it from the users already stored is the migration's data step
-- (`scim::user_search_index_postgres`), which empties it first so it can run again.
CREATE TABLE IF NOT EXISTS scim_users_search (
    user_id TEXT PRIMARY KEY,
    username TEXT,
    displayname TEXT,
    emails TEXT,
    name_formatted TEXT,
    name_familyname TEXT,
    name_givenname TEXT
);
CREATE INDEX IF NOT EXISTS scim_users_search_username ON scim_users_search USING gin (username gin_trgm_ops);
CREATE INDEX IF NOT EXISTS scim_users_search_displayname ON scim_users_search USING gin (displayname gin_trgm_ops);
CREATE INDEX IF NOT EXISTS scim_users_search_emails ON scim_users_search USING gin (emails gin_trgm_ops);
CREATE INDEX IF NOT EXISTS scim_users_search_name_formatted ON scim_users_search USING gin (name_formatted gin_trgm_ops);
CREATE INDEX IF NOT EXISTS scim_users_search_name_familyname ON scim_users_search USING gin (name_familyname gin_trgm_ops);
CREATE INDEX IF NOT EXISTS scim_users_search_name_givenname ON scim_users_search USING gin (name_givenname gin_trgm_ops);
