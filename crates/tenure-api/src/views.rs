//! What the API answers, as types of its own. Store rows and engine structs become these at
//! the edge, so a column renamed in the store never changes the API, and the API's own rules
//! hold in one place:
//!
//! - every time is RFC 3339 in UTC with milliseconds (`2026-03-01T09:30:00.000Z`), never epoch
//!   milliseconds;
//! - a JSON document kept as text (a run's note, an audit entry's details) is answered as JSON,
//!   not as a string holding JSON; inside it, a key ending in `_at` whose value is a number of
//!   epoch milliseconds is a time too, and answered as one.

use crate::ApiError;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use tenure_core::GrantSource;
use tenure_core::approval::{ApprovalState, Chain};
use tenure_core::breaker::CircuitState;
use tenure_core::health::Health;
use tenure_core::planner::Action;
use tenure_core::run::{RunState, StepState, SystemProgress, SystemState};
use tenure_store::{TaskKind, TaskState};

/// An epoch-millisecond time as the API writes it: RFC 3339, UTC, milliseconds.
pub(crate) fn time(ms: i64) -> String {
    let t = DateTime::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    });
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn opt_time(ms: Option<i64>) -> Option<String> {
    ms.map(time)
}

/// A JSON document stored as text, as the API answers it (see the module docs).
fn document(text: &str, what: &str) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_str(text).map_err(|e| {
        ApiError::internal(format!("the stored {what} is not JSON ({e}): {text:.200}"))
    })?;
    times_in(&mut v);
    Ok(v)
}

fn times_in(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                match x.as_i64() {
                    Some(ms) if k.ends_with("_at") => *x = Value::String(time(ms)),
                    _ => times_in(x),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(times_in),
        _ => {}
    }
}

// ---------------------------------------------------------------- runs and steps

/// A run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Run {
    pub(crate) id: String,
    pub(crate) event_id: Option<String>,
    pub(crate) person_id: String,
    pub(crate) kind: String,
    pub(crate) state: RunState,
    pub(crate) priority: i64,
    pub(crate) effective_at: String,
    pub(crate) created_at: String,
    pub(crate) planned_at: Option<String>,
    pub(crate) finished_at: Option<String>,
    pub(crate) cancel_requested: bool,
    pub(crate) error: Option<String>,
    /// What the planner noted: skipped entitlements, denied grants, grants awaiting approval.
    pub(crate) note: Option<Value>,
    /// The `X-Request-Id` of the request that sent the run's event, when it had one.
    pub(crate) request_id: Option<String>,
    /// The trace (W3C Trace Context, 32 hex digits) the run's spans belong to, when traces are
    /// exported.
    pub(crate) trace_id: Option<String>,
}

impl Run {
    fn new(r: tenure_store::RunRow, request_id: Option<String>) -> Result<Run, ApiError> {
        let trace_id = r.trace_id();
        Ok(Run {
            note: r
                .note
                .as_deref()
                .map(|n| document(n, &format!("note of run {}", r.id)))
                .transpose()?,
            id: r.id,
            event_id: r.event_id,
            person_id: r.person_id,
            kind: r.kind.to_string(),
            state: r.state,
            priority: r.priority.as_i64(),
            effective_at: time(r.effective_at),
            created_at: time(r.created_at),
            planned_at: opt_time(r.planned_at),
            finished_at: opt_time(r.finished_at),
            cancel_requested: r.cancel_requested,
            error: r.error,
            request_id,
            trace_id,
        })
    }

    /// Runs as the API shows them, with the request ids of their events (one query).
    pub(crate) async fn list(
        c: &mut tenure_store::Conn,
        rows: Vec<tenure_store::RunRow>,
    ) -> Result<Vec<Run>, ApiError> {
        let mut ids = request_ids(c, &rows).await?;
        rows.into_iter()
            .map(|r| {
                let request = r.event_id.as_ref().and_then(|e| ids.remove(e));
                Run::new(r, request)
            })
            .collect()
    }
}

async fn request_ids(
    c: &mut tenure_store::Conn,
    runs: &[tenure_store::RunRow],
) -> Result<HashMap<String, String>, ApiError> {
    let events: Vec<&str> = runs.iter().filter_map(|r| r.event_id.as_deref()).collect();
    if events.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(tenure_store::request_ids_of_events(c, &events).await?)
}

