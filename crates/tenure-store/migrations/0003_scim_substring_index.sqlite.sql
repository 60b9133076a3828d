-- SCIM filters `co`, `sw` and `ew` answer from a trigram index instead of reading every value
-- of the attribute. On SQLite that is an FTS5 table with the trigram tokenizer over
-- `scim_values.val` (case-sensitive: values are already normalized, lowercased unless
-- case-exact), kept in step with `scim_values` by triggers in the writer's own transaction.
--
-- An external-content FTS5 table names its rows by the content table's rowid, which VACUUM
-- (and `VACUUM INTO`, as backups use) may renumber unless it is an INTEGER PRIMARY KEY: so
-- `scim_values` is rebuilt with one, `id`, and the index filled from the rows already stored.
-- Safe to run again over its own result (a database whose version record was lost): the rebuilt
-- table drops its triggers, which are made anew, and `rebuild` refills the index.
CREATE TABLE scim_values_v3 (
    id          INTEGER PRIMARY KEY,
    resource_id TEXT NOT NULL,
    attr        TEXT NOT NULL,
    idx         BIGINT NOT NULL,
    sub         TEXT NOT NULL,
    val         TEXT NOT NULL
);
INSERT INTO scim_values_v3 (resource_id, attr, idx, sub, val)
    SELECT resource_id, attr, idx, sub, val FROM scim_values ORDER BY resource_id, attr, idx, sub;
DROP TABLE scim_values;
ALTER TABLE scim_values_v3 RENAME TO scim_values;
CREATE INDEX scim_values_lookup ON scim_values (attr, sub, val, resource_id);
CREATE INDEX scim_values_resource ON scim_values (resource_id);

CREATE VIRTUAL TABLE IF NOT EXISTS scim_values_trigram USING fts5(
    val,
    content = 'scim_values',
    content_rowid = 'id',
    tokenize = 'trigram case_sensitive 1'
);
INSERT INTO scim_values_trigram (scim_values_trigram) VALUES ('rebuild');

CREATE TRIGGER IF NOT EXISTS scim_values_trigram_insert AFTER INSERT ON scim_values BEGIN
    INSERT INTO scim_values_trigram (rowid, val) VALUES (new.id, new.val);
END;
CREATE TRIGGER IF NOT EXISTS scim_values_trigram_delete AFTER DELETE ON scim_values BEGIN
    INSERT INTO scim_values_trigram (scim_values_trigram, rowid, val) VALUES ('delete', old.id, old.val);
END;
CREATE TRIGGER IF NOT EXISTS scim_values_trigram_update AFTER UPDATE ON scim_values BEGIN
    INSERT INTO scim_values_trigram (scim_values_trigram, rowid, val) VALUES ('delete', old.id, old.val);
    INSERT INTO scim_values_trigram (rowid, val) VALUES (new.id, new.val);
END;
