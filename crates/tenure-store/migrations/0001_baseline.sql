-- Migration 1, the baseline: the schema as it was when versions began to be recorded. One DDL
-- for SQLite and PostgreSQL: integers are BIGINT (epoch ms for times, 0/1 for flags), ids and
-- JSON documents are TEXT. Every statement is idempotent (`IF NOT EXISTS`, `ON CONFLICT DO
-- NOTHING`), because it also brings a database made before versions were recorded to the
-- baseline (`migrate::upgrade_unrecorded`). Never edit it: add a migration instead.

CREATE TABLE IF NOT EXISTS tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    scopes      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- `department`, `worker_type` and `manager` repeat fields of `data` so lists filter on them in
-- SQL, and `search` is the name and email lowercased, for text search. Databases made before
-- these columns get them, and their values, when adopted (`lists::add_people_columns`).
CREATE TABLE IF NOT EXISTS people (
    id          TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    data        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    department  TEXT,
    worker_type TEXT,
    manager     TEXT,
    search      TEXT
);
CREATE INDEX IF NOT EXISTS people_status ON people (status, id);
CREATE INDEX IF NOT EXISTS people_department ON people (department, id);
CREATE INDEX IF NOT EXISTS people_worker_type ON people (worker_type, id);
CREATE INDEX IF NOT EXISTS people_manager ON people (manager, id);