/// A step of a run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Step {
    pub(crate) id: String,
    pub(crate) run_id: String,
    pub(crate) idx: i64,
    pub(crate) phase: i64,
    pub(crate) ready: bool,
    pub(crate) state: StepState,
    pub(crate) priority: i64,
    pub(crate) available_at: String,
    pub(crate) person_id: String,
    pub(crate) system: String,
    pub(crate) action: Action,
    pub(crate) entitlement: Option<String>,
    pub(crate) source: Option<GrantSource>,
    pub(crate) source_ref: Option<String>,
    pub(crate) op_id: String,
    pub(crate) attempts: i64,
    pub(crate) last_error: Option<String>,
    pub(crate) compensation_of: Option<i64>,
    pub(crate) lease_until: Option<String>,
    pub(crate) started_at: Option<String>,
    pub(crate) finished_at: Option<String>,
}

impl From<tenure_store::StepRow> for Step {
    fn from(s: tenure_store::StepRow) -> Step {
        Step {
            id: s.id,
            run_id: s.run_id,
            idx: s.idx,
            phase: s.phase,
            ready: s.ready,
            state: s.state,
            priority: s.priority.as_i64(),
            available_at: time(s.available_at),
            person_id: s.person_id,
            system: s.system,
            action: s.action,
            entitlement: s.entitlement,
            source: s.source,
            source_ref: s.source_ref,
            op_id: s.op_id,
            attempts: s.attempts,
            last_error: s.last_error,
            compensation_of: s.compensation_of,
            lease_until: opt_time(s.lease_until),
            started_at: opt_time(s.started_at),
            finished_at: opt_time(s.finished_at),
        }
    }
}

/// One system's part of a run: each system advances on its own, so one can be done while
/// another has failed or waits for a person.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RunSystem {
    pub(crate) system: String,
    /// `done`: every step finished; `running`: steps in flight or queued (retries included);
    /// `waiting`: only a person can move it (an approval or a manual task); `failed`: a step
    /// failed for good and the system's later steps are held until the run is retried;
    /// `blocked`: the run ended with some of its steps never released.
    pub(crate) state: SystemState,
    /// Its steps in the run.
    pub(crate) steps: u32,
    /// Finished: succeeded, cancelled, compensated or denied.
    pub(crate) done: u32,
    /// Failed for good.
    pub(crate) failed: u32,
    /// Waiting for an approval or a manual task.
    pub(crate) waiting: u32,
    /// Pending and not yet released (behind an earlier phase of the same system).
    pub(crate) held: u32,
    /// The error of a failed step, else the latest word of an unfinished one.
    pub(crate) last_error: Option<String>,
}

impl From<SystemProgress> for RunSystem {
    fn from(p: SystemProgress) -> RunSystem {
        RunSystem {
            system: p.system,
            state: p.state,
            steps: p.steps,
            done: p.done,
            failed: p.failed,
            waiting: p.waiting,
            held: p.held,
            last_error: p.last_error,
        }
    }
}

/// A run with its steps and where each system's part of it stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RunDetail {
    #[serde(flatten)]
    pub(crate) run: Run,
    /// Per system, in system order.
    pub(crate) systems: Vec<RunSystem>,
    pub(crate) steps: Vec<Step>,
}

impl RunDetail {
    /// The engine's run detail as the API shows it.
    pub(crate) async fn new(
        store: &tenure_store::Store,
        d: tenure_engine::RunDetail,
    ) -> Result<RunDetail, ApiError> {
        let mut c = store.reader().await?;
        let mut runs = Run::list(&mut c, vec![d.run]).await?;
        Ok(RunDetail {
            run: runs.pop().expect("one run in, one out"),
            systems: d.systems.into_iter().map(RunSystem::from).collect(),
            steps: d.steps.into_iter().map(Step::from).collect(),
        })
    }
}

// ---------------------------------------------------------------- events

/// A stored event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Event {
    pub(crate) id: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) person_id: String,
    pub(crate) source: Option<String>,
    pub(crate) run_id: String,
    pub(crate) effective_at: String,
    pub(crate) received_at: String,
    pub(crate) actor: String,
    pub(crate) request_id: Option<String>,
    /// The event as received; `null` once `[retention]` dropped it (see `payload_dropped_at`).
    pub(crate) event: Value,
    /// When the event's payload was dropped under `[retention] event_payloads`.
    pub(crate) payload_dropped_at: Option<String>,
}

impl Event {
    pub(crate) fn new(
        e: tenure_store::EventRow,
        request_id: Option<String>,
    ) -> Result<Event, ApiError> {
        let body = serde_json::from_str(&e.body).map_err(|err| {
            ApiError::internal(format!(
                "the stored body of event {} is not JSON: {err}",
                e.id
            ))
        })?;
        Ok(Event {
            id: e.id,
            kind: e.kind,
            person_id: e.person_id,
            source: e.source,
            run_id: e.run_id,
            effective_at: time(e.effective_at),
            received_at: time(e.received_at),
            actor: e.actor,
            request_id,
            event: body,
            payload_dropped_at: opt_time(e.payload_dropped_at),
        })
    }
}

