//! Routes and handlers.
//!
//! Every route is registered through `utoipa_axum::routes!`, from the handler's own
//! `#[utoipa::path]` description: the router serves exactly what the OpenAPI document says.

use crate::auth::{Principal, Scope, hash_token, new_token};
use crate::bodies::{
    Accepted, AccountView, AuditPage, CreatedToken, DatabaseState, EntitlementList, ForgottenView,
    GrantView, GroupWhatIfAnswer, HealthState, PeoplePage, PersonDetail, RunPage, ServiceHealth,
    SystemList, TokenList, WhatIfAnswer,
};
use crate::openapi::{ErrorBody, Forbidden, Internal, InvalidQuery, Unauthorized, Unavailable};
use crate::path::Path;
use crate::query::{NoParameters, Query, choice, limit, parse_param, time_param};
use crate::telemetry::RequestId;
use crate::{ApiError, AppState, access, reconciliations, tasks, views};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;
use tenure_core::event::{EventInput, parse_event};
use tenure_core::run::{RunKind, RunState};
use tenure_engine::{IngestOutcome, Submission};
use tenure_store::NewAudit;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use views::{Event, RunDetail};

/// Every route of the API with its description. Handlers of one path share a `routes!`.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
        .routes(routes!(post_event))
        .routes(routes!(get_event))
        .routes(routes!(list_people))
        .routes(routes!(get_person))
        .routes(routes!(person_evidence))
        .routes(routes!(forget_person))
        .routes(routes!(sla_report))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(cancel_run))
        .routes(routes!(retry_run))
        .routes(routes!(list_entitlements))
        .routes(routes!(crate::clients::list_clients))
        .routes(routes!(crate::clients::get_client))
        .routes(routes!(crate::clients::list_engagements))
        .routes(routes!(list_systems))
        .routes(routes!(list_audit))
        .routes(routes!(crate::chain::audit_verification))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(simulate))
        .routes(routes!(simulate_group))
        .routes(routes!(reload))
        .routes(routes!(access::list_requests, access::post_request))
        .routes(routes!(access::get_request))
        .routes(routes!(access::list_approvals))
        .routes(routes!(access::get_approval))
        .routes(routes!(access::post_decision))
        .routes(routes!(access::list_delegations, access::post_delegation))
        .routes(routes!(access::revoke_delegation))
        .routes(routes!(tasks::list_tasks))
        .routes(routes!(tasks::complete_task))
        .routes(routes!(tasks::fail_task))
        .routes(routes!(tasks::post_hr))
        .routes(routes!(
            reconciliations::list_reconciliations,
            reconciliations::post_reconciliation
        ))
        .routes(routes!(reconciliations::list_findings))
        .routes(routes!(reconciliations::get_reconciliation))
        .routes(routes!(
            crate::reviews::list_campaigns,
            crate::reviews::post_campaign
        ))
        .routes(routes!(crate::reviews::get_campaign))
        .routes(routes!(crate::reviews::close_campaign))
        .routes(routes!(crate::reviews::list_items))
        .routes(routes!(crate::reviews::post_decisions))
        .routes(routes!(crate::reviews::export_campaign))
}

/// The document as JSON, built once.
pub(crate) fn document_json() -> &'static str {
    static JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .expect("the OpenAPI document serializes")
    })
}

/// The OpenAPI document of [`api`]. Every operation may answer `400` for a query parameter
/// it does not take ([`documented_parameters_only`]), so every one lists it.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{Ref, RefOr};
    let mut doc = api().into_openapi();
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in operations.into_iter().flatten() {
            op.responses
                .responses
                .entry("400".to_string())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name("InvalidQuery")));
        }
    }
    doc
}

/// The API with the SCIM server and `pages` (the console, which calls this module's
/// handlers, so the caller hands it in rather than this module naming it).
pub(crate) fn router(state: AppState, pages: Router<AppState>) -> Router {
    let (api, _) = api().split_for_parts();
    api.route_layer(axum::middleware::from_fn(documented_parameters_only))
        .nest("/scim/v2", crate::scim::router())
        .merge(pages)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        // After every route: axum adds the `Allow` header to this answer.
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Refuses a query parameter the operation's description does not list, on every route, so a
/// misspelt filter or an option an endpoint does not have is never silently ignored (the
/// `Query` extractor does the same for the handlers that take parameters).
async fn documented_parameters_only(
    path: axum::extract::MatchedPath,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(query) = req.uri().query()
        && let Some(known) = query_parameters(path.as_str(), req.method())
        && let Err(e) = crate::query::unknown_parameter(query, known)
    {
        return e.into_response();
    }
    next.run(req).await
}

/// The query parameters the document lists for an operation (`None` for one it does not
/// describe).
fn query_parameters(path: &str, method: &axum::http::Method) -> Option<&'static [String]> {
    // Route template, then method: looked up by borrowed keys, no allocation per request.
    type Known = std::collections::HashMap<String, std::collections::HashMap<String, Vec<String>>>;
    static KNOWN: std::sync::OnceLock<Known> = std::sync::OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        let doc: Value =
            serde_json::from_str(document_json()).expect("the OpenAPI document is JSON");
        let mut known = Known::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let names = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str().map(str::to_string))
                    .collect();
                known
                    .entry(path.clone())
                    .or_default()
                    .insert(method.to_ascii_uppercase(), names);
            }
        }
        known
    });
    known.get(path)?.get(method.as_str()).map(Vec::as_slice)
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

