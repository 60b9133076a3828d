-- SCIM filters `co`, `sw` and `ew` answer from a trigram index instead of reading every value
-- of the attribute. On PostgreSQL that is a GIN index with pg_trgm's `gin_trgm_ops` over
-- `scim_values.val`, which `LIKE` patterns use (pg_trgm folds case in the index; the `LIKE`
-- recheck keeps the comparison exact). pg_trgm ships with PostgreSQL (contrib) and is a
-- trusted extension: the database's owner may create it. Building the index reads the rows
-- already stored.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX IF NOT EXISTS scim_values_trigram ON scim_values USING gin (val gin_trgm_ops);
