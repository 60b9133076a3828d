//! Handlers for access reviews: open and close campaigns, list a reviewer's items, decide
//! them one at a time or in bulk, and export a campaign as evidence.

use crate::access::parse_body;
use crate::auth::{Principal, Scope};
use crate::openapi::{ErrorBody, Forbidden, Internal, InvalidQuery, Unauthorized, Unavailable};
use crate::path::Path;
use crate::query::{Query, choice, limit};
use crate::views::time;
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use tenure_core::review::{
    ApplyAt, CampaignDefinition, CampaignState, ItemOutcome, Recommendation, Recurrence,
    ReviewDecision, ReviewScope, ReviewerKind, SettledBy, WhenUndecided,
};
use tenure_core::{GrantSource, Risk};
use tenure_engine::{DecideItems, OpenCampaign};
use tenure_store::{CampaignRow, ItemFilter, ItemRow};
use utoipa::{IntoParams, ToSchema};

/// A campaign to open: a `[[reviews]]` definition by name, or one given here in full.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCampaign {
    /// The name of a `[[reviews]]` definition of `tenure.toml`; nothing else may be given.
    #[serde(default)]
    definition: Option<String>,
    /// The campaign's name (with a definition given here).
    #[serde(default)]
    name: Option<String>,
    /// What it covers (every list optional; an empty scope covers every grant).
    #[serde(default)]
    scope: Option<ReviewScope>,
    /// `manager`, `owner`, `client_owner` or `team`.
    #[serde(default)]
    reviewer: Option<ReviewerKind>,
    /// The team, for reviewer `team`.
    #[serde(default)]
    team: Option<String>,
    /// Who reviews items whose reviewer is the person themself, gone or not named.
    #[serde(default)]
    fallback: Option<String>,
    /// Days reviewers have (default 14).
    #[serde(default)]
    duration_days: Option<u32>,
    /// Reminders, in days before the end.
    #[serde(default)]
    reminder_days: Option<Vec<u32>>,
    /// `monthly` or `quarterly` (only for a `[[reviews]]` definition).
    #[serde(default)]
    recurrence: Option<Recurrence>,
    /// `keep` (default), `revoke` or `recommendation`.
    #[serde(default)]
    when_undecided: Option<WhenUndecided>,
    /// `close` (default) or `decision`.
    #[serde(default)]
    apply: Option<ApplyAt>,
    /// Close by itself at the end (default true).
    #[serde(default)]
    auto_close: Option<bool>,
}

/// A campaign and how far it got.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Campaign {
    /// Its id.
    pub(crate) id: String,
    /// Its name.
    pub(crate) name: String,
    /// `open` or `closed`.
    pub(crate) state: CampaignState,
    /// What it covers and how it runs.
    pub(crate) definition: CampaignDefinition,
    /// Who opened it (`scheduler` for a recurrence).
    pub(crate) opened_by: String,
    /// When.
    pub(crate) opened_at: String,
    /// When reviewers' time ends.
    pub(crate) due_at: String,
    /// When it closed.
    pub(crate) closed_at: Option<String>,
    /// Who closed it (`scheduler` at its end).
    pub(crate) closed_by: Option<String>,
    /// Items in all.
    pub(crate) items: i64,
    /// Items a reviewer decided.
    pub(crate) decided: i64,
    /// Items still undecided.
    pub(crate) open_items: i64,
    /// Whether it is open past its end.
    pub(crate) overdue: bool,
}

impl Campaign {
    fn new(r: CampaignRow, now: i64) -> Campaign {
        Campaign {
            overdue: r.state == CampaignState::Open && r.due_at <= now,
            open_items: if r.state == CampaignState::Open {
                r.items - r.decided
            } else {
                0
            },
            id: r.id,
            name: r.name,
            state: r.state,
            definition: r.definition,
            opened_by: r.opened_by,
            opened_at: time(r.opened_at),
            due_at: time(r.due_at),
            closed_at: r.closed_at.map(time),
            closed_by: r.closed_by,
            items: r.items,
            decided: r.decided,
        }
    }
}

