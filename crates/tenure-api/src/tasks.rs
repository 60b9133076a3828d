//! Handlers for tasks (manual steps and webhook completion callbacks) and HR webhooks.

use crate::auth::{Principal, Scope};
use crate::bodies::{HrAccepted, HrEvent, HrSkipped, TaskList};
use crate::openapi::{ErrorBody, Forbidden, Internal, InvalidQuery, Unauthorized, Unavailable};
use crate::path::Path;
use crate::query::{Query, limit};
use crate::telemetry::RequestId;
use crate::{ApiError, AppState, views};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tenure_core::hr::Mapped;
use tenure_engine::{IngestOutcome, Submission};
use tenure_store::{NewAudit, TaskState};
use utoipa::{IntoParams, ToSchema};

/// What the `state` of a task listing may be.
fn task_states() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["open", "done", "failed", "cancelled", "all"]))
        .default(Some("open".into()))
        .build()
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TaskQuery {
    /// `open` (default), `done`, `failed`, `cancelled` or `all`.
    #[param(schema_with = task_states)]
    state: Option<String>,
    /// Only this team's tasks.
    team: Option<String>,
    /// The most tasks listed.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

/// Tasks: manual steps for a team, and webhook completions awaited.
///
/// Oldest first. Requires `read`.
#[utoipa::path(
    get,
    path = "/api/v1/tasks",
    tag = "tasks",
    security(("bearerAuth" = ["read"])),
    params(TaskQuery),
    responses(
        (status = 200, description = "The tasks.", body = TaskList),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn list_tasks(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<TaskQuery>,
) -> Result<Json<TaskList>, ApiError> {
    p.require(Scope::Read)?;
    let state = match q.state.as_deref().unwrap_or("open") {
        "open" => Some(TaskState::Open),
        "done" => Some(TaskState::Done),
        "failed" => Some(TaskState::Failed),
        "cancelled" => Some(TaskState::Cancelled),
        "all" => None,
        other => {
            return Err(ApiError::invalid(
                "state",
                format!("`{other}` is not one of open, done, failed, cancelled, all"),
            ));
        }
    };
    let limit = limit(q.limit)?;
    let now = s.engine().clock().now_ms();
    let mut c = s.store().reader().await?;
    let tasks = tenure_store::list_tasks(&mut c, state, q.team.as_deref(), limit).await?;
    Ok(Json(TaskList {
        tasks: tasks
            .into_iter()
            .map(|t| views::Task::new(t, now))
            .collect(),
    }))
}

/// How a task was finished.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Finish {
    /// A note (complete) or the reason (fail; required there); `reason` is taken too.
    #[serde(alias = "reason")]
    message: Option<String>,
}

/// Complete a task: its step succeeds.
///
/// The body, a note, may be empty. Requires `tasks:write`.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/complete",
    tag = "tasks",
    security(("bearerAuth" = ["tasks:write"])),
    params(("id" = String, Path, description = "The task's id (its step's operation id).")),
    request_body(content = Option<Finish>, description = "An optional note; the body may be empty."),
    responses(
        (status = 200, description = "The task, done.", body = views::Task),
        (status = 400, description = "The body is not `{\"message\": \"...\"}` (`invalid_request`).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such task (`not_found`).", body = ErrorBody),
        (status = 409, description = "The task is already done, failed or cancelled (`conflict`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn complete_task(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    finish(s, p, id, body, TaskState::Done).await
}

/// Fail a task: its step fails, and so does its run.
///
/// Say why in `message`. Requires `tasks:write`.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/fail",
    tag = "tasks",
    security(("bearerAuth" = ["tasks:write"])),
    params(("id" = String, Path, description = "The task's id (its step's operation id).")),
    request_body(content = Finish, description = "Why the task could not be done: `message` (or `reason`) is required."),
    responses(
        (status = 200, description = "The task, failed.", body = views::Task),
        (status = 400, description = "The body is not `{\"message\": \"...\"}`, or says no reason (`invalid_request`).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such task (`not_found`).", body = ErrorBody),
        (status = 409, description = "The task is already done, failed or cancelled (`conflict`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn fail_task(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    finish(s, p, id, body, TaskState::Failed).await
}

async fn finish(
    s: AppState,
    p: Principal,
    id: String,
    body: Bytes,
    state: TaskState,
) -> Result<Response, ApiError> {
    p.require(Scope::TasksWrite)?;
    let f: Finish = if body.iter().all(u8::is_ascii_whitespace) {
        Finish::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::invalid("body", format!("must be {{\"message\": \"...\"}}: {e}"))
        })?
    };
    let message = f
        .message
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty());
    if let Some(m) = &message {
        tenure_core::text::check(m, tenure_core::text::MAX_TEXT)
            .map_err(|e| ApiError::invalid("message", e.to_string()))?;
    }
    if state == TaskState::Failed && message.is_none() {
        return Err(ApiError::invalid(
            "message",
            "say why the task could not be done",
        ));
    }
    let now = s.engine().clock().now_ms();
    let mut tx = s.store().begin().await?;
    let Some((before, changed)) =
        tenure_store::finish_task(tx.conn(), &id, state, message.as_deref(), &p.name, now).await?
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("task `{id}` not found"),
        ));
    };
    if !changed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("task `{id}` is already {}", before.state.as_str()),
        ));
    }
    tx.audit(NewAudit {
        at_ms: now,
        actor: p.name.clone(),
        action: format!("task.{}", if state == TaskState::Done { "completed" } else { "failed" }),
        person_id: Some(before.person_id.clone()),
        entitlement: before.entitlement.clone(),
        system: Some(before.system.clone()),
        reason: message.clone().unwrap_or_else(|| before.title.clone()),
        correlation_id: Some(id.clone()),
        details: json!({ "kind": before.kind, "team": before.team, "overdue": before.is_overdue(now) }),
        ..Default::default()
    });
    tx.commit().await?;
    s.engine().wake();
    let mut c = s.store().reader().await?;
    let task = tenure_store::get_task(&mut c, &id).await?;
    Ok(Json(task.map(|t| views::Task::new(t, now))).into_response())
}

