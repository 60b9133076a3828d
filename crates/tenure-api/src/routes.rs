//! Routes and handlers.

use crate::auth::{Principal, Scope, hash_token, new_token};
use crate::query::{NoParameters, Query};
use crate::tasks::{complete_task, fail_task, list_tasks, post_hr};
use crate::telemetry::RequestId;
use crate::{ApiError, AppState, OPENAPI, access, views};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;
use tenure_core::event::parse_event;
use tenure_core::run::RunState;
use tenure_engine::{IngestOutcome, Submission};
use tenure_store::NewAudit;

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/events", post(post_event))
        .route("/api/v1/events/{id}", get(get_event))
        .route("/api/v1/people", get(list_people))
        .route("/api/v1/people/{id}", get(get_person))
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/{id}", get(get_run))
        .route("/api/v1/runs/{id}/cancel", post(cancel_run))
        .route("/api/v1/runs/{id}/retry", post(retry_run))
        .route("/api/v1/entitlements", get(list_entitlements))
        .route("/api/v1/clients", get(crate::clients::list_clients))
        .route("/api/v1/clients/{id}", get(crate::clients::get_client))
        .route("/api/v1/engagements", get(crate::clients::list_engagements))
        .route("/api/v1/systems", get(list_systems))
        .route("/api/v1/audit", get(list_audit))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", axum::routing::delete(revoke_token))
        .route("/api/v1/simulate", post(simulate))
        .route("/api/v1/reload", post(reload))
        .route(
            "/api/v1/requests",
            get(access::list_requests).post(access::post_request),
        )
        .route("/api/v1/requests/{id}", get(access::get_request))
        .route("/api/v1/approvals", get(access::list_approvals))
        .route("/api/v1/approvals/{id}", get(access::get_approval))
        .route(
            "/api/v1/approvals/{id}/decision",
            post(access::post_decision),
        )
        .route(
            "/api/v1/delegations",
            get(access::list_delegations).post(access::post_delegation),
        )
        .route(
            "/api/v1/delegations/{id}",
            axum::routing::delete(access::revoke_delegation),
        )
        .route("/api/v1/tasks", get(list_tasks))
        .route("/api/v1/tasks/{id}/complete", post(complete_task))
        .route("/api/v1/tasks/{id}/fail", post(fail_task))
        .route("/api/v1/hr/{source}", post(post_hr))
        .nest("/scim/v2", crate::scim::router())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        // After every route: axum adds the `Allow` header to this answer.
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not allowed on {}; the Allow header lists what is",
            uri.path()
        ),
    )
}

async fn healthz(State(s): State<AppState>) -> Response {
    match s.store().ping().await {
        Ok(()) => Json(json!({ "status": "ok" })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": "unreachable" })),
            )
                .into_response()
        }
    }
}

async fn metrics(State(s): State<AppState>, p: Principal) -> Result<Response, ApiError> {
    p.require(Scope::Read)?;
    crate::tasks::record_task_gauges(&s).await?;
    crate::telemetry::record_gauges(&s).await?;
    let body = s
        .inner
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

// ---------------------------------------------------------------- events

async fn post_event(
    State(s): State<AppState>,
    p: Principal,
    request_id: RequestId,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    p.require(Scope::EventsWrite)?;
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("send the event as application/json, not `{ct}`"),
            ));
        }
    }
    let key = match headers.get("idempotency-key") {
        Some(v) => {
            let k = v
                .to_str()
                .map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))?
                .trim();
            if k.is_empty() || k.len() > 200 {
                return Err(ApiError::invalid(
                    "Idempotency-Key",
                    "must be 1 to 200 characters",
                ));
            }
            Some(k.to_string())
        }
        None => None,
    };
    let event = parse_event(&body).map_err(|e| ApiError::invalid(e.field, e.message))?;
    let outcome = s
        .engine()
        .submit(Submission {
            event,
            idempotency_key: key,
            actor: p.name.clone(),
            request_id: Some(request_id.0),
        })
        .await?;
    match outcome {
        IngestOutcome::Accepted {
            event_id,
            run_id,
            replay,
        } => {
            let span = tracing::Span::current();
            span.record("event_id", tracing::field::display(&event_id));
            span.record("run_id", tracing::field::display(&run_id));
            let mut res = (
                StatusCode::ACCEPTED,
                Json(json!({ "event_id": event_id, "run_id": run_id })),
            )
                .into_response();
            if replay {
                res.headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            Ok(res)
        }
        IngestOutcome::KeyReused { key, event_id } => Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "idempotency_key_reused",
            message: format!(
                "idempotency key `{key}` was already used for a different event ({event_id})"
            ),
            field: Some("Idempotency-Key".into()),
        }),
        IngestOutcome::Refused { field, message } => Err(ApiError::invalid(field, message)),
    }
}

