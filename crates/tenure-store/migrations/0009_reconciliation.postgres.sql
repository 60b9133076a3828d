-- Reconciliation: each pass over a target system's inventory, and the differences found, kept
-- across passes until one no longer finds them. `accounts.discovered` marks an account found
-- on a system and linked rather than made by tenure.
CREATE TABLE IF NOT EXISTS reconciliations (
    id           TEXT PRIMARY KEY,
    system       TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    requested_by TEXT,
    dry_run      BIGINT NOT NULL,
    state        TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    ended_at     BIGINT,
    accounts     BIGINT NOT NULL,
    counts       TEXT NOT NULL,
    corrected    BIGINT NOT NULL,
    runs         BIGINT NOT NULL,
    message      TEXT
);
CREATE INDEX IF NOT EXISTS reconciliations_by_system ON reconciliations (system, started_at);
CREATE TABLE IF NOT EXISTS drift_findings (
    id           TEXT NOT NULL UNIQUE,
    system       TEXT NOT NULL,
    situation    TEXT NOT NULL,
    account_key  TEXT NOT NULL,
    entitlement  TEXT NOT NULL,
    person_id    TEXT,
    detail       TEXT NOT NULL,
    remedy       TEXT NOT NULL,
    first_seen   BIGINT NOT NULL,
    last_seen    BIGINT NOT NULL,
    first_run    TEXT NOT NULL,
    last_run     TEXT NOT NULL,
    resolved_at  BIGINT,
    resolved_by  TEXT,
    PRIMARY KEY (system, account_key, entitlement, situation)
);
CREATE INDEX IF NOT EXISTS drift_findings_open ON drift_findings (system, situation) WHERE resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS drift_findings_person ON drift_findings (person_id);
CREATE INDEX IF NOT EXISTS people_email ON people (lower((data::jsonb) ->> 'email'));
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS discovered BIGINT NOT NULL DEFAULT 0;
