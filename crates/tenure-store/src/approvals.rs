//! Queries for access requests, approvals, delegations and time-bound grants (the durable
//! timers are in `timers.rs`). Like `queries`, every function takes `&mut Conn`.

use crate::Result;
use crate::StepRow;
use crate::db::{self, Conn, Row};
use crate::queries::corrupt;
use tenure_core::approval::{ApprovalState, Chain, RequestState};
use tenure_core::run::StepState;

// ---------------------------------------------------------------- access requests

/// An access request.
#[derive(Debug, Clone)]
pub struct RequestRow {
    /// Request id.
    pub id: String,
    /// Who would hold the access.
    pub person_id: String,
    /// What is asked for.
    pub entitlement: String,
    /// Who asked (a person id, or a token's name).
    pub requester: String,
    /// Why.
    pub justification: String,
    /// For how long once granted (ms); none is until revoked (low and medium risk only).
    pub duration_ms: Option<i64>,
    /// An emergency grant that skipped approval.
    pub break_glass: bool,
    /// Where it stands.
    pub state: RequestState,
    /// The run that grants it.
    pub run_id: String,
    /// When it was made (epoch ms).
    pub created_at: i64,
    /// When it was decided.
    pub decided_at: Option<i64>,
    /// When the access it gave ends.
    pub expires_at: Option<i64>,
}

const REQUEST_COLS: &str = "id, person_id, entitlement, requester, justification, duration_ms, break_glass, state, run_id, created_at, decided_at, expires_at";