/// A page of campaigns.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CampaignPage {
    /// Newest first.
    pub(crate) items: Vec<Campaign>,
    /// Pass as `before` for the next page; absent on the last.
    pub(crate) next_before: Option<String>,
}

/// One (person, entitlement) to review.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Item {
    /// Its number in the campaign.
    pub(crate) seq: i64,
    /// Whose access.
    pub(crate) person_id: String,
    /// What access.
    pub(crate) entitlement: String,
    /// On which system.
    pub(crate) system: String,
    /// How risky it is.
    pub(crate) risk: Risk,
    /// How it was given.
    pub(crate) source: GrantSource,
    /// The template, engagement or request.
    pub(crate) source_ref: String,
    /// When it was granted.
    pub(crate) granted_at: Option<String>,
    /// Who reviews it: a person id or `team:NAME`; null: admins.
    pub(crate) reviewer: Option<String>,
    /// What is recommended and why.
    pub(crate) recommendation: Option<Recommendation>,
    /// The decision.
    pub(crate) decision: Option<ReviewDecision>,
    /// Why.
    pub(crate) justification: Option<String>,
    /// Who decided.
    pub(crate) decided_by: Option<String>,
    /// For which reviewer (differs from `decided_by` for a delegate).
    pub(crate) decided_for: Option<String>,
    /// When.
    pub(crate) decided_at: Option<String>,
    /// Once applied: `reviewer`, `default` or `recommendation`.
    pub(crate) settled_by: Option<SettledBy>,
    /// Once applied: `kept`, `revoked`, `flagged` or `gone`.
    pub(crate) outcome: Option<ItemOutcome>,
    /// The run that carried a `revoke` out.
    pub(crate) run_id: Option<String>,
    /// When the result was applied.
    pub(crate) applied_at: Option<String>,
}

impl From<ItemRow> for Item {
    fn from(i: ItemRow) -> Item {
        Item {
            seq: i.seq,
            person_id: i.person_id,
            entitlement: i.entitlement,
            system: i.system,
            risk: i.risk,
            source: i.source,
            source_ref: i.source_ref,
            granted_at: i.granted_at.map(time),
            reviewer: i.reviewer,
            recommendation: i.recommendation,
            decision: i.decision,
            justification: i.justification,
            decided_by: i.decided_by,
            decided_for: i.decided_for,
            decided_at: i.decided_at.map(time),
            settled_by: i.settled_by,
            outcome: i.outcome,
            run_id: i.run_id,
            applied_at: i.applied_at.map(time),
        }
    }
}

/// A page of items.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ItemPage {
    /// In item order.
    pub(crate) items: Vec<Item>,
    /// Pass as `after` for the next page; absent on the last.
    pub(crate) next_after: Option<i64>,
}

