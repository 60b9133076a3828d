//! Handlers for reconciliation: start one, follow it, and read the differences found.

use crate::auth::{Principal, Scope};
use crate::openapi::{ErrorBody, Forbidden, Internal, InvalidQuery, Unauthorized, Unavailable};
use crate::path::Path;
use crate::query::{Query, choice, limit, parse_param};
use crate::views::time;
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tenure_core::drift::{Remedy, Situation};
use tenure_engine::ReconcileRequest;
use tenure_store::{FindingFilter, FindingRow, ReconRow, ReconState, ReconTrigger};
use utoipa::{IntoParams, ToSchema};

/// What to reconcile.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewReconciliation {
    /// The system's id.
    system: String,
    /// Record findings only; correct nothing (default false).
    #[serde(default)]
    dry_run: bool,
    /// Make the corrections even when they would disable more accounts than the system's
    /// `reconcile.max_disable_percent` allows (default false).
    #[serde(default)]
    confirm: bool,
}

/// One reconciliation of a system.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Reconciliation {
    /// Its id.
    pub(crate) id: String,
    /// The system reconciled.
    pub(crate) system: String,
    /// Why it ran.
    pub(crate) trigger: ReconTrigger,
    /// Who asked (a token's name, or `scheduler`).
    pub(crate) requested_by: Option<String>,
    /// Findings only, nothing corrected.
    pub(crate) dry_run: bool,
    /// `running`, `completed`, `held` (corrections over the safety limit were not made),
    /// `failed`, `not_covered` (the connector cannot list) or `interrupted`.
    pub(crate) state: ReconState,
    /// When it started.
    pub(crate) started_at: String,
    /// When it ended.
    pub(crate) ended_at: Option<String>,
    /// Accounts the system listed.
    pub(crate) accounts: i64,
    /// Per situation: accounts in agreement (`expected`) and differences found.
    pub(crate) counts: BTreeMap<Situation, i64>,
    /// Corrections made to tenure's records.
    pub(crate) corrected: i64,
    /// `remediate` runs given to the people concerned.
    pub(crate) runs: i64,
    /// Why it failed, was held, or is not covered.
    pub(crate) message: Option<String>,
}

impl From<ReconRow> for Reconciliation {
    fn from(r: ReconRow) -> Self {
        Reconciliation {
            id: r.id,
            system: r.system,
            trigger: r.trigger,
            requested_by: r.requested_by,
            dry_run: r.dry_run,
            state: r.state,
            started_at: time(r.started_at),
            ended_at: r.ended_at.map(time),
            accounts: r.accounts,
            counts: r.counts,
            corrected: r.corrected,
            runs: r.runs,
            message: r.message,
        }
    }
}

/// A difference between a system and tenure's records, kept until a complete reconciliation
/// no longer finds it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Finding {
    /// Its id.
    pub(crate) id: String,
    /// The system.
    pub(crate) system: String,
    /// `orphan`, `stale`, `unlinked`, `excess`, `missing` or `ambiguous`.
    pub(crate) situation: Situation,
    /// `high` for a stale account (an incident), else `normal`.
    pub(crate) severity: &'static str,
    /// The system's key for the account (for a missing account, the person's id).
    pub(crate) account: String,
    /// The entitlement: tenure's id, or the system's name of a group no entitlement names;
    /// null for the account itself.
    pub(crate) entitlement: Option<String>,
    /// The person, when the account matched one.
    pub(crate) person_id: Option<String>,
    /// What was seen.
    pub(crate) detail: String,
    /// What the system's settings said to do when it was last seen.
    pub(crate) remedy: Remedy,
    /// When first seen (since last resolved).
    pub(crate) first_seen_at: String,
    /// When last seen.
    pub(crate) last_seen_at: String,
    /// The reconciliation that first saw it.
    pub(crate) first_seen_by: String,
    /// The reconciliation that last saw it.
    pub(crate) last_seen_by: String,
    /// When a complete reconciliation no longer found it; null while open.
    pub(crate) resolved_at: Option<String>,
    /// That reconciliation.
    pub(crate) resolved_by: Option<String>,
}

