//! Access requests, approvals and delegations: who may ask, who may decide.
//!
//! A token acts as a person (`tenure token create --as PERSON`): that person is the requester
//! or the approver. An `admin` token without a person may ask on anyone's behalf and sees every
//! pending approval, but only people decide approvals.

use crate::auth::{Principal, Scope};
use crate::query::Query;
use crate::{ApiError, AppState, views};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tenure_core::approval::{ApprovalState, Verdict};
use tenure_engine::NewRequest;

/// The longest justification or comment accepted, in characters.
const MAX_TEXT: usize = tenure_core::text::MAX_TEXT;

fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| ApiError::undeserializable(e, "body"))
}

fn text(field: &str, value: &str) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    tenure_core::text::check(v, MAX_TEXT).map_err(|e| ApiError::invalid(field, e.to_string()))?;
    Ok(v.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestBody {
    /// Who would hold the access; the token's own person when absent.
    #[serde(default)]
    person_id: Option<String>,
    entitlement: String,
    justification: String,
    #[serde(default)]
    duration_secs: Option<i64>,
    #[serde(default)]
    break_glass: bool,
}

pub(crate) async fn post_request(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: RequestBody = parse_body(&body)?;
    p.require(if req.break_glass {
        Scope::BreakGlass
    } else {
        Scope::Request
    })?;
    let justification = text("justification", &req.justification)?;
    let requester = match (&p.person_id, p.is_admin()) {
        (Some(person), _) => person.clone(),
        (None, true) => p.name.clone(),
        (None, false) => p.person()?.to_string(),
    };
    let beneficiary = match (&req.person_id, &p.person_id) {
        (Some(b), _) => b.clone(),
        (None, Some(me)) => me.clone(),
        (None, None) => return Err(ApiError::invalid("person_id", "say whose access this is")),
    };
    if p.person_id.as_deref() != Some(beneficiary.as_str()) && !p.is_admin() {
        // Someone else's access: only their manager may ask for it.
        let mut c = s.store().reader().await?;
        let manager = tenure_store::get_person(&mut c, &beneficiary)
            .await?
            .and_then(|b| b.manager);
        if manager.as_deref() != Some(requester.as_str()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "`{requester}` may ask for their own access or their reports', not `{beneficiary}`'s"
                ),
            ));
        }
    }
    let duration_ms = match req.duration_secs {
        Some(d) if d <= 0 || d > 366 * 86_400 => {
            return Err(ApiError::invalid(
                "duration_secs",
                "must be between 1 second and a year",
            ));
        }
        Some(d) => Some(d * 1000),
        None => None,
    };
    let accepted = s
        .engine()
        .request_access(NewRequest {
            person_id: beneficiary,
            entitlement: req.entitlement,
            requester,
            justification,
            duration_ms,
            break_glass: req.break_glass,
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!(accepted))).into_response())
}

/// Whether the token may see everyone's requests and approvals: `read` or `admin`.
fn sees_all(p: &Principal) -> bool {
    p.require(Scope::Read).is_ok()
}

/// The scope that shows everyone's requests and approvals, and whether the token holds it.
fn readers(p: &Principal) -> (&'static str, bool) {
    ("`read` or `admin`", sees_all(p))
}

/// Whose items a listing shows: `named`, everyone with `all=true`, else the token's own
/// person; `None` is everyone. Someone else's, or everyone's, needs the scope `needs`, which
/// the token holds when `others` is true.
fn whose<'a>(
    p: &'a Principal,
    field: &str,
    named: Option<&'a str>,
    all: bool,
    (needs, others): (&str, bool),
) -> Result<Option<&'a str>, ApiError> {
    let refuse = |what: &str| {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("{what} needs a token with the {needs} scope"),
        ))
    };
    match (named, all) {
        (Some(_), true) => Err(ApiError::invalid(
            field,
            format!("give `{field}` or `all=true`, not both"),
        )),
        (None, true) if others => Ok(None),
        (None, true) => refuse("`all=true`"),
        (Some(who), false) if p.person_id.as_deref() == Some(who) || others => Ok(Some(who)),
        (Some(_), false) => refuse("someone else's list"),
        (None, false) => match &p.person_id {
            Some(me) => Ok(Some(me)),
            None if others => Ok(None),
            None => p.person().map(Some),
        },
    }
}