fn request_row(r: &Row) -> Result<RequestRow> {
    Ok(RequestRow {
        id: r.try_get("id")?,
        person_id: r.try_get("person_id")?,
        entitlement: r.try_get("entitlement")?,
        requester: r.try_get("requester")?,
        justification: r.try_get("justification")?,
        duration_ms: r.try_get("duration_ms")?,
        break_glass: r.try_get::<i64, _>("break_glass")? != 0,
        state: r
            .try_get::<String, _>("state")?
            .parse()
            .map_err(|e: tenure_core::UnknownValue| corrupt(e))?,
        run_id: r.try_get("run_id")?,
        created_at: r.try_get("created_at")?,
        decided_at: r.try_get("decided_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

/// Stores a new request.
pub async fn insert_request(c: &mut Conn, r: &RequestRow) -> Result<()> {
    let sql = format!(
        "INSERT INTO access_requests ({REQUEST_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    );
    db::query(db::AssertSqlSafe(sql))
        .bind(r.id.clone())
        .bind(r.person_id.clone())
        .bind(r.entitlement.clone())
        .bind(r.requester.clone())
        .bind(r.justification.clone())
        .bind(r.duration_ms)
        .bind(r.break_glass as i64)
        .bind(r.state.as_str())
        .bind(r.run_id.clone())
        .bind(r.created_at)
        .bind(r.decided_at)
        .bind(r.expires_at)
        .execute(c)
        .await?;
    Ok(())
}

/// The request with this id.
pub async fn get_request(c: &mut Conn, id: &str) -> Result<Option<RequestRow>> {
    let sql = format!("SELECT {REQUEST_COLS} FROM access_requests WHERE id = $1");
    let row = db::query(db::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(c)
        .await?;
    row.as_ref().map(request_row).transpose()
}

/// The request a run was made for.
pub async fn request_of_run(c: &mut Conn, run_id: &str) -> Result<Option<RequestRow>> {
    let sql = format!("SELECT {REQUEST_COLS} FROM access_requests WHERE run_id = $1");
    let row = db::query(db::AssertSqlSafe(sql))
        .bind(run_id.to_string())
        .fetch_optional(c)
        .await?;
    row.as_ref().map(request_row).transpose()
}

/// Which requests [`list_requests`] returns: each field narrows the list.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFilter<'a> {
    /// Only requests this person made or would hold the access of.
    pub party: Option<&'a str>,
    /// Only access for this person.
    pub person: Option<&'a str>,
    /// Only requests this person (or token name) made.
    pub requester: Option<&'a str>,
    /// Only this entitlement.
    pub entitlement: Option<&'a str>,
    /// Only in this state.
    pub state: Option<RequestState>,
    /// Only those before this request id (the previous page's last).
    pub before: Option<&'a str>,
    /// At most this many.
    pub limit: i64,
}

/// A page of requests, newest first (ids are time-ordered UUIDv7), filtered in the database.
pub async fn list_requests(c: &mut Conn, f: &RequestFilter<'_>) -> Result<Vec<RequestRow>> {
    let sql = format!(
        "SELECT {REQUEST_COLS} FROM access_requests
         WHERE ($1 = '' OR person_id = $1 OR requester = $1) AND ($2 = '' OR person_id = $2)
           AND ($3 = '' OR requester = $3) AND ($4 = '' OR entitlement = $4) AND ($5 = '' OR state = $5)
           AND ($6 = '' OR id < $6)
         ORDER BY id DESC LIMIT $7"
    );
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(f.party.unwrap_or("").to_string())
        .bind(f.person.unwrap_or("").to_string())
        .bind(f.requester.unwrap_or("").to_string())
        .bind(f.entitlement.unwrap_or("").to_string())
        .bind(f.state.map_or("", RequestState::as_str))
        .bind(f.before.unwrap_or("").to_string())
        .bind(f.limit)
        .fetch_all(c)
        .await?;
    rows.iter().map(request_row).collect()
}

/// Records a request's decision (and when the access it gives ends).
pub async fn decide_request(
    c: &mut Conn,
    id: &str,
    state: RequestState,
    expires_at: Option<i64>,
    now: i64,
) -> Result<()> {
    db::query(
        "UPDATE access_requests SET state = $1, decided_at = $2, expires_at = $3 WHERE id = $4",
    )
    .bind(state.as_str())
    .bind(now)
    .bind(expires_at)
    .bind(id.to_string())
    .execute(c)
    .await?;
    Ok(())
}

/// Records that policy denied a request's grant: the request ends `denied`, and the policies
/// and rules that decided are kept with it (see [`request_denial`]).
pub async fn deny_request_by_policy(
    c: &mut Conn,
    id: &str,
    policies: &[String],
    now: i64,
) -> Result<()> {
    decide_request(c, id, RequestState::Denied, None, now).await?;
    db::query("INSERT INTO request_denials (request_id, policies) VALUES ($1, $2)")
        .bind(id.to_string())
        .bind(serde_json::to_string(policies).expect("strings serialize"))
        .execute(c)
        .await?;
    Ok(())
}

/// The policies and rules that denied a request's grant, if policy denied it.
pub async fn request_denial(c: &mut Conn, id: &str) -> Result<Option<Vec<String>>> {
    let row = db::query("SELECT policies FROM request_denials WHERE request_id = $1")
        .bind(id.to_string())
        .fetch_optional(c)
        .await?;
    row.map(|r| serde_json::from_str(&r.try_get::<String, _>(0)?).map_err(corrupt))
        .transpose()
}

// ---------------------------------------------------------------- approvals

/// An approval: one grant waiting for people, with its chain of stages.
#[derive(Debug, Clone)]
pub struct ApprovalRow {
    /// Approval id.
    pub id: String,
    /// The run whose grant waits.
    pub run_id: String,
    /// The waiting step (none for an extension of access already held).
    pub step_id: Option<String>,
    /// The access request, if the grant was asked for.
    pub request_id: Option<String>,
    /// Who would hold the access.
    pub person_id: String,
    /// What access.
    pub entitlement: String,
    /// Who asked for it (a person id, or the event's sender).
    pub requester: String,
    /// Where it stands.
    pub state: ApprovalState,
    /// Stages, approvers and who approved.
    pub chain: Chain,
    /// When it was opened.
    pub created_at: i64,
    /// When the current stage escalates.
    pub stage_due_at: i64,
    /// When it is denied if still undecided.
    pub deadline_at: i64,
    /// When it was decided.
    pub decided_at: Option<i64>,
}

const APPROVAL_COLS: &str = "id, run_id, step_id, request_id, person_id, entitlement, requester, state, chain, created_at, stage_due_at, deadline_at, decided_at";

fn approval_row(r: &Row) -> Result<ApprovalRow> {
    Ok(ApprovalRow {
        id: r.try_get("id")?,
        run_id: r.try_get("run_id")?,
        step_id: r.try_get("step_id")?,
        request_id: r.try_get("request_id")?,
        person_id: r.try_get("person_id")?,
        entitlement: r.try_get("entitlement")?,
        requester: r.try_get("requester")?,
        state: r
            .try_get::<String, _>("state")?
            .parse()
            .map_err(|e: tenure_core::UnknownValue| corrupt(e))?,
        chain: serde_json::from_str(&r.try_get::<String, _>("chain")?).map_err(corrupt)?,
        created_at: r.try_get("created_at")?,
        stage_due_at: r.try_get("stage_due_at")?,
        deadline_at: r.try_get("deadline_at")?,
        decided_at: r.try_get("decided_at")?,
    })
}

/// Stores a new approval.
pub async fn insert_approval(c: &mut Conn, a: &ApprovalRow) -> Result<()> {
    let sql = format!(
        "INSERT INTO approvals ({APPROVAL_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    );
    db::query(db::AssertSqlSafe(sql))
        .bind(a.id.clone())
        .bind(a.run_id.clone())
        .bind(a.step_id.clone())
        .bind(a.request_id.clone())
        .bind(a.person_id.clone())
        .bind(a.entitlement.clone())
        .bind(a.requester.clone())
        .bind(a.state.as_str())
        .bind(serde_json::to_string(&a.chain).expect("chains serialize"))
        .bind(a.created_at)
        .bind(a.stage_due_at)
        .bind(a.deadline_at)
        .bind(a.decided_at)
        .execute(&mut *c)
        .await?;
    index_approvers(c, a).await
}

/// Saves an approval's chain, state and times.
pub async fn update_approval(c: &mut Conn, a: &ApprovalRow) -> Result<()> {
    db::query(
        "UPDATE approvals SET state = $1, chain = $2, stage_due_at = $3, decided_at = $4 WHERE id = $5",
    )
    .bind(a.state.as_str())
    .bind(serde_json::to_string(&a.chain).expect("chains serialize"))
    .bind(a.stage_due_at)
    .bind(a.decided_at)
    .bind(a.id.clone())
    .execute(&mut *c)
    .await?;
    index_approvers(c, a).await
}

/// Rewrites the approval's rows in `approval_approvers`: everyone its stages name, and whether
/// the current stage still waits for them.
async fn index_approvers(c: &mut Conn, a: &ApprovalRow) -> Result<()> {
    db::query("DELETE FROM approval_approvers WHERE approval_id = $1")
        .bind(a.id.clone())
        .execute(&mut *c)
        .await?;
    let waiting: Vec<&String> = match (a.state, a.chain.current_stage()) {
        (ApprovalState::Pending, Some(stage)) => stage
            .approvers
            .iter()
            .filter(|p| !stage.approved_by.contains(p))
            .collect(),
        _ => Vec::new(),
    };
    let mut named: Vec<&String> = a.chain.stages.iter().flat_map(|s| &s.approvers).collect();
    named.sort();
    named.dedup();
    for approver in named {
        db::query(
            "INSERT INTO approval_approvers (approval_id, approver, waiting) VALUES ($1, $2, $3)",
        )
        .bind(a.id.clone())
        .bind(approver.clone())
        .bind(waiting.contains(&approver) as i64)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

/// Indexes the approvers of pending approvals stored before `approval_approvers` existed,
/// when a database made before schema versions were recorded is adopted.
pub(crate) async fn index_unindexed_approvals(c: &mut Conn) -> Result<()> {
    let sql = format!(
        "SELECT {APPROVAL_COLS} FROM approvals WHERE state = 'pending'
           AND NOT EXISTS (SELECT 1 FROM approval_approvers w WHERE w.approval_id = approvals.id)"
    );
    let rows = db::query(db::AssertSqlSafe(sql)).fetch_all(&mut *c).await?;
    for row in rows.iter().map(approval_row) {
        index_approvers(c, &row?).await?;
    }
    Ok(())
}

/// The approval with this id. Inside a write transaction on PostgreSQL the row is locked, so
/// two decisions on one approval take turns.
pub async fn get_approval(c: &mut Conn, id: &str) -> Result<Option<ApprovalRow>> {
    let lock = if c.is_sqlite() { "" } else { " FOR UPDATE" };
    let sql = format!("SELECT {APPROVAL_COLS} FROM approvals WHERE id = $1{lock}");
    let row = db::query(db::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(c)
        .await?;
    row.as_ref().map(approval_row).transpose()
}

/// Which approvals [`list_approvals`] returns: each field narrows the list; the default is
/// every approval, oldest first, up to `limit`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApprovalFilter<'a> {
    /// Only these states (every state when empty).
    pub states: &'a [ApprovalState],
    /// Only what concerns this approver: pending approvals whose current stage waits for them,
    /// or for someone who delegated to them at `now`, and that they are no party to; decided
    /// ones whose stages named them, or that they decided.
    pub approver: Option<&'a str>,
    /// Only access for this person.
    pub person: Option<&'a str>,
    /// Only this entitlement.
    pub entitlement: Option<&'a str>,
    /// Only this run's.
    pub run: Option<&'a str>,
    /// Only those after this approval id (the previous page's last).
    pub after: Option<&'a str>,
    /// The time delegations are judged at (epoch ms).
    pub now: i64,
    /// At most this many.
    pub limit: i64,
}

/// A page of approvals, oldest first (ids are time-ordered UUIDv7), filtered in the database.
pub async fn list_approvals(c: &mut Conn, f: &ApprovalFilter<'_>) -> Result<Vec<ApprovalRow>> {
    let cols = APPROVAL_COLS
        .split(", ")
        .map(|c| format!("a.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    // The states are the enum's own names, never the caller's text.
    let states = if f.states.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = f
            .states
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        format!("a.state IN ({}) AND ", names.join(", "))
    };
    let sql = format!(
        "SELECT {cols} FROM approvals a
         WHERE {states}($1 = '' OR a.person_id = $1) AND ($2 = '' OR a.entitlement = $2)
           AND ($3 = '' OR a.run_id = $3) AND ($4 = '' OR a.id > $4)
           AND ($5 = ''
             OR (a.state = 'pending' AND a.person_id <> $5 AND a.requester <> $5
                 AND EXISTS (SELECT 1 FROM approval_approvers w
                             WHERE w.approval_id = a.id AND w.waiting = 1
                               AND (w.approver = $5 OR w.approver IN (
                                 SELECT d.delegator FROM delegations d
                                 WHERE d.delegate = $5 AND d.starts_at <= $6 AND d.ends_at > $6
                                   AND d.revoked_at IS NULL))))
             OR (a.state <> 'pending'
                 AND (EXISTS (SELECT 1 FROM approval_approvers w WHERE w.approval_id = a.id AND w.approver = $5)
                      OR EXISTS (SELECT 1 FROM approval_decisions x
                                 WHERE x.approval_id = a.id AND (x.actor = $5 OR x.on_behalf_of = $5)))))
         ORDER BY a.id LIMIT $7"
    );
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(f.person.unwrap_or("").to_string())
        .bind(f.entitlement.unwrap_or("").to_string())
        .bind(f.run.unwrap_or("").to_string())
        .bind(f.after.unwrap_or("").to_string())
        .bind(f.approver.unwrap_or("").to_string())
        .bind(f.now)
        .bind(f.limit)
        .fetch_all(c)
        .await?;
    rows.iter().map(approval_row).collect()
}

/// The pending approvals whose stages name `approver`, oldest first.
pub async fn pending_approvals_naming(c: &mut Conn, approver: &str) -> Result<Vec<ApprovalRow>> {
    let sql = format!(
        "SELECT {APPROVAL_COLS} FROM approvals WHERE state = 'pending'
           AND id IN (SELECT approval_id FROM approval_approvers WHERE approver = $1)
         ORDER BY id"
    );
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(approver.to_string())
        .fetch_all(c)
        .await?;
    rows.iter().map(approval_row).collect()
}

/// The pending approvals of these steps.
pub async fn pending_approvals_of_steps(
    c: &mut Conn,
    step_ids: &[String],
) -> Result<Vec<ApprovalRow>> {
    let sql = format!(
        "SELECT {APPROVAL_COLS} FROM approvals WHERE state = 'pending' AND step_id = $1 ORDER BY created_at, id"
    );
    let mut out = Vec::new();
    for id in step_ids {
        let rows = db::query(db::AssertSqlSafe(sql.clone()))
            .bind(id.clone())
            .fetch_all(&mut *c)
            .await?;
        for r in &rows {
            out.push(approval_row(r)?);
        }
    }
    Ok(out)
}

/// Cancels the grant steps of `person` that wait for a pending approval of one of these
/// entitlements (planned by earlier runs, no longer wanted); returns them.
pub async fn cancel_waiting_grant_steps(
    c: &mut Conn,
    person: &str,
    entitlements: &[String],
    now: i64,
) -> Result<Vec<StepRow>> {
    let sql = format!(
        "UPDATE steps SET state = 'cancelled', finished_at = $1
         WHERE state = 'awaiting_approval' AND action = 'grant'
           AND id IN (SELECT step_id FROM approvals WHERE state = 'pending' AND person_id = $2 AND entitlement = $3)
         RETURNING {}",
        crate::queries::STEP_COLS
    );
    let mut out = Vec::new();
    for e in entitlements {
        let rows = db::query(db::AssertSqlSafe(sql.clone()))
            .bind(now)
            .bind(person.to_string())
            .bind(e.clone())
            .fetch_all(&mut *c)
            .await?;
        for r in &rows {
            out.push(crate::queries::step_row(r)?);
        }
    }
    Ok(out)
}

/// One recorded decision.
#[derive(Debug, Clone)]
pub struct DecisionRow {
    /// The stage decided (0-based).
    pub stage: i64,
    /// Who decided.
    pub actor: String,
    /// The approver they decided for (themselves, or whoever delegated to them).
    pub on_behalf_of: String,
    /// `approve` or `deny`.
    pub decision: String,
    /// Their comment.
    pub comment: String,
    /// When (epoch ms).
    pub at_ms: i64,
}

/// Records a decision on an approval.
pub async fn insert_decision(c: &mut Conn, approval_id: &str, d: &DecisionRow) -> Result<()> {
    db::query(
        "INSERT INTO approval_decisions (approval_id, seq, stage, actor, on_behalf_of, decision, comment, at_ms)
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6, $7 FROM approval_decisions WHERE approval_id = $1",
    )
    .bind(approval_id.to_string())
    .bind(d.stage)
    .bind(d.actor.clone())
    .bind(d.on_behalf_of.clone())
    .bind(d.decision.clone())
    .bind(d.comment.clone())
    .bind(d.at_ms)
    .execute(c)
    .await?;
    Ok(())
}

/// The decisions on an approval, in order.
pub async fn decisions_of(c: &mut Conn, approval_id: &str) -> Result<Vec<DecisionRow>> {
    let rows = db::query(
        "SELECT stage, actor, on_behalf_of, decision, comment, at_ms FROM approval_decisions
         WHERE approval_id = $1 ORDER BY seq",
    )
    .bind(approval_id.to_string())
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DecisionRow {
                stage: r.try_get(0)?,
                actor: r.try_get(1)?,
                on_behalf_of: r.try_get(2)?,
                decision: r.try_get(3)?,
                comment: r.try_get(4)?,
                at_ms: r.try_get(5)?,
            })
        })
        .collect()
}

/// Sets a waiting step's state: `pending` (approved: its phase releases it) or `denied`.
pub async fn set_step_approval(
    c: &mut Conn,
    step_id: &str,
    state: StepState,
    note: Option<&str>,
    now: i64,
) -> Result<bool> {
    let done = db::query(
        "UPDATE steps SET state = $1, ready = 0, available_at = $2, last_error = COALESCE($3, last_error),
           finished_at = CASE WHEN $1 = 'denied' THEN $2 ELSE finished_at END
         WHERE id = $4 AND state = 'awaiting_approval'",
    )
    .bind(state.as_str())
    .bind(now)
    .bind(note.map(str::to_string))
    .bind(step_id.to_string())
    .execute(c)
    .await?;
    Ok(done.rows_affected() == 1)
}

// ---------------------------------------------------------------- delegations

/// An approver's substitute for a period.
#[derive(Debug, Clone)]
pub struct DelegationRow {
    /// Delegation id.
    pub id: String,
    /// The approver who is away.
    pub delegator: String,
    /// Who decides for them.
    pub delegate: String,
    /// From (epoch ms, inclusive).
    pub starts_at: i64,
    /// Until (epoch ms, exclusive).
    pub ends_at: i64,
    /// When it was made.
    pub created_at: i64,
    /// When it was withdrawn, if it was.
    pub revoked_at: Option<i64>,
}

const DELEGATION_COLS: &str = "id, delegator, delegate, starts_at, ends_at, created_at, revoked_at";

fn delegation_row(r: &Row) -> Result<DelegationRow> {
    Ok(DelegationRow {
        id: r.try_get("id")?,
        delegator: r.try_get("delegator")?,
        delegate: r.try_get("delegate")?,
        starts_at: r.try_get("starts_at")?,
        ends_at: r.try_get("ends_at")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

/// Stores a delegation.
pub async fn insert_delegation(c: &mut Conn, d: &DelegationRow) -> Result<()> {
    let sql =
        format!("INSERT INTO delegations ({DELEGATION_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)");
    db::query(db::AssertSqlSafe(sql))
        .bind(d.id.clone())
        .bind(d.delegator.clone())
        .bind(d.delegate.clone())
        .bind(d.starts_at)
        .bind(d.ends_at)
        .bind(d.created_at)
        .bind(d.revoked_at)
        .execute(c)
        .await?;
    Ok(())
}

/// Who has delegated to `delegate` at `now`.
pub async fn delegators_of(c: &mut Conn, delegate: &str, now: i64) -> Result<Vec<String>> {
    let rows = db::query(
        "SELECT DISTINCT delegator FROM delegations
         WHERE delegate = $1 AND starts_at <= $2 AND ends_at > $2 AND revoked_at IS NULL ORDER BY delegator",
    )
    .bind(delegate.to_string())
    .bind(now)
    .fetch_all(c)
    .await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}

/// Which delegations [`list_delegations`] returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct DelegationFilter<'a> {
    /// Only those this person made or received.
    pub party: Option<&'a str>,
    /// Withdrawn ones and those that ended before `now` too.
    pub include_ended: bool,
    /// Only those after this delegation id (the previous page's last).
    pub after: Option<&'a str>,
    /// The time "ended" is judged at (epoch ms).
    pub now: i64,
    /// At most this many.
    pub limit: i64,
}

/// A page of delegations, oldest first (ids are time-ordered UUIDv7).
pub async fn list_delegations(
    c: &mut Conn,
    f: &DelegationFilter<'_>,
) -> Result<Vec<DelegationRow>> {
    let sql = format!(
        "SELECT {DELEGATION_COLS} FROM delegations
         WHERE ($1 = '' OR delegator = $1 OR delegate = $1)
           AND ($2 = 1 OR (ends_at > $3 AND revoked_at IS NULL)) AND ($4 = '' OR id > $4)
         ORDER BY id LIMIT $5"
    );
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(f.party.unwrap_or("").to_string())
        .bind(f.include_ended as i64)
        .bind(f.now)
        .bind(f.after.unwrap_or("").to_string())
        .bind(f.limit)
        .fetch_all(c)
        .await?;
    rows.iter().map(delegation_row).collect()
}

/// The delegation with this id.
pub async fn get_delegation(c: &mut Conn, id: &str) -> Result<Option<DelegationRow>> {
    let sql = format!("SELECT {DELEGATION_COLS} FROM delegations WHERE id = $1");
    let row = db::query(db::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(c)
        .await?;
    row.as_ref().map(delegation_row).transpose()
}

/// Withdraws a delegation; false when it was already withdrawn.
pub async fn revoke_delegation(c: &mut Conn, id: &str, now: i64) -> Result<bool> {
    let done =
        db::query("UPDATE delegations SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id.to_string())
            .execute(c)
            .await?;
    Ok(done.rows_affected() == 1)
}

// ---------------------------------------------------------------- time-bound grants

/// Sets when a grant ends by itself.
pub async fn set_grant_expiry(
    c: &mut Conn,
    person: &str,
    entitlement: &str,
    expires_at: Option<i64>,
    now: i64,
) -> Result<()> {
    db::query(
        "UPDATE grants SET expires_at = $1, updated_at = $2 WHERE person_id = $3 AND entitlement = $4",
    )
    .bind(expires_at)
    .bind(now)
    .bind(person.to_string())
    .bind(entitlement.to_string())
    .execute(c)
    .await?;
    Ok(())
}

/// For grants that expired and were revoked: (expires_at, revoked at) pairs, for the benchmark.
pub async fn expiry_latencies(c: &mut Conn) -> Result<Vec<(i64, i64)>> {
    let rows = db::query(
        "SELECT expires_at, updated_at FROM grants WHERE state = 'revoked' AND expires_at IS NOT NULL",
    )
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Makes a grant the request's: its source, and when it ends (an extension takes over the
/// grant an earlier request gave).
pub async fn claim_grant_for_request(
    c: &mut Conn,
    person: &str,
    entitlement: &str,
    request_id: &str,
    expires_at: Option<i64>,
    now: i64,
) -> Result<()> {
    db::query(
        "UPDATE grants SET source = 'request', source_ref = $1, expires_at = $2, updated_at = $3
         WHERE person_id = $4 AND entitlement = $5",
    )
    .bind(request_id.to_string())
    .bind(expires_at)
    .bind(now)
    .bind(person.to_string())
    .bind(entitlement.to_string())
    .execute(c)
    .await?;
    Ok(())
}
