//! Access requests, approvals and delegations: who may ask, who may decide.
//!
//! A token acts as a person (`tenure token create --as PERSON`): that person is the requester
//! or the approver. An `admin` token without a person may ask on anyone's behalf and sees every
//! pending approval, but only people decide approvals.

use crate::auth::{Principal, Scope};
use crate::bodies::{ApprovalPage, DelegationPage, RequestPage};
use crate::openapi::{ErrorBody, Forbidden, Internal, InvalidQuery, Unauthorized};
use crate::path::Path;
use crate::query::{Query, limit};
use crate::views::{ApprovalDetail, Delegation, RequestDetail};
use crate::{ApiError, AppState, views};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tenure_core::approval::{ApprovalState, RequestState, Verdict};
use tenure_engine::{NewRequest, RequestAccepted};
use utoipa::{IntoParams, ToSchema};

/// The longest justification or comment accepted, in characters.
const MAX_TEXT: usize = tenure_core::text::MAX_TEXT;

/// A JSON body as `T`; the error names the field at fault.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
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

/// An access request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestBody {
    /// Who would hold the access; the token's own person when absent (a token that acts as
    /// no person must name someone).
    #[serde(default)]
    pub(crate) person_id: Option<String>,
    /// The entitlement asked for.
    pub(crate) entitlement: String,
    /// Why; at most 2000 bytes.
    #[schema(schema_with = justification)]
    pub(crate) justification: String,
    /// For how long once granted, in seconds (at most a year); until revoked when absent, for
    /// low and medium risk only.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 31622400)]
    pub(crate) duration_secs: Option<i64>,
    /// Emergency access that skips approval (needs `break_glass`).
    #[serde(default)]
    pub(crate) break_glass: bool,
}

/// Non-blank text of at most [`MAX_TEXT`] bytes.
fn justification() -> utoipa::openapi::schema::Object {
    text_schema("Why; must not be blank.")
}

/// Non-blank text of at most [`MAX_TEXT`] bytes (as many characters, of plain ASCII).
fn text_schema(description: &str) -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(tenure_core::wire::NON_BLANK_PATTERN))
        .max_length(Some(MAX_TEXT))
        .description(Some(format!(
            "{description} At most {MAX_TEXT} bytes once trimmed."
        )))
        .build()
}