async fn get_event(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Read)?;
    let mut c = s.store().reader().await?;
    let e = tenure_store::get_event(&mut c, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("event `{id}`")))?;
    let request_id = tenure_store::request_ids_of_events(&mut c, &[e.id.as_str()])
        .await?
        .remove(&e.id);
    Ok(Json(json!(views::Event::new(e, request_id)?)))
}

// ---------------------------------------------------------------- people

#[derive(Deserialize)]
struct PeopleQuery {
    status: Option<String>,
    department: Option<String>,
    worker_type: Option<String>,
    /// The manager's person id: their direct reports.
    manager: Option<String>,
    /// People with an active engagement with this client.
    client: Option<String>,
    /// Text in the name or email, ignoring case.
    q: Option<String>,
    limit: Option<i64>,
    after: Option<String>,
}

/// A closed value (`status=active`) parsed, or a 400 naming the parameter and what it may be.
pub(crate) fn parse_param<T: std::str::FromStr>(
    name: &str,
    value: Option<&str>,
) -> Result<Option<T>, ApiError>
where
    T::Err: std::fmt::Display,
{
    value
        .map(|v| v.parse::<T>())
        .transpose()
        .map_err(|e| ApiError::invalid(name, e.to_string()))
}

/// An RFC 3339 time parameter (`since`, `until`) as epoch milliseconds.
pub(crate) fn time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|e| {
                    ApiError::invalid(
                        name,
                        format!(
                            "`{v}` is not an RFC 3339 time such as 2026-01-31T09:00:00Z ({e}); in a URL, write `+` as %2B"
                        ),
                    )
                })
        })
        .transpose()
}

/// A page's size: 100 unless asked, at most 1000.
pub(crate) fn limit(l: Option<i64>) -> Result<i64, ApiError> {
    match l {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid("limit", "must be between 1 and 1000")),
    }
}

async fn list_people(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<PeopleQuery>,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Read)?;
    let filter = tenure_store::PeopleFilter {
        status: parse_param("status", q.status.as_deref())?,
        department: q.department.as_deref(),
        worker_type: parse_param("worker_type", q.worker_type.as_deref())?,
        manager: q.manager.as_deref(),
        client: q.client.as_deref(),
        text: q.q.as_deref(),
        after: q.after.as_deref(),
        limit: limit(q.limit)?,
    };
    let limit = filter.limit;
    let mut c = s.store().reader().await?;
    let people = tenure_store::people_matching(&mut c, &filter).await?;
    let next = (people.len() as i64 == limit)
        .then(|| people.last().map(|p| p.id.clone()))
        .flatten();
    Ok(Json(json!({ "items": people, "next_after": next })))
}

#[derive(Serialize)]
struct GrantView {
    entitlement: String,
    system: String,
    source: tenure_core::GrantSource,
    source_ref: String,
    state: tenure_core::GrantState,
    granted_at: Option<String>,
    expires_at: Option<String>,
}

async fn get_person(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Read)?;
    let mut c = s.store().reader().await?;
    let person = tenure_store::get_person(&mut c, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("person `{id}`")))?;
    let accounts = tenure_store::accounts_of(&mut c, &id).await?;
    let grants: Vec<GrantView> = tenure_store::grants_of(&mut c, &id)
        .await?
        .into_iter()
        .map(|(g, system)| GrantView {
            entitlement: g.entitlement,
            system,
            source: g.source,
            source_ref: g.source_ref,
            state: g.state,
            granted_at: g.granted_at.map(views::time),
            expires_at: g.expires_at.map(views::time),
        })
        .collect();
    let engagements = tenure_store::engagements_of(&mut c, &id).await?;
    let mut v = serde_json::to_value(&person).map_err(ApiError::internal)?;
    v["accounts"] = json!(
        accounts
            .iter()
            .map(|a| json!({ "system": a.system, "state": a.state }))
            .collect::<Vec<_>>()
    );
    v["grants"] = json!(grants);
    v["engagements"] = json!(engagements);
    Ok(Json(v))
}

// ---------------------------------------------------------------- runs

#[derive(Deserialize)]
struct RunQuery {
    state: Option<String>,
    person: Option<String>,
    /// An event type, `request`, `expiry` or `reconcile`.
    kind: Option<String>,
    /// Runs created at or after this RFC 3339 time.
    since: Option<String>,
    /// Runs created before this RFC 3339 time.
    until: Option<String>,
    before: Option<String>,
    limit: Option<i64>,
}

