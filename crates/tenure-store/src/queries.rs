//! Queries over one connection (a transaction's or a reader's). Every function here takes
//! `&mut AnyConnection`, so reads run the same inside a write transaction and outside it.

use crate::{Backend, Result, StoreError};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::str::FromStr;
use tenure_core::audit::AuditEntry;
use tenure_core::planner::Action;
use tenure_core::run::{Lane, Priority, RunKind, RunState, StepState, StepStatus};
use tenure_core::{
    Account, AccountState, Client, Engagement, Grant, GrantSource, GrantState, Person,
};

/// Appends `rows` groups of `cols` placeholders: `($1, $2), ($3, $4)` on PostgreSQL, anonymous
/// `(?, ?), (?, ?)` on SQLite, where looking up numbered parameters costs time linear in their
/// count (quadratic over a large multi-row statement).
pub(crate) fn push_placeholders(sql: &mut String, rows: usize, cols: usize, sqlite: bool) {
    use std::fmt::Write;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            if sqlite {
                sql.push('?');
            } else {
                let _ = write!(sql, "${}", r * cols + c + 1);
            }
        }
        sql.push(')');
    }
}

/// Whether the connection is SQLite (placeholder style differs for bulk statements).
pub(crate) fn is_sqlite(c: &AnyConnection) -> bool {
    c.backend_name().eq_ignore_ascii_case("sqlite")
}

/// Runs `make(chunk)` over `items` in chunks small enough for any database's parameter limit.
macro_rules! bulk {
    ($c:expr, $items:expr, $cols:expr, $prefix:expr, $suffix:expr, |$q:ident, $it:ident| $bind:block) => {{
        let sqlite = is_sqlite($c);
        for chunk in $items.chunks((30_000 / $cols).min(500)) {
            let mut sql = String::from($prefix);
            push_placeholders(&mut sql, chunk.len(), $cols, sqlite);
            sql.push_str($suffix);
            let mut $q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for $it in chunk {
                $q = $bind;
            }
            $q.execute(&mut *$c).await?;
        }
    }};
}

pub(crate) fn parse<T: FromStr>(s: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e: T::Err| StoreError::Corrupt(e.to_string()))
}

/// A stored priority (0 or 10).
pub(crate) fn priority(n: i64) -> Result<Priority> {
    Priority::try_from(n).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("model types serialize")
}

// ---------------------------------------------------------------- people, clients, engagements

/// The person with this HR id.
pub async fn get_person(c: &mut AnyConnection, id: &str) -> Result<Option<Person>> {
    let row = sqlx::query("SELECT data FROM people WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(c)
        .await?;
    row.map(|r| json(&r.try_get::<String, _>(0)?)).transpose()
}

/// Stores a person (and the values the people list filters on).
pub async fn upsert_person(c: &mut AnyConnection, p: &Person, now: i64) -> Result<()> {
    let [department, worker_type, manager, search] = person_columns(p);
    sqlx::query(
        "INSERT INTO people (id, status, data, updated_at, department, worker_type, manager, search)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, data = excluded.data, updated_at = excluded.updated_at,
           department = excluded.department, worker_type = excluded.worker_type, manager = excluded.manager,
           search = excluded.search",
    )
    .bind(p.id.clone())
    .bind(p.status.as_str())
    .bind(to_json(p))
    .bind(now)
    .bind(department)
    .bind(worker_type)
    .bind(manager)
    .bind(search)
    .execute(c)
    .await?;
    Ok(())
}

/// People in id order, after `after`, at most `limit` (see [`crate::people_matching`]).
pub async fn list_people(
    c: &mut AnyConnection,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Person>> {
    let filter = crate::PeopleFilter {
        after,
        limit,
        ..Default::default()
    };
    crate::people_matching(c, &filter).await
}

/// How many people are stored.
pub async fn count_people(c: &mut AnyConnection) -> Result<i64> {
    Ok(sqlx::query("SELECT COUNT(*) FROM people")
        .fetch_one(c)
        .await?
        .try_get(0)?)
}

/// Stores a client.
pub async fn upsert_client(c: &mut AnyConnection, client: &Client) -> Result<()> {
    sqlx::query("INSERT INTO clients (id, data) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET data = excluded.data")
        .bind(client.id.clone())
        .bind(to_json(client))
        .execute(c)
        .await?;
    Ok(())
}

/// All stored clients.
pub async fn list_clients(c: &mut AnyConnection) -> Result<Vec<Client>> {
    let rows = sqlx::query("SELECT data FROM clients ORDER BY id")
        .fetch_all(c)
        .await?;
    rows.iter()
        .map(|r| json(&r.try_get::<String, _>(0)?))
        .collect()
}

/// The stored clients among `ids` (those an event carried in full).
pub async fn clients_by_ids(c: &mut AnyConnection, ids: &[&str]) -> Result<Vec<Client>> {
    let mut out = Vec::new();
    let sqlite = is_sqlite(c);
    for chunk in ids.chunks(500) {
        let mut sql = String::from("SELECT data FROM clients WHERE id IN ");
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.push(json(&r.try_get::<String, _>(0)?)?);
        }
    }
    Ok(out)
}

/// The person's engagements, active or not.
pub async fn engagements_of(c: &mut AnyConnection, person: &str) -> Result<Vec<Engagement>> {
    let rows = sqlx::query("SELECT data FROM engagements WHERE person_id = $1 ORDER BY id")
        .bind(person.to_string())
        .fetch_all(c)
        .await?;
    rows.iter()
        .map(|r| json(&r.try_get::<String, _>(0)?))
        .collect()
}

/// The people a client's terms bear on: those with an active engagement with it and those
/// holding (or about to hold) one of `entitlements` (the client's, from the configuration).
pub async fn people_bound_by_client(
    c: &mut AnyConnection,
    client: &str,
    entitlements: &[&str],
) -> Result<Vec<String>> {
    let mut people: std::collections::BTreeSet<String> = Default::default();
    let rows = sqlx::query(
        "SELECT DISTINCT person_id FROM engagements WHERE client_id = $1 AND active = 1",
    )
    .bind(client.to_string())
    .fetch_all(&mut *c)
    .await?;
    for r in rows {
        people.insert(r.try_get(0)?);
    }
    let sqlite = is_sqlite(c);
    for chunk in entitlements.chunks(500) {
        let mut sql = String::from(
            "SELECT DISTINCT person_id FROM grants
             WHERE state IN ('granted', 'pending', 'awaiting_approval', 'uncertain') AND entitlement IN ",
        );
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in chunk {
            q = q.bind(e.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            people.insert(r.try_get(0)?);
        }
    }
    Ok(people.into_iter().collect())
}

/// Stores an engagement.
pub async fn upsert_engagement(c: &mut AnyConnection, e: &Engagement) -> Result<()> {
    sqlx::query(
        "INSERT INTO engagements (id, person_id, client_id, active, data) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET active = excluded.active, data = excluded.data",
    )
    .bind(e.id.clone())
    .bind(e.person_id.clone())
    .bind(e.client_id.clone())
    .bind(e.active as i64)
    .bind(to_json(e))
    .execute(c)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------- accounts and grants

/// The person's accounts.
pub async fn accounts_of(c: &mut AnyConnection, person: &str) -> Result<Vec<Account>> {
    let rows =
        sqlx::query("SELECT system, state FROM accounts WHERE person_id = $1 ORDER BY system")
            .bind(person.to_string())
            .fetch_all(c)
            .await?;
    rows.iter()
        .map(|r| {
            Ok(Account {
                person_id: person.to_string(),
                system: r.try_get(0)?,
                state: parse::<AccountState>(&r.try_get::<String, _>(1)?)?,
            })
        })
        .collect()
}

/// An account's new state on conflict: an `uncertain` account planned again (`pending`) stays
/// `uncertain`. Only a call settles it, so a create cancelled or failed before it ran does not
/// forget an account an earlier call may have made.
const ACCOUNT_STATE_ON_CONFLICT: &str =
    "state = CASE WHEN accounts.state = 'uncertain' AND excluded.state = 'pending'
                        THEN accounts.state ELSE excluded.state END";

/// Sets the state of a person's account on a system (see [`ACCOUNT_STATE_ON_CONFLICT`]).
pub async fn set_account(
    c: &mut AnyConnection,
    person: &str,
    system: &str,
    state: AccountState,
    now: i64,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO accounts (person_id, system, state, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (person_id, system) DO UPDATE SET {ACCOUNT_STATE_ON_CONFLICT}, updated_at = excluded.updated_at"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(person.to_string())
        .bind(system.to_string())
        .bind(state.as_str())
        .bind(now)
        .execute(c)
        .await?;
    Ok(())
}

/// The person's grants in every state.
pub async fn grants_of(c: &mut AnyConnection, person: &str) -> Result<Vec<(Grant, String)>> {
    let rows = sqlx::query(
        "SELECT entitlement, system, source, source_ref, state, granted_at, expires_at
         FROM grants WHERE person_id = $1 ORDER BY entitlement",
    )
    .bind(person.to_string())
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                Grant {
                    person_id: person.to_string(),
                    entitlement: r.try_get(0)?,
                    source: parse::<GrantSource>(&r.try_get::<String, _>(2)?)?,
                    source_ref: r.try_get(3)?,
                    state: parse::<GrantState>(&r.try_get::<String, _>(4)?)?,
                    granted_at: r.try_get(5)?,
                    expires_at: r.try_get(6)?,
                },
                r.try_get::<String, _>(1)?,
            ))
        })
        .collect()
}

