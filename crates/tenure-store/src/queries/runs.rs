//! Runs: one per event or request, planned into steps.

use super::*;

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
    /// The W3C `traceparent` of the span the run was created under, so its steps join that
    /// trace ([`crate::trace`]); `None` while trace context is off.
    pub traceparent: Option<String>,
}

impl RunRow {
    /// A run waiting to be planned, for `person_id`, due at `at`, with no event behind it (set
    /// `event_id` for one that has) and in no trace (see [`RunRow::in_trace`]).
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
            traceparent: None,
        }
    }

    /// The trace id of the run's stored context (32 hex digits), if it has one.
    pub fn trace_id(&self) -> Option<String> {
        self.traceparent.as_deref().and_then(crate::trace::trace_id)
    }

    /// The run, in its own span under `parent` (a stored `traceparent`), or under the current
    /// span when `None`: its steps will join that trace. Nothing changes while traces are off.
    pub fn in_trace(mut self, parent: Option<&str>) -> RunRow {
        self.traceparent = crate::trace::run_context(&self.id, self.kind.as_str(), parent);
        self
    }
}

pub(crate) const RUN_COLS: &str = "id, event_id, person_id, kind, state, priority, effective_at, created_at, planned_at, finished_at, cancel_requested, error, note, traceparent";

pub(crate) fn run_row(r: &Row) -> Result<RunRow> {
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
        traceparent: r.try_get("traceparent")?,
    })
}

/// Migration 11's data step: on SQLite, adds `runs.traceparent` and `audit_log.trace_id`
/// where missing (PostgreSQL's migration adds them with `IF NOT EXISTS`).
pub(crate) fn add_trace_columns(
    c: &mut Conn,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + '_>> {
    Box::pin(async move {
        if !c.is_sqlite() {
            return Ok(());
        }
        crate::migrate::sqlite_add_column(c, "runs", "traceparent", "TEXT").await?;
        crate::migrate::sqlite_add_column(c, "audit_log", "trace_id", "TEXT").await
    })
}

/// Stores a new run.
pub async fn insert_run(c: &mut Conn, r: &RunRow) -> Result<()> {
    insert_runs(c, std::slice::from_ref(r)).await
}

/// Stores runs, a few hundred per statement.
pub async fn insert_runs(c: &mut Conn, rows: &[RunRow]) -> Result<()> {
    let prefix = format!("INSERT INTO runs ({RUN_COLS}) VALUES ");
    bulk!(c, rows, 14, prefix.as_str(), "", |q, r| {
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
            .bind(r.traceparent.clone())
    });
    Ok(())
}

/// The run with this id.
pub async fn get_run(c: &mut Conn, id: &str) -> Result<Option<RunRow>> {
    run_by_id(c, id, "").await
}

/// The run with this id, locked until the transaction ends on PostgreSQL (SQLite has one
/// writer at a time already). Whoever changes a run's fate (cancels it, retries it, judges it
/// from its steps) takes this lock first, so two of them never judge it from stale views of
/// each other: a cancel and the outcome of the run's last running step, committed at the same
/// moment, would otherwise each see the other's half and leave the run running forever.
pub async fn lock_run(c: &mut Conn, id: &str) -> Result<Option<RunRow>> {
    let lock = if c.is_sqlite() { "" } else { " FOR UPDATE" };
    run_by_id(c, id, lock).await
}

