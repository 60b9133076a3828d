-- A blind index for searching people by name or email on a sealing vault, where no name is
-- stored in clear: a keyed hash (under a key derived from the master key) of every beginning
-- of every word of each person's name and work email, and a `-` entry for each person indexed.
-- People sealed before it are indexed at the next start, as people stored in clear are sealed.
CREATE TABLE IF NOT EXISTS people_search_tokens (
    token       TEXT NOT NULL,
    person_id   TEXT NOT NULL,
    PRIMARY KEY (token, person_id)
);
CREATE INDEX IF NOT EXISTS people_search_tokens_person ON people_search_tokens (person_id);
