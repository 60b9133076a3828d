-- Groups an identity provider pushes over SCIM (`/scim/v2/Groups`), beside tenure's own
-- entitlements (which SCIM lists read-only). `display_name_ci` is the lowercased displayName,
-- unique, and `version` is the ETag. A membership row names a SCIM user, whose id is the
-- person's.
CREATE TABLE IF NOT EXISTS scim_groups (
    id              TEXT PRIMARY KEY,
    display_name    TEXT NOT NULL,
    display_name_ci TEXT NOT NULL,
    external_id     TEXT,
    version         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS scim_groups_display_name ON scim_groups (display_name_ci);

CREATE TABLE IF NOT EXISTS scim_group_members (
    group_id  TEXT NOT NULL,
    person_id TEXT NOT NULL,
    PRIMARY KEY (group_id, person_id)
);
CREATE INDEX IF NOT EXISTS scim_group_members_person ON scim_group_members (person_id, group_id);