/// Send an HR system's change notice.
///
/// The payload is the HR system's own JSON, mapped to lifecycle events by `[hr.<source>]` in
/// tenure.toml. Every change is mapped and checked before any is stored: a bad one refuses
/// the whole payload with nothing stored. Requires `events:write`.
#[utoipa::path(
    post,
    path = "/api/v1/hr/{source}",
    tag = "hr",
    security(("bearerAuth" = ["events:write"])),
    params(("source" = String, Path, description = "The HR mapping's name (`[hr.<source>]`).")),
    request_body(content = Object, description = "The HR system's payload, as it sends it."),
    responses(
        (status = 202, description = "Every change stored as an event, or skipped by the mapping.", body = HrAccepted),
        (status = 400, description = "The payload is not JSON, or a change does not map to a valid event (`invalid_request`); `field` names the JSON path at fault. Nothing is stored.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such HR mapping is configured (`not_found`).", body = ErrorBody),
        (status = 422, description = "A change's id was already used by a different event (`idempotency_key_reused`).", body = ErrorBody),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn post_hr(
    State(s): State<AppState>,
    p: Principal,
    request_id: RequestId,
    Path(source): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    p.require(Scope::EventsWrite)?;
    let Some(mapping) = s.engine().config().hr.get(&source).cloned() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no HR mapping `{source}` is configured ([hr.{source}] in tenure.toml)"),
        ));
    };
    let payload: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid("body", format!("is not JSON: {e}")))?;
    let mapped = mapping
        .map(&payload)
        .map_err(|e| ApiError::invalid(e.field, e.message))?;
    let batch: Vec<&tenure_core::event::EventInput> = mapped
        .iter()
        .filter_map(|m| match m {
            Mapped::Event(e) => Some(&**e),
            Mapped::Skipped { .. } => None,
        })
        .collect();
    let verdicts = s.engine().vet(&batch).await?;
    let refused = mapped
        .iter()
        .enumerate()
        .filter(|(_, m)| matches!(m, Mapped::Event(_)))
        .zip(verdicts)
        .find_map(|((i, _), v)| v.err().map(|e| (i, e)));
    if let Some((i, e)) = refused {
        return Err(ApiError::invalid(
            e.field,
            format!("change {i}: {}", e.message),
        ));
    }
    let mut events = Vec::new();
    let mut skipped = Vec::new();
    for (i, m) in mapped.into_iter().enumerate() {
        match m {
            Mapped::Event(e) => {
                let outcome = s
                    .engine()
                    .submit(Submission {
                        event: *e,
                        idempotency_key: None,
                        actor: p.name.clone(),
                        request_id: Some(request_id.0.clone()),
                        trace: tenure_store::trace::current(),
                    })
                    .await?;
                match outcome {
                    IngestOutcome::Accepted {
                        event_id,
                        run_id,
                        replay,
                    } => events.push(HrEvent {
                        index: i,
                        event_id,
                        run_id,
                        replayed: replay,
                    }),
                    IngestOutcome::KeyReused { key, event_id } => {
                        return Err(ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "idempotency_key_reused",
                            format!(
                                "change {i}: id `{key}` was already used by event {event_id} with a different body"
                            ),
                        ));
                    }
                    // Checked above; someone's hire cancelled meanwhile can still get here.
                    IngestOutcome::Refused { field, message } => {
                        return Err(ApiError::invalid(field, format!("change {i}: {message}")));
                    }
                }
            }
            Mapped::Skipped { reason } => skipped.push(HrSkipped { index: i, reason }),
        }
    }
    Ok((StatusCode::ACCEPTED, Json(HrAccepted { events, skipped })).into_response())
}

/// Sets the `tenure_tasks_open` and `tenure_tasks_overdue` gauges (per team) before
/// `GET /metrics` renders: an SLA missed shows up without anyone listing tasks.
pub(crate) async fn record_task_gauges(s: &AppState) -> Result<(), ApiError> {
    let now = s.engine().clock().now_ms();
    let mut c = s.store().reader().await?;
    let open = tenure_store::list_tasks(&mut c, Some(TaskState::Open), None, 100_000).await?;
    let mut per_team: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    // Every configured team gets a value, so a queue that empties reads 0, not its last count.
    for sys in s.engine().config().systems.values() {
        if sys.connector == "manual"
            && let Some(team) = sys.settings.get("team").and_then(|t| t.as_str())
        {
            per_team.entry(team.to_string()).or_default();
        }
    }
    per_team.entry("callback".into()).or_default();
    for t in &open {
        let e = per_team
            .entry(t.team.clone().unwrap_or_else(|| "callback".into()))
            .or_default();
        e.0 += 1;
        if t.is_overdue(now) {
            e.1 += 1;
        }
    }
    for (team, (n, late)) in per_team {
        metrics::gauge!("tenure_tasks_open", "team" => team.clone()).set(n as f64);
        metrics::gauge!("tenure_tasks_overdue", "team" => team).set(late as f64);
    }
    Ok(())
}
