//! The filtered lists of the API (people, runs, audit entries, engagements, clients) and the
//! lookups that tell whether an event names a person or a client tenure knows. Each filter is a
//! condition in SQL, bound as a parameter, and only the filters given are in the statement.

use crate::db::{self, Conn};
use crate::filter::{Arg, Where, contains_pattern};
use crate::queries::{RUN_COLS, audit_row, person_columns, push_placeholders, run_row};
use crate::{Backend, Result, RunRow, StoreError};
use std::collections::{BTreeMap, BTreeSet};
use tenure_core::audit::AuditEntry;
use tenure_core::run::{RunKind, RunState};
use tenure_core::{Engagement, Person, PersonStatus, WorkerType};

fn json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

// ---------------------------------------------------------------- people

/// The columns [`crate::queries::person_columns`] fills, in its order.
const PERSON_COLUMNS: [&str; 4] = ["department", "worker_type", "manager", "search"];

/// Adds the filter columns to a `people` table made before they existed, when a database
/// made before schema versions were recorded is adopted: before the baseline's DDL, whose
/// indexes need them.
pub(crate) async fn add_people_columns(c: &mut Conn, backend: Backend) -> Result<()> {
    let sql = match backend {
        Backend::Sqlite => "SELECT name FROM pragma_table_info('people')",
        Backend::Postgres => {
            "SELECT CAST(column_name AS TEXT) FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = 'people'"
        }
    };
    let have: BTreeSet<String> = db::query(sql)
        .fetch_all(&mut *c)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
    if have.is_empty() {
        return Ok(());
    }
    for col in PERSON_COLUMNS.iter().filter(|c| !have.contains(**c)) {
        c.execute(db::AssertSqlSafe(format!(
            "ALTER TABLE people ADD COLUMN {col} TEXT"
        )))
        .await?;
    }
    Ok(())
}

/// Fills the filter columns of people stored before they existed (`search` is never null
/// once filled), when a database made before schema versions were recorded is adopted.
pub(crate) async fn fill_people_columns(c: &mut Conn) -> Result<()> {
    loop {
        let rows = db::query("SELECT data FROM people WHERE search IS NULL ORDER BY id LIMIT 500")
            .fetch_all(&mut *c)
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        for r in &rows {
            let p: Person = json(&r.try_get::<String, _>(0)?)?;
            let [department, worker_type, manager, search] = person_columns(&p);
            db::query(
                "UPDATE people SET department = $1, worker_type = $2, manager = $3, search = $4
                 WHERE id = $5",
            )
            .bind(department)
            .bind(worker_type)
            .bind(manager)
            .bind(search)
            .bind(p.id.clone())
            .execute(&mut *c)
            .await?;
        }
    }
}

/// Which people [`people_matching`] returns: each field given narrows the list.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeopleFilter<'a> {
    /// Only people in this lifecycle status.
    pub status: Option<PersonStatus>,
    /// Only this department (exact).
    pub department: Option<&'a str>,
    /// Only this kind of worker.
    pub worker_type: Option<WorkerType>,
    /// Only the direct reports of this person id.
    pub manager: Option<&'a str>,
    /// Only people with an active engagement with this client.
    pub client: Option<&'a str>,
    /// Only people whose name or email contains this text, ignoring case.
    pub text: Option<&'a str>,
    /// Only ids after this one (the previous page's last).
    pub after: Option<&'a str>,
    /// At most this many.
    pub limit: i64,
}

/// A page of people in id order.
///
/// The text filter is SQL's on a plain vault (a substring of the name or email). On a sealing
/// vault, where no name is stored in clear, every word of the text must begin a word of the
/// name or email: the blind index (`people_search_tokens`) finds the candidates, with the
/// people not indexed yet (`people_search_pending`), and their opened records decide
/// ([`crate::vault::search_matches`]).
pub async fn people_matching(c: &mut Conn, f: &PeopleFilter<'_>) -> Result<Vec<Person>> {
    let seals = c.vault().seals();
    let text = f.text.map(str::to_lowercase);
    let tokens = match (&text, seals) {
        (Some(t), true) => c.vault().search_query(t),
        _ => Vec::new(),
    };
    if seals && text.is_some() && tokens.is_empty() {
        // Text with no word in it (`_`, `%`) begins no word of anyone's.
        return Ok(Vec::new());
    }
    let mut after = f.after.map(str::to_string);
    let mut out = Vec::new();
    loop {
        let mut w = Where::default();
        if let Some(s) = f.status {
            w.and("status = ?", [s.as_str().into()]);
        }
        if let Some(t) = f.worker_type {
            w.and("worker_type = ?", [t.as_str().into()]);
        }
        w.eq("department", f.department).eq("manager", f.manager);
        if let Some(client) = f.client {
            w.and(
                "id IN (SELECT person_id FROM engagements WHERE client_id = ? AND active = 1)",
                [client.into()],
            );
        }
        if let (Some(text), false) = (&text, seals) {
            w.and(
                r"search LIKE ? ESCAPE '\'",
                [contains_pattern(text).as_str().into()],
            );
        }
        if !tokens.is_empty() {
            // Candidates: people with every token, and people whose entries are not written
            // yet (queued); their opened records decide below. (INTERSECT binds tighter than
            // UNION on PostgreSQL; SQLite reads left to right: the same here.)
            let with_token = "SELECT person_id FROM people_search_tokens WHERE token = ?";
            let cond = format!(
                "id IN ({} UNION SELECT person_id FROM people_search_pending)",
                vec![with_token; tokens.len()].join(" INTERSECT ")
            );
            w.and_all(&cond, tokens.iter().map(|t| t.as_str().into()).collect());
        }
        if let Some(after) = &after {
            w.and("id > ?", [after.as_str().into()]);
        }
        let tail = format!("ORDER BY id LIMIT ${}", w.next());
        let rows = w
            .fetch(c, crate::privacy::PERSON_SELECT, &tail, &[f.limit.into()])
            .await?;
        let full = rows.len() as i64 == f.limit;
        for r in &rows {
            let p = crate::privacy::person_row(c, r)?;
            after = Some(p.id.clone());
            let wanted = match (&text, seals) {
                (Some(t), true) => crate::vault::search_matches(t, &p.name, &p.email),
                _ => true,
            };
            if wanted {
                out.push(p);
                if out.len() as i64 == f.limit {
                    return Ok(out);
                }
            }
        }
        if !(seals && text.is_some() && full) {
            return Ok(out);
        }
    }
}