// ---------------------------------------------------------------- audit

/// An audit entry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AuditEntry {
    pub(crate) seq: i64,
    pub(crate) at: String,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) person_id: Option<String>,
    pub(crate) entitlement: Option<String>,
    pub(crate) system: Option<String>,
    pub(crate) run_id: Option<String>,
    pub(crate) reason: String,
    pub(crate) correlation_id: Option<String>,
    pub(crate) details: Value,
    /// The trace it was written in, when traces are exported; part of the hash when present.
    pub(crate) trace_id: Option<String>,
    pub(crate) prev_hash: String,
    pub(crate) hash: String,
}

impl TryFrom<tenure_core::audit::AuditEntry> for AuditEntry {
    type Error = ApiError;

    fn try_from(e: tenure_core::audit::AuditEntry) -> Result<AuditEntry, ApiError> {
        Ok(AuditEntry {
            details: document(&e.details, &format!("details of audit entry {}", e.seq))?,
            seq: e.seq,
            at: time(e.at_ms),
            actor: e.actor,
            action: e.action,
            person_id: e.person_id,
            entitlement: e.entitlement,
            system: e.system,
            run_id: e.run_id,
            reason: e.reason,
            correlation_id: e.correlation_id,
            trace_id: e.trace_id,
            prev_hash: e.prev_hash,
            hash: e.hash,
        })
    }
}

// ---------------------------------------------------------------- systems

/// A target system: its health, circuit breaker, calls in flight and counters.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct System {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) connector: String,
    /// `ok`, `degraded` or `down`.
    pub(crate) health: Health,
    /// When `health` last changed (or the engine started).
    pub(crate) since: String,
    /// The last failed call or health check.
    pub(crate) last_error: Option<LastError>,
    /// How many of the latest calls failed.
    pub(crate) recent: Recent,
    pub(crate) circuit: Circuit,
    pub(crate) in_flight: usize,
    pub(crate) stats: Option<Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LastError {
    pub(crate) at: String,
    pub(crate) message: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Recent {
    pub(crate) calls: usize,
    pub(crate) failures: usize,
}

/// A circuit breaker's state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "state")]
pub(crate) enum Circuit {
    Closed { failures: u32 },
    Open { until: String },
    HalfOpen,
}

impl Circuit {
    /// The breaker's state in words, for the console.
    pub(crate) fn label(&self) -> String {
        match self {
            Circuit::Closed { failures: 0 } => "closed".into(),
            Circuit::Closed { failures } => format!("closed ({failures} failures in a row)"),
            Circuit::Open { until } => format!("open until {until}"),
            Circuit::HalfOpen => "half open (trying a call)".into(),
        }
    }
}

impl From<CircuitState> for Circuit {
    fn from(c: CircuitState) -> Circuit {
        match c {
            CircuitState::Closed { failures } => Circuit::Closed { failures },
            CircuitState::Open { until_ms } => Circuit::Open {
                until: time(until_ms),
            },
            CircuitState::HalfOpen => Circuit::HalfOpen,
        }
    }
}

impl From<tenure_engine::SystemStatus> for System {
    fn from(s: tenure_engine::SystemStatus) -> System {
        let h = s.health;
        System {
            id: s.id,
            name: s.name,
            connector: s.connector,
            health: h.health,
            since: time(h.since_ms),
            last_error: h.last_error.map(|e| LastError {
                at: time(e.at_ms),
                message: e.message,
            }),
            recent: Recent {
                calls: h.recent_calls,
                failures: h.recent_failures,
            },
            circuit: s.circuit.into(),
            in_flight: s.in_flight,
            stats: s.stats,
        }
    }
}

// ---------------------------------------------------------------- tokens and tasks

/// An API token (never its secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Token {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) scopes: String,
    pub(crate) created_at: String,
    pub(crate) revoked_at: Option<String>,
    pub(crate) person_id: Option<String>,
}

impl From<tenure_store::TokenRow> for Token {
    fn from(t: tenure_store::TokenRow) -> Token {
        Token {
            id: t.id,
            name: t.name,
            scopes: t.scopes,
            created_at: time(t.created_at),
            revoked_at: opt_time(t.revoked_at),
            person_id: t.person_id,
        }
    }
}

