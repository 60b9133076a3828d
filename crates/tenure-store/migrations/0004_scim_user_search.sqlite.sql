-- A substring filter that matches thousands of users (`emails[value co "example"]`) must not
-- read a value row and a user row for each match just to count them. On SQLite a second
-- trigram index holds one row per live user, keyed by a new integer `scim_users.seq`, with one
-- column per attribute it answers (userName, displayName, emails' values, name's formatted,
-- family and given parts; a user's several values of one attribute joined by a newline). A
-- `co` on one of them is a single FTS5 query: its matches are the users, counted without
-- touching a row, and a page of them is read in `seq` order, which is now the order of every
-- listing without `sortBy` (creation order; the same as id order for the time-ordered ids
-- tenure gives).
--
-- Contentless (`content=''`, `contentless_delete=1`): the values live in `scim_values`; the
-- store writes this index in the same transaction as the user (put, replace, delete).
--
-- The `seq` column, its numbering of the users already stored (in id order) and the filling of
-- the index are the migration's data step (`scim::user_search_index`): SQLite has no
-- `ADD COLUMN IF NOT EXISTS`, and the step must be safe to run again over its own result.
CREATE VIRTUAL TABLE IF NOT EXISTS scim_users_trigram USING fts5(
    username,
    displayname,
    emails,
    name_formatted,
    name_familyname,
    name_givenname,
    content = '',
    contentless_delete = 1,
    tokenize = 'trigram case_sensitive 1'
);