async fn run_by_id(c: &mut Conn, id: &str, suffix: &str) -> Result<Option<RunRow>> {
    let sql = format!("SELECT {RUN_COLS} FROM runs WHERE id = $1{suffix}");
    let row = db::query(db::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(c)
        .await?;
    row.as_ref().map(run_row).transpose()
}

/// Runs, newest first, optionally only those in `state`, for `person` (see
/// [`crate::runs_matching`]).
pub async fn list_runs(
    c: &mut Conn,
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
pub async fn runs_due(c: &mut Conn, now: i64, limit: i64) -> Result<Vec<RunRow>> {
    let sql = format!(
        "SELECT {RUN_COLS} FROM runs WHERE state = 'pending' AND effective_at <= $1 ORDER BY priority, effective_at, id LIMIT $2"
    );
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(now)
        .bind(limit)
        .fetch_all(c)
        .await?;
    rows.iter().map(run_row).collect()
}

/// When the next future-dated run becomes due.
pub async fn next_run_due(c: &mut Conn) -> Result<Option<i64>> {
    db::query("SELECT MIN(effective_at) FROM runs WHERE state = 'pending'")
        .fetch_one(c)
        .await?
        .try_get(0)
}

/// The person's unfinished runs that come before `run` (by effective time, then creation;
/// ids are time-ordered UUIDv7).
pub async fn earlier_open_runs(c: &mut Conn, person: &str, run: &RunRow) -> Result<Vec<RunRow>> {
    let sql = format!(
        "SELECT {RUN_COLS} FROM runs WHERE person_id = $1
           AND (effective_at < $3 OR (effective_at = $3 AND id < $2))
           AND state IN ('pending', 'running', 'awaiting_approval') ORDER BY effective_at, id"
    );
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(person.to_string())
        .bind(run.id.clone())
        .bind(run.effective_at)
        .fetch_all(c)
        .await?;
    rows.iter().map(run_row).collect()
}

/// Records a run's state; terminal states also set `finished_at`.
pub async fn set_run_state(
    c: &mut Conn,
    id: &str,
    state: RunState,
    error: Option<&str>,
    now: i64,
) -> Result<()> {
    db::query(
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
pub async fn set_run_planned(c: &mut Conn, id: &str, note: Option<String>, now: i64) -> Result<()> {
    db::query("UPDATE runs SET state = 'running', planned_at = $1, note = $2 WHERE id = $3")
        .bind(now)
        .bind(note)
        .bind(id.to_string())
        .execute(c)
        .await?;
    Ok(())
}

/// Marks many runs planned at once (see [`set_run_planned`]): `(run id, note)` pairs.
pub async fn set_runs_planned(
    c: &mut Conn,
    rows: &[(String, Option<String>)],
    now: i64,
) -> Result<()> {
    bulk!(
        c,
        rows,
        2,
        "UPDATE runs SET state = 'running', planned_at = $1, note = CAST(v.column2 AS TEXT)
         FROM (VALUES ",
        ") AS v WHERE runs.id = v.column1",
        lead = [now],
        |q, r| { q.bind(r.0.clone()).bind(r.1.clone()) }
    );
    Ok(())
}

/// Runs by id, for a batch of step outcomes, locked until the transaction ends on PostgreSQL
/// (see [`lock_run`]); in id order, so two batches sharing runs never wait on each other in a
/// cycle.
pub async fn runs_by_ids(c: &mut Conn, ids: &[String]) -> Result<Vec<RunRow>> {
    let mut out = Vec::with_capacity(ids.len());
    let sqlite = c.is_sqlite();
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    for chunk in ids.chunks(500) {
        let mut sql = format!("SELECT {RUN_COLS} FROM runs WHERE id IN ");
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        if !sqlite {
            sql.push_str(" ORDER BY id FOR UPDATE");
        }
        let mut q = db::query(db::AssertSqlSafe(sql));
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
pub async fn set_run_states(c: &mut Conn, rows: &[(String, RunState)], now: i64) -> Result<()> {
    bulk!(
        c,
        rows,
        2,
        "UPDATE runs SET state = v.column2,
           finished_at = CASE WHEN v.column2 IN ('succeeded', 'failed', 'cancelled', 'compensated', 'denied') THEN CAST($1 AS BIGINT) ELSE NULL END
         FROM (VALUES ",
        ") AS v WHERE runs.id = v.column1",
        lead = [now],
        |q, r| { q.bind(r.0.clone()).bind(r.1.as_str()) }
    );
    Ok(())
}

/// Flags a run as cancelled by an operator.
pub async fn request_cancel(c: &mut Conn, id: &str) -> Result<()> {
    db::query("UPDATE runs SET cancel_requested = 1 WHERE id = $1")
        .bind(id.to_string())
        .execute(c)
        .await?;
    Ok(())
}

/// Counts runs per state.
pub async fn run_counts(c: &mut Conn) -> Result<Vec<(String, i64)>> {
    let rows = db::query("SELECT state, COUNT(*) FROM runs GROUP BY state ORDER BY state")
        .fetch_all(c)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}