/// A task a step waits on.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Task {
    pub(crate) id: String,
    pub(crate) kind: TaskKind,
    pub(crate) system: String,
    pub(crate) team: Option<String>,
    pub(crate) person_id: String,
    pub(crate) action: String,
    pub(crate) entitlement: Option<String>,
    pub(crate) title: String,
    pub(crate) state: TaskState,
    pub(crate) message: Option<String>,
    pub(crate) created_at: String,
    pub(crate) due_at: Option<String>,
    pub(crate) finished_at: Option<String>,
    pub(crate) finished_by: Option<String>,
    /// Still open after its due time.
    pub(crate) overdue: bool,
}

impl Task {
    /// The task as it stands at `now_ms`.
    pub(crate) fn new(t: tenure_store::TaskRow, now_ms: i64) -> Task {
        Task {
            overdue: t.is_overdue(now_ms),
            id: t.id,
            kind: t.kind,
            system: t.system,
            team: t.team,
            person_id: t.person_id,
            action: t.action,
            entitlement: t.entitlement,
            title: t.title,
            state: t.state,
            message: t.message,
            created_at: time(t.created_at),
            due_at: opt_time(t.due_at),
            finished_at: opt_time(t.finished_at),
            finished_by: t.finished_by,
        }
    }
}

// ---------------------------------------------------------------- access requests and approvals

/// An access request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Request {
    pub(crate) id: String,
    pub(crate) person_id: String,
    pub(crate) entitlement: String,
    pub(crate) requester: String,
    pub(crate) justification: String,
    pub(crate) duration_ms: Option<i64>,
    pub(crate) break_glass: bool,
    pub(crate) state: String,
    pub(crate) run_id: String,
    pub(crate) created_at: String,
    pub(crate) decided_at: Option<String>,
    pub(crate) expires_at: Option<String>,
}

impl From<tenure_store::RequestRow> for Request {
    fn from(r: tenure_store::RequestRow) -> Request {
        Request {
            id: r.id,
            person_id: r.person_id,
            entitlement: r.entitlement,
            requester: r.requester,
            justification: r.justification,
            duration_ms: r.duration_ms,
            break_glass: r.break_glass,
            state: r.state.to_string(),
            run_id: r.run_id,
            created_at: time(r.created_at),
            decided_at: opt_time(r.decided_at),
            expires_at: opt_time(r.expires_at),
        }
    }
}

/// An access request with the approvals of its run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RequestDetail {
    pub(crate) request: Request,
    pub(crate) approvals: Vec<ApprovalDetail>,
    /// When policy or separation of duties denied its grant: the policies and rules that decided.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) denied_by: Vec<String>,
}

impl From<tenure_engine::RequestDetail> for RequestDetail {
    fn from(d: tenure_engine::RequestDetail) -> RequestDetail {
        RequestDetail {
            request: d.request.into(),
            approvals: d.approvals.into_iter().map(ApprovalDetail::from).collect(),
            denied_by: d.denied_by,
        }
    }
}

/// An approval: one grant waiting for people, with its chain of stages.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Approval {
    pub(crate) id: String,
    pub(crate) run_id: String,
    pub(crate) step_id: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) person_id: String,
    pub(crate) entitlement: String,
    pub(crate) requester: String,
    pub(crate) state: ApprovalState,
    pub(crate) chain: Chain,
    pub(crate) created_at: String,
    pub(crate) stage_due_at: String,
    pub(crate) deadline_at: String,
    pub(crate) decided_at: Option<String>,
}

impl From<tenure_store::ApprovalRow> for Approval {
    fn from(a: tenure_store::ApprovalRow) -> Approval {
        Approval {
            id: a.id,
            run_id: a.run_id,
            step_id: a.step_id,
            request_id: a.request_id,
            person_id: a.person_id,
            entitlement: a.entitlement,
            requester: a.requester,
            state: a.state,
            chain: a.chain,
            created_at: time(a.created_at),
            stage_due_at: time(a.stage_due_at),
            deadline_at: time(a.deadline_at),
            decided_at: opt_time(a.decided_at),
        }
    }
}

/// A decision on an approval.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Decision {
    pub(crate) stage: i64,
    pub(crate) actor: String,
    pub(crate) on_behalf_of: String,
    pub(crate) decision: String,
    pub(crate) comment: String,
    pub(crate) at: String,
}

/// An approval with its decisions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ApprovalDetail {
    #[serde(flatten)]
    pub(crate) approval: Approval,
    pub(crate) decisions: Vec<Decision>,
}