/// Open a campaign.
///
/// Its items are the grants in scope held now, one per (person, entitlement), each with its
/// reviewer and recommendation, frozen. Requires `admin`.
#[utoipa::path(
    post,
    path = "/api/v1/reviews",
    tag = "reviews",
    security(("bearerAuth" = ["admin"])),
    request_body = NewCampaign,
    responses(
        (status = 201, description = "Opened; `Location` names it.", body = Campaign),
        (status = 400, description = "The body is not a campaign (`invalid_request`); `field` names what is wrong.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No `[[reviews]]` definition of that name (`not_found`).", body = ErrorBody),
        (status = 409, description = "A campaign of that name is still open (`conflict`).", body = ErrorBody),
        (status = 422, description = "The definition is unsound (an unknown team, system or entitlement; a duration out of range) (`invalid_request`).", body = ErrorBody),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn post_campaign(
    State(s): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    p.require(Scope::Admin)?;
    let b: NewCampaign = parse_body(&body)?;
    let (name, definition) = match b.definition {
        Some(d) => {
            let inline = b.name.is_some()
                || b.scope.is_some()
                || b.reviewer.is_some()
                || b.team.is_some()
                || b.fallback.is_some()
                || b.duration_days.is_some()
                || b.reminder_days.is_some()
                || b.recurrence.is_some()
                || b.when_undecided.is_some()
                || b.apply.is_some()
                || b.auto_close.is_some();
            if inline {
                return Err(ApiError::invalid(
                    "definition",
                    "give a definition's name alone, or a campaign in full without it",
                ));
            }
            let config = s.engine().config();
            let def = config
                .reviews
                .get(&d)
                .cloned()
                .ok_or_else(|| ApiError::not_found(format!("review definition `{d}`")))?;
            (d, def)
        }
        None => {
            let name = b
                .name
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .ok_or_else(|| ApiError::invalid("name", "a campaign needs a name"))?;
            tenure_core::text::check(&name, 200)
                .map_err(|e| ApiError::invalid("name", e.to_string()))?;
            if b.recurrence.is_some() {
                return Err(ApiError::invalid(
                    "recurrence",
                    "a recurring campaign is defined in [[reviews]] of tenure.toml",
                ));
            }
            let reviewer = b
                .reviewer
                .ok_or_else(|| ApiError::invalid("reviewer", "name who reviews"))?;
            let def = CampaignDefinition {
                scope: b.scope.unwrap_or_default(),
                reviewer,
                team: b.team,
                fallback: b.fallback,
                duration_days: b
                    .duration_days
                    .unwrap_or(tenure_core::config::REVIEW_DEFAULT_DAYS),
                reminder_days: b.reminder_days.unwrap_or_default(),
                recurrence: None,
                when_undecided: b.when_undecided.unwrap_or(WhenUndecided::Keep),
                apply: b.apply.unwrap_or(ApplyAt::Close),
                auto_close: b.auto_close.unwrap_or(true),
            };
            (name, def)
        }
    };
    let row = s
        .engine()
        .open_review(OpenCampaign {
            name,
            definition,
            actor: p.name.clone(),
        })
        .await?;
    let now = s.engine().clock().now_ms();
    let location = format!("/api/v1/reviews/{}", row.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(Campaign::new(row, now)),
    )
        .into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CampaignQuery {
    /// `open`, `closed` or `all` (default).
    state: Option<String>,
    /// The `next_before` of the page before.
    before: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

/// Campaigns, newest first.
///
/// Requires `read` or `approve`.
#[utoipa::path(
    get,
    path = "/api/v1/reviews",
    tag = "reviews",
    security(("bearerAuth" = ["read"]), ("bearerAuth" = ["approve"])),
    params(CampaignQuery),
    responses(
        (status = 200, description = "A page of campaigns.", body = CampaignPage),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn list_campaigns(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<CampaignQuery>,
) -> Result<Json<CampaignPage>, ApiError> {
    p.require_any(&[Scope::Read, Scope::Approve])?;
    let limit = limit(q.limit)?;
    let state = choice(
        "state",
        q.state.as_deref().unwrap_or("all"),
        &[
            ("open", Some(CampaignState::Open)),
            ("closed", Some(CampaignState::Closed)),
            ("all", None),
        ],
    )?;
    if let Some(b) = &q.before {
        plain("before", b)?;
    }
    let mut c = s.store().reader().await?;
    let rows = tenure_store::list_campaigns(&mut c, state, q.before.as_deref(), limit).await?;
    let next_before = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    let now = s.engine().clock().now_ms();
    Ok(Json(CampaignPage {
        items: rows.into_iter().map(|r| Campaign::new(r, now)).collect(),
        next_before,
    }))
}

/// Refuses a NUL in a path or query value (no database stores one): a `400` naming it.
fn plain<'a>(field: &str, v: &'a str) -> Result<&'a str, ApiError> {
    tenure_core::text::check(v, 1_000).map_err(|e| ApiError::invalid(field, e.to_string()))?;
    Ok(v)
}

async fn campaign(s: &AppState, id: &str) -> Result<CampaignRow, ApiError> {
    plain("id", id)?;
    let mut c = s.store().reader().await?;
    tenure_store::get_campaign(&mut c, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("campaign `{id}`")))
}

/// One campaign and how far it got.
///
/// Requires `read` or `approve`.
#[utoipa::path(
    get,
    path = "/api/v1/reviews/{id}",
    tag = "reviews",
    security(("bearerAuth" = ["read"]), ("bearerAuth" = ["approve"])),
    params(("id" = String, Path, description = "The campaign's id.")),
    responses(
        (status = 200, description = "The campaign.", body = Campaign),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such campaign (`not_found`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn get_campaign(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Campaign>, ApiError> {
    p.require_any(&[Scope::Read, Scope::Approve])?;
    let row = campaign(&s, &id).await?;
    Ok(Json(Campaign::new(row, s.engine().clock().now_ms())))
}

/// Close a campaign now and apply its results.
///
/// Every `keep` stays; every `revoke` (decided, or the campaign's rule for undecided items)
/// becomes a revocation run, except access a role template gives back at once, which is
/// flagged to the template's owner. Requires `admin`.
#[utoipa::path(
    post,
    path = "/api/v1/reviews/{id}/close",
    tag = "reviews",
    security(("bearerAuth" = ["admin"])),
    params(("id" = String, Path, description = "The campaign's id.")),
    responses(
        (status = 200, description = "The campaign, closed.", body = Campaign),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such campaign (`not_found`).", body = ErrorBody),
        (status = 409, description = "It is already closed (`conflict`).", body = ErrorBody),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn close_campaign(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Campaign>, ApiError> {
    p.require(Scope::Admin)?;
    plain("id", &id)?;
    let row = s.engine().close_review(&id, &p.name).await?;
    Ok(Json(Campaign::new(row, s.engine().clock().now_ms())))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ItemQuery {
    /// `me` (default: items the token's person may decide, as reviewer, team member or
    /// delegate) or `all` (needs `read`).
    reviewer: Option<String>,
    /// `open` (default), `decided` or `all`.
    state: Option<String>,
    /// Only this person's items.
    person: Option<String>,
    /// The `next_after` of the page before.
    after: Option<i64>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

/// What the token's person may answer as: themself, their teams, those who delegated to them
/// and their teams, and (for an admin) items no reviewer could be named for. Stored forms.
async fn answers_as(s: &AppState, p: &Principal, person: &str) -> Result<Vec<String>, ApiError> {
    let mut c = s.store().reader().await?;
    let now = s.engine().clock().now_ms();
    let mut who = vec![person.to_string()];
    who.extend(tenure_store::delegators_of(&mut c, person, now).await?);
    let config = s.engine().config();
    let mut out: BTreeSet<String> = who.iter().cloned().collect();
    for (team, members) in &config.approvals.teams {
        if members.iter().any(|m| who.contains(m)) {
            out.insert(tenure_core::review::Reviewer::Team(team.clone()).stored());
        }
    }
    if p.is_admin() {
        out.insert(String::new());
    }
    Ok(out.into_iter().collect())
}

/// Open campaigns looked at for what waits for a reviewer: the newest, at most this many.
pub(crate) const WAITING_CAMPAIGNS: i64 = 20;

/// An open campaign and how many of its items wait for the token's person.
#[derive(Debug)]
pub(crate) struct Waiting {
    /// The campaign's id.
    pub(crate) id: String,
    /// Its name.
    pub(crate) name: String,
    /// Items the person may decide (as `GET /api/v1/reviews/{id}/items` lists them).
    pub(crate) items: i64,
}

/// The open campaigns (the [`WAITING_CAMPAIGNS`] newest) with items waiting for the token's
/// person, newest first: the items `GET /api/v1/reviews/{id}/items` lists for them, counted.
/// Requires `approve` and a person.
pub(crate) async fn waiting(s: &AppState, p: &Principal) -> Result<Vec<Waiting>, ApiError> {
    p.require(Scope::Approve)?;
    let person = p.person()?.to_string();
    let mut c = s.store().reader().await?;
    let open =
        tenure_store::list_campaigns(&mut c, Some(CampaignState::Open), None, WAITING_CAMPAIGNS)
            .await?;
    drop(c);
    if open.is_empty() {
        return Ok(Vec::new());
    }
    let reviewers = answers_as(s, p, &person).await?;
    let ids: Vec<String> = open.iter().map(|r| r.id.clone()).collect();
    let mut c = s.store().reader().await?;
    let counts: HashMap<String, i64> =
        tenure_store::count_waiting_items(&mut c, &ids, &reviewers, &person)
            .await?
            .into_iter()
            .collect();
    Ok(open
        .into_iter()
        .filter_map(|r| {
            counts.get(&r.id).map(|n| Waiting {
                items: *n,
                id: r.id,
                name: r.name,
            })
        })
        .collect())
}

/// A campaign's items: by default, those waiting for the token's person.
///
/// Items about the token's own access are never listed as theirs to decide. Requires
/// `approve` (`read` for `reviewer=all`).
#[utoipa::path(
    get,
    path = "/api/v1/reviews/{id}/items",
    tag = "reviews",
    security(("bearerAuth" = ["approve"]), ("bearerAuth" = ["read"])),
    params(("id" = String, Path, description = "The campaign's id."), ItemQuery),
    responses(
        (status = 200, description = "A page of items.", body = ItemPage),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such campaign (`not_found`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn list_items(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<ItemQuery>,
) -> Result<Json<ItemPage>, ApiError> {
    let limit = limit(q.limit)?;
    let all = choice(
        "reviewer",
        q.reviewer.as_deref().unwrap_or("me"),
        &[("me", false), ("all", true)],
    )?;
    let decided = choice(
        "state",
        q.state.as_deref().unwrap_or("open"),
        &[
            ("open", Some(false)),
            ("decided", Some(true)),
            ("all", None),
        ],
    )?;
    let me = if all {
        p.require(Scope::Read)?;
        None
    } else {
        p.require(Scope::Approve)?;
        Some(p.person()?.to_string())
    };
    let row = campaign(&s, &id).await?;
    if let Some(person) = &q.person {
        plain("person", person)?;
    }
    let reviewers = match &me {
        Some(person) => Some(answers_as(&s, &p, person).await?),
        None => None,
    };
    let mut c = s.store().reader().await?;
    let rows = tenure_store::review_items(
        &mut c,
        &ItemFilter {
            campaign_id: &row.id,
            reviewers: reviewers.as_deref(),
            decided,
            person_id: q.person.as_deref(),
            after: q.after.unwrap_or(0),
            limit,
        },
    )
    .await?;
    let next_after = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    let items = rows
        .into_iter()
        .filter(|i| me.as_deref().is_none_or(|m| i.person_id != m))
        .map(Item::from)
        .collect();
    Ok(Json(ItemPage { items, next_after }))
}

/// A decision on one or more items.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    /// The items' numbers (1 to 1,000).
    items: Vec<i64>,
    /// `keep` or `revoke`, for every one of them.
    decision: ReviewDecision,
    /// Why; required to keep high or privileged access.
    #[serde(default)]
    justification: Option<String>,
}

/// The items decided.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Decided {
    /// Each item as recorded (with its revocation run, when the campaign applies decisions
    /// at once).
    items: Vec<Item>,
}

/// Decide items.
///
/// As the token's person, for themselves, their team, or a reviewer who delegated to them.
/// All the items named or none: an item that is not theirs, already decided, or that keeps
/// high or privileged access without a justification refuses the whole decision. Nobody
/// decides on their own access. Requires `approve`.
#[utoipa::path(
    post,
    path = "/api/v1/reviews/{id}/decisions",
    tag = "reviews",
    security(("bearerAuth" = ["approve"])),
    params(("id" = String, Path, description = "The campaign's id.")),
    request_body = DecisionBody,
    responses(
        (status = 200, description = "The items as decided.", body = Decided),
        (status = 400, description = "The body is not a decision (`invalid_request`).", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 403, description = "An item is not this person's to decide, or is about their own access (`forbidden`).", body = ErrorBody),
        (status = 404, description = "No such campaign or item (`not_found`).", body = ErrorBody),
        (status = 409, description = "The campaign is closed or an item is already decided (`conflict`).", body = ErrorBody),
        (status = 422, description = "No items or too many, a justification missing or too long (`invalid_request`).", body = ErrorBody),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn post_decisions(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Decided>, ApiError> {
    let b: DecisionBody = parse_body(&body)?;
    let items = decide(&s, &p, id, b.items, b.decision, b.justification).await?;
    Ok(Json(Decided { items }))
}

/// Decides items of campaign `id` as `p`'s person: the rules of
/// `POST /api/v1/reviews/{id}/decisions`, for every way in.
pub(crate) async fn decide(
    s: &AppState,
    p: &Principal,
    id: String,
    items: Vec<i64>,
    decision: ReviewDecision,
    justification: Option<String>,
) -> Result<Vec<Item>, ApiError> {
    p.require(Scope::Approve)?;
    let actor = p.person()?.to_string();
    plain("id", &id)?;
    if let Some(j) = &justification {
        tenure_core::text::check(j, tenure_engine::MAX_JUSTIFICATION)
            .map_err(|e| ApiError::invalid("justification", e.to_string()))?;
    }
    let rows = s
        .engine()
        .decide_review(DecideItems {
            campaign_id: id,
            items,
            decision,
            justification,
            actor,
            admin: p.is_admin(),
        })
        .await?;
    Ok(rows.into_iter().map(Item::from).collect())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExportQuery {
    /// `json` (default) or `csv`.
    format: Option<String>,
}

/// Items written per page of an export.
const EXPORT_PAGE: i64 = 2_000;

/// Export a campaign as evidence.
///
/// Every item with its decision, who decided it, when and why, the recommendation shown, what
/// it came to, the run that carried a revocation out, and the audit sequence numbers that
/// prove it (`decision_seq`: the decision; `applied_seq`: the revocation or flag;
/// `revoke_seq`: the system's revocation, once done). Streamed in item order. Requires `read`.
#[utoipa::path(
    get,
    path = "/api/v1/reviews/{id}/export",
    tag = "reviews",
    security(("bearerAuth" = ["read"])),
    params(("id" = String, Path, description = "The campaign's id."), ExportQuery),
    responses(
        (status = 200, description = "The campaign and its items: JSON (`{\"campaign\", \"items\"}`) or CSV, a row per item.", content((Object = "application/json"), (String = "text/csv"))),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such campaign (`not_found`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn export_campaign(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    p.require(Scope::Read)?;
    let csv = choice(
        "format",
        q.format.as_deref().unwrap_or("json"),
        &[("json", false), ("csv", true)],
    )?;
    let row = campaign(&s, &id).await?;
    let now = s.engine().clock().now_ms();
    let head = if csv {
        csv_line(&EXPORT_COLUMNS.map(String::from))
    } else {
        let campaign =
            serde_json::to_string(&Campaign::new(row.clone(), now)).map_err(ApiError::internal)?;
        format!("{{\"campaign\":{campaign},\"items\":[")
    };
    struct Page {
        after: i64,
        first: bool,
        done: bool,
    }
    let start = Page {
        after: 0,
        first: true,
        done: false,
    };
    let state = s.clone();
    let campaign_id = row.id.clone();
    let body =
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) })
            .chain(futures_util::stream::unfold(start, move |mut page| {
                let s = state.clone();
                let campaign_id = campaign_id.clone();
                async move {
                    if page.done {
                        return None;
                    }
                    let chunk = export_page(&s, &campaign_id, page.after, csv).await;
                    let out = match chunk {
                        Ok((text, last, count)) => {
                            let mut text = text;
                            if !csv && count > 0 && !page.first {
                                text.insert(0, ',');
                            }
                            if count < EXPORT_PAGE as usize {
                                page.done = true;
                                if !csv {
                                    text.push_str("]}");
                                }
                            }
                            page.first &= count == 0;
                            page.after = last;
                            Ok(Bytes::from(text))
                        }
                        Err(e) => {
                            // The status is sent; a broken body is how a failure mid-stream shows.
                            tracing::error!(error = %e, "export failed mid-stream");
                            page.done = true;
                            Err(std::io::Error::other(e.to_string()))
                        }
                    };
                    Some((out, page))
                }
            }));
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/json"
    };
    let extension = if csv { "csv" } else { "json" };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"review-{}.{extension}\"", row.id),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

use futures_util::StreamExt;

/// The columns of a CSV export.
const EXPORT_COLUMNS: [&str; 22] = [
    "item",
    "person_id",
    "entitlement",
    "system",
    "risk",
    "source",
    "source_ref",
    "reviewer",
    "recommendation",
    "confidence",
    "evidence",
    "decision",
    "justification",
    "decided_by",
    "decided_for",
    "decided_at",
    "settled_by",
    "outcome",
    "run_id",
    "decision_seq",
    "applied_seq",
    "revoke_seq",
];

fn csv_line(fields: &[String]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    // Writing to memory cannot fail.
    let _ = w.write_record(fields);
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// One page of an export after item `after`: its text, the last item number and how many.
async fn export_page(
    s: &AppState,
    campaign: &str,
    after: i64,
    csv: bool,
) -> Result<(String, i64, usize), tenure_store::StoreError> {
    let mut c = s.store().reader().await?;
    let items = tenure_store::review_items(
        &mut c,
        &ItemFilter {
            campaign_id: campaign,
            reviewers: None,
            decided: None,
            person_id: None,
            after,
            limit: EXPORT_PAGE,
        },
    )
    .await?;
    let people: Vec<String> = items
        .iter()
        .map(|i| i.person_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let proofs = tenure_store::review_proofs(&mut c, campaign, &people).await?;
    let mut decision_seq = HashMap::new();
    let mut applied_seq = HashMap::new();
    let mut revoke_seq = HashMap::new();
    for p in proofs {
        match (p.item, p.action.as_str()) {
            (Some(item), "review.decided") => {
                decision_seq.insert(item, p.seq);
            }
            (Some(item), "review.revoked" | "review.flagged") => {
                applied_seq.insert(item, p.seq);
            }
            (_, "step.revoke") => {
                if let (Some(run), Some(ent)) = (p.run_id, p.entitlement) {
                    revoke_seq.insert((run, ent), p.seq);
                }
            }
            _ => {}
        }
    }
    let last = items.last().map(|i| i.seq).unwrap_or(after);
    let count = items.len();
    let mut out = String::new();
    for (n, i) in items.into_iter().enumerate() {
        let d = decision_seq.get(&i.seq).copied();
        let a = applied_seq.get(&i.seq).copied();
        let r = i
            .run_id
            .clone()
            .and_then(|run| revoke_seq.get(&(run, i.entitlement.clone())).copied());
        if csv {
            let rec = i.recommendation.as_ref();
            let evidence = rec
                .map(|r| {
                    r.evidence
                        .iter()
                        .map(|e| {
                            format!(
                                "{} {}% {}: {}",
                                e.suggests, e.confidence, e.signal, e.detail
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            let opt = |v: Option<String>| v.unwrap_or_default();
            let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
            out.push_str(&csv_line(&[
                i.seq.to_string(),
                i.person_id.clone(),
                i.entitlement.clone(),
                i.system.clone(),
                i.risk.to_string(),
                i.source.to_string(),
                i.source_ref.clone(),
                opt(i.reviewer.clone()),
                opt(rec.map(|r| r.decision.to_string())),
                opt(rec.map(|r| r.confidence.to_string())),
                evidence,
                opt(i.decision.map(|d| d.to_string())),
                opt(i.justification.clone()),
                opt(i.decided_by.clone()),
                opt(i.decided_for.clone()),
                opt(i.decided_at.map(time)),
                opt(i.settled_by.map(|x| x.to_string())),
                opt(i.outcome.map(|x| x.to_string())),
                opt(i.run_id.clone()),
                num(d),
                num(a),
                num(r),
            ]));
        } else {
            if n > 0 {
                out.push(',');
            }
            let mut v = serde_json::to_value(Item::from(i))
                .map_err(|e| tenure_store::StoreError::Corrupt(e.to_string()))?;
            v["decision_seq"] = d.into();
            v["applied_seq"] = a.into();
            v["revoke_seq"] = r.into();
            out.push_str(&v.to_string());
        }
    }
    Ok((out, last, count))
}
