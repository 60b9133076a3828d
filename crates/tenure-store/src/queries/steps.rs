//! Steps: claimed, leased, recorded, released per system and phase.

use super::*;

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

/// What a new step is: where it sits in its run and what it does. [`StepRow::new`] makes the
/// stored step from it, with everything a step starts with.
#[derive(Debug, Clone, Copy)]
pub struct NewStep<'a> {
    /// Its run.
    pub run_id: &'a str,
    /// Position in the run (part of the operation id).
    pub idx: i64,
    /// Phase within the run.
    pub phase: i64,
    /// Urgent steps (leavers) first.
    pub priority: Priority,
    /// When it is made: it may run from then on.
    pub now: i64,
    /// Whose access.
    pub person_id: &'a str,
    /// Which system.
    pub system: &'a str,
    /// What to do.
    pub action: Action,
    /// Which entitlement (grant and revoke).
    pub entitlement: Option<&'a str>,
    /// Why the access is wanted.
    pub source: Option<GrantSource>,
    /// The template, engagement, request or reconciliation behind it.
    pub source_ref: Option<&'a str>,
}

impl StepRow {
    /// A step as every new one starts: a fresh id, `pending` and not yet ready (its phase
    /// starts it), no attempts, no lease, and the deterministic operation id its connector
    /// calls carry. The one place steps are made; callers change only what differs
    /// (`ready`, `state`, `compensation_of`).
    pub fn new(s: NewStep<'_>) -> StepRow {
        StepRow {
            id: uuid::Uuid::now_v7().to_string(),
            run_id: s.run_id.to_string(),
            idx: s.idx,
            phase: s.phase,
            ready: false,
            state: StepState::Pending,
            priority: s.priority,
            available_at: s.now,
            person_id: s.person_id.to_string(),
            system: s.system.to_string(),
            action: s.action,
            entitlement: s.entitlement.map(str::to_string),
            source: s.source,
            source_ref: s.source_ref.map(str::to_string),
            op_id: tenure_core::run::operation_id(
                s.run_id,
                s.idx as u32,
                s.action,
                s.system,
                s.entitlement,
            ),
            attempts: 0,
            last_error: None,
            compensation_of: None,
            lease_until: None,
            started_at: None,
            finished_at: None,
            maybe_applied: false,
        }
    }

    /// Whether the step acts on an account no person holds (an orphan reconciliation found):
    /// its person id names no person, only the account the connector reaches through it, so
    /// its outcome changes no person's record.
    pub fn is_orphan(&self) -> bool {
        self.source == Some(GrantSource::Discovered) && self.entitlement.is_none()
    }
}

pub(crate) const STEP_COLS: &str = "id, run_id, idx, phase, ready, state, priority, available_at, person_id, system, action, entitlement, source, source_ref, op_id, attempts, last_error, compensation_of, lease_until, started_at, finished_at, maybe_applied";

pub(crate) fn step_row(r: &Row) -> Result<StepRow> {
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
    c: &mut Conn,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + '_>> {
    Box::pin(async move {
        if !c.is_sqlite() {
            return Ok(());
        }
        crate::migrate::sqlite_add_column(c, "steps", "maybe_applied", "BIGINT NOT NULL DEFAULT 0")
            .await
    })
}