impl From<tenure_engine::ApprovalDetail> for ApprovalDetail {
    fn from(d: tenure_engine::ApprovalDetail) -> ApprovalDetail {
        ApprovalDetail {
            approval: d.approval.into(),
            decisions: d
                .decisions
                .into_iter()
                .map(|x| Decision {
                    stage: x.stage,
                    actor: x.actor,
                    on_behalf_of: x.on_behalf_of,
                    decision: x.decision,
                    comment: x.comment,
                    at: time(x.at_ms),
                })
                .collect(),
        }
    }
}

/// An approver's substitute for a period.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Delegation {
    pub(crate) id: String,
    pub(crate) delegator: String,
    pub(crate) delegate: String,
    pub(crate) starts_at: String,
    pub(crate) ends_at: String,
    pub(crate) created_at: String,
    pub(crate) revoked_at: Option<String>,
}

impl From<tenure_store::DelegationRow> for Delegation {
    fn from(d: tenure_store::DelegationRow) -> Delegation {
        Delegation {
            id: d.id,
            delegator: d.delegator,
            delegate: d.delegate,
            starts_at: time(d.starts_at),
            ends_at: time(d.ends_at),
            created_at: time(d.created_at),
            revoked_at: opt_time(d.revoked_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(time(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
        assert_eq!(time(-1), "1969-12-31T23:59:59.999Z");
        // Beyond what a calendar holds: the furthest time there is, never a panic.
        assert!(time(i64::MAX).starts_with('+'));
    }

    #[test]
    fn stored_documents_are_json_with_their_times_in_rfc3339() {
        let v = document(
            r#"{"effective_at":1767225600000,"retry_in_ms":250,"steps":[{"expires_at":0,"name":"x"}],"started_at":"kept"}"#,
            "details",
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "effective_at": "2026-01-01T00:00:00.000Z",
                "retry_in_ms": 250,
                "steps": [{ "expires_at": "1970-01-01T00:00:00.000Z", "name": "x" }],
                "started_at": "kept",
            })
        );
        let e = document("not json", "details").unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn a_run_answers_its_note_as_json_and_its_times_in_rfc3339() {
        let mut row = tenure_store::RunRow::pending(
            "r1".into(),
            "p1".into(),
            tenure_core::run::RunKind::Hire,
            tenure_core::run::Priority::Normal,
            1_000,
        );
        row.note = Some(r#"{"skipped":[{"entitlement":"x","template":"t","reason":"r"}]}"#.into());
        row.planned_at = Some(2_000);
        let v = serde_json::to_value(Run::new(row, Some("req-1".into())).unwrap()).unwrap();
        assert_eq!(v["note"]["skipped"][0]["entitlement"], "x");
        assert_eq!(v["effective_at"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["created_at"], "1970-01-01T00:00:01.000Z");
        assert_eq!(v["planned_at"], "1970-01-01T00:00:02.000Z");
        assert_eq!(v["finished_at"], Value::Null);
        assert_eq!(v["request_id"], "req-1");
        // The typed kind and priority go out as the text and number they are stored as.
        assert_eq!(v["kind"], "hire");
        assert_eq!(v["priority"], 10);
    }

    #[test]
    fn an_event_whose_payload_was_dropped_says_when_and_shows_none() {
        let row = |body: &str, dropped: Option<i64>| tenure_store::EventRow {
            id: "e1".into(),
            idem_key: "k".into(),
            source_id: None,
            body_hash: "h".into(),
            kind: "hire".into(),
            person_id: "p1".into(),
            source: None,
            body: body.into(),
            effective_at: 0,
            received_at: 0,
            actor: "hr".into(),
            run_id: "r1".into(),
            payload_dropped_at: dropped,
        };
        let kept = serde_json::to_value(Event::new(row(r#"{"type":"hire"}"#, None), None).unwrap())
            .unwrap();
        assert_eq!(kept["event"]["type"], "hire");
        assert_eq!(kept["payload_dropped_at"], Value::Null);
        let dropped =
            serde_json::to_value(Event::new(row("null", Some(1_000)), None).unwrap()).unwrap();
        assert_eq!(dropped["event"], Value::Null);
        assert_eq!(dropped["payload_dropped_at"], "1970-01-01T00:00:01.000Z");
        assert_eq!(dropped["type"], "hire", "the record stays");
    }

    #[test]
    fn an_open_circuit_says_until_when_as_a_time() {
        let v =
            serde_json::to_value(Circuit::from(CircuitState::Open { until_ms: 1_000 })).unwrap();
        assert_eq!(
            v,
            serde_json::json!({ "state": "open", "until": "1970-01-01T00:00:01.000Z" })
        );
        let v = serde_json::to_value(Circuit::from(CircuitState::Closed { failures: 2 })).unwrap();
        assert_eq!(v, serde_json::json!({ "state": "closed", "failures": 2 }));
    }
}