/// Which of `ids` name a person tenure has seen: one stored, or one whose hire (or rehire) is
/// stored and not yet applied (its run still `pending`, as a future-dated hire's is).
pub async fn known_people(c: &mut Conn, ids: &[&str]) -> Result<BTreeSet<String>> {
    let mut known = BTreeSet::new();
    for (head, tail) in [
        ("SELECT id FROM people WHERE id IN ", ""),
        (
            "SELECT DISTINCT person_id FROM runs WHERE person_id IN ",
            " AND kind IN ('hire', 'rehire') AND state = 'pending'",
        ),
    ] {
        for_each_chunk(c, ids, head, tail, |id| {
            known.insert(id);
        })
        .await?;
    }
    Ok(known)
}

/// Which of `ids` name a client the database knows: stored from an event that carried it in
/// full, or named by an engagement. (Configured clients are the caller's to add.)
pub async fn known_clients(c: &mut Conn, ids: &[&str]) -> Result<BTreeSet<String>> {
    let mut known = BTreeSet::new();
    for (head, tail) in [
        ("SELECT id FROM clients WHERE id IN ", ""),
        (
            "SELECT DISTINCT client_id FROM engagements WHERE client_id IN ",
            "",
        ),
    ] {
        for_each_chunk(c, ids, head, tail, |id| {
            known.insert(id);
        })
        .await?;
    }
    Ok(known)
}