CREATE TABLE IF NOT EXISTS clients (
    id          TEXT PRIMARY KEY,
    data        TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS engagements (
    id          TEXT PRIMARY KEY,
    person_id   TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    active      BIGINT NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS engagements_person ON engagements (person_id);
CREATE INDEX IF NOT EXISTS engagements_client ON engagements (client_id, id);

CREATE TABLE IF NOT EXISTS accounts (
    person_id   TEXT NOT NULL,
    system      TEXT NOT NULL,
    state       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (person_id, system)
);

CREATE TABLE IF NOT EXISTS grants (
    person_id   TEXT NOT NULL,
    entitlement TEXT NOT NULL,
    system      TEXT NOT NULL,
    source      TEXT NOT NULL,
    source_ref  TEXT NOT NULL,
    state       TEXT NOT NULL,
    granted_at  BIGINT,
    expires_at  BIGINT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (person_id, entitlement)
);

CREATE TABLE IF NOT EXISTS events (
    id           TEXT PRIMARY KEY,
    idem_key     TEXT NOT NULL UNIQUE,
    source_id    TEXT UNIQUE,
    body_hash    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    person_id    TEXT NOT NULL,
    source       TEXT,
    body         TEXT NOT NULL,
    effective_at BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    run_id       TEXT NOT NULL
);

-- The X-Request-Id of the HTTP request an event came with: it ties the server's log lines to
-- the event, its run and their audit entries. Events sent without one have no row.
CREATE TABLE IF NOT EXISTS event_requests (
    event_id   TEXT PRIMARY KEY,
    request_id TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS runs (
    id               TEXT PRIMARY KEY,
    event_id         TEXT,
    person_id        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    state            TEXT NOT NULL,
    priority         BIGINT NOT NULL,
    effective_at     BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    planned_at       BIGINT,
    finished_at      BIGINT,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    error            TEXT,
    note             TEXT
);
CREATE INDEX IF NOT EXISTS runs_due ON runs (effective_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS runs_person ON runs (person_id, created_at);
CREATE INDEX IF NOT EXISTS runs_state ON runs (state, created_at);
CREATE INDEX IF NOT EXISTS runs_kind ON runs (kind, created_at);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);

CREATE TABLE IF NOT EXISTS steps (
    id              TEXT PRIMARY KEY,
    run_id          TEXT NOT NULL,
    idx             BIGINT NOT NULL,
    phase           BIGINT NOT NULL,
    ready           BIGINT NOT NULL,
    state           TEXT NOT NULL,
    priority        BIGINT NOT NULL,
    available_at    BIGINT NOT NULL,
    person_id       TEXT NOT NULL,
    system          TEXT NOT NULL,
    action          TEXT NOT NULL,
    entitlement     TEXT,
    source          TEXT,
    source_ref      TEXT,
    op_id           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    compensation_of BIGINT,
    lease_until     BIGINT,
    started_at      BIGINT,
    finished_at     BIGINT,
    UNIQUE (run_id, idx)
);
CREATE INDEX IF NOT EXISTS steps_claim ON steps (priority, available_at) WHERE state = 'pending' AND ready = 1;
CREATE INDEX IF NOT EXISTS steps_running ON steps (lease_until) WHERE state = 'running';

CREATE TABLE IF NOT EXISTS audit_log (
    seq            BIGINT PRIMARY KEY,
    at_ms          BIGINT NOT NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    person_id      TEXT,
    entitlement    TEXT,
    system         TEXT,
    run_id         TEXT,
    reason         TEXT NOT NULL,
    correlation_id TEXT,
    details        TEXT NOT NULL,
    prev_hash      TEXT NOT NULL,
    hash           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_person ON audit_log (person_id);
-- The audit list's filters: who acted, what they did, on which entitlement, when. (`system`
-- has few values, so a scan in seq order finds a page of them soon enough.)
CREATE INDEX IF NOT EXISTS audit_actor ON audit_log (actor, seq);
CREATE INDEX IF NOT EXISTS audit_action ON audit_log (action, seq);
CREATE INDEX IF NOT EXISTS audit_entitlement ON audit_log (entitlement, seq);
CREATE INDEX IF NOT EXISTS audit_at ON audit_log (at_ms);

CREATE TABLE IF NOT EXISTS audit_head (
    id    BIGINT PRIMARY KEY,
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000')
    ON CONFLICT (id) DO NOTHING;

-- Durable timers: grant expiries, approval escalations and deadlines, contract and engagement
-- end dates, webhook deliveries (the outbox). One row per (kind, subject): rescheduling moves it.
-- state: pending (waits for due_at), running (a delivery in flight until lease_until),
-- fired (done), dead (a delivery given up after its attempts).
CREATE TABLE IF NOT EXISTS timers (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    due_at      BIGINT NOT NULL,
    payload     TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    lease_until BIGINT,
    last_error  TEXT,
    created_at  BIGINT NOT NULL,
    fired_at    BIGINT,
    UNIQUE (kind, subject)
);
CREATE INDEX IF NOT EXISTS timers_due ON timers (due_at) WHERE state = 'pending';

-- Access requests: someone asks for an entitlement for a person, for a while.
CREATE TABLE IF NOT EXISTS access_requests (
    id            TEXT PRIMARY KEY,
    person_id     TEXT NOT NULL,
    entitlement   TEXT NOT NULL,
    requester     TEXT NOT NULL,
    justification TEXT NOT NULL,
    duration_ms   BIGINT,
    break_glass   BIGINT NOT NULL,
    state         TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    decided_at    BIGINT,
    expires_at    BIGINT
);
CREATE INDEX IF NOT EXISTS access_requests_person ON access_requests (person_id, created_at);
CREATE INDEX IF NOT EXISTS access_requests_requester ON access_requests (requester, id);

-- Why a request was denied by policy: the Cedar policies and separation-of-duties rules that
-- decided, as a JSON list (a request an approver denied has its decision in approval_decisions).
CREATE TABLE IF NOT EXISTS request_denials (
    request_id    TEXT PRIMARY KEY,
    policies      TEXT NOT NULL
);

-- One approval per grant that waits for people: its chain of stages as JSON.
CREATE TABLE IF NOT EXISTS approvals (
    id           TEXT PRIMARY KEY,
    run_id       TEXT NOT NULL,
    step_id      TEXT,
    request_id   TEXT,
    person_id    TEXT NOT NULL,
    entitlement  TEXT NOT NULL,
    requester    TEXT NOT NULL,
    state        TEXT NOT NULL,
    chain        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    stage_due_at BIGINT NOT NULL,
    deadline_at  BIGINT NOT NULL,
    decided_at   BIGINT
);
CREATE INDEX IF NOT EXISTS approvals_pending ON approvals (created_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS approvals_run ON approvals (run_id);
CREATE INDEX IF NOT EXISTS approvals_person ON approvals (person_id, id);

-- Who an approval names as approvers (any stage so far, escalations included), `waiting` 1
-- for those its current stage still waits for. Kept with the chain, so an approver's queue
-- is one indexed query.
CREATE TABLE IF NOT EXISTS approval_approvers (
    approval_id TEXT NOT NULL,
    approver    TEXT NOT NULL,
    waiting     BIGINT NOT NULL,
    PRIMARY KEY (approval_id, approver)
);
CREATE INDEX IF NOT EXISTS approval_approvers_who ON approval_approvers (approver, waiting);

CREATE TABLE IF NOT EXISTS approval_decisions (
    approval_id  TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    stage        BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    on_behalf_of TEXT NOT NULL,
    decision     TEXT NOT NULL,
    comment      TEXT NOT NULL,
    at_ms        BIGINT NOT NULL,
    PRIMARY KEY (approval_id, seq)
);
CREATE INDEX IF NOT EXISTS approval_decisions_actor ON approval_decisions (actor);

-- An approver's substitute for a period.
CREATE TABLE IF NOT EXISTS delegations (
    id         TEXT PRIMARY KEY,
    delegator  TEXT NOT NULL,
    delegate   TEXT NOT NULL,
    starts_at  BIGINT NOT NULL,
    ends_at    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX IF NOT EXISTS delegations_delegate ON delegations (delegate, starts_at);
CREATE INDEX IF NOT EXISTS delegations_delegator ON delegations (delegator, starts_at);

-- The person a token acts as (`tenure token create --as PERSON`): who is asking or approving.
CREATE TABLE IF NOT EXISTS token_identities (
    token_id  TEXT PRIMARY KEY,
    person_id TEXT NOT NULL
);
-- Work a step waits on outside tenure: a manual task for a team, or a webhook receiver's
-- asynchronous completion. The id is the step's operation id, so a step called again finds
-- its task instead of opening a second one.
CREATE TABLE IF NOT EXISTS tasks (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    system      TEXT NOT NULL,
    team        TEXT,
    person_id   TEXT NOT NULL,
    action      TEXT NOT NULL,
    entitlement TEXT,
    title       TEXT NOT NULL,
    state       TEXT NOT NULL,
    message     TEXT,
    created_at  BIGINT NOT NULL,
    due_at      BIGINT,
    finished_at BIGINT,
    finished_by TEXT
);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state, created_at);
CREATE INDEX IF NOT EXISTS steps_op ON steps (op_id);
-- SCIM 2.0 server. `scim_users.doc` is the resource as the identity provider last wrote it
-- (without meta). `scim_values` indexes every attribute value of it, normalized (lowercased
-- unless case-exact, booleans `true`/`false`, times in UTC), so filters run in SQL.
-- `lifecycle` is what tenure made of the user so far: none (never hired), active, left.
CREATE TABLE IF NOT EXISTS scim_users (
    id           TEXT PRIMARY KEY,
    user_name_ci TEXT NOT NULL,
    deleted      BIGINT NOT NULL DEFAULT 0,
    lifecycle    TEXT NOT NULL,
    version      BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    doc          TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS scim_users_user_name ON scim_users (user_name_ci) WHERE deleted = 0;

CREATE TABLE IF NOT EXISTS scim_values (
    resource_id TEXT NOT NULL,
    attr        TEXT NOT NULL,
    idx         BIGINT NOT NULL,
    sub         TEXT NOT NULL,
    val         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS scim_values_lookup ON scim_values (attr, sub, val, resource_id);
CREATE INDEX IF NOT EXISTS scim_values_resource ON scim_values (resource_id);

-- Lifecycle events a SCIM change produced, as earlier versions queued them (the change's event
-- is now stored by the engine in the change's own transaction). `tenure serve` sends what is
-- left here at start, once (their idempotency key makes that a replay), and empties it.
CREATE TABLE IF NOT EXISTS scim_outbox (
    key         TEXT PRIMARY KEY,
    resource_id TEXT NOT NULL,
    event       TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
