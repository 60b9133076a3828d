-- People whose search index entries are to be written again: a person stored with a new
-- name or email is queued here in the same transaction, and the engine writes the entries of
-- many queued people in one later transaction (see `index_pending_people`), so that entries
-- of the same batch share the index's pages. Until then a search opens queued people's
-- records. `generation` moves on each time a person is queued again, so an indexing pass that
-- read an older record leaves the newer one queued.
CREATE TABLE IF NOT EXISTS people_search_pending (
    person_id   TEXT PRIMARY KEY,
    generation  BIGINT NOT NULL
);