impl From<FindingRow> for Finding {
    fn from(f: FindingRow) -> Self {
        Finding {
            severity: if f.situation.is_incident() {
                "high"
            } else {
                "normal"
            },
            id: f.id,
            system: f.system,
            situation: f.situation,
            account: f.account_key,
            entitlement: f.entitlement,
            person_id: f.person_id,
            detail: f.detail,
            remedy: f.remedy,
            first_seen_at: time(f.first_seen),
            last_seen_at: time(f.last_seen),
            first_seen_by: f.first_run,
            last_seen_by: f.last_run,
            resolved_at: f.resolved_at.map(time),
            resolved_by: f.resolved_by,
        }
    }
}

/// A page of reconciliations, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReconciliationPage {
    /// The reconciliations.
    items: Vec<Reconciliation>,
    /// Pass as `before` for the next page; null on the last page.
    next_before: Option<String>,
}

/// One reconciliation with (a page of) the findings it saw.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReconciliationDetail {
    /// The reconciliation.
    #[serde(flatten)]
    pub(crate) reconciliation: Reconciliation,
    /// Findings it saw, in id order, filtered as asked.
    pub(crate) findings: Vec<Finding>,
    /// Pass as `after` for the next page of findings; null on the last page.
    pub(crate) next_after: Option<String>,
}

/// A page of findings, in id order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FindingPage {
    /// The findings.
    pub(crate) items: Vec<Finding>,
    /// Pass as `after` for the next page; null on the last page.
    pub(crate) next_after: Option<String>,
}