/// The grant states that only plan or give up on a change: written over an `uncertain` grant,
/// they leave it `uncertain`. Access that may be held stays known as such until a call settles
/// it (`granted`, `revoked`), so a planned grant cancelled, denied or failed before it ran does
/// not forget a membership an earlier call may have made.
const GRANT_PLANNED: &str = "('pending', 'awaiting_approval', 'failed')";

/// Stores a grant (on `system`) as it is now; an `uncertain` one stays so when `g` only plans
/// it (see [`GRANT_PLANNED`]).
pub async fn upsert_grant(c: &mut AnyConnection, g: &Grant, system: &str, now: i64) -> Result<()> {
    upsert_grants(c, &[(g.clone(), system.to_string())], now).await
}

/// Sets a grant's state (and `granted_at` when it becomes granted); an `uncertain` one stays so
/// when `state` only plans it (see [`GRANT_PLANNED`]).
pub async fn set_grant_state(
    c: &mut AnyConnection,
    person: &str,
    entitlement: &str,
    state: GrantState,
    now: i64,
) -> Result<()> {
    let sql = format!(
        "UPDATE grants SET
           state = CASE WHEN state = 'uncertain' AND $1 IN {GRANT_PLANNED} THEN state ELSE $1 END,
           updated_at = $2,
           granted_at = CASE WHEN $1 = 'granted' THEN $2 ELSE granted_at END
         WHERE person_id = $3 AND entitlement = $4"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(state.as_str())
        .bind(now)
        .bind(person.to_string())
        .bind(entitlement.to_string())
        .execute(c)
        .await?;
    Ok(())
}

/// Sets many accounts' states at once (later entries win for the same person and system; see
/// [`ACCOUNT_STATE_ON_CONFLICT`]).
pub async fn upsert_accounts(
    c: &mut AnyConnection,
    rows: &[(String, String, AccountState)],
    now: i64,
) -> Result<()> {
    let rows = dedupe_last(rows, |r| (r.0.clone(), r.1.clone()));
    let suffix = format!(
        " ON CONFLICT (person_id, system) DO UPDATE SET {ACCOUNT_STATE_ON_CONFLICT}, updated_at = excluded.updated_at"
    );
    bulk!(
        c,
        rows,
        4,
        "INSERT INTO accounts (person_id, system, state, updated_at) VALUES ",
        suffix.as_str(),
        |q, r| {
            q.bind(r.0.clone())
                .bind(r.1.clone())
                .bind(r.2.as_str())
                .bind(now)
        }
    );
    Ok(())
}

/// Stores many grants at once (later entries win for the same person and entitlement); an
/// `uncertain` one stays so when only planned (see [`GRANT_PLANNED`]).
pub async fn upsert_grants(
    c: &mut AnyConnection,
    rows: &[(Grant, String)],
    now: i64,
) -> Result<()> {
    let rows = dedupe_last(rows, |(g, _)| (g.person_id.clone(), g.entitlement.clone()));
    let suffix = format!(
        " ON CONFLICT (person_id, entitlement) DO UPDATE SET system = excluded.system, source = excluded.source,
           source_ref = excluded.source_ref,
           state = CASE WHEN grants.state = 'uncertain' AND excluded.state IN {GRANT_PLANNED}
                        THEN grants.state ELSE excluded.state END,
           granted_at = excluded.granted_at,
           expires_at = excluded.expires_at, updated_at = excluded.updated_at"
    );
    bulk!(
        c,
        rows,
        9,
        "INSERT INTO grants (person_id, entitlement, system, source, source_ref, state, granted_at, expires_at, updated_at) VALUES ",
        suffix.as_str(),
        |q, r| {
            let (g, system) = r;
            q.bind(g.person_id.clone())
                .bind(g.entitlement.clone())
                .bind(system.clone())
                .bind(g.source.as_str())
                .bind(g.source_ref.clone())
                .bind(g.state.as_str())
                .bind(g.granted_at)
                .bind(g.expires_at)
                .bind(now)
        }
    );
    Ok(())
}

/// Sets many grants' states at once; `granted_at` is set for those that become granted. A grant
/// revoked before its expiry forgets it (it did not run out: a rehire or a new source may give
/// it again); one revoked at or after its expiry keeps it as the record that it ran out. An
/// `uncertain` grant stays so when only planned or failed (see [`GRANT_PLANNED`]).
pub async fn set_grant_states(
    c: &mut AnyConnection,
    rows: &[(String, String, GrantState)],
    now: i64,
) -> Result<()> {
    let rows = dedupe_last(rows, |r| (r.0.clone(), r.1.clone()));
    let suffix =
        ") AS v WHERE grants.person_id = v.column1 AND grants.entitlement = v.column2".to_string();
    let prefix = format!(
        "UPDATE grants SET
           state = CASE WHEN grants.state = 'uncertain' AND v.column3 IN {GRANT_PLANNED}
                        THEN grants.state ELSE v.column3 END,
           updated_at = {now},
           granted_at = CASE WHEN v.column3 = 'granted' THEN {now} ELSE grants.granted_at END,
           expires_at = CASE WHEN v.column3 = 'revoked' AND grants.expires_at > {now} THEN NULL
                             ELSE grants.expires_at END
         FROM (VALUES "
    );
    bulk!(c, rows, 3, prefix.as_str(), suffix.as_str(), |q, r| {
        q.bind(r.0.clone()).bind(r.1.clone()).bind(r.2.as_str())
    });
    Ok(())
}

fn dedupe_last<T: Clone, K: Eq + std::hash::Hash>(rows: &[T], key: impl Fn(&T) -> K) -> Vec<T> {
    let mut last = std::collections::HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        last.insert(key(r), i);
    }
    rows.iter()
        .enumerate()
        .filter(|(i, r)| last[&key(r)] == *i)
        .map(|(_, r)| r.clone())
        .collect()
}

/// People by id, for a batch of steps.
pub async fn people_by_ids(c: &mut AnyConnection, ids: &[String]) -> Result<Vec<Person>> {
    let mut out = Vec::with_capacity(ids.len());
    let sqlite = is_sqlite(c);
    for chunk in ids.chunks(500) {
        let mut sql = String::from("SELECT data FROM people WHERE id IN ");
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.push(json(&r.try_get::<String, _>(0)?)?);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- events

/// A stored event.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// tenure's id for the event.
    pub id: String,
    /// The idempotency key (header, the event's own id, or tenure's id).
    pub idem_key: String,
    /// The sender's own id for the event, if it gave one: a second idempotency key, so a
    /// retry with or without the header is recognised either way.
    pub source_id: Option<String>,
    /// SHA-256 of the canonical body, to tell a retry from a different event.
    pub body_hash: String,
    /// The event type.
    pub kind: String,
    /// The person concerned.
    pub person_id: String,
    /// The sending system.
    pub source: Option<String>,
    /// The event as received (JSON).
    pub body: String,
    /// When it takes effect (epoch ms).
    pub effective_at: i64,
    /// When it was received (epoch ms).
    pub received_at: i64,
    /// Who sent it (token name).
    pub actor: String,
    /// The run it started.
    pub run_id: String,
}

const EVENT_COLS: &str = "id, idem_key, body_hash, kind, person_id, source, body, effective_at, received_at, actor, run_id, source_id";

fn event_row(r: &AnyRow) -> Result<EventRow> {
    Ok(EventRow {
        id: r.try_get("id")?,
        idem_key: r.try_get("idem_key")?,
        body_hash: r.try_get("body_hash")?,
        kind: r.try_get("kind")?,
        person_id: r.try_get("person_id")?,
        source: r.try_get("source")?,
        body: r.try_get("body")?,
        effective_at: r.try_get("effective_at")?,
        received_at: r.try_get("received_at")?,
        actor: r.try_get("actor")?,
        run_id: r.try_get("run_id")?,
        source_id: r.try_get("source_id")?,
    })
}

/// The event stored under an idempotency key, or carrying the sender's own event id.
pub async fn event_by_key(
    c: &mut AnyConnection,
    key: &str,
    source_id: Option<&str>,
) -> Result<Option<EventRow>> {
    let sql = format!(
        "SELECT {EVENT_COLS} FROM events WHERE idem_key = $1 OR source_id = $2 ORDER BY received_at LIMIT 1"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(key.to_string())
        .bind(source_id.map(str::to_string))
        .fetch_optional(c)
        .await?;
    row.as_ref().map(event_row).transpose()
}

/// The stored events any of `keys` or `source_ids` names (see [`event_by_key`]), in the
/// order they were received: one query for a whole batch of submissions.
pub async fn events_by_keys(
    c: &mut AnyConnection,
    keys: &[&str],
    source_ids: &[&str],
) -> Result<Vec<EventRow>> {
    let sqlite = is_sqlite(c);
    let mut out = Vec::new();
    for (field, values) in [("idem_key", keys), ("source_id", source_ids)] {
        for chunk in values.chunks(500) {
            let mut sql = format!("SELECT {EVENT_COLS} FROM events WHERE {field} IN ");
            push_placeholders(&mut sql, 1, chunk.len(), sqlite);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for v in chunk {
                q = q.bind(v.to_string());
            }
            for r in q.fetch_all(&mut *c).await? {
                out.push(event_row(&r)?);
            }
        }
    }
    out.sort_by(|a: &EventRow, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)));
    out.dedup_by(|a, b| a.id == b.id);
    Ok(out)
}

/// Stores events, a few hundred per statement.
pub async fn insert_events(c: &mut AnyConnection, rows: &[EventRow]) -> Result<()> {
    let prefix = format!("INSERT INTO events ({EVENT_COLS}) VALUES ");
    bulk!(c, rows, 12, prefix.as_str(), "", |q, e| {
        q.bind(e.id.clone())
            .bind(e.idem_key.clone())
            .bind(e.body_hash.clone())
            .bind(e.kind.clone())
            .bind(e.person_id.clone())
            .bind(e.source.clone())
            .bind(e.body.clone())
            .bind(e.effective_at)
            .bind(e.received_at)
            .bind(e.actor.clone())
            .bind(e.run_id.clone())
            .bind(e.source_id.clone())
    });
    Ok(())
}

/// The event with this id.
pub async fn get_event(c: &mut AnyConnection, id: &str) -> Result<Option<EventRow>> {
    let sql = format!("SELECT {EVENT_COLS} FROM events WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(c)
        .await?;
    row.as_ref().map(event_row).transpose()
}

/// Stores an event.
pub async fn insert_event(c: &mut AnyConnection, e: &EventRow) -> Result<()> {
    insert_events(c, std::slice::from_ref(e)).await
}

// ---------------------------------------------------------------- runs

/// A stored run.
#[derive(Debug, Clone)]
pub struct RunRow {
    /// Run id.
    pub id: String,
    /// The event that started it.
    pub event_id: Option<String>,
    /// The person concerned.
    pub person_id: String,
    /// What caused it: the event type, or what tenure started itself.
    pub kind: RunKind,
    /// Where it stands.
    pub state: RunState,
    /// Urgent runs (leavers) first.
    pub priority: Priority,
    /// When it may be planned (epoch ms).
    pub effective_at: i64,
    /// When it was created (epoch ms).
    pub created_at: i64,
    /// When it was planned.
    pub planned_at: Option<i64>,
    /// When it ended.
    pub finished_at: Option<i64>,
    /// Whether an operator cancelled it.
    pub cancel_requested: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// Planner notes (skipped entitlements), JSON.
    pub note: Option<String>,
}

impl RunRow {
    /// A run waiting to be planned, for `person_id`, due at `at`, with no event behind it (set
    /// `event_id` for one that has).
    pub fn pending(
        id: String,
        person_id: String,
        kind: RunKind,
        priority: Priority,
        at: i64,
    ) -> RunRow {
        RunRow {
            id,
            event_id: None,
            person_id,
            kind,
            state: RunState::Pending,
            priority,
            effective_at: at,
            created_at: at,
            planned_at: None,
            finished_at: None,
            cancel_requested: false,
            error: None,
            note: None,
        }
    }
}

pub(crate) const RUN_COLS: &str = "id, event_id, person_id, kind, state, priority, effective_at, created_at, planned_at, finished_at, cancel_requested, error, note";

pub(crate) fn run_row(r: &AnyRow) -> Result<RunRow> {
    Ok(RunRow {
        id: r.try_get("id")?,
        event_id: r.try_get("event_id")?,
        person_id: r.try_get("person_id")?,
        kind: parse(&r.try_get::<String, _>("kind")?)?,
        state: parse(&r.try_get::<String, _>("state")?)?,
        priority: priority(r.try_get("priority")?)?,
        effective_at: r.try_get("effective_at")?,
        created_at: r.try_get("created_at")?,
        planned_at: r.try_get("planned_at")?,
        finished_at: r.try_get("finished_at")?,
        cancel_requested: r.try_get::<i64, _>("cancel_requested")? != 0,
        error: r.try_get("error")?,
        note: r.try_get("note")?,
    })
}

/// Stores a new run.
pub async fn insert_run(c: &mut AnyConnection, r: &RunRow) -> Result<()> {
    insert_runs(c, std::slice::from_ref(r)).await
}

/// Stores runs, a few hundred per statement.
pub async fn insert_runs(c: &mut AnyConnection, rows: &[RunRow]) -> Result<()> {
    let prefix = format!("INSERT INTO runs ({RUN_COLS}) VALUES ");
    bulk!(c, rows, 13, prefix.as_str(), "", |q, r| {
        q.bind(r.id.clone())
            .bind(r.event_id.clone())
            .bind(r.person_id.clone())
            .bind(r.kind.as_str())
            .bind(r.state.as_str())
            .bind(r.priority.as_i64())
            .bind(r.effective_at)
            .bind(r.created_at)
            .bind(r.planned_at)
            .bind(r.finished_at)
            .bind(r.cancel_requested as i64)
            .bind(r.error.clone())
            .bind(r.note.clone())
    });
    Ok(())
}

/// The run with this id.
pub async fn get_run(c: &mut AnyConnection, id: &str) -> Result<Option<RunRow>> {
    run_by_id(c, id, "").await
}

/// The run with this id, locked until the transaction ends on PostgreSQL (SQLite has one
/// writer at a time already). Whoever changes a run's fate (cancels it, retries it, judges it
/// from its steps) takes this lock first, so two of them never judge it from stale views of
/// each other: a cancel and the outcome of the run's last running step, committed at the same
/// moment, would otherwise each see the other's half and leave the run running forever.
pub async fn lock_run(c: &mut AnyConnection, id: &str) -> Result<Option<RunRow>> {
    let lock = if is_sqlite(c) { "" } else { " FOR UPDATE" };
    run_by_id(c, id, lock).await
}

async fn run_by_id(c: &mut AnyConnection, id: &str, suffix: &str) -> Result<Option<RunRow>> {
    let sql = format!("SELECT {RUN_COLS} FROM runs WHERE id = $1{suffix}");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(c)
        .await?;
    row.as_ref().map(run_row).transpose()
}

/// Runs, newest first, optionally only those in `state`, for `person` (see
/// [`crate::runs_matching`]).
pub async fn list_runs(
    c: &mut AnyConnection,
    state: Option<RunState>,
    person: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<RunRow>> {
    let filter = crate::RunFilter {
        state,
        person,
        before,
        limit,
        ..Default::default()
    };
    crate::runs_matching(c, &filter).await
}

/// Pending runs whose time has come, oldest first (ids are time-ordered UUIDv7).
pub async fn runs_due(c: &mut AnyConnection, now: i64, limit: i64) -> Result<Vec<RunRow>> {
    let sql = format!(
        "SELECT {RUN_COLS} FROM runs WHERE state = 'pending' AND effective_at <= $1 ORDER BY priority, effective_at, id LIMIT $2"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(limit)
        .fetch_all(c)
        .await?;
    rows.iter().map(run_row).collect()
}

/// When the next future-dated run becomes due.
pub async fn next_run_due(c: &mut AnyConnection) -> Result<Option<i64>> {
    Ok(
        sqlx::query("SELECT MIN(effective_at) FROM runs WHERE state = 'pending'")
            .fetch_one(c)
            .await?
            .try_get(0)?,
    )
}

/// The person's unfinished runs that come before `run` (by effective time, then creation;
/// ids are time-ordered UUIDv7).
pub async fn earlier_open_runs(
    c: &mut AnyConnection,
    person: &str,
    run: &RunRow,
) -> Result<Vec<RunRow>> {
    let sql = format!(
        "SELECT {RUN_COLS} FROM runs WHERE person_id = $1
           AND (effective_at < $3 OR (effective_at = $3 AND id < $2))
           AND state IN ('pending', 'running', 'awaiting_approval') ORDER BY effective_at, id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(person.to_string())
        .bind(run.id.clone())
        .bind(run.effective_at)
        .fetch_all(c)
        .await?;
    rows.iter().map(run_row).collect()
}

/// Records a run's state; terminal states also set `finished_at`.
pub async fn set_run_state(
    c: &mut AnyConnection,
    id: &str,
    state: RunState,
    error: Option<&str>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE runs SET state = $1, error = COALESCE($2, error),
           finished_at = CASE WHEN $3 = 1 THEN $4 ELSE NULL END
         WHERE id = $5",
    )
    .bind(state.as_str())
    .bind(error.map(str::to_string))
    .bind(state.is_terminal() as i64)
    .bind(now)
    .bind(id.to_string())
    .execute(c)
    .await?;
    Ok(())
}

/// Marks a run planned, with the planner's notes.
pub async fn set_run_planned(
    c: &mut AnyConnection,
    id: &str,
    note: Option<String>,
    now: i64,
) -> Result<()> {
    sqlx::query("UPDATE runs SET state = 'running', planned_at = $1, note = $2 WHERE id = $3")
        .bind(now)
        .bind(note)
        .bind(id.to_string())
        .execute(c)
        .await?;
    Ok(())
}

/// Marks many runs planned at once (see [`set_run_planned`]): `(run id, note)` pairs.
pub async fn set_runs_planned(
    c: &mut AnyConnection,
    rows: &[(String, Option<String>)],
    now: i64,
) -> Result<()> {
    let prefix = format!(
        "UPDATE runs SET state = 'running', planned_at = {now}, note = CAST(v.column2 AS TEXT)
         FROM (VALUES "
    );
    bulk!(
        c,
        rows,
        2,
        prefix.as_str(),
        ") AS v WHERE runs.id = v.column1",
        |q, r| { q.bind(r.0.clone()).bind(r.1.clone()) }
    );
    Ok(())
}

/// Runs by id, for a batch of step outcomes, locked until the transaction ends on PostgreSQL
/// (see [`lock_run`]); in id order, so two batches sharing runs never wait on each other in a
/// cycle.
pub async fn runs_by_ids(c: &mut AnyConnection, ids: &[String]) -> Result<Vec<RunRow>> {
    let mut out = Vec::with_capacity(ids.len());
    let sqlite = is_sqlite(c);
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    for chunk in ids.chunks(500) {
        let mut sql = format!("SELECT {RUN_COLS} FROM runs WHERE id IN ");
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        if !sqlite {
            sql.push_str(" ORDER BY id FOR UPDATE");
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.push(run_row(&r)?);
        }
    }
    Ok(out)
}

/// Records many runs' states at once; terminal states also set `finished_at`.
pub async fn set_run_states(
    c: &mut AnyConnection,
    rows: &[(String, RunState)],
    now: i64,
) -> Result<()> {
    let prefix = format!(
        "UPDATE runs SET state = v.column2,
           finished_at = CASE WHEN v.column2 IN ('succeeded', 'failed', 'cancelled', 'compensated', 'denied') THEN {now} ELSE NULL END
         FROM (VALUES "
    );
    bulk!(
        c,
        rows,
        2,
        prefix.as_str(),
        ") AS v WHERE runs.id = v.column1",
        |q, r| { q.bind(r.0.clone()).bind(r.1.as_str()) }
    );
    Ok(())
}

/// Flags a run as cancelled by an operator.
pub async fn request_cancel(c: &mut AnyConnection, id: &str) -> Result<()> {
    sqlx::query("UPDATE runs SET cancel_requested = 1 WHERE id = $1")
        .bind(id.to_string())
        .execute(c)
        .await?;
    Ok(())
}

/// Counts runs per state.
pub async fn run_counts(c: &mut AnyConnection) -> Result<Vec<(String, i64)>> {
    let rows = sqlx::query("SELECT state, COUNT(*) FROM runs GROUP BY state ORDER BY state")
        .fetch_all(c)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

// ---------------------------------------------------------------- steps

/// A stored step.
#[derive(Debug, Clone)]
pub struct StepRow {
    /// Step id.
    pub id: String,
    /// Its run.
    pub run_id: String,
    /// Position in the run.
    pub idx: i64,
    /// Phase within the run.
    pub phase: i64,
    /// Whether its phase has started.
    pub ready: bool,
    /// Where it stands.
    pub state: StepState,
    /// Urgent steps (leavers) first.
    pub priority: Priority,
    /// Not before this time (epoch ms): retries wait here.
    pub available_at: i64,
    /// Whose access.
    pub person_id: String,
    /// Which system.
    pub system: String,
    /// What to do.
    pub action: Action,
    /// Which entitlement (grant and revoke).
    pub entitlement: Option<String>,
    /// Why the access is wanted (grant).
    pub source: Option<GrantSource>,
    /// The template, engagement or request behind it.
    pub source_ref: Option<String>,
    /// The operation id the connector call carries.
    pub op_id: String,
    /// Calls made so far.
    pub attempts: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// For compensation steps: the index of the step undone.
    pub compensation_of: Option<i64>,
    /// Until when a claimed step is held by its worker.
    pub lease_until: Option<i64>,
    /// First call (epoch ms).
    pub started_at: Option<i64>,
    /// End (epoch ms).
    pub finished_at: Option<i64>,
    /// A call went out and got no answer: the system may have done it.
    pub maybe_applied: bool,
}

pub(crate) const STEP_COLS: &str = "id, run_id, idx, phase, ready, state, priority, available_at, person_id, system, action, entitlement, source, source_ref, op_id, attempts, last_error, compensation_of, lease_until, started_at, finished_at, maybe_applied";

pub(crate) fn step_row(r: &AnyRow) -> Result<StepRow> {
    Ok(StepRow {
        id: r.try_get("id")?,
        run_id: r.try_get("run_id")?,
        idx: r.try_get("idx")?,
        phase: r.try_get("phase")?,
        ready: r.try_get::<i64, _>("ready")? != 0,
        state: parse(&r.try_get::<String, _>("state")?)?,
        priority: priority(r.try_get("priority")?)?,
        available_at: r.try_get("available_at")?,
        person_id: r.try_get("person_id")?,
        system: r.try_get("system")?,
        action: parse(&r.try_get::<String, _>("action")?)?,
        entitlement: r.try_get("entitlement")?,
        source: r
            .try_get::<Option<String>, _>("source")?
            .map(|s| parse(&s))
            .transpose()?,
        source_ref: r.try_get("source_ref")?,
        op_id: r.try_get("op_id")?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        compensation_of: r.try_get("compensation_of")?,
        lease_until: r.try_get("lease_until")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        maybe_applied: r.try_get::<i64, _>("maybe_applied")? != 0,
    })
}

/// Migration 8's data step on SQLite: adds `steps.maybe_applied` unless the table has it
/// (PostgreSQL's SQL says `IF NOT EXISTS` itself).
pub(crate) fn add_step_maybe_applied(
    c: &mut AnyConnection,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + '_>> {
    Box::pin(async move {
        if !is_sqlite(c) {
            return Ok(());
        }
        crate::migrate::sqlite_add_column(c, "steps", "maybe_applied", "BIGINT NOT NULL DEFAULT 0")
            .await
    })
}

/// Stores new steps.
pub async fn insert_steps(c: &mut AnyConnection, steps: &[StepRow]) -> Result<()> {
    const COLS: usize = 22;
    for chunk in steps.chunks(300) {
        let mut sql = format!("INSERT INTO steps ({STEP_COLS}) VALUES ");
        push_placeholders(&mut sql, chunk.len(), COLS, is_sqlite(c));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for s in chunk {
            q = q
                .bind(s.id.clone())
                .bind(s.run_id.clone())
                .bind(s.idx)
                .bind(s.phase)
                .bind(s.ready as i64)
                .bind(s.state.as_str())
                .bind(s.priority.as_i64())
                .bind(s.available_at)
                .bind(s.person_id.clone())
                .bind(s.system.clone())
                .bind(s.action.as_str())
                .bind(s.entitlement.clone())
                .bind(s.source.map(|x| x.as_str()))
                .bind(s.source_ref.clone())
                .bind(s.op_id.clone())
                .bind(s.attempts)
                .bind(s.last_error.clone())
                .bind(s.compensation_of)
                .bind(s.lease_until)
                .bind(s.started_at)
                .bind(s.finished_at)
                .bind(s.maybe_applied as i64);
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

/// Claims up to `limit` ready steps, most urgent first, leasing them until `lease_until`.
/// On PostgreSQL, `SKIP LOCKED` lets several instances claim side by side. With `urgent_only`,
/// only priority-0 (leaver) steps are claimed.
pub async fn claim_steps(
    c: &mut AnyConnection,
    backend: Backend,
    now: i64,
    lease_until: i64,
    limit: i64,
    urgent_only: bool,
) -> Result<Vec<StepRow>> {
    let lock = if backend == Backend::Postgres {
        "FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let urgent = if urgent_only { "AND priority = 0" } else { "" };
    let sql = format!(
        "UPDATE steps SET state = 'running', lease_until = $1,
           started_at = COALESCE(started_at, $2)
         WHERE id IN (SELECT id FROM steps WHERE state = 'pending' AND ready = 1 AND available_at <= $2 {urgent}
                      ORDER BY priority, available_at LIMIT $3 {lock})
         RETURNING {STEP_COLS}"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(lease_until)
        .bind(now)
        .bind(limit)
        .fetch_all(c)
        .await?;
    let mut steps: Vec<StepRow> = rows.iter().map(step_row).collect::<Result<_>>()?;
    steps.sort_by_key(|s| (s.priority, s.available_at));
    Ok(steps)
}

/// Claims the ready steps of these runs (leaver runs whose next phase just started), so they
/// go out at once instead of waiting for the dispatcher's next round.
pub async fn claim_ready_steps_of_runs(
    c: &mut AnyConnection,
    runs: &[String],
    now: i64,
    lease_until: i64,
) -> Result<Vec<StepRow>> {
    let mut out = Vec::new();
    let sqlite = is_sqlite(c);
    for chunk in runs.chunks(500) {
        let mut sql = format!(
            "UPDATE steps SET state = 'running', lease_until = {lease_until}, started_at = COALESCE(started_at, {now})
             WHERE state = 'pending' AND ready = 1 AND available_at <= {now} AND run_id IN "
        );
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        sql.push_str(&format!(" RETURNING {STEP_COLS}"));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.push(step_row(&r)?);
        }
    }
    Ok(out)
}

/// When the next pending, ready step becomes claimable.
pub async fn next_step_available(c: &mut AnyConnection) -> Result<Option<i64>> {
    Ok(
        sqlx::query("SELECT MIN(available_at) FROM steps WHERE state = 'pending' AND ready = 1")
            .fetch_one(c)
            .await?
            .try_get(0)?,
    )
}

/// Puts running steps whose lease ends before `lease_before` (their worker died) back in the
/// queue, claimable from `now`; returns how many. The retry carries the same operation id, so
/// connectors see it as a repeat.
pub async fn requeue_expired(c: &mut AnyConnection, lease_before: i64, now: i64) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE steps SET state = 'pending', lease_until = NULL, available_at = $1
         WHERE state = 'running' AND lease_until < $2",
    )
    .bind(now)
    .bind(lease_before)
    .execute(c)
    .await?;
    Ok(done.rows_affected())
}

/// The step statuses of many runs at once.
pub async fn step_statuses_of_runs(
    c: &mut AnyConnection,
    runs: &[String],
) -> Result<std::collections::HashMap<String, Vec<StepStatus>>> {
    let mut out: std::collections::HashMap<String, Vec<StepStatus>> =
        std::collections::HashMap::new();
    let sqlite = is_sqlite(c);
    for chunk in runs.chunks(500) {
        let mut sql = String::from(
            "SELECT run_id, system, phase, state, ready, compensation_of FROM steps WHERE run_id IN ",
        );
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.entry(r.try_get(0)?).or_default().push(StepStatus {
                system: r.try_get(1)?,
                phase: r.try_get::<i64, _>(2)? as u32,
                state: parse(&r.try_get::<String, _>(3)?)?,
                ready: r.try_get::<i64, _>(4)? != 0,
                compensation: r.try_get::<Option<i64>, _>(5)?.is_some(),
            });
        }
    }
    Ok(out)
}

/// Makes the pending steps of many (run, system, phase) lanes claimable at once.
pub async fn release_lanes(c: &mut AnyConnection, rows: &[(String, Lane)], now: i64) -> Result<()> {
    let prefix = format!("UPDATE steps SET ready = 1, available_at = {now} FROM (VALUES ");
    bulk!(
        c,
        rows,
        3,
        prefix.as_str(),
        ") AS v WHERE steps.run_id = v.column1 AND steps.system = v.column2 AND steps.phase = v.column3 AND steps.state = 'pending'",
        |q, r| {
            q.bind(r.0.clone())
                .bind(r.1.system.clone())
                .bind(r.1.phase as i64)
        }
    );
    Ok(())
}

/// Of the given (step id, lease) pairs, the steps still running under that lease: a worker's
/// outcome counts only for these. A step whose lease ran out during its call was taken back
/// (and maybe claimed again, under a new lease); its late outcome must not be recorded a
/// second time. Locks the rows on PostgreSQL, so no other instance takes them back before the
/// caller's transaction ends.
pub async fn steps_still_leased(
    c: &mut AnyConnection,
    leases: &[(&str, Option<i64>)],
) -> Result<std::collections::HashSet<String>> {
    let sqlite = is_sqlite(c);
    let wanted: std::collections::HashMap<&str, Option<i64>> = leases.iter().copied().collect();
    let mut out = std::collections::HashSet::with_capacity(leases.len());
    for chunk in leases.chunks(500) {
        let mut sql =
            String::from("SELECT id, lease_until FROM steps WHERE state = 'running' AND id IN ");
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        if !sqlite {
            sql.push_str(" FOR UPDATE");
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, _) in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            let id: String = r.try_get(0)?;
            let lease: Option<i64> = r.try_get(1)?;
            if lease.is_some() && wanted.get(id.as_str()) == Some(&lease) {
                out.insert(id);
            }
        }
    }
    Ok(out)
}

/// Extends to `new_lease` the leases of running steps whose stored lease is still exactly the
/// one given: a step taken back, finished, or claimed again since keeps its lease. Returns the
/// ids renewed.
pub async fn renew_leases(
    c: &mut AnyConnection,
    leases: &[(&str, i64)],
    new_lease: i64,
) -> Result<std::collections::HashSet<String>> {
    let sqlite = is_sqlite(c);
    // Steps claimed together share a lease: one statement per lease value and chunk.
    let mut by_lease: std::collections::BTreeMap<i64, Vec<&str>> = Default::default();
    for (id, lease) in leases {
        by_lease.entry(*lease).or_default().push(id);
    }
    let mut out = std::collections::HashSet::with_capacity(leases.len());
    for (old, ids) in by_lease {
        for chunk in ids.chunks(500) {
            let mut sql = format!(
                "UPDATE steps SET lease_until = {new_lease}
                 WHERE state = 'running' AND lease_until = {old} AND id IN "
            );
            push_placeholders(&mut sql, 1, chunk.len(), sqlite);
            sql.push_str(" RETURNING id");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.to_string());
            }
            for r in q.fetch_all(&mut *c).await? {
                out.insert(r.try_get(0)?);
            }
        }
    }
    Ok(out)
}

/// A step's new state after a call, for [`update_steps`].
#[derive(Debug, Clone)]
pub struct StepUpdate {
    /// Step id.
    pub id: String,
    /// New state.
    pub state: StepState,
    /// Attempts made so far.
    pub attempts: i64,
    /// The failure, if any (kept when `None`).
    pub last_error: Option<String>,
    /// Not before (kept when `None`).
    pub available_at: Option<i64>,
    /// A call went out and got no answer (kept once set).
    pub maybe_applied: bool,
}

/// Records many steps' new states at once.
pub async fn update_steps(c: &mut AnyConnection, rows: &[StepUpdate], now: i64) -> Result<()> {
    let prefix = format!(
        "UPDATE steps SET state = v.column2, attempts = v.column3, last_error = COALESCE(v.column4, steps.last_error),
           lease_until = NULL, available_at = COALESCE(v.column5, steps.available_at),
           maybe_applied = CASE WHEN v.column6 = 1 THEN 1 ELSE steps.maybe_applied END,
           finished_at = CASE WHEN v.column2 IN ('succeeded', 'failed', 'cancelled', 'compensated', 'denied') THEN {now} ELSE NULL END
         FROM (VALUES "
    );
    bulk!(
        c,
        rows,
        6,
        prefix.as_str(),
        ") AS v WHERE steps.id = v.column1",
        |q, r| {
            q.bind(r.id.clone())
                .bind(r.state.as_str())
                .bind(r.attempts)
                .bind(r.last_error.clone())
                .bind(r.available_at)
                .bind(r.maybe_applied as i64)
        }
    );
    Ok(())
}

/// Every step of a run, in order.
pub async fn steps_of_run(c: &mut AnyConnection, run: &str) -> Result<Vec<StepRow>> {
    let sql = format!("SELECT {STEP_COLS} FROM steps WHERE run_id = $1 ORDER BY idx");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(run.to_string())
        .fetch_all(c)
        .await?;
    rows.iter().map(step_row).collect()
}

/// Records a step's new state and attempt count. `available_at` schedules a retry.
pub async fn update_step(
    c: &mut AnyConnection,
    id: &str,
    state: StepState,
    attempts: i64,
    last_error: Option<&str>,
    available_at: Option<i64>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE steps SET state = $1, last_error = COALESCE($2, last_error), lease_until = NULL, attempts = $6,
           available_at = COALESCE($3, available_at),
           finished_at = CASE WHEN $1 IN ('succeeded', 'failed', 'cancelled', 'compensated', 'denied') THEN $4 ELSE NULL END
         WHERE id = $5",
    )
    .bind(state.as_str())
    .bind(last_error.map(str::to_string))
    .bind(available_at)
    .bind(now)
    .bind(id.to_string())
    .bind(attempts)
    .execute(c)
    .await?;
    Ok(())
}

/// Marks the step at `idx` of `run` compensated (its effect was undone).
pub async fn mark_compensated(c: &mut AnyConnection, run: &str, idx: i64) -> Result<()> {
    sqlx::query("UPDATE steps SET state = 'compensated' WHERE run_id = $1 AND idx = $2 AND state = 'succeeded'")
        .bind(run.to_string())
        .bind(idx)
        .execute(c)
        .await?;
    Ok(())
}

/// Removes an account row that was only planned (never created).
pub async fn forget_pending_account(
    c: &mut AnyConnection,
    person: &str,
    system: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM accounts WHERE person_id = $1 AND system = $2 AND state = 'pending'")
        .bind(person.to_string())
        .bind(system.to_string())
        .execute(c)
        .await?;
    Ok(())
}

/// Removes a grant row that was only planned (never granted).
pub async fn forget_pending_grant(
    c: &mut AnyConnection,
    person: &str,
    entitlement: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM grants WHERE person_id = $1 AND entitlement = $2 AND state IN ('pending', 'awaiting_approval')")
        .bind(person.to_string())
        .bind(entitlement.to_string())
        .execute(c)
        .await?;
    Ok(())
}

/// What of a run's steps has not ended yet, read in one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnendedSteps {
    /// A step is running: a call may be in flight.
    pub running: bool,
    /// A step waits to run or on an approval.
    pub waiting: bool,
}

/// Whether any step of the run is running, and whether any waits to run. One statement reads
/// both, so on PostgreSQL a step moving from running back to pending between two reads cannot
/// be missed by both.
pub async fn run_unended_steps(c: &mut AnyConnection, run: &str) -> Result<UnendedSteps> {
    let row = sqlx::query(
        "SELECT COUNT(CASE WHEN state = 'running' THEN 1 END),
                COUNT(CASE WHEN state <> 'running' THEN 1 END)
         FROM steps WHERE run_id = $1 AND state IN ('running', 'pending', 'awaiting_approval')",
    )
    .bind(run.to_string())
    .fetch_one(c)
    .await?;
    Ok(UnendedSteps {
        running: row.try_get::<i64, _>(0)? != 0,
        waiting: row.try_get::<i64, _>(1)? != 0,
    })
}

/// Cancels a run's steps that have not started (and the open tasks they wait on); returns
/// them.
pub async fn cancel_pending_steps(
    c: &mut AnyConnection,
    run: &str,
    now: i64,
) -> Result<Vec<StepRow>> {
    crate::tasks::cancel_open_tasks_of_run(&mut *c, run, now).await?;
    let sql = format!(
        "UPDATE steps SET state = 'cancelled', finished_at = $1 WHERE run_id = $2 AND state IN ('pending', 'awaiting_approval')
         RETURNING {STEP_COLS}"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(run.to_string())
        .fetch_all(c)
        .await?;
    rows.iter().map(step_row).collect()
}

/// Puts a run's failed steps back in the queue with fresh attempts; with `compensation_only`,
/// its failed compensation steps only (a cancelled run's own failures stay failed). Other
/// steps are left as they are.
pub async fn retry_failed_steps(
    c: &mut AnyConnection,
    run: &str,
    compensation_only: bool,
    now: i64,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE steps SET state = 'pending', attempts = 0, available_at = $1, finished_at = NULL
         WHERE run_id = $2 AND state = 'failed' AND (compensation_of IS NOT NULL OR $3 = 0)",
    )
    .bind(now)
    .bind(run.to_string())
    .bind(compensation_only as i64)
    .execute(c)
    .await?;
    Ok(done.rows_affected())
}

/// Counts steps per system and state.
pub async fn step_counts(c: &mut AnyConnection) -> Result<Vec<(String, String, i64)>> {
    let rows = sqlx::query(
        "SELECT system, state, COUNT(*) FROM steps GROUP BY system, state ORDER BY system, state",
    )
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

// ---------------------------------------------------------------- tokens

/// A stored API token (its hash only).
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Token id (shown, never secret).
    pub id: String,
    /// Who or what holds it.
    pub name: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// When it was made.
    pub created_at: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// The person the token acts as, when it asks for or approves access.
    pub person_id: Option<String>,
}

/// Stores a token by the hash of its secret (and the person it acts as).
pub async fn insert_token(c: &mut AnyConnection, t: &TokenRow, hash: &str) -> Result<()> {
    sqlx::query("INSERT INTO tokens (id, name, hash, scopes, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, NULL)")
        .bind(t.id.clone())
        .bind(t.name.clone())
        .bind(hash.to_string())
        .bind(t.scopes.clone())
        .bind(t.created_at)
        .execute(&mut *c)
        .await?;
    if let Some(person) = &t.person_id {
        sqlx::query("INSERT INTO token_identities (token_id, person_id) VALUES ($1, $2)")
            .bind(t.id.clone())
            .bind(person.clone())
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

fn token_row(r: &AnyRow) -> Result<TokenRow> {
    Ok(TokenRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        scopes: r.try_get("scopes")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
        person_id: r.try_get("person_id")?,
    })
}

/// The live (unrevoked) token with this secret hash.
pub async fn token_by_hash(c: &mut AnyConnection, hash: &str) -> Result<Option<TokenRow>> {
    let row = sqlx::query(
        "SELECT t.id, t.name, t.scopes, t.created_at, t.revoked_at, i.person_id
         FROM tokens t LEFT JOIN token_identities i ON i.token_id = t.id
         WHERE t.hash = $1 AND t.revoked_at IS NULL",
    )
    .bind(hash.to_string())
    .fetch_optional(c)
    .await?;
    row.as_ref().map(token_row).transpose()
}

/// Every token, revoked ones too.
pub async fn list_tokens(c: &mut AnyConnection) -> Result<Vec<TokenRow>> {
    let rows = sqlx::query(
        "SELECT t.id, t.name, t.scopes, t.created_at, t.revoked_at, i.person_id
         FROM tokens t LEFT JOIN token_identities i ON i.token_id = t.id ORDER BY t.created_at, t.id",
    )
    .fetch_all(c)
    .await?;
    rows.iter().map(token_row).collect()
}

/// Revokes a token; false if no live token has this id.
pub async fn revoke_token(c: &mut AnyConnection, id: &str, now: i64) -> Result<bool> {
    let done =
        sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id.to_string())
            .execute(c)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// The revoked token with this secret hash, to tell its holder why it no longer works.
pub async fn revoked_token_by_hash(c: &mut AnyConnection, hash: &str) -> Result<Option<TokenRow>> {
    let row = sqlx::query(
        "SELECT t.id, t.name, t.scopes, t.created_at, t.revoked_at, i.person_id
         FROM tokens t LEFT JOIN token_identities i ON i.token_id = t.id
         WHERE t.hash = $1 AND t.revoked_at IS NOT NULL",
    )
    .bind(hash.to_string())
    .fetch_optional(c)
    .await?;
    row.as_ref().map(token_row).transpose()
}

/// Revokes every live token that acts as `person` (they left); returns the tokens revoked.
pub async fn revoke_tokens_of_person(
    c: &mut AnyConnection,
    person: &str,
    now: i64,
) -> Result<Vec<TokenRow>> {
    let rows = sqlx::query(
        "SELECT t.id, t.name, t.scopes, t.created_at, t.revoked_at, i.person_id
         FROM tokens t JOIN token_identities i ON i.token_id = t.id
         WHERE i.person_id = $1 AND t.revoked_at IS NULL ORDER BY t.id",
    )
    .bind(person.to_string())
    .fetch_all(&mut *c)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut t = token_row(r)?;
        revoke_token(c, &t.id, now).await?;
        t.revoked_at = Some(now);
        out.push(t);
    }
    Ok(out)
}

/// The ids of the live tokens holding the `admin` scope. On PostgreSQL their rows stay locked
/// until the transaction ends, so two revocations at once cannot each leave the other's token
/// as the last admin and then both commit (SQLite writers are serialized already).
pub async fn lock_live_admin_tokens(c: &mut AnyConnection) -> Result<Vec<String>> {
    let lock = if is_sqlite(c) { "" } else { " FOR UPDATE" };
    let sql = format!(
        "SELECT id FROM tokens WHERE revoked_at IS NULL AND (' ' || scopes || ' ') LIKE '% admin %' ORDER BY id{lock}"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(c).await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// How many tokens exist (revoked included).
pub async fn count_tokens(c: &mut AnyConnection) -> Result<i64> {
    Ok(sqlx::query("SELECT COUNT(*) FROM tokens")
        .fetch_one(c)
        .await?
        .try_get(0)?)
}

// ---------------------------------------------------------------- audit

/// Audit entries after `after_seq`, in chain order, at most `limit`; optionally one person's
/// (see [`crate::audit_matching`]).
pub async fn audit_page(
    c: &mut AnyConnection,
    after_seq: i64,
    person: Option<&str>,
    limit: i64,
) -> Result<Vec<AuditEntry>> {
    let filter = crate::AuditFilter {
        after: after_seq,
        person,
        limit,
        ..Default::default()
    };
    crate::audit_matching(c, &filter).await
}

/// An audit entry from `SELECT seq, at_ms, actor, action, person_id, entitlement, system,
/// run_id, reason, correlation_id, details, prev_hash, hash`.
pub(crate) fn audit_row(r: &AnyRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        seq: r.try_get("seq")?,
        at_ms: r.try_get("at_ms")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        person_id: r.try_get("person_id")?,
        entitlement: r.try_get("entitlement")?,
        system: r.try_get("system")?,
        run_id: r.try_get("run_id")?,
        reason: r.try_get("reason")?,
        correlation_id: r.try_get("correlation_id")?,
        details: r.try_get("details")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

/// The chain head: the last entry's seq and hash.
pub async fn audit_head(c: &mut AnyConnection) -> Result<(i64, String)> {
    let r = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_one(c)
        .await?;
    Ok((r.try_get(0)?, r.try_get(1)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_across_rows() {
        let mut s = String::new();
        push_placeholders(&mut s, 2, 3, false);
        assert_eq!(s, "($1, $2, $3), ($4, $5, $6)");
        let mut s = String::new();
        push_placeholders(&mut s, 2, 2, true);
        assert_eq!(s, "(?, ?), (?, ?)");
    }

    /// A scratch store: PostgreSQL when `TENURE_TEST_DATABASE_URL` is set, else SQLite.
    async fn scratch() -> (crate::Store, Option<std::path::PathBuf>) {
        let name = format!("tenure_store_{}", uuid::Uuid::new_v4().simple());
        match std::env::var("TENURE_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                let url = crate::create_scratch_database(&url, &name).await.unwrap();
                (crate::Store::connect(&url).await.unwrap(), None)
            }
            _ => {
                let dir = std::env::temp_dir().join(name);
                std::fs::create_dir_all(&dir).unwrap();
                let store = crate::Store::open_sqlite(&dir.join("t.db")).await.unwrap();
                (store, Some(dir))
            }
        }
    }

    /// A page of users read in id order comes with each user's granted entitlements (one row
    /// per grant, folded back per user), the same as a sorted page reads them afterwards.
    #[tokio::test]
    async fn a_page_of_users_carries_each_ones_groups() {
        let (store, dir) = scratch().await;
        let mut tx = store.begin().await.unwrap();
        let mut users = Vec::new();
        for id in ["u1", "u2", "u3"] {
            let row = crate::ScimUserRow {
                id: id.into(),
                user_name_ci: format!("{id}@example.com"),
                lifecycle: "person".into(),
                version: 1,
                created_at: 0,
                updated_at: 0,
                doc: "{}".into(),
            };
            users.push((row, Vec::new()));
        }
        crate::insert_scim_users(tx.conn(), &users).await.unwrap();
        for (person, entitlement, state) in [
            ("u1", "crm:b", GrantState::Granted),
            ("u1", "crm:a", GrantState::Granted),
            ("u1", "crm:c", GrantState::Pending),
            ("u3", "dir:x", GrantState::Granted),
        ] {
            let g = Grant {
                person_id: person.into(),
                entitlement: entitlement.into(),
                source: GrantSource::Birthright,
                source_ref: "t".into(),
                state,
                granted_at: None,
                expires_at: None,
            };
            upsert_grant(tx.conn(), &g, "crm", 0).await.unwrap();
        }
        tx.commit().await.unwrap();
        let key = crate::SortKey {
            attr: "username".into(),
            sub: String::new(),
            descending: false,
        };
        let mut c = store.reader().await.unwrap();
        for sort in [None, Some(&key)] {
            let (total, page) = crate::search_scim_users(&mut c, None, sort, 0, 10)
                .await
                .unwrap();
            let got: Vec<(String, Vec<String>)> =
                page.into_iter().map(|(u, g)| (u.id, g)).collect();
            assert_eq!(total, 3);
            assert_eq!(
                got,
                [
                    (
                        "u1".to_string(),
                        vec!["crm:a".to_string(), "crm:b".to_string()]
                    ),
                    ("u2".to_string(), vec![]),
                    ("u3".to_string(), vec!["dir:x".to_string()]),
                ],
                "sorted: {}",
                sort.is_some()
            );
        }
        // A page cut after the first user still counts every match.
        let (total, page) = crate::search_scim_users(&mut c, None, None, 0, 1)
            .await
            .unwrap();
        assert_eq!((total, page.len(), page[0].1.len()), (3, 1, 2));
        drop(c);
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Access that may be held stays `uncertain` through every write that only plans or gives
    /// up on a change (planned again, awaiting approval, failed, a planned row forgotten), on
    /// each of the store's writers; a call's outcome (granted, revoked, active) settles it.
    #[tokio::test]
    async fn uncertain_access_stays_so_until_a_call_settles_it() {
        let (store, dir) = scratch().await;
        let grant = |e: &str, state| Grant {
            person_id: "p".into(),
            entitlement: e.into(),
            source: GrantSource::Birthright,
            source_ref: "t".into(),
            state,
            granted_at: None,
            expires_at: None,
        };
        let mut tx = store.begin().await.unwrap();
        let c = tx.conn();
        for e in ["crm:a", "crm:b", "crm:c", "crm:d", "crm:e"] {
            upsert_grant(c, &grant(e, GrantState::Uncertain), "crm", 0)
                .await
                .unwrap();
        }
        set_account(c, "p", "crm", AccountState::Uncertain, 0)
            .await
            .unwrap();
        set_account(c, "p", "dir", AccountState::Uncertain, 0)
            .await
            .unwrap();

        // Planned again, through each writer, then forgotten as never made.
        upsert_grant(c, &grant("crm:a", GrantState::Pending), "crm", 1)
            .await
            .unwrap();
        let awaiting = (grant("crm:b", GrantState::AwaitingApproval), "crm".into());
        upsert_grants(c, &[awaiting], 1).await.unwrap();
        set_grant_state(c, "p", "crm:c", GrantState::Failed, 1)
            .await
            .unwrap();
        forget_pending_grant(c, "p", "crm:a").await.unwrap();
        forget_pending_grant(c, "p", "crm:b").await.unwrap();
        upsert_accounts(c, &[("p".into(), "crm".into(), AccountState::Pending)], 1)
            .await
            .unwrap();
        forget_pending_account(c, "p", "crm").await.unwrap();
        // Settled by calls.
        let settled = [
            ("p".to_string(), "crm:d".to_string(), GrantState::Granted),
            ("p".to_string(), "crm:e".to_string(), GrantState::Revoked),
        ];
        set_grant_states(c, &settled, 2).await.unwrap();
        set_account(c, "p", "dir", AccountState::Active, 2)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut c = store.reader().await.unwrap();
        let grants: Vec<(String, GrantState)> = grants_of(&mut c, "p")
            .await
            .unwrap()
            .into_iter()
            .map(|(g, _)| (g.entitlement, g.state))
            .collect();
        let g = |e: &str, s| (e.to_string(), s);
        assert_eq!(
            grants,
            [
                g("crm:a", GrantState::Uncertain),
                g("crm:b", GrantState::Uncertain),
                g("crm:c", GrantState::Uncertain),
                g("crm:d", GrantState::Granted),
                g("crm:e", GrantState::Revoked),
            ]
        );
        let mut accounts: Vec<(String, AccountState)> = accounts_of(&mut c, "p")
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.system, a.state))
            .collect();
        accounts.sort();
        assert_eq!(
            accounts,
            [
                ("crm".to_string(), AccountState::Uncertain),
                ("dir".to_string(), AccountState::Active),
            ]
        );
        drop(c);
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// A cancel and the outcome of a run's last running step, committed at the same moment,
    /// must not judge the run from stale views of each other. On PostgreSQL the run row is
    /// the lock: whoever judges second waits and then sees the other's change. (On SQLite a
    /// write transaction starts with `BEGIN IMMEDIATE`, so writers never overlap at all.)
    #[tokio::test]
    async fn a_run_judged_while_it_is_cancelled_sees_the_cancel() {
        let (store, dir) = scratch().await;
        if store.backend() == Backend::Sqlite {
            let _ = std::fs::remove_dir_all(dir.unwrap());
            return;
        }
        let run = RunRow {
            state: RunState::Running,
            planned_at: Some(0),
            ..RunRow::pending("r1".into(), "p1".into(), RunKind::Hire, Priority::Normal, 0)
        };
        let mut tx = store.begin().await.unwrap();
        insert_run(tx.conn(), &run).await.unwrap();
        tx.commit().await.unwrap();

        // The operator's cancel holds the run...
        let mut cancel = store.begin().await.unwrap();
        let held = lock_run(cancel.conn(), "r1").await.unwrap().unwrap();
        assert!(!held.cancel_requested);
        request_cancel(cancel.conn(), "r1").await.unwrap();
        // ...while a step outcome comes to judge the same run.
        let judge = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                let runs = runs_by_ids(tx.conn(), &["r1".to_string()]).await.unwrap();
                tx.commit().await.unwrap();
                runs
            })
        };
        // Wait until the judge is blocked on the lock (or, were there none, has finished
        // with what it saw).
        let mut watch = store.reader().await.unwrap();
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut *watch)
            .await
            .unwrap();
            if waiting > 0 || judge.is_finished() {
                break;
            }
            tokio::task::yield_now().await;
        }
        cancel.commit().await.unwrap();
        let seen = judge.await.unwrap();
        assert!(
            seen[0].cancel_requested,
            "the run was judged without the cancel committed alongside"
        );
    }

    #[tokio::test]
    async fn a_late_outcome_does_not_count_once_the_lease_was_taken_back() {
        let (store, dir) = scratch().await;
        let step = StepRow {
            id: "s1".into(),
            run_id: "r1".into(),
            idx: 0,
            phase: 0,
            ready: true,
            state: StepState::Pending,
            priority: Priority::Normal,
            available_at: 0,
            person_id: "p1".into(),
            system: "directory".into(),
            action: Action::CreateAccount,
            entitlement: None,
            source: None,
            source_ref: None,
            op_id: "op1".into(),
            attempts: 0,
            last_error: None,
            compensation_of: None,
            lease_until: None,
            started_at: None,
            finished_at: None,
            maybe_applied: false,
        };
        let mut tx = store.begin().await.unwrap();
        insert_steps(tx.conn(), &[step]).await.unwrap();
        let claimed = claim_steps(tx.conn(), store.backend(), 10, 1_000, 10, false)
            .await
            .unwrap();
        assert_eq!(claimed[0].lease_until, Some(1_000));
        assert!(
            steps_still_leased(tx.conn(), &[("s1", Some(1_000))])
                .await
                .unwrap()
                .contains("s1")
        );
        // The call outlives its lease: the step is taken back and claimed again.
        assert_eq!(requeue_expired(tx.conn(), 1_001, 1_001).await.unwrap(), 1);
        assert!(
            steps_still_leased(tx.conn(), &[("s1", Some(1_000))])
                .await
                .unwrap()
                .is_empty()
        );
        let again = claim_steps(tx.conn(), store.backend(), 1_001, 2_001, 10, false)
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        let first = steps_still_leased(tx.conn(), &[("s1", Some(1_000))])
            .await
            .unwrap();
        let second = steps_still_leased(tx.conn(), &[("s1", Some(2_001))])
            .await
            .unwrap();
        assert!(
            first.is_empty() && second.contains("s1"),
            "{first:?} {second:?}"
        );
        tx.commit().await.unwrap();
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// One person with everything the planner reads about them.
#[derive(Debug, Clone)]
pub struct PersonState {
    /// The person.
    pub person: Person,
    /// Their engagements, in id order.
    pub engagements: Vec<Engagement>,
    /// Their accounts, in system order.
    pub accounts: Vec<Account>,
    /// Their grants (every state), in entitlement order.
    pub grants: Vec<Grant>,
}

/// A page of people after `after` in id order, each with engagements, accounts and grants:
/// four range reads per page, however many people it holds (for what-if over everyone).
pub async fn people_states(
    c: &mut AnyConnection,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<PersonState>> {
    let people = list_people(c, after, limit).await?;
    let (Some(first), Some(last)) = (people.first(), people.last()) else {
        return Ok(Vec::new());
    };
    let (lo, hi) = (first.id.clone(), last.id.clone());
    let mut out: Vec<PersonState> = people
        .into_iter()
        .map(|person| PersonState {
            person,
            engagements: Vec::new(),
            accounts: Vec::new(),
            grants: Vec::new(),
        })
        .collect();
    let index: std::collections::HashMap<String, usize> = out
        .iter()
        .enumerate()
        .map(|(i, s)| (s.person.id.clone(), i))
        .collect();
    let filter = "person_id >= $1 AND person_id <= $2";
    let binds = [lo, hi];
    let (engagements, accounts, grants) = holdings_where(c, filter, &binds).await?;
    for (person, e) in engagements {
        if let Some(&i) = index.get(&person) {
            out[i].engagements.push(e);
        }
    }
    for a in accounts {
        if let Some(&i) = index.get(&a.person_id) {
            out[i].accounts.push(a);
        }
    }
    for g in grants {
        if let Some(&i) = index.get(&g.person_id) {
            out[i].grants.push(g);
        }
    }
    Ok(out)
}

/// What the planner reads of one person: the person if stored, their engagements, accounts
/// and grants (every state), each in the same order as the single-person reads give them.
#[derive(Debug, Clone, Default)]
pub struct StoredPerson {
    /// The person, if stored.
    pub person: Option<Person>,
    /// Their engagements, in id order.
    pub engagements: Vec<Engagement>,
    /// Their accounts, in system order.
    pub accounts: Vec<Account>,
    /// Their grants, in entitlement order.
    pub grants: Vec<Grant>,
}

/// [`StoredPerson`] for each of `ids` (those unknown too, with no person): four reads for the
/// whole batch, however many people it names.
pub async fn stored_people(
    c: &mut AnyConnection,
    ids: &[String],
) -> Result<std::collections::HashMap<String, StoredPerson>> {
    let mut out: std::collections::HashMap<String, StoredPerson> = ids
        .iter()
        .map(|id| (id.clone(), StoredPerson::default()))
        .collect();
    for p in people_by_ids(c, ids).await? {
        if let Some(s) = out.get_mut(&p.id) {
            s.person = Some(p);
        }
    }
    let sqlite = is_sqlite(c);
    for chunk in ids.chunks(500) {
        let mut filter = String::from("person_id IN ");
        push_placeholders(&mut filter, 1, chunk.len(), sqlite);
        let (engagements, accounts, grants) = holdings_where(c, &filter, chunk).await?;
        for (person, e) in engagements {
            if let Some(s) = out.get_mut(&person) {
                s.engagements.push(e);
            }
        }
        for a in accounts {
            if let Some(s) = out.get_mut(&a.person_id) {
                s.accounts.push(a);
            }
        }
        for g in grants {
            if let Some(s) = out.get_mut(&g.person_id) {
                s.grants.push(g);
            }
        }
    }
    Ok(out)
}

/// Engagements (with their person's id), accounts and grants of the people `filter` (a
/// condition on `person_id` binding `binds`) selects, ordered by person then as
/// [`engagements_of`], [`accounts_of`] and [`grants_of`] order them.
async fn holdings_where(
    c: &mut AnyConnection,
    filter: &str,
    binds: &[String],
) -> Result<(Vec<(String, Engagement)>, Vec<Account>, Vec<Grant>)> {
    let read = async |c: &mut AnyConnection, sql: String| -> Result<Vec<AnyRow>> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b.clone());
        }
        Ok(q.fetch_all(&mut *c).await?)
    };
    let rows = read(
        c,
        format!("SELECT person_id, data FROM engagements WHERE {filter} ORDER BY person_id, id"),
    )
    .await?;
    let engagements = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, json(&r.try_get::<String, _>(1)?)?)))
        .collect::<Result<_>>()?;
    let rows = read(
        c,
        format!(
            "SELECT person_id, system, state FROM accounts WHERE {filter} ORDER BY person_id, system"
        ),
    )
    .await?;
    let accounts = rows
        .iter()
        .map(|r| {
            Ok(Account {
                person_id: r.try_get(0)?,
                system: r.try_get(1)?,
                state: parse::<AccountState>(&r.try_get::<String, _>(2)?)?,
            })
        })
        .collect::<Result<_>>()?;
    let rows = read(
        c,
        format!(
            "SELECT person_id, entitlement, source, source_ref, state, granted_at, expires_at
             FROM grants WHERE {filter} ORDER BY person_id, entitlement"
        ),
    )
    .await?;
    let grants = rows
        .iter()
        .map(|r| {
            Ok(Grant {
                person_id: r.try_get(0)?,
                entitlement: r.try_get(1)?,
                source: parse::<GrantSource>(&r.try_get::<String, _>(2)?)?,
                source_ref: r.try_get(3)?,
                state: parse::<GrantState>(&r.try_get::<String, _>(4)?)?,
                granted_at: r.try_get(5)?,
                expires_at: r.try_get(6)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok((engagements, accounts, grants))
}

/// The open runs (pending, running or awaiting approval) of each of `people`, in
/// (effective time, id) order: what [`earlier_open_runs`] filters, for a batch.
pub async fn open_runs_of_people(
    c: &mut AnyConnection,
    people: &[String],
) -> Result<std::collections::HashMap<String, Vec<RunRow>>> {
    let mut out: std::collections::HashMap<String, Vec<RunRow>> = Default::default();
    let sqlite = is_sqlite(c);
    for chunk in people.chunks(500) {
        let mut sql = format!("SELECT {RUN_COLS} FROM runs WHERE person_id IN ");
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        sql.push_str(
            " AND state IN ('pending', 'running', 'awaiting_approval') ORDER BY effective_at, id",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for p in chunk {
            q = q.bind(p.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            let run = run_row(&r)?;
            out.entry(run.person_id.clone()).or_default().push(run);
        }
    }
    Ok(out)
}

/// The values of a person the people list filters on, as stored beside the person's document:
/// department, worker type, manager, and the lowercased name and email text search looks in.
pub(crate) fn person_columns(p: &Person) -> [Option<String>; 4] {
    [
        p.department.clone(),
        Some(p.worker_type.as_str().to_string()),
        p.manager.clone(),
        Some(format!(
            "{}\n{}",
            p.name.to_lowercase(),
            p.email.to_lowercase()
        )),
    ]
}