async fn list_runs(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<RunQuery>,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Read)?;
    let limit = limit(q.limit)?;
    if let Some(kind) = q.kind.as_deref()
        && !tenure_engine::run_kinds().any(|k| k == kind)
    {
        let kinds: Vec<&str> = tenure_engine::run_kinds().collect();
        return Err(ApiError::invalid(
            "kind",
            format!(
                "unknown run kind `{kind}`, expected one of: {}",
                kinds.join(", ")
            ),
        ));
    }
    let filter = tenure_store::RunFilter {
        state: parse_param::<RunState>("state", q.state.as_deref())?,
        person: q.person.as_deref(),
        kind: q.kind.as_deref(),
        since: time_param("since", q.since.as_deref())?,
        until: time_param("until", q.until.as_deref())?,
        before: q.before.as_deref(),
        limit,
    };
    let mut c = s.store().reader().await?;
    let runs = tenure_store::runs_matching(&mut c, &filter).await?;
    let next = (runs.len() as i64 == limit)
        .then(|| runs.last().map(|r| r.id.clone()))
        .flatten();
    let runs = views::Run::list(&mut c, runs).await?;
    Ok(Json(json!({ "items": runs, "next_before": next })))
}

#[derive(Deserialize)]
struct WaitQuery {
    /// Long-poll: hold the answer up to this long (max 30 s) until the run has ended.
    wait_ms: Option<u64>,
}

async fn get_run(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Read)?;
    let engine = s.engine();
    if let Some(wait) = q.wait_ms {
        let mut rx = engine.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait.min(30_000));
        let detail = engine.run_detail(&id).await?;
        if !detail.run.state.is_terminal() {
            loop {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Ok(f)) if f.run_id == id => break,
                    Ok(Ok(_)) => continue,
                    // Lagged: some notices were dropped; look at the run itself.
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                        if engine.run_detail(&id).await?.run.state.is_terminal() {
                            break;
                        }
                    }
                    Ok(Err(_)) | Err(_) => break,
                }
            }
        }
    }
    let detail = engine.run_detail(&id).await?;
    Ok(Json(json!(views::RunDetail::new(s.store(), detail).await?)))
}

async fn cancel_run(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Admin)?;
    let d = s.engine().cancel_run(&id, &p.name).await?;
    Ok(Json(json!(views::RunDetail::new(s.store(), d).await?)))
}

async fn retry_run(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Admin)?;
    let d = s.engine().retry_run(&id, &p.name).await?;
    Ok(Json(json!(views::RunDetail::new(s.store(), d).await?)))
}

// ---------------------------------------------------------------- catalog

#[derive(Deserialize)]
struct EntitlementQuery {
    system: Option<String>,
    risk: Option<String>,
    client: Option<String>,
    /// The owner (a person id or a team name).
    owner: Option<String>,
}

/// The catalog is configuration, held in memory: filtered there, whole (it is bounded by the
/// configuration's size).
async fn list_entitlements(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<EntitlementQuery>,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Read)?;
    let risk = parse_param::<tenure_core::Risk>("risk", q.risk.as_deref())?;
    let config = s.engine().config();
    let is =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    let items: Vec<_> = config
        .entitlements
        .values()
        .filter(|e| {
            is(&q.system, Some(&e.system))
                && risk.is_none_or(|r| e.risk == r)
                && is(&q.client, e.client.as_deref())
                && is(&q.owner, e.owner.as_deref())
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn list_systems(
    State(s): State<AppState>,
    p: Principal,
    Query(_): Query<NoParameters>,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Read)?;
    let items: Vec<views::System> = s
        .engine()
        .systems()
        .await
        .into_iter()
        .map(views::System::from)
        .collect();
    Ok(Json(json!({ "items": items })))
}

// ---------------------------------------------------------------- audit

#[derive(Deserialize)]
struct AuditQuery {
    after: Option<i64>,
    person: Option<String>,
    /// The token name or component that acted.
    actor: Option<String>,
    action: Option<String>,
    system: Option<String>,
    entitlement: Option<String>,
    /// Entries written at or after this RFC 3339 time.
    since: Option<String>,
    /// Entries written before this RFC 3339 time.
    until: Option<String>,
    limit: Option<i64>,
}

async fn list_audit(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Read)?;
    let limit = limit(q.limit)?;
    let filter = tenure_store::AuditFilter {
        after: q.after.unwrap_or(0),
        person: q.person.as_deref(),
        actor: q.actor.as_deref(),
        action: q.action.as_deref(),
        system: q.system.as_deref(),
        entitlement: q.entitlement.as_deref(),
        since: time_param("since", q.since.as_deref())?,
        until: time_param("until", q.until.as_deref())?,
        limit,
    };
    let mut c = s.store().reader().await?;
    let items = tenure_store::audit_matching(&mut c, &filter).await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|e| e.seq))
        .flatten();
    let items = items
        .into_iter()
        .map(views::AuditEntry::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "items": items, "next_after": next })))
}