/// Reconcile a system.
///
/// Reads every account the system holds, with its memberships, and compares them with
/// tenure's records; records the differences (findings) and, unless `dry_run`, corrects what
/// the system's `[systems.reconcile.actions]` say to through `remediate` runs. Answers at once
/// with the reconciliation `running`; follow it at its `Location`. Requires `admin`.
#[utoipa::path(
    post,
    path = "/api/v1/reconciliations",
    tag = "reconciliation",
    security(("bearerAuth" = ["admin"])),
    request_body = NewReconciliation,
    responses(
        (status = 202, description = "Started; `Location` names it.", body = Reconciliation),
        (status = 400, description = "The body is not a reconciliation request (`invalid_request`).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such system (`not_found`).", body = ErrorBody),
        (status = 409, description = "The system is being reconciled now (`conflict`).", body = ErrorBody),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn post_reconciliation(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    p.require(Scope::Admin)?;
    let r: NewReconciliation = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(
            "body",
            format!("must be {{\"system\": \"...\", \"dry_run\": false, \"confirm\": false}}: {e}"),
        )
    })?;
    let row = s
        .engine()
        .start_reconcile(ReconcileRequest {
            system: r.system,
            dry_run: r.dry_run,
            confirm: r.confirm,
            trigger: ReconTrigger::Request,
            actor: p.name.clone(),
        })
        .await?;
    let location = format!("/api/v1/reconciliations/{}", row.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(Reconciliation::from(row)),
    )
        .into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReconciliationQuery {
    /// Only this system's.
    system: Option<String>,
    /// The `next_before` of the page before.
    before: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

/// Reconciliations, newest first.
///
/// Requires `read`.
#[utoipa::path(
    get,
    path = "/api/v1/reconciliations",
    tag = "reconciliation",
    security(("bearerAuth" = ["read"])),
    params(ReconciliationQuery),
    responses(
        (status = 200, description = "A page of reconciliations.", body = ReconciliationPage),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn list_reconciliations(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<ReconciliationQuery>,
) -> Result<Json<ReconciliationPage>, ApiError> {
    p.require(Scope::Read)?;
    let limit = limit(q.limit)?;
    let mut c = s.store().reader().await?;
    let rows =
        tenure_store::list_reconciliations(&mut c, q.system.as_deref(), q.before.as_deref(), limit)
            .await?;
    let next_before = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    Ok(Json(ReconciliationPage {
        items: rows.into_iter().map(Reconciliation::from).collect(),
        next_before,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DetailQuery {
    /// Only findings in this situation.
    #[param(value_type = Option<Situation>)]
    situation: Option<String>,
    /// Only this person's findings.
    person: Option<String>,
    /// The `next_after` of the page before.
    after: Option<String>,
    /// Findings per page.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

/// One reconciliation, with the findings it saw.
///
/// Requires `read`.
#[utoipa::path(
    get,
    path = "/api/v1/reconciliations/{id}",
    tag = "reconciliation",
    security(("bearerAuth" = ["read"])),
    params(("id" = String, Path, description = "The reconciliation's id."), DetailQuery),
    responses(
        (status = 200, description = "The reconciliation and a page of its findings.", body = ReconciliationDetail),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such reconciliation (`not_found`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn get_reconciliation(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Result<Json<ReconciliationDetail>, ApiError> {
    p.require(Scope::Read)?;
    let limit = limit(q.limit)?;
    let situation = parse_param::<Situation>("situation", q.situation.as_deref())?;
    let mut c = s.store().reader().await?;
    let Some(row) = tenure_store::get_reconciliation(&mut c, &id).await? else {
        return Err(ApiError::not_found(format!("reconciliation `{id}`")));
    };
    let filter = FindingFilter {
        system: Some(&row.system),
        situation,
        person: q.person.as_deref(),
        seen_by: Some(&row.id),
        open: false,
        after: q.after.as_deref(),
        limit,
    };
    let FindingPage { items, next_after } = findings_page(&mut c, filter).await?;
    Ok(Json(ReconciliationDetail {
        reconciliation: row.into(),
        findings: items,
        next_after,
    }))
}

/// What the `status` of a findings listing may be.
fn finding_states() -> utoipa::openapi::schema::Object {
    crate::openapi::one_of(&["open", "all"], "open")
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct FindingQuery {
    /// Only this system's.
    system: Option<String>,
    /// Only this situation.
    #[param(value_type = Option<Situation>)]
    situation: Option<String>,
    /// Only this person's.
    person: Option<String>,
    /// `open` (default) or `all` (resolved ones too).
    #[param(schema_with = finding_states)]
    status: Option<String>,
    /// The `next_after` of the page before.
    after: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

/// Findings over every reconciliation: what differs between the systems and tenure now.
///
/// Requires `read`.
#[utoipa::path(
    get,
    path = "/api/v1/reconciliations/findings",
    tag = "reconciliation",
    security(("bearerAuth" = ["read"])),
    params(FindingQuery),
    responses(
        (status = 200, description = "A page of findings.", body = FindingPage),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn list_findings(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<FindingQuery>,
) -> Result<Json<FindingPage>, ApiError> {
    p.require(Scope::Read)?;
    let limit = limit(q.limit)?;
    let situation = parse_param::<Situation>("situation", q.situation.as_deref())?;
    let status = q.status.as_deref().unwrap_or("open");
    let open = choice("status", status, &[("open", true), ("all", false)])?;
    let mut c = s.store().reader().await?;
    let filter = FindingFilter {
        system: q.system.as_deref(),
        situation,
        person: q.person.as_deref(),
        seen_by: None,
        open,
        after: q.after.as_deref(),
        limit,
    };
    Ok(Json(findings_page(&mut c, filter).await?))
}

/// A page of findings and where the next one starts.
async fn findings_page(
    c: &mut tenure_store::Conn,
    filter: FindingFilter<'_>,
) -> Result<FindingPage, ApiError> {
    let findings = tenure_store::list_findings(c, filter).await?;
    let next_after = (findings.len() as i64 == filter.limit)
        .then(|| findings.last().map(|f| f.id.clone()))
        .flatten();
    Ok(FindingPage {
        items: findings.into_iter().map(Finding::from).collect(),
        next_after,
    })
}
