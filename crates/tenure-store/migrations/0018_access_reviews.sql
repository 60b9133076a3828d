-- Access reviews: campaigns, and one item per (person, entitlement) held when a campaign
-- opened, frozen then. `reviewer` is a person id or `team:NAME` (NULL: admins decide).
CREATE TABLE IF NOT EXISTS review_campaigns (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    definition  TEXT NOT NULL,
    state       TEXT NOT NULL,
    opened_by   TEXT NOT NULL,
    opened_at   BIGINT NOT NULL,
    due_at      BIGINT NOT NULL,
    closed_at   BIGINT,
    closed_by   TEXT,
    items       BIGINT NOT NULL,
    decided     BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS review_campaigns_state ON review_campaigns (state, opened_at);
CREATE INDEX IF NOT EXISTS review_campaigns_name ON review_campaigns (name, opened_at);

CREATE TABLE IF NOT EXISTS review_items (
    campaign_id    TEXT NOT NULL,
    seq            BIGINT NOT NULL,
    person_id      TEXT NOT NULL,
    entitlement    TEXT NOT NULL,
    system         TEXT NOT NULL,
    risk           TEXT NOT NULL,
    source         TEXT NOT NULL,
    source_ref     TEXT NOT NULL,
    granted_at     BIGINT,
    reviewer       TEXT,
    recommendation TEXT,
    decision       TEXT,
    justification  TEXT,
    decided_by     TEXT,
    decided_for    TEXT,
    decided_at     BIGINT,
    settled_by     TEXT,
    outcome        TEXT,
    run_id         TEXT,
    applied_at     BIGINT,
    PRIMARY KEY (campaign_id, seq)
);
CREATE INDEX IF NOT EXISTS review_items_reviewer ON review_items (campaign_id, reviewer, seq);