/// Runs `{head}(ids...){tail}` over chunks of `ids` and hands each row's first column to `each`.
async fn for_each_chunk(
    c: &mut Conn,
    ids: &[&str],
    head: &str,
    tail: &str,
    mut each: impl FnMut(String),
) -> Result<()> {
    let sqlite = c.is_sqlite();
    for chunk in ids.chunks(500) {
        let mut sql = String::from(head);
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        sql.push_str(tail);
        let mut q = db::query(db::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            each(r.try_get(0)?);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- runs

/// Which runs [`runs_matching`] returns: each field given narrows the list.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunFilter<'a> {
    /// Only runs in this state.
    pub state: Option<RunState>,
    /// Only this person's.
    pub person: Option<&'a str>,
    /// Only runs of this kind.
    pub kind: Option<RunKind>,
    /// Only runs created at or after this time (epoch ms).
    pub since: Option<i64>,
    /// Only runs created before this time (epoch ms).
    pub until: Option<i64>,
    /// Only ids before this one (the previous page's last).
    pub before: Option<&'a str>,
    /// At most this many.
    pub limit: i64,
}

/// A page of runs, newest first (ids are time-ordered UUIDv7).
pub async fn runs_matching(c: &mut Conn, f: &RunFilter<'_>) -> Result<Vec<RunRow>> {
    let mut w = Where::default();
    if let Some(s) = f.state {
        w.and("state = ?", [s.as_str().into()]);
    }
    w.eq("person_id", f.person)
        .eq("kind", f.kind.map(RunKind::as_str));
    time_range(&mut w, "created_at", f.since, f.until);
    if let Some(before) = f.before {
        w.and("id < ?", [before.into()]);
    }
    let tail = format!("ORDER BY id DESC LIMIT ${}", w.next());
    let head = format!("SELECT {RUN_COLS} FROM runs");
    let rows = w.fetch(c, &head, &tail, &[f.limit.into()]).await?;
    rows.iter().map(run_row).collect()
}

fn time_range(w: &mut Where, col: &str, since: Option<i64>, until: Option<i64>) {
    if let Some(t) = since {
        w.and(&format!("{col} >= ?"), [Arg::Int(t)]);
    }
    if let Some(t) = until {
        w.and(&format!("{col} < ?"), [Arg::Int(t)]);
    }
}

// ---------------------------------------------------------------- audit

/// Which audit entries [`audit_matching`] returns: each field given narrows the list.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditFilter<'a> {
    /// Only entries after this sequence number (the previous page's last, in chain order).
    pub after: i64,
    /// Only entries before this sequence number (the previous page's last, newest first).
    pub before: Option<i64>,
    /// Newest first rather than in chain order.
    pub newest_first: bool,
    /// Only entries about this person.
    pub person: Option<&'a str>,
    /// Only entries of this actor (token name or component).
    pub actor: Option<&'a str>,
    /// Only this action (`run.planned`, `step.grant`, ...).
    pub action: Option<&'a str>,
    /// Only entries about this system.
    pub system: Option<&'a str>,
    /// Only entries about this entitlement.
    pub entitlement: Option<&'a str>,
    /// Only entries written at or after this time (epoch ms).
    pub since: Option<i64>,
    /// Only entries written before this time (epoch ms).
    pub until: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// A page of audit entries in chain order, or newest first. One person's, newest first, is a
/// range of the index `audit_person_seq` read backwards (migration 15).
pub async fn audit_matching(c: &mut Conn, f: &AuditFilter<'_>) -> Result<Vec<AuditEntry>> {
    let mut w = Where::default();
    w.and("seq > ?", [f.after.into()]);
    if let Some(before) = f.before {
        w.and("seq < ?", [before.into()]);
    }
    w.eq("person_id", f.person)
        .eq("actor", f.actor)
        .eq("action", f.action)
        .eq("system", f.system)
        .eq("entitlement", f.entitlement);
    time_range(&mut w, "at_ms", f.since, f.until);
    let order = if f.newest_first { "DESC" } else { "ASC" };
    let tail = format!("ORDER BY seq {order} LIMIT ${}", w.next());
    let rows = w
        .fetch(
            c,
            "SELECT seq, at_ms, actor, action, person_id, entitlement, system, run_id, reason, correlation_id, details, trace_id, prev_hash, hash FROM audit_log",
            &tail,
            &[f.limit.into()],
        )
        .await?;
    rows.iter().map(audit_row).collect()
}

// ---------------------------------------------------------------- engagements and clients

/// Which engagements [`engagements_matching`] returns: each field given narrows the list.
#[derive(Debug, Clone, Copy, Default)]
pub struct EngagementFilter<'a> {
    /// Only engagements with this client.
    pub client: Option<&'a str>,
    /// Only this person's.
    pub person: Option<&'a str>,
    /// Only active (`true`) or ended (`false`) engagements.
    pub active: Option<bool>,
    /// Only ids after this one (the previous page's last).
    pub after: Option<&'a str>,
    /// At most this many.
    pub limit: i64,
}

/// A page of engagements in id order.
pub async fn engagements_matching(
    c: &mut Conn,
    f: &EngagementFilter<'_>,
) -> Result<Vec<Engagement>> {
    let mut w = Where::default();
    w.eq("client_id", f.client).eq("person_id", f.person);
    if let Some(active) = f.active {
        w.and("active = ?", [i64::from(active).into()]);
    }
    if let Some(after) = f.after {
        w.and("id > ?", [after.into()]);
    }
    let tail = format!("ORDER BY id LIMIT ${}", w.next());
    let rows = w
        .fetch(c, "SELECT data FROM engagements", &tail, &[f.limit.into()])
        .await?;
    rows.iter()
        .map(|r| json(&r.try_get::<String, _>(0)?))
        .collect()
}

/// Client ids the database knows (stored from events, or named by engagements), in id order
/// after `after`, at most `limit`.
pub async fn stored_client_ids(c: &mut Conn, after: &str, limit: i64) -> Result<Vec<String>> {
    let rows = db::query(
        "SELECT id FROM (SELECT id FROM clients WHERE id > $1
                         UNION SELECT client_id AS id FROM engagements WHERE client_id > $1) AS known
         ORDER BY id LIMIT $2",
    )
    .bind(after.to_string())
    .bind(limit)
    .fetch_all(c)
    .await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}

/// How many engagements a client has, active and ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngagementCounts {
    /// Active engagements (one person may hold several roles).
    pub active: i64,
    /// Ended engagements.
    pub ended: i64,
}

/// The engagement counts of each of `clients` that has any.
pub async fn engagement_counts(
    c: &mut Conn,
    clients: &[&str],
) -> Result<BTreeMap<String, EngagementCounts>> {
    let mut out: BTreeMap<String, EngagementCounts> = BTreeMap::new();
    let sqlite = c.is_sqlite();
    for chunk in clients.chunks(500) {
        let mut sql =
            String::from("SELECT client_id, active, COUNT(*) FROM engagements WHERE client_id IN ");
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        sql.push_str(" GROUP BY client_id, active");
        let mut q = db::query(db::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            let counts = out.entry(r.try_get(0)?).or_default();
            let n: i64 = r.try_get(2)?;
            if r.try_get::<i64, _>(1)? != 0 {
                counts.active += n;
            } else {
                counts.ended += n;
            }
        }
    }
    Ok(out)
}