/// Whether the server can serve: the database answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "service",
    responses(
        (status = 200, description = "The database answers.", body = ServiceHealth,
            example = json!({ "status": "ok" })),
        (status = 503, description = "The database does not answer.", body = ServiceHealth,
            example = json!({ "status": "unavailable", "database": "unreachable" })),
    ),
)]
async fn healthz(State(s): State<AppState>) -> (StatusCode, Json<ServiceHealth>) {
    match s.store().ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(ServiceHealth {
                status: HealthState::Ok,
                database: None,
            }),
        ),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(ServiceHealth {
                    status: HealthState::Unavailable,
                    database: Some(DatabaseState::Unreachable),
                }),
            )
        }
    }
}

/// Prometheus metrics.
///
/// Run, step and connector histograms and counters, open and overdue tasks per team, and how
/// the server's check of the audit chain stands, in the Prometheus text format. Requires `read`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, description = "The metrics, in the Prometheus text format.", body = String,
            content_type = "text/plain; version=0.0.4"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
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

/// This document.
///
/// The OpenAPI 3.1 description of this API, generated from the server's own handlers and
/// types. Needs no token.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "service",
    responses(
        (status = 200, description = "The OpenAPI document.", body = Object),
    ),
)]
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}

// ---------------------------------------------------------------- events