/// Stores new steps.
pub async fn insert_steps(c: &mut Conn, steps: &[StepRow]) -> Result<()> {
    const COLS: usize = 22;
    for chunk in steps.chunks(300) {
        let mut sql = format!("INSERT INTO steps ({STEP_COLS}) VALUES ");
        push_placeholders(&mut sql, chunk.len(), COLS, c.is_sqlite());
        let mut q = db::query(db::AssertSqlSafe(sql));
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
    c: &mut Conn,
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
    let rows = db::query(db::AssertSqlSafe(sql))
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
    c: &mut Conn,
    runs: &[String],
    now: i64,
    lease_until: i64,
) -> Result<Vec<StepRow>> {
    let mut out = Vec::new();
    let sqlite = c.is_sqlite();
    for chunk in runs.chunks(500) {
        let mut sql = String::from(
            "UPDATE steps SET state = 'running', lease_until = $1, started_at = COALESCE(started_at, $2)
             WHERE state = 'pending' AND ready = 1 AND available_at <= $2 AND run_id IN ",
        );
        in_list(&mut sql, chunk.len(), sqlite, 3);
        sql.push_str(&format!(" RETURNING {STEP_COLS}"));
        let mut q = db::query(db::AssertSqlSafe(sql))
            .bind(lease_until)
            .bind(now);
        for id in chunk {
            q = q.bind(id.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.push(step_row(&r)?);
        }
    }
    Ok(out)
}

/// Whether a pending, ready step is claimable at `now`: the first entry of the claim index that
/// is, without reading the rest (`MIN(available_at)` reads every entry of that index, as it
/// is ordered by priority first).
pub async fn any_step_claimable(c: &mut Conn, now: i64) -> Result<bool> {
    let row = db::query(
        "SELECT 1 FROM steps WHERE state = 'pending' AND ready = 1 AND available_at <= $1 LIMIT 1",
    )
    .bind(now)
    .fetch_optional(c)
    .await?;
    Ok(row.is_some())
}

/// When the next pending, ready step becomes claimable: the earlier of the first entries of
/// each priority's part of the claim index, one lookup each. (`MIN(available_at)` over the
/// whole index read every entry, the index being ordered by priority first: 17 ms at 200,000
/// steps waiting, where this takes microseconds; `scripts/claim_index_bench.py`.)
pub async fn next_step_available(c: &mut Conn) -> Result<Option<i64>> {
    db::query(
        "SELECT MIN(t) FROM (
           SELECT MIN(available_at) AS t FROM steps WHERE state = 'pending' AND ready = 1 AND priority = $1
           UNION ALL
           SELECT MIN(available_at) FROM steps WHERE state = 'pending' AND ready = 1 AND priority = $2
         ) AS firsts",
    )
    .bind(Priority::Urgent.as_i64())
    .bind(Priority::Normal.as_i64())
    .fetch_one(c)
    .await?
    .try_get(0)
}

/// Puts running steps whose lease ends before `lease_before` (their worker died) back in the
/// queue, claimable from `now`; returns how many. The retry carries the same operation id, so
/// connectors see it as a repeat.
pub async fn requeue_expired(c: &mut Conn, lease_before: i64, now: i64) -> Result<u64> {
    let done = db::query(
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
    c: &mut Conn,
    runs: &[String],
) -> Result<std::collections::HashMap<String, Vec<StepStatus>>> {
    let mut out: std::collections::HashMap<String, Vec<StepStatus>> =
        std::collections::HashMap::new();
    let sqlite = c.is_sqlite();
    for chunk in runs.chunks(500) {
        let mut sql = String::from(
            "SELECT run_id, system, phase, state, ready, compensation_of FROM steps WHERE run_id IN ",
        );
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        let mut q = db::query(db::AssertSqlSafe(sql));
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
pub async fn release_lanes(c: &mut Conn, rows: &[(String, Lane)], now: i64) -> Result<()> {
    bulk!(
        c,
        rows,
        3,
        "UPDATE steps SET ready = 1, available_at = $1 FROM (VALUES ",
        ") AS v WHERE steps.run_id = v.column1 AND steps.system = v.column2 AND steps.phase = v.column3 AND steps.state = 'pending'",
        lead = [now],
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
    c: &mut Conn,
    leases: &[(&str, Option<i64>)],
) -> Result<std::collections::HashSet<String>> {
    let sqlite = c.is_sqlite();
    let wanted: std::collections::HashMap<&str, Option<i64>> = leases.iter().copied().collect();
    let mut out = std::collections::HashSet::with_capacity(leases.len());
    for chunk in leases.chunks(500) {
        let mut sql =
            String::from("SELECT id, lease_until FROM steps WHERE state = 'running' AND id IN ");
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        if !sqlite {
            sql.push_str(" FOR UPDATE");
        }
        let mut q = db::query(db::AssertSqlSafe(sql));
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
    c: &mut Conn,
    leases: &[(&str, i64)],
    new_lease: i64,
) -> Result<std::collections::HashSet<String>> {
    let sqlite = c.is_sqlite();
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
            let mut q = db::query(db::AssertSqlSafe(sql));
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
pub async fn update_steps(c: &mut Conn, rows: &[StepUpdate], now: i64) -> Result<()> {
    bulk!(
        c,
        rows,
        6,
        "UPDATE steps SET state = v.column2, attempts = v.column3, last_error = COALESCE(v.column4, steps.last_error),
           lease_until = NULL, available_at = COALESCE(v.column5, steps.available_at),
           maybe_applied = CASE WHEN v.column6 = 1 THEN 1 ELSE steps.maybe_applied END,
           finished_at = CASE WHEN v.column2 IN ('succeeded', 'failed', 'cancelled', 'compensated', 'denied') THEN CAST($1 AS BIGINT) ELSE NULL END
         FROM (VALUES ",
        ") AS v WHERE steps.id = v.column1",
        lead = [now],
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
pub async fn steps_of_run(c: &mut Conn, run: &str) -> Result<Vec<StepRow>> {
    let sql = format!("SELECT {STEP_COLS} FROM steps WHERE run_id = $1 ORDER BY idx");
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(run.to_string())
        .fetch_all(c)
        .await?;
    rows.iter().map(step_row).collect()
}

/// Records a step's new state and attempt count. `available_at` schedules a retry.
pub async fn update_step(
    c: &mut Conn,
    id: &str,
    state: StepState,
    attempts: i64,
    last_error: Option<&str>,
    available_at: Option<i64>,
    now: i64,
) -> Result<()> {
    db::query(
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
pub async fn mark_compensated(c: &mut Conn, run: &str, idx: i64) -> Result<()> {
    db::query("UPDATE steps SET state = 'compensated' WHERE run_id = $1 AND idx = $2 AND state = 'succeeded'")
        .bind(run.to_string())
        .bind(idx)
        .execute(c)
        .await?;
    Ok(())
}

/// Removes an account row that was only planned (never created).
pub async fn forget_pending_account(c: &mut Conn, person: &str, system: &str) -> Result<()> {
    db::query("DELETE FROM accounts WHERE person_id = $1 AND system = $2 AND state = 'pending'")
        .bind(person.to_string())
        .bind(system.to_string())
        .execute(c)
        .await?;
    Ok(())
}

/// Removes a grant row that was only planned (never granted).
pub async fn forget_pending_grant(c: &mut Conn, person: &str, entitlement: &str) -> Result<()> {
    db::query("DELETE FROM grants WHERE person_id = $1 AND entitlement = $2 AND state IN ('pending', 'awaiting_approval')")
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
pub async fn run_unended_steps(c: &mut Conn, run: &str) -> Result<UnendedSteps> {
    let row = db::query(
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

/// Cancels a run's own steps (not those undoing it) that have not started or are queued
/// again, and the open tasks they wait on; returns them. The tasks withdrawn are those of the steps this statement cancelled: on PostgreSQL a
/// running step can be put back in the queue by an outcome committing between two statements,
/// so choosing the tasks by a separate read of the steps' states could leave the task of a
/// step cancelled here open.
pub async fn cancel_pending_steps(c: &mut Conn, run: &str, now: i64) -> Result<Vec<StepRow>> {
    let sql = format!(
        "UPDATE steps SET state = 'cancelled', finished_at = $1 WHERE run_id = $2 AND state IN ('pending', 'awaiting_approval')
           AND compensation_of IS NULL
         RETURNING {STEP_COLS}"
    );
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(now)
        .bind(run.to_string())
        .fetch_all(&mut *c)
        .await?;
    let steps: Vec<StepRow> = rows.iter().map(step_row).collect::<Result<_>>()?;
    let op_ids: Vec<String> = steps.iter().map(|s| s.op_id.clone()).collect();
    crate::tasks::cancel_open_tasks(&mut *c, &op_ids, now).await?;
    Ok(steps)
}

/// Puts a run's failed steps back in the queue with fresh attempts; with `compensation_only`,
/// its failed compensation steps only (a cancelled run's own failures stay failed). Other
/// steps are left as they are.
pub async fn retry_failed_steps(
    c: &mut Conn,
    run: &str,
    compensation_only: bool,
    now: i64,
) -> Result<u64> {
    let done = db::query(
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
pub async fn step_counts(c: &mut Conn) -> Result<Vec<(String, String, i64)>> {
    let rows = db::query(
        "SELECT system, state, COUNT(*) FROM steps GROUP BY system, state ORDER BY system, state",
    )
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

#[cfg(test)]
mod new_step_tests {
    use super::*;

    #[test]
    fn a_new_step_starts_pending_unclaimed_and_carries_its_operation_id() {
        let new = NewStep {
            run_id: "r1",
            idx: 3,
            phase: 1,
            priority: Priority::Urgent,
            now: 42,
            person_id: "p1",
            system: "git",
            action: Action::Revoke,
            entitlement: Some("git:write"),
            source: Some(GrantSource::Request),
            source_ref: Some("req-1"),
        };
        let s = StepRow::new(new);
        assert_eq!(
            s.op_id,
            tenure_core::run::operation_id("r1", 3, Action::Revoke, "git", Some("git:write"))
        );
        assert_eq!(
            (s.state, s.ready, s.attempts),
            (StepState::Pending, false, 0)
        );
        assert_eq!((s.available_at, s.idx, s.phase), (42, 3, 1));
        assert_eq!(s.entitlement.as_deref(), Some("git:write"));
        assert_eq!(s.source_ref.as_deref(), Some("req-1"));
        assert!(s.lease_until.is_none() && s.compensation_of.is_none() && !s.maybe_applied);
        let next = StepRow::new(NewStep { idx: 4, ..new });
        assert_ne!(next.id, s.id, "every step gets its own id");
        assert_ne!(
            next.op_id, s.op_id,
            "the position is part of the operation id"
        );
    }
}