/// Ask for access.
///
/// For the token's own person, for a report (as their manager), or for anyone with `admin`.
/// The grant is judged by policy and separation of duties, waits for the approvals policy
/// asks for, and is made by the request's run. Requires `request` (`break_glass` for
/// emergency access).
#[utoipa::path(
    post,
    path = "/api/v1/requests",
    tag = "access",
    security(("bearerAuth" = ["request"]), ("bearerAuth" = ["break_glass"])),
    request_body = RequestBody,
    responses(
        (status = 202, description = "Accepted: the request and the run that carries it out.", body = RequestAccepted),
        (status = 400, description = "The body is not a request (`invalid_request`): `field` names what is wrong; or a token acting as no person names nobody (`person_id`).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such person (`not_found`).", body = ErrorBody),
        (status = 409, description = "The person holds the access already, has a request for it pending, or is not active (`conflict`).", body = ErrorBody),
        (status = 422, description = "No such entitlement, or a duration its risk or client does not allow (`invalid_request`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn post_request(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: RequestBody = parse_body(&body)?;
    let accepted = ask(&s, &p, req).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// Asks for access as `p`: the rules of `POST /api/v1/requests`, for every way in.
pub(crate) async fn ask(
    s: &AppState,
    p: &Principal,
    req: RequestBody,
) -> Result<tenure_engine::RequestAccepted, ApiError> {
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
    Ok(accepted)
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

/// The cursor a full page of `limit` answers with: the last item's id (there may be more);
/// none on the last page.
fn next_cursor<T>(items: &[T], limit: i64, id: impl Fn(&T) -> &str) -> Option<String> {
    (items.len() as i64 == limit)
        .then(|| items.last().map(|i| id(i).to_string()))
        .flatten()
}

/// The states of a request.
fn request_states() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(RequestState::ALL.iter().map(|s| s.as_str())))
        .build()
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RequestQuery {
    /// Only requests in this state.
    #[param(schema_with = request_states)]
    state: Option<String>,
    /// Only access for this person.
    person: Option<String>,
    /// Only requests made by this person (or operator token).
    requester: Option<String>,
    /// Only requests for this entitlement.
    entitlement: Option<String>,
    /// Everyone's requests, not only those the token's person made or benefits from (needs
    /// `read`).
    #[serde(default)]
    all: bool,
    /// The `next_before` of the page before.
    before: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

/// Access requests, newest first.
///
/// Those the token's person made or benefits from; everyone's with `all=true` (needs
/// `read`). A token acting as no person sees everyone's with `read`.
#[utoipa::path(
    get,
    path = "/api/v1/requests",
    tag = "access",
    security(("bearerAuth" = [])),
    params(RequestQuery),
    responses(
        (status = 200, description = "A page of requests.", body = RequestPage),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`all=true` without `read`, or a token that acts as no person and lacks `read` (`forbidden`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn list_requests(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<RequestQuery>,
) -> Result<Json<RequestPage>, ApiError> {
    let limit = limit(q.limit)?;
    let state = q
        .state
        .as_deref()
        .map(|state| {
            state.parse::<RequestState>().map_err(|_| {
                let states: Vec<&str> = RequestState::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::invalid(
                    "state",
                    format!("`{state}` is not one of {}", states.join(", ")),
                )
            })
        })
        .transpose()?;
    let party = whose(&p, "all", None, q.all, readers(&p))?;
    let filter = tenure_store::RequestFilter {
        party,
        person: q.person.as_deref(),
        requester: q.requester.as_deref(),
        entitlement: q.entitlement.as_deref(),
        state,
        before: q.before.as_deref(),
        limit,
    };
    let mut c = s.store().reader().await?;
    let items = tenure_store::list_requests(&mut c, &filter).await?;
    let next_before = next_cursor(&items, limit, |r| &r.id);
    let items = items.into_iter().map(views::Request::from).collect();
    Ok(Json(RequestPage { items, next_before }))
}

/// An access request, with its approvals and their decisions.
///
/// The requester and the beneficiary may read their own; others need `read`.
#[utoipa::path(
    get,
    path = "/api/v1/requests/{id}",
    tag = "access",
    security(("bearerAuth" = [])),
    params(("id" = String, Path, description = "The request's id.")),
    responses(
        (status = 200, description = "The request.", body = RequestDetail),
        (status = 401, response = Unauthorized),
        (status = 403, description = "Someone else's request, and the token lacks `read` (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such request (`not_found`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn get_request(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<RequestDetail>, ApiError> {
    let detail = s.engine().request(&id).await?;
    let own = p
        .person_id
        .as_deref()
        .is_some_and(|me| me == detail.request.requester || me == detail.request.person_id);
    if !own {
        p.require(Scope::Read)?;
    }
    Ok(Json(detail.into()))
}

/// What the `state` of an approval listing may be.
fn approval_states_schema() -> utoipa::openapi::schema::Object {
    let mut names: Vec<&str> = ApprovalState::ALL.iter().map(|s| s.as_str()).collect();
    names.extend(["decided", "all"]);
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(names))
        .default(Some("pending".into()))
        .build()
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ApprovalQuery {
    /// `pending` (default), a decided state, `decided` (every decided state) or `all`.
    #[param(schema_with = approval_states_schema)]
    state: Option<String>,
    /// Whose queue: the token's person unless named (someone else's needs `read`); not with
    /// `all`.
    approver: Option<String>,
    /// Every approver's approvals (needs `read`); not with `approver`.
    #[serde(default)]
    all: bool,
    /// Only access for this person.
    person: Option<String>,
    /// Only approvals of this entitlement.
    entitlement: Option<String>,
    /// The `next_after` of the page before.
    after: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100)]
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

/// Approvals: an approver's queue, or everyone's.
///
/// The token's person's queue (what they may decide now, for themselves or as a delegate),
/// someone else's with `approver` or everyone's with `all=true` (both need `read`).
/// Requires `approve` or `read`.
#[utoipa::path(
    get,
    path = "/api/v1/approvals",
    tag = "access",
    security(("bearerAuth" = ["approve"]), ("bearerAuth" = ["read"])),
    params(ApprovalQuery),
    responses(
        (status = 200, description = "A page of approvals.", body = ApprovalPage),
        (status = 400, description = "A query parameter is unknown, of the wrong type or out of range, or both `approver` and `all=true` are given (`invalid_request`); `field` names it.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The token lacks `approve` and `read`, or asks for someone else's queue without `read` (`forbidden`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn list_approvals(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<ApprovalQuery>,
) -> Result<Json<ApprovalPage>, ApiError> {
    if !sees_all(&p) {
        p.require(Scope::Approve)?;
    }
    let limit = limit(q.limit)?;
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
    let next_after = next_cursor(&items, limit, |a| &a.id);
    let items = items.into_iter().map(views::Approval::from).collect();
    Ok(Json(ApprovalPage { items, next_after }))
}

/// An approval, with its chain of stages and the decisions made on it.
///
/// An approver reads the approvals they are, or were, concerned with; others need `read`.
/// Requires `approve` or `read`.
#[utoipa::path(
    get,
    path = "/api/v1/approvals/{id}",
    tag = "access",
    security(("bearerAuth" = ["approve"]), ("bearerAuth" = ["read"])),
    params(("id" = String, Path, description = "The approval's id.")),
    responses(
        (status = 200, description = "The approval.", body = ApprovalDetail),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The token lacks `approve` and `read`, acts as no person, or the approval is not one of its person's (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such approval (`not_found`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn get_approval(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<ApprovalDetail>, ApiError> {
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
    Ok(Json(detail.into()))
}

/// A decision on an approval.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    /// Approve or deny.
    decision: Verdict,
    /// Why; at most 2000 bytes.
    #[schema(schema_with = comment)]
    comment: String,
}

/// A decision's comment.
fn comment() -> utoipa::openapi::schema::Object {
    text_schema("Why; must not be blank.")
}

/// Decide an approval.
///
/// As the token's person, for themselves or for an approver who delegated to them. A deny
/// ends the chain; the last stage's approval releases the grant. Requires `approve`.
#[utoipa::path(
    post,
    path = "/api/v1/approvals/{id}/decision",
    tag = "access",
    security(("bearerAuth" = ["approve"])),
    params(("id" = String, Path, description = "The approval's id.")),
    request_body = DecisionBody,
    responses(
        (status = 200, description = "The approval after the decision.", body = ApprovalDetail),
        (status = 400, description = "The body is not a decision (`invalid_request`); `field` names what is wrong.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The token lacks `approve` or acts as no person, or its person may not decide this stage (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such approval (`not_found`).", body = ErrorBody),
        (status = 409, description = "The approval is already decided, or this approver already decided this stage (`conflict`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn post_decision(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<ApprovalDetail>, ApiError> {
    let d: DecisionBody = parse_body(&body)?;
    Ok(Json(decide(&s, &p, &id, d.decision, &d.comment).await?))
}

/// Decides approval `id` as `p`'s person: the rules of `POST /api/v1/approvals/{id}/decision`,
/// for every way in.
pub(crate) async fn decide(
    s: &AppState,
    p: &Principal,
    id: &str,
    verdict: Verdict,
    comment: &str,
) -> Result<ApprovalDetail, ApiError> {
    p.require(Scope::Approve)?;
    let actor = p.person()?.to_string();
    let comment = text("comment", comment)?;
    let detail = s
        .engine()
        .decide_approval(id, &actor, verdict, &comment)
        .await?;
    Ok(detail.into())
}

/// A delegation to make.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DelegationBody {
    /// The approver who is away; the token's person when absent (admins may name anyone).
    #[serde(default)]
    delegator: Option<String>,
    /// Who decides for them.
    delegate: String,
    /// From (RFC 3339, inclusive).
    starts_at: DateTime<Utc>,
    /// Until (RFC 3339, exclusive); after `starts_at`.
    ends_at: DateTime<Utc>,
}

/// Delegate approvals for a period.
///
/// While it lasts, the delegate decides what waits for the delegator. Requires `approve`
/// (`admin` to delegate for someone else).
#[utoipa::path(
    post,
    path = "/api/v1/delegations",
    tag = "access",
    security(("bearerAuth" = ["approve"])),
    request_body = DelegationBody,
    responses(
        (status = 201, description = "The delegation.", body = Delegation),
        (status = 400, description = "The body is not a delegation (`invalid_request`); `field` names what is wrong.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The token lacks `approve`, acts as no person and names no delegator, or names someone else without `admin` (`forbidden`).", body = ErrorBody),
        (status = 422, description = "A delegation to oneself, one that does not end after it starts or has already ended, or one naming a person tenure does not know (`invalid_request`); `field` names what is wrong.", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
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
    Ok((StatusCode::CREATED, Json(Delegation::from(row))).into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DelegationQuery {
    /// Whose delegations (made or received): the token's person unless named (needs `admin`).
    person: Option<String>,
    /// Everyone's (needs `admin`).
    #[serde(default)]
    all: bool,
    /// Withdrawn and ended delegations too.
    #[serde(default)]
    include_ended: bool,
    /// The `next_after` of the page before.
    after: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

/// Delegations the token's person made or received; anyone's with `admin`.
///
/// Requires `approve`.
#[utoipa::path(
    get,
    path = "/api/v1/delegations",
    tag = "access",
    security(("bearerAuth" = ["approve"])),
    params(DelegationQuery),
    responses(
        (status = 200, description = "A page of delegations.", body = DelegationPage),
        (status = 400, description = "A query parameter is unknown, of the wrong type or out of range, or both `person` and `all=true` are given (`invalid_request`); `field` names it.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The token lacks `approve`, or asks for someone else's or everyone's without `admin` (`forbidden`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn list_delegations(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<DelegationQuery>,
) -> Result<Json<DelegationPage>, ApiError> {
    p.require(Scope::Approve)?;
    let limit = limit(q.limit)?;
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
    let next_after = next_cursor(&items, limit, |d| &d.id);
    let items = items.into_iter().map(views::Delegation::from).collect();
    Ok(Json(DelegationPage { items, next_after }))
}

/// Withdraw a delegation.
///
/// Only the delegator, or an admin. Requires `approve`.
#[utoipa::path(
    delete,
    path = "/api/v1/delegations/{id}",
    tag = "access",
    security(("bearerAuth" = ["approve"])),
    params(("id" = String, Path, description = "The delegation's id.")),
    responses(
        (status = 204, description = "Withdrawn."),
        (status = 401, response = Unauthorized),
        (status = 403, description = "The token lacks `approve`, or is neither the delegator's nor an admin's (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such delegation (`not_found`).", body = ErrorBody),
        (status = 409, description = "The delegation was already withdrawn or has ended (`conflict`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
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