// ---------------------------------------------------------------- tokens

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    scopes: Vec<String>,
    /// The person the token acts as when it asks for or approves access.
    #[serde(default)]
    person_id: Option<String>,
}

async fn create_token(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    p.require(Scope::Admin)?;
    let req: NewToken =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid("body", e.to_string()))?;
    let scopes = parse_scopes(&req.scopes)?;
    check_token_name(&req.name).map_err(|e| ApiError::invalid("name", e))?;
    if let Some(person) = &req.person_id {
        let mut c = s.store().reader().await?;
        if tenure_store::get_person(&mut c, person).await?.is_none() {
            return Err(ApiError::invalid(
                "person_id",
                format!("no person `{person}`"),
            ));
        }
    }
    let (row, secret) = issue_token(
        s.store(),
        &req.name,
        &scopes,
        req.person_id.as_deref(),
        &p.name,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "id": row.id, "name": row.name, "scopes": row.scopes, "person_id": row.person_id, "token": secret }),
        ),
    )
        .into_response())
}

fn parse_scopes(raw: &[String]) -> Result<Vec<Scope>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::invalid("scopes", "name at least one scope"));
    }
    raw.iter()
        .map(|s| {
            s.parse::<Scope>()
                .map_err(|e| ApiError::invalid("scopes", e))
        })
        .collect()
}

/// Checks a token's name (the actor it shows as in the audit trail): not blank, no NUL, at
/// most [`tenure_core::text::MAX_NAME`] characters.
pub fn check_token_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("must not be empty".into());
    }
    tenure_core::text::check(name, tenure_core::text::MAX_NAME).map_err(|e| e.to_string())
}

/// Creates a token and returns its row and its secret (shown once).
pub async fn issue_token(
    store: &tenure_store::Store,
    name: &str,
    scopes: &[Scope],
    person_id: Option<&str>,
    actor: &str,
) -> Result<(tenure_store::TokenRow, String), tenure_store::StoreError> {
    let secret = new_token();
    let now = chrono::Utc::now().timestamp_millis();
    let row = tenure_store::TokenRow {
        id: format!("tok_{}", &uuid::Uuid::now_v7().simple().to_string()[..20]),
        name: name.to_string(),
        scopes: scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        created_at: now,
        revoked_at: None,
        person_id: person_id.map(str::to_string),
    };
    let mut tx = store.begin().await?;
    tenure_store::insert_token(tx.conn(), &row, &hash_token(&secret)).await?;
    tx.audit(NewAudit {
        at_ms: now,
        actor: actor.to_string(),
        action: "token.created".into(),
        reason: format!("token `{}` for {}", row.id, row.name),
        details: json!({ "token_id": row.id, "name": row.name, "scopes": row.scopes, "person_id": row.person_id }),
        ..Default::default()
    });
    tx.commit().await?;
    Ok((row, secret))
}

/// What a revocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// The token no longer works.
    Revoked,
    /// There is no live token with that id.
    NoSuchToken,
    /// Refused: it is the last live token holding `admin`, and without one nobody could manage
    /// tokens through the API again.
    LastAdmin,
}

/// Revokes a token, unless it is the last live token holding `admin`.
pub async fn revoke_token_by_id(
    store: &tenure_store::Store,
    id: &str,
    actor: &str,
) -> Result<Revocation, tenure_store::StoreError> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut tx = store.begin().await?;
    let admins = tenure_store::lock_live_admin_tokens(tx.conn()).await?;
    if admins.len() == 1 && admins[0] == id {
        tx.rollback().await?;
        return Ok(Revocation::LastAdmin);
    }
    let done = tenure_store::revoke_token(tx.conn(), id, now).await?;
    if done {
        tx.audit(NewAudit {
            at_ms: now,
            actor: actor.to_string(),
            action: "token.revoked".into(),
            reason: format!("token `{id}` revoked"),
            details: json!({ "token_id": id }),
            ..Default::default()
        });
    }
    tx.commit().await?;
    Ok(if done {
        Revocation::Revoked
    } else {
        Revocation::NoSuchToken
    })
}