/// The cursor of the page after `items`: the last item's id when the page is full (there may
/// be more), none on the last page.
fn next_of<T>(items: &[T], limit: i64, id: impl Fn(&T) -> &str) -> Option<String> {
    (items.len() as i64 == limit)
        .then(|| items.last().map(|i| id(i).to_string()))
        .flatten()
}

/// A page of `items` as the list endpoints answer, with `next_<cursor>` (see [`next_of`]).
fn page<T: serde::Serialize>(items: Vec<T>, next: Option<String>, cursor: &str) -> Json<Value> {
    let mut v = json!({ "items": items });
    v[format!("next_{cursor}")] = json!(next);
    Json(v)
}

/// What request states are called.
const REQUEST_STATES: [&str; 5] = ["pending", "approved", "denied", "expired", "withdrawn"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestQuery {
    /// Only requests in this state.
    state: Option<String>,
    /// Only access for this person.
    person: Option<String>,
    /// Only requests made by this person (or operator token).
    requester: Option<String>,
    entitlement: Option<String>,
    /// Everyone's requests, not only those the token's person made or benefits from.
    #[serde(default)]
    all: bool,
    before: Option<String>,
    limit: Option<i64>,
}

pub(crate) async fn list_requests(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<RequestQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = crate::routes::limit(q.limit)?;
    if let Some(state) = q.state.as_deref()
        && !REQUEST_STATES.contains(&state)
    {
        return Err(ApiError::invalid(
            "state",
            format!("`{state}` is not one of {}", REQUEST_STATES.join(", ")),
        ));
    }
    let party = whose(&p, "all", None, q.all, readers(&p))?;
    let filter = tenure_store::RequestFilter {
        party,
        person: q.person.as_deref(),
        requester: q.requester.as_deref(),
        entitlement: q.entitlement.as_deref(),
        state: q.state.as_deref(),
        before: q.before.as_deref(),
        limit,
    };
    let mut c = s.store().reader().await?;
    let items = tenure_store::list_requests(&mut c, &filter).await?;
    let next = next_of(&items, limit, |r| &r.id);
    let items = items.into_iter().map(views::Request::from).collect();
    Ok(page(items, next, "before"))
}

pub(crate) async fn get_request(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let detail = s.engine().request(&id).await?;
    let own = p
        .person_id
        .as_deref()
        .is_some_and(|me| me == detail.request.requester || me == detail.request.person_id);
    if !own {
        p.require(Scope::Read)?;
    }
    Ok(Json(json!(views::RequestDetail::from(detail))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApprovalQuery {
    /// `pending` (default), a decided state, `decided` (every decided state) or `all`.
    state: Option<String>,
    /// Whose queue: the token's person unless named (someone else's needs `read`).
    approver: Option<String>,
    /// Every approver's approvals (needs `read`).
    #[serde(default)]
    all: bool,
    /// Only access for this person.
    person: Option<String>,
    entitlement: Option<String>,
    after: Option<String>,
    limit: Option<i64>,
}

fn approval_states(state: Option<&str>) -> Result<Vec<ApprovalState>, ApiError> {
    match state.unwrap_or("pending") {
        "all" => Ok(Vec::new()),
        "decided" => Ok(ApprovalState::ALL
            .iter()
            .copied()
            .filter(|s| *s != ApprovalState::Pending)
            .collect()),
        other => other.parse().map(|s| vec![s]).map_err(|_| {
            let names: Vec<&str> = ApprovalState::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::invalid(
                "state",
                format!("`{other}` is not one of {}, decided, all", names.join(", ")),
            )
        }),
    }
}

pub(crate) async fn list_approvals(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<ApprovalQuery>,
) -> Result<Json<Value>, ApiError> {
    if !sees_all(&p) {
        p.require(Scope::Approve)?;
    }
    let limit = crate::routes::limit(q.limit)?;
    let states = approval_states(q.state.as_deref())?;
    let approver = whose(&p, "approver", q.approver.as_deref(), q.all, readers(&p))?;
    let filter = tenure_store::ApprovalFilter {
        states: &states,
        approver,
        person: q.person.as_deref(),
        entitlement: q.entitlement.as_deref(),
        run: None,
        after: q.after.as_deref(),
        now: s.engine().clock().now_ms(),
        limit,
    };
    let mut c = s.store().reader().await?;
    let items = tenure_store::list_approvals(&mut c, &filter).await?;
    let next = next_of(&items, limit, |a| &a.id);
    let items = items.into_iter().map(views::Approval::from).collect();
    Ok(page(items, next, "after"))
}

pub(crate) async fn get_approval(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !sees_all(&p) {
        p.require(Scope::Approve)?;
    }
    let detail = s.engine().approval(&id).await?;
    if !sees_all(&p) {
        // An approver sees the approvals they are, or were, concerned with.
        let me = p.person()?;
        let a = &detail.approval;
        let mut c = s.store().reader().await?;
        let delegators =
            tenure_store::delegators_of(&mut c, me, s.engine().clock().now_ms()).await?;
        let named = a
            .chain
            .stages
            .iter()
            .flat_map(|st| &st.approvers)
            .any(|x| x == me || delegators.contains(x));
        let decided = detail
            .decisions
            .iter()
            .any(|d| d.actor == me || d.on_behalf_of == me);
        if !(named || decided || me == a.requester || me == a.person_id) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("approval `{id}` is not one of yours; reading it needs the `read` scope"),
            ));
        }
    }
    Ok(Json(json!(views::ApprovalDetail::from(detail))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    decision: Verdict,
    comment: String,
}

pub(crate) async fn post_decision(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Approve)?;
    let actor = p.person()?.to_string();
    let d: DecisionBody = parse_body(&body)?;
    let comment = text("comment", &d.comment)?;
    let detail = s
        .engine()
        .decide_approval(&id, &actor, d.decision, &comment)
        .await?;
    Ok(Json(json!(views::ApprovalDetail::from(detail))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DelegationBody {
    /// The approver who is away; the token's person when absent (admins may name anyone).
    #[serde(default)]
    delegator: Option<String>,
    delegate: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
}

pub(crate) async fn post_delegation(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    p.require(Scope::Approve)?;
    let d: DelegationBody = parse_body(&body)?;
    let delegator = match (&d.delegator, &p.person_id) {
        (Some(other), me) if me.as_deref() != Some(other.as_str()) => {
            p.require(Scope::Admin)?;
            other.clone()
        }
        (Some(me), _) => me.clone(),
        (None, _) => p.person()?.to_string(),
    };
    let row = s
        .engine()
        .delegate(
            &delegator,
            &d.delegate,
            d.starts_at.timestamp_millis(),
            d.ends_at.timestamp_millis(),
            &p.name,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!(views::Delegation::from(row))),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DelegationQuery {
    /// Whose delegations (made or received): the token's person unless named (needs `admin`).
    person: Option<String>,
    /// Everyone's (needs `admin`).
    #[serde(default)]
    all: bool,
    /// Withdrawn and ended delegations too.
    #[serde(default)]
    include_ended: bool,
    after: Option<String>,
    limit: Option<i64>,
}

pub(crate) async fn list_delegations(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<DelegationQuery>,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Approve)?;
    let limit = crate::routes::limit(q.limit)?;
    let admin = ("`admin`", p.is_admin());
    let party = whose(&p, "person", q.person.as_deref(), q.all, admin)?;
    let filter = tenure_store::DelegationFilter {
        party,
        include_ended: q.include_ended,
        after: q.after.as_deref(),
        now: s.engine().clock().now_ms(),
        limit,
    };
    let mut c = s.store().reader().await?;
    let items = tenure_store::list_delegations(&mut c, &filter).await?;
    let next = next_of(&items, limit, |d| &d.id);
    let items = items.into_iter().map(views::Delegation::from).collect();
    Ok(page(items, next, "after"))
}

pub(crate) async fn revoke_delegation(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    p.require(Scope::Approve)?;
    let mut c = s.store().reader().await?;
    let row = tenure_store::get_delegation(&mut c, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("delegation `{id}`")))?;
    drop(c);
    if p.person_id.as_deref() != Some(row.delegator.as_str()) && !p.is_admin() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "only `{}`, who delegated, or an admin may withdraw delegation `{id}`",
                row.delegator
            ),
        ));
    }
    s.engine().revoke_delegation(&id, &p.name).await?;
    Ok(StatusCode::NO_CONTENT)
}