/// Send a lifecycle event.
///
/// Validates the event, stores it durably together with a `pending` run (and, when it is due
/// now, the run's plan), and answers once the transaction is on disk. The run then proceeds
/// on its own; follow it with `GET /api/v1/runs/{id}?wait_ms=...`.
///
/// Idempotency: the `Idempotency-Key` header, or else the event's own `id`, identifies the
/// event. Sending the same key with the same event again answers 202 with the first
/// `event_id` and `run_id` and the header `Idempotent-Replayed: true`; the same key with a
/// different event is refused with 422. Events of one person apply in order of effect; a
/// `leave` overtakes the person's unfinished runs. Requires `events:write`.
#[utoipa::path(
    post,
    path = "/api/v1/events",
    tag = "events",
    security(("bearerAuth" = ["events:write"])),
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 200,
            pattern = r"^[\x21-\x7e]([\t\x20-\x7e]*[\x21-\x7e])?$",
            description = "1 to 200 visible ASCII characters (inner spaces allowed). Defaults to the event's `id`, if it has one."),
    ),
    request_body(content = EventInput, description = "The event. Sent without `Content-Type`, the body is read as JSON too."),
    responses(
        (status = 202, description = "Stored (or stored before, for a replay).", body = Accepted,
            headers(("Idempotent-Replayed" = String, description = "`true` when the answer replays an event already stored under this key."))),
        (status = 400, description = "The body is not a valid event (`invalid_request`); `field` names the JSON path at fault (`person.email`, `engagement`, `type`, ...), `body` for malformed JSON, or `Idempotency-Key` for a bad header. Nothing is stored.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 415, description = "`Content-Type` is present and is neither `application/json` nor a `+json` type (`unsupported_media_type`).", body = ErrorBody),
        (status = 422, description = "The idempotency key was already used for a different event (`idempotency_key_reused`).", body = ErrorBody),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
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
            trace: tenure_store::trace::current(),
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
            let mut res =
                (StatusCode::ACCEPTED, Json(Accepted { event_id, run_id })).into_response();
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

/// A stored event.
///
/// The event as received, with tenure's id, the run it started and who sent it. Requires
/// `read`.
#[utoipa::path(
    get,
    path = "/api/v1/events/{id}",
    tag = "events",
    security(("bearerAuth" = ["read"])),
    params(("id" = String, Path, description = "tenure's id for the event (`event_id`).")),
    responses(
        (status = 200, description = "The event.", body = Event),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such event (`not_found`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
async fn get_event(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Event>, ApiError> {
    p.require(Scope::Read)?;
    let mut c = s.store().reader().await?;
    let e = tenure_store::get_event(&mut c, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("event `{id}`")))?;
    let request_id = tenure_store::request_ids_of_events(&mut c, &[e.id.as_str()])
        .await?
        .remove(&e.id);
    Ok(Json(Event::new(e, request_id)?))
}

// ---------------------------------------------------------------- people

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PeopleQuery {
    /// Only people in this state (`active`, `on_leave`, `terminated`, ...).
    status: Option<String>,
    /// Only people of this department.
    department: Option<String>,
    /// Only people of this worker type.
    worker_type: Option<String>,
    /// The manager's person id: their direct reports.
    manager: Option<String>,
    /// People with an active engagement with this client.
    client: Option<String>,
    /// Text to find in the name or email, ignoring case: each word must begin a word of
    /// either (with personal data sealed, the default), or the text appear anywhere in them
    /// (a store kept in clear).
    q: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
    /// The `next_after` of the page before.
    after: Option<String>,
}

/// People, in id order.
///
/// Requires `read`.
#[utoipa::path(
    get,
    path = "/api/v1/people",
    tag = "people",
    security(("bearerAuth" = ["read"])),
    params(PeopleQuery),
    responses(
        (status = 200, description = "A page of people.", body = PeoplePage),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn list_people(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<PeopleQuery>,
) -> Result<Json<PeoplePage>, ApiError> {
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
    Ok(Json(PeoplePage {
        items: people,
        next_after: next,
    }))
}

/// The evidence of a person's latest leave: when it was received and took effect; for each
/// system, the disable, every revoke and the delete with the audit entries that record them
/// (sequence number, time the system's answer was recorded, operation id); the approvals and
/// requests it touched; anything still held; and whether the revocation targets of `[sla]`
/// were met (`met` is absent without a target, or while the leave is still within it).
///
/// Requires `read`.
#[utoipa::path(
    get,
    path = "/api/v1/people/{id}/evidence",
    tag = "people",
    security(("bearerAuth" = ["read"])),
    params(("id" = String, Path, description = "The person's HR id.")),
    responses(
        (status = 200, description = "The evidence of the person's latest leave.", body = tenure_core::evidence::LeaverEvidence),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such person (`not_found`).", body = ErrorBody),
        (status = 409, description = "The person has not left: no `leave` event (`conflict`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
async fn person_evidence(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<tenure_core::evidence::LeaverEvidence>, ApiError> {
    p.require(Scope::Read)?;
    let sla = s.engine().rules().config.sla.clone();
    let now = s.engine().clock().now_ms();
    let mut c = s.store().reader().await?;
    match tenure_store::leaver_evidence(&mut c, &id, &sla, now).await? {
        tenure_store::LeaverReport::Leaver(e) => Ok(Json(*e)),
        tenure_store::LeaverReport::NoSuchPerson => {
            Err(ApiError::not_found(format!("person `{id}`")))
        }
        tenure_store::LeaverReport::NotLeft => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("person `{id}` has not left: there is no leave event to give evidence of"),
        )),
    }
}

/// Forget a person who has left.
///
/// Crypto-shreds their personal data: the key it is sealed with is deleted, so their record
/// and their events' payloads can no longer be read here or in any backup; their record is
/// left as a tombstone (id, `terminated`, empty name and email) and their grants, runs and
/// audit entries keep the id alone. Audited as `person.forgotten`; the audit chain still
/// verifies. Refused (409) while they have not left, still hold a grant or an account, have a
/// run going, or were forgotten before. Requires `admin`.
#[utoipa::path(
    post,
    path = "/api/v1/people/{id}/forget",
    tag = "people",
    security(("bearerAuth" = ["admin"])),
    params(("id" = String, Path, description = "The person's HR id.")),
    responses(
        (status = 200, description = "The person was forgotten.", body = ForgottenView),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such person (`not_found`).", body = ErrorBody),
        (status = 409, description = "Not left, still holding access, a run going, or forgotten already (`conflict`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
async fn forget_person(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<ForgottenView>, ApiError> {
    p.require(Scope::Admin)?;
    let erased = s
        .engine()
        .forget_person(&id, &p.name, "erasure requested over the API")
        .await?;
    Ok(Json(ForgottenView {
        person: id,
        key_deleted: erased.key,
        event_payloads_dropped: erased.event_payloads,
    }))
}

/// A person, with their accounts, grants and engagements.
///
/// Requires `read`.
#[utoipa::path(
    get,
    path = "/api/v1/people/{id}",
    tag = "people",
    security(("bearerAuth" = ["read"])),
    params(("id" = String, Path, description = "The person's HR id.")),
    responses(
        (status = 200, description = "The person.", body = PersonDetail),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such person (`not_found`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn get_person(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<PersonDetail>, ApiError> {
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
    let forgotten_at = tenure_store::forgotten_at(&mut c, &id).await?;
    Ok(Json(PersonDetail {
        forgotten_at: forgotten_at.map(views::time),
        person,
        accounts: accounts
            .into_iter()
            .map(|a| AccountView {
                system: a.system,
                state: a.state,
            })
            .collect(),
        grants,
        engagements,
    }))
}

// ---------------------------------------------------------------- runs

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunQuery {
    /// Only runs in this state.
    #[param(value_type = Option<RunState>)]
    state: Option<String>,
    /// Only runs of this person.
    person: Option<String>,
    /// An event type, `request`, `expiry` or `reconcile`.
    kind: Option<String>,
    /// Runs created at or after this RFC 3339 time.
    since: Option<String>,
    /// Runs created before this RFC 3339 time.
    until: Option<String>,
    /// The `next_before` of the page before.
    before: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

/// Runs, newest first.
///
/// Requires `read`.
#[utoipa::path(
    get,
    path = "/api/v1/runs",
    tag = "runs",
    security(("bearerAuth" = ["read"])),
    params(RunQuery),
    responses(
        (status = 200, description = "A page of runs.", body = RunPage),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn list_runs(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<RunQuery>,
) -> Result<Json<RunPage>, ApiError> {
    p.require(Scope::Read)?;
    let limit = limit(q.limit)?;
    let kind = q
        .kind
        .as_deref()
        .map(|kind| {
            kind.parse::<RunKind>().map_err(|_| {
                let kinds: Vec<&str> = RunKind::ALL.iter().map(|k| k.as_str()).collect();
                ApiError::invalid(
                    "kind",
                    format!(
                        "unknown run kind `{kind}`, expected one of: {}",
                        kinds.join(", ")
                    ),
                )
            })
        })
        .transpose()?;
    let filter = tenure_store::RunFilter {
        state: parse_param::<RunState>("state", q.state.as_deref())?,
        person: q.person.as_deref(),
        kind,
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
    Ok(Json(RunPage {
        items: runs,
        next_before: next,
    }))
}

/// The longest a long-poll holds its answer (ms).
const MAX_WAIT_MS: u64 = 30_000;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct WaitQuery {
    /// Long-poll: hold the answer up to this long (ms, at most 30000) until the run has ended.
    #[param(minimum = 0, maximum = 30000)]
    wait_ms: Option<u64>,
}

/// A run with its steps.
///
/// With `wait_ms`, the answer waits until the run has ended or the time is up, whichever
/// comes first. Requires `read`.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}",
    tag = "runs",
    security(("bearerAuth" = ["read"])),
    params(("id" = String, Path, description = "The run's id."), WaitQuery),
    responses(
        (status = 200, description = "The run.", body = RunDetail),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such run (`not_found`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn get_run(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Json<RunDetail>, ApiError> {
    p.require(Scope::Read)?;
    if q.wait_ms.is_some_and(|w| w > MAX_WAIT_MS) {
        return Err(ApiError::invalid(
            "wait_ms",
            format!("must be at most {MAX_WAIT_MS} (ms)"),
        ));
    }
    let engine = s.engine();
    if let Some(wait) = q.wait_ms {
        let mut rx = engine.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait);
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
    Ok(Json(RunDetail::new(s.store(), detail).await?))
}

/// Cancel a run.
///
/// Steps not yet started are cancelled; steps already done are undone where they can be
/// (compensation), and the run ends `compensated`. Requires `admin`.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/cancel",
    tag = "runs",
    security(("bearerAuth" = ["admin"])),
    params(("id" = String, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The run, cancelling.", body = RunDetail),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such run (`not_found`).", body = ErrorBody),
        (status = 409, description = "The run has already ended, or is being cancelled (`conflict`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn cancel_run(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    p.require(Scope::Admin)?;
    let d = s.engine().cancel_run(&id, &p.name).await?;
    Ok(Json(RunDetail::new(s.store(), d).await?))
}

/// Retry a failed run.
///
/// Its failed steps get a fresh set of attempts and the run goes on from where it stopped.
/// Requires `admin`.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/retry",
    tag = "runs",
    security(("bearerAuth" = ["admin"])),
    params(("id" = String, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The run, running again.", body = RunDetail),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such run (`not_found`).", body = ErrorBody),
        (status = 409, description = "The run has not failed, or was cancelled (`conflict`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn retry_run(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    p.require(Scope::Admin)?;
    let d = s.engine().retry_run(&id, &p.name).await?;
    Ok(Json(RunDetail::new(s.store(), d).await?))
}

// ---------------------------------------------------------------- catalog

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EntitlementQuery {
    /// Only entitlements of this system.
    system: Option<String>,
    /// Only entitlements of this risk (`low`, `medium`, `high`, `privileged`).
    risk: Option<String>,
    /// Only entitlements of this client.
    client: Option<String>,
    /// The owner (a person id or a team name).
    owner: Option<String>,
}

/// The entitlement catalog.
///
/// The catalog is configuration, held in memory: filtered there, answered whole (it is
/// bounded by the configuration's size). Requires `read`, or `request`: the catalog is what a
/// requester chooses from, and seeing it shows them no one's data.
#[utoipa::path(
    get,
    path = "/api/v1/entitlements",
    tag = "catalog",
    security(("bearerAuth" = ["read"]), ("bearerAuth" = ["request"])),
    params(EntitlementQuery),
    responses(
        (status = 200, description = "The entitlements that match.", body = EntitlementList),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn list_entitlements(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<EntitlementQuery>,
) -> Result<Json<EntitlementList>, ApiError> {
    p.require_any(&[Scope::Read, Scope::Request])?;
    let risk = parse_param::<tenure_core::Risk>("risk", q.risk.as_deref())?;
    let config = s.engine().config();
    let is =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    let items = config
        .entitlements
        .values()
        .filter(|e| {
            is(&q.system, Some(&e.system))
                && risk.is_none_or(|r| e.risk == r)
                && is(&q.client, e.client.as_deref())
                && is(&q.owner, e.owner.as_deref())
        })
        .cloned()
        .collect();
    Ok(Json(EntitlementList { items }))
}

/// The target systems, their health and circuit breakers.
///
/// Requires `read`.
#[utoipa::path(
    get,
    path = "/api/v1/systems",
    tag = "catalog",
    security(("bearerAuth" = ["read"])),
    responses(
        (status = 200, description = "Every system.", body = SystemList),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn list_systems(
    State(s): State<AppState>,
    p: Principal,
    Query(_): Query<NoParameters>,
) -> Result<Json<SystemList>, ApiError> {
    p.require(Scope::Read)?;
    let items = s
        .engine()
        .systems()
        .await
        .into_iter()
        .map(views::System::from)
        .collect();
    Ok(Json(SystemList { items }))
}

// ---------------------------------------------------------------- service levels

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SlaQuery {
    /// Runs received at or after this RFC 3339 time; 30 days before `until` when absent.
    since: Option<String>,
    /// Runs received before this RFC 3339 time; now when absent.
    until: Option<String>,
}

/// The longest period one service-level report covers: a year.
const MAX_SLA_PERIOD_MS: i64 = 366 * 24 * 3_600_000;

/// The service-level report of a period: for the hires and rehires (`provision`) and the
/// leaves (`revoke`) received in it, how long access took to arrive or go, whole runs first,
/// then per system (percentiles by nearest rank over the runs done), against the targets of
/// `[sla]`, and every breach (done late, or not done and past its target now) with what caused
/// it: a failed step, a wait, retries, an approval, or the slowest step. Cancelled runs are
/// left out. At most 1,000 breaches are listed; `breaches_total` counts them all.
///
/// Requires `read`.
#[utoipa::path(
    get,
    path = "/api/v1/reports/sla",
    tag = "reports",
    security(("bearerAuth" = ["read"])),
    params(SlaQuery),
    responses(
        (status = 200, description = "The report.", body = tenure_core::sla::SlaReport),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn sla_report(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<SlaQuery>,
) -> Result<Json<tenure_core::sla::SlaReport>, ApiError> {
    p.require(Scope::Read)?;
    let now = s.engine().clock().now_ms();
    let (since, until) = tenure_core::sla::period(
        time_param("since", q.since.as_deref())?,
        time_param("until", q.until.as_deref())?,
        now,
    )
    .ok_or_else(|| ApiError::invalid("since", "must be before `until`"))?;
    if until - since > MAX_SLA_PERIOD_MS {
        return Err(ApiError::invalid(
            "since",
            "a report covers at most 366 days: ask for several",
        ));
    }
    let sla = s.engine().rules().config.sla.clone();
    let mut c = s.store().reader().await?;
    Ok(Json(
        tenure_store::sla_report(&mut c, &sla, since, until, now).await?,
    ))
}

// ---------------------------------------------------------------- audit

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// The `next_after` of the page before: entries after this sequence number.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// The `next_before` of the page before (with `order=newest`): entries before this
    /// sequence number.
    #[param(minimum = 1)]
    before: Option<i64>,
    /// `oldest` (default: chain order, paged with `after`) or `newest` (newest first, paged
    /// with `before`).
    #[param(schema_with = audit_orders)]
    order: Option<String>,
    /// Only entries about this person.
    person: Option<String>,
    /// The token name or component that acted.
    actor: Option<String>,
    /// Only entries of this action (`step.grant`, `run.planned`, ...).
    action: Option<String>,
    /// Only entries about this system.
    system: Option<String>,
    /// Only entries about this entitlement.
    entitlement: Option<String>,
    /// Entries written at or after this RFC 3339 time.
    since: Option<String>,
    /// Entries written before this RFC 3339 time.
    until: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

/// What the `order` of an audit listing may be.
fn audit_orders() -> utoipa::openapi::schema::Object {
    crate::openapi::one_of(&["oldest", "newest"], "oldest")
}

/// The audit trail, oldest first (or newest first).
///
/// Each entry holds the hash of the one before (`tenure audit verify` checks the chain;
/// `GET /api/v1/audit/verification` says how the server's own check stands). Requires `read`.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    security(("bearerAuth" = ["read"])),
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of the audit trail.", body = AuditPage),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn list_audit(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    p.require(Scope::Read)?;
    let limit = limit(q.limit)?;
    if q.after.is_some_and(|a| a < 0) {
        return Err(ApiError::invalid("after", "must be 0 or more"));
    }
    if q.before.is_some_and(|b| b < 1) {
        return Err(ApiError::invalid("before", "must be 1 or more"));
    }
    let order = q.order.as_deref().unwrap_or("oldest");
    let newest_first = choice("order", order, &[("oldest", false), ("newest", true)])?;
    let filter = tenure_store::AuditFilter {
        after: q.after.unwrap_or(0),
        before: q.before,
        newest_first,
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
    let (next_after, next_before) = match newest_first {
        false => (next, None),
        true => (None, next),
    };
    Ok(Json(AuditPage {
        items,
        next_after,
        next_before,
    }))
}

// ---------------------------------------------------------------- tokens

/// A token to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    /// Who or what holds it; the actor in the audit trail.
    #[schema(schema_with = tenure_core::wire::non_blank)]
    name: String,
    /// What it may do: one or more scopes.
    #[schema(value_type = Vec<Scope>, min_items = 1)]
    scopes: Vec<String>,
    /// The person the token acts as when it asks for or approves access.
    #[serde(default)]
    person_id: Option<String>,
}

/// Create a token.
///
/// The secret is in the answer, once; only its SHA-256 is stored. Requires `admin`.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    security(("bearerAuth" = ["admin"])),
    request_body = NewToken,
    responses(
        (status = 201, description = "Created; the secret is shown this once.", body = CreatedToken),
        (status = 400, description = "The body is not a token to create (`invalid_request`): `field` names what is wrong (`name`, `scopes`, `person_id` naming nobody, or `body`).", body = ErrorBody),
        (status = 409, description = "`person_id` names someone who has left (`conflict`): a token cannot act as a leaver; a rehire needs a new token.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
async fn create_token(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    p.require(Scope::Admin)?;
    let req: NewToken = crate::access::parse_body(&body)?;
    let scopes = parse_scopes(&req.scopes)?;
    check_token_name(&req.name).map_err(|e| ApiError::invalid("name", e))?;
    let issued = issue_token(
        s.store(),
        &req.name,
        &scopes,
        req.person_id.as_deref(),
        &p.name,
    )
    .await;
    let (row, secret) = match issued {
        Ok(issued) => issued,
        Err(e @ TokenRefused::NoSuchPerson(_)) => {
            return Err(ApiError::invalid("person_id", e.to_string()));
        }
        Err(e @ TokenRefused::PersonLeft(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                e.to_string(),
            ));
        }
        Err(TokenRefused::Store(e)) => return Err(e.into()),
    };
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id: row.id,
            name: row.name,
            scopes: row.scopes,
            person_id: row.person_id,
            token: secret,
        }),
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

/// Why a token was not created.
#[derive(Debug, thiserror::Error)]
pub enum TokenRefused {
    /// The person it would act as is not known.
    #[error("no person `{0}`: a token acts as a person by their HR id")]
    NoSuchPerson(String),
    /// The person it would act as has left.
    #[error("person `{0}` has left: a token cannot act as a leaver (a rehire needs a new token)")]
    PersonLeft(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] tenure_store::StoreError),
}

/// Creates a token and returns its row and its secret (shown once). A token acting as a
/// person is refused for someone unknown or gone, checked in the transaction that stores it,
/// so it cannot slip past a leave (which revokes that person's tokens in its own).
pub async fn issue_token(
    store: &tenure_store::Store,
    name: &str,
    scopes: &[Scope],
    person_id: Option<&str>,
    actor: &str,
) -> Result<(tenure_store::TokenRow, String), TokenRefused> {
    let secret = new_token();
    let now = chrono::Utc::now().timestamp_millis();
    let row = crate::auth::token_row(name, scopes, person_id, now);
    let mut tx = store.begin().await?;
    if let Some(id) = person_id {
        match tenure_store::get_person(tx.conn(), id).await? {
            None => return Err(TokenRefused::NoSuchPerson(id.to_string())),
            Some(p) if p.status == tenure_core::PersonStatus::Terminated => {
                return Err(TokenRefused::PersonLeft(id.to_string()));
            }
            Some(_) => {}
        }
    }
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

/// The API tokens.
///
/// Ids, names, scopes and dates; never secrets or hashes. Requires `admin`.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    security(("bearerAuth" = ["admin"])),
    responses(
        (status = 200, description = "Every token.", body = TokenList),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
async fn list_tokens(
    State(s): State<AppState>,
    p: Principal,
    Query(_): Query<NoParameters>,
) -> Result<Json<TokenList>, ApiError> {
    p.require(Scope::Admin)?;
    let mut c = s.store().reader().await?;
    let items = tenure_store::list_tokens(&mut c)
        .await?
        .into_iter()
        .map(views::Token::from)
        .collect();
    Ok(Json(TokenList { items }))
}

/// Revoke a token.
///
/// It stops working at once on this server (within a second on others sharing the
/// database). Requires `admin`.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    security(("bearerAuth" = ["admin"])),
    params(("id" = String, Path, description = "The token's id (`tok_...`).")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No live token with this id (`not_found`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
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

/// What to ask a what-if about: one event, or rule files that stand in for the
/// configuration folder's own (not both).
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SimulateBody {
    /// One lifecycle event, as `POST /api/v1/events` takes it.
    #[serde(default)]
    #[schema(value_type = Option<EventInput>)]
    event: Option<Value>,
    /// The text of `tenure.toml`.
    #[serde(default)]
    config: Option<String>,
    /// Templates laid over the folder's by file name (`NAME.toml`); `null` removes one.
    #[serde(default)]
    templates: Option<std::collections::BTreeMap<String, Option<String>>>,
    /// Policies laid over the folder's by file name (`NAME.cedar`); `null` removes one.
    #[serde(default)]
    policies: Option<std::collections::BTreeMap<String, Option<String>>>,
    /// The most plans listed (totals always count everyone).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 10000, default = 100)]
    limit: Option<usize>,
}

/// The most plans one what-if lists (totals always count everyone).
const SIMULATE_MAX_LIMIT: usize = 10_000;

/// What an event, or changed rules, would do.
///
/// Plans one event against the rules in force, or everyone against changed rule files, and
/// stores nothing. Files sent are laid over the configuration folder's own by name: a file
/// replaces the folder's file of that name or is added, `null` removes it, and every file
/// not named stays as it is. Requires `read`.
#[utoipa::path(
    post,
    path = "/api/v1/simulate",
    tag = "rules",
    security(("bearerAuth" = ["read"])),
    request_body = SimulateBody,
    responses(
        (status = 200, description = "What would change, person by person.", body = WhatIfAnswer),
        (status = 400, description = "Neither or both of an event and rule files, an event that is not valid, a file name that is not `NAME.toml` (templates) or `NAME.cedar` (policies), or a limit out of range (`invalid_request`).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, description = "The rule files do not load, or `null` names a file the folder does not have (`invalid_rules`); the message lists each problem with its file, line and column.", body = ErrorBody),
        (status = 500, response = Internal),
        (status = 501, description = "The server was started without a configuration folder to read rules from (`not_available`).", body = ErrorBody),
    ),
)]
async fn simulate(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Json<WhatIfAnswer>, ApiError> {
    p.require(Scope::Read)?;
    let body: SimulateBody = crate::access::parse_body(&body)?;
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
    Ok(Json(WhatIfAnswer {
        what_if: result,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }))
}

/// The most people one group what-if names (as many as one SCIM request may).
const SIMULATE_MAX_PEOPLE: usize = 20_000;

/// A change to an identity provider group's members to ask a what-if about: people added
/// and removed, or the members replaced (not both).
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SimulateGroupBody {
    /// The group: a pushed group's id or displayName (case does not matter). A displayName no
    /// group has is a group the identity provider has not pushed yet.
    #[schema(min_length = 1, max_length = 256)]
    group: String,
    /// People (SCIM user ids) to add.
    #[serde(default)]
    #[schema(max_items = 20000)]
    add: Vec<String>,
    /// People (SCIM user ids) to remove.
    #[serde(default)]
    #[schema(max_items = 20000)]
    remove: Vec<String>,
    /// The members after the change, all of them (Okta's full replace, a PUT): instead of
    /// `add` and `remove`.
    #[serde(default)]
    #[schema(max_items = 20000)]
    replace: Option<Vec<String>>,
    /// The most plans listed (totals always count everyone changed).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 10000, default = 100)]
    limit: Option<usize>,
}

/// What a group membership change would do.
///
/// Plans, without applying it or storing anything, what adding people to an identity
/// provider group, removing them, or replacing its members would do to each of those people's
/// access under the rules in force: the `transfer` the change would store for every active
/// member it adds or removes, with role templates matching `groups`, policy reading
/// `principal.groups`, separation of duties and approvals. Requires `read`.
#[utoipa::path(
    post,
    path = "/api/v1/simulate/group",
    tag = "rules",
    security(("bearerAuth" = ["read"])),
    request_body = SimulateGroupBody,
    responses(
        (status = 200, description = "The members added and removed, those whose access would not be re-planned and why, and what would change, person by person.", body = GroupWhatIfAnswer),
        (status = 400, description = "No group named, no change asked, `replace` together with `add` or `remove`, a person both added and removed, an added person who is not a live SCIM user, or a limit out of range (`invalid_request`).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 413, description = "The body is over 2 MiB (20,000 ids in each list fit well within it); refused before it is read."),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
async fn simulate_group(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Json<GroupWhatIfAnswer>, ApiError> {
    p.require(Scope::Read)?;
    let body: SimulateGroupBody = crate::access::parse_body(&body)?;
    let limit = body.limit.unwrap_or(100);
    if limit > SIMULATE_MAX_LIMIT {
        return Err(ApiError::invalid(
            "limit",
            format!("at most {SIMULATE_MAX_LIMIT} plans are listed; totals count everyone"),
        ));
    }
    let group = body.group.trim();
    if group.is_empty() {
        return Err(ApiError::invalid(
            "group",
            "name a group by id or displayName",
        ));
    }
    tenure_core::text::check(group, tenure_core::text::MAX_NAME)
        .map_err(|e| ApiError::invalid("group", e.to_string()))?;
    let none = Vec::new();
    let lists = [
        ("add", &body.add),
        ("remove", &body.remove),
        ("replace", body.replace.as_ref().unwrap_or(&none)),
    ];
    let named: usize = lists.iter().map(|(_, l)| l.len()).sum();
    if named > SIMULATE_MAX_PEOPLE {
        return Err(ApiError::invalid(
            "body",
            format!("{named} people named; at most {SIMULATE_MAX_PEOPLE} per what-if"),
        ));
    }
    for (field, list) in lists {
        for (i, id) in list.iter().enumerate() {
            tenure_core::text::check(id, tenure_core::text::MAX_NAME)
                .map_err(|e| ApiError::invalid(format!("{field}[{i}]"), e.to_string()))?;
        }
    }
    let set = |v: Vec<String>| v.into_iter().collect::<std::collections::BTreeSet<_>>();
    let change = match body.replace {
        Some(_) if !body.add.is_empty() || !body.remove.is_empty() => {
            return Err(ApiError::invalid(
                "replace",
                "replace the members, or add and remove some, not both",
            ));
        }
        Some(members) => tenure_engine::MemberChange::Replace(set(members)),
        None if body.add.is_empty() && body.remove.is_empty() => {
            return Err(ApiError::invalid(
                "body",
                "give `add` or `remove` (people to add or remove), or `replace` (the members after the change)",
            ));
        }
        None => tenure_engine::MemberChange::AddRemove {
            add: set(body.add),
            remove: set(body.remove),
        },
    };
    let started = std::time::Instant::now();
    let result = s
        .engine()
        .what_if_group(group, &change, limit)
        .await
        .map_err(|e| match e {
            tenure_engine::EngineError::Invalid { field, message } => {
                ApiError::invalid(field, message)
            }
            other => other.into(),
        })?;
    Ok(Json(GroupWhatIfAnswer {
        what_if: result,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }))
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

/// Reload the rules.
///
/// Re-reads the configuration folder (configuration, templates, policies) and swaps the
/// rules in force, giving everyone whose access they change a `reconcile` run; or keeps the
/// old rules and says why. Requires `admin`.
#[utoipa::path(
    post,
    path = "/api/v1/reload",
    tag = "rules",
    security(("bearerAuth" = ["admin"])),
    responses(
        (status = 200, description = "The new rules are in force.", body = tenure_engine::Reloaded),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, description = "The files change the systems, which only a restart can (`conflict`).", body = ErrorBody),
        (status = 422, description = "The files do not load (`invalid_rules`); the old rules stay in force.", body = ErrorBody),
        (status = 500, response = Internal),
        (status = 501, description = "The server was started without a configuration folder (`not_available`).", body = ErrorBody),
    ),
)]
async fn reload(
    State(s): State<AppState>,
    p: Principal,
) -> Result<Json<tenure_engine::Reloaded>, ApiError> {
    p.require(Scope::Admin)?;
    let (config, policy) = load_rules(&s, &crate::RuleFiles::default())?;
    Ok(Json(s.engine().reload(config, policy, &p.name).await?))
}