async fn list_tokens(
    State(s): State<AppState>,
    p: Principal,
    Query(_): Query<NoParameters>,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Admin)?;
    let mut c = s.store().reader().await?;
    let items: Vec<views::Token> = tenure_store::list_tokens(&mut c)
        .await?
        .into_iter()
        .map(views::Token::from)
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn revoke_token(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    p.require(Scope::Admin)?;
    match revoke_token_by_id(s.store(), &id, &p.name).await? {
        Revocation::Revoked => {
            s.tokens().clear();
            Ok(StatusCode::NO_CONTENT)
        }
        Revocation::NoSuchToken => Err(ApiError::not_found(format!("live token `{id}`"))),
        Revocation::LastAdmin => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "token `{id}` is the last live token holding `admin`: create another admin token before revoking it"
            ),
        )),
    }
}

/// `POST /api/v1/simulate`: what one event, or a changed set of rule files, would do.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulateBody {
    #[serde(default)]
    event: Option<Value>,
    #[serde(default)]
    config: Option<String>,
    /// Laid over the folder's templates by name; `null` removes one.
    #[serde(default)]
    templates: Option<std::collections::BTreeMap<String, Option<String>>>,
    /// Laid over the folder's policies by name; `null` removes one.
    #[serde(default)]
    policies: Option<std::collections::BTreeMap<String, Option<String>>>,
    #[serde(default)]
    limit: Option<usize>,
}

/// The most plans one what-if lists (totals always count everyone).
const SIMULATE_MAX_LIMIT: usize = 10_000;

async fn simulate(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Read)?;
    let body: SimulateBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid("body", format!("not a what-if request: {e}")))?;
    let limit = body.limit.unwrap_or(100);
    if limit > SIMULATE_MAX_LIMIT {
        return Err(ApiError::invalid(
            "limit",
            format!("at most {SIMULATE_MAX_LIMIT} plans are listed; totals count everyone"),
        ));
    }
    let files = crate::RuleFiles {
        config: body.config,
        templates: body.templates,
        policies: body.policies,
    };
    files
        .check_names()
        .map_err(|e| ApiError::invalid(e.field, e.message))?;
    let started = std::time::Instant::now();
    let result = match (body.event, files.is_empty()) {
        (Some(_), false) => {
            return Err(ApiError::invalid(
                "event",
                "ask about one event or about changed rule files, not both",
            ));
        }
        (Some(event), true) => {
            let raw = serde_json::to_vec(&event).unwrap_or_default();
            let event = parse_event(&raw)
                .map_err(|e| ApiError::invalid(format!("event.{}", e.field), e.message))?;
            s.engine()
                .what_if_event(&event)
                .await
                .map_err(|e| match e {
                    tenure_engine::EngineError::Conflict(m) => ApiError::invalid("event", m),
                    other => other.into(),
                })?
        }
        (None, true) => {
            return Err(ApiError::invalid(
                "body",
                "give `event`, or rule files (`config`, `templates`, `policies`) to compare with the rules in force",
            ));
        }
        (None, false) => {
            let (config, policy) = load_rules(&s, &files)?;
            let rules = tenure_engine::Rules {
                config: std::sync::Arc::new(config),
                policy: std::sync::Arc::new(policy),
                label: "what-if".into(),
            };
            s.engine().what_if(&rules, limit).await?
        }
    };
    let mut v = serde_json::to_value(result).map_err(ApiError::internal)?;
    v["elapsed_ms"] = json!(started.elapsed().as_millis() as u64);
    Ok(Json(v))
}

fn load_rules(
    s: &AppState,
    files: &crate::RuleFiles,
) -> Result<
    (
        tenure_core::config::Config,
        tenure_engine::tenure_policy::PolicyEngine,
    ),
    ApiError,
> {
    let loader = s.rules_loader().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_available",
            "this server was started without a configuration folder to read rules from",
        )
    })?;
    loader(files).map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_rules", m))
}

/// `POST /api/v1/reload`: re-reads the configuration folder and swaps rules, or keeps the old
/// ones and says why.
async fn reload(State(s): State<AppState>, p: Principal) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Admin)?;
    let (config, policy) = load_rules(&s, &crate::RuleFiles::default())?;
    let reloaded = s.engine().reload(config, policy, &p.name).await?;
    Ok(Json(
        serde_json::to_value(reloaded).map_err(ApiError::internal)?,
    ))
}
