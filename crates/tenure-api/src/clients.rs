//! The canonical model's clients and engagements, read-only: `GET /api/v1/clients[/{id}]` and
//! `GET /api/v1/engagements`.
//!
//! A client is whatever tenure knows of it: configured in `tenure.toml`, told by engagement
//! events that carried it in full (stored, and winning over the configured values term by
//! term, as policy and time bounds read it), or only named by engagements.

use crate::auth::{Principal, Scope};
use crate::openapi::{ErrorBody, Forbidden, Internal, InvalidQuery, Unauthorized};
use crate::path::Path;
use crate::query::{Query, limit};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use tenure_core::Client;
use tenure_core::config::{Config, merge_client};
use tenure_store::{Conn, EngagementFilter};

/// How many active engagements a client's own page lists (the rest: `GET /api/v1/engagements`).
const ENGAGED_SHOWN: i64 = 100;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ClientQuery {
    /// The `next_after` of the page before.
    after: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

/// Every client tenure knows, in id order.
///
/// Configured, told by engagement events, or only named by engagements: `configured`,
/// `from_events`, `effective` (the two merged term by term) and the engagement counts.
/// Requires `read`.
#[utoipa::path(
    get,
    path = "/api/v1/clients",
    tag = "clients",
    security(("bearerAuth" = ["read"])),
    params(ClientQuery),
    responses(
        (status = 200, description = "A page of clients: `{items, next_after}`.", body = Object),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn list_clients(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<ClientQuery>,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Read)?;
    let limit = limit(q.limit)?;
    let after = q.after.as_deref().unwrap_or("");
    let config = s.engine().config();
    let mut c = s.store().reader().await?;
    let mut ids: BTreeSet<String> = config
        .clients
        .range::<str, _>((Bound::Excluded(after), Bound::Unbounded))
        .take(limit as usize)
        .map(|(id, _)| id.clone())
        .collect();
    ids.extend(tenure_store::stored_client_ids(&mut c, after, limit).await?);
    let ids: Vec<String> = ids.into_iter().take(limit as usize).collect();
    let items = views(&mut c, &config, &ids).await?;
    let next = (ids.len() as i64 == limit).then(|| ids.last().cloned());
    Ok(Json(
        json!({ "items": items, "next_after": next.flatten() }),
    ))
}

/// One client, with the first of its active engagements.
///
/// Requires `read`.
#[utoipa::path(
    get,
    path = "/api/v1/clients/{id}",
    tag = "clients",
    security(("bearerAuth" = ["read"])),
    params(("id" = String, Path, description = "The client's id.")),
    responses(
        (status = 200, description = "The client, with `engaged` (its first active engagements) and `engaged_next_after`.", body = Object),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No client of this id is known (`not_found`).", body = ErrorBody),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn get_client(
    State(s): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Read)?;
    let config = s.engine().config();
    let mut c = s.store().reader().await?;
    let mut view = views(&mut c, &config, std::slice::from_ref(&id))
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found(format!("client `{id}`")))?;
    let filter = EngagementFilter {
        client: Some(&id),
        active: Some(true),
        limit: ENGAGED_SHOWN,
        ..Default::default()
    };
    let engaged = tenure_store::engagements_matching(&mut c, &filter).await?;
    let next =
        (engaged.len() as i64 == ENGAGED_SHOWN).then(|| engaged.last().map(|e| e.id.clone()));
    view["engaged"] = json!(engaged);
    view["engaged_next_after"] = json!(next.flatten());
    Ok(Json(view))
}

/// The views of the clients among `ids` that tenure knows, in the order of `ids`.
async fn views(c: &mut Conn, config: &Config, ids: &[String]) -> Result<Vec<Value>, ApiError> {
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let told: BTreeMap<String, Client> = tenure_store::clients_by_ids(c, &refs)
        .await?
        .into_iter()
        .map(|t| (t.id.clone(), t))
        .collect();
    let counts = tenure_store::engagement_counts(c, &refs).await?;
    Ok(ids
        .iter()
        .filter_map(|id| {
            let configured = config.clients.get(id);
            let told = told.get(id);
            let counted = counts.get(id);
            if configured.is_none() && told.is_none() && counted.is_none() {
                return None;
            }
            let engagements = counted.copied().unwrap_or_default();
            let effective = match told {
                Some(t) => Some(merge_client(configured, t.clone())),
                None => configured.cloned(),
            };
            Some(json!({
                "id": id,
                "name": effective.as_ref().map(|e| e.name.clone()),
                "configured": configured,
                "from_events": told,
                "effective": effective,
                "engagements": {"active": engagements.active, "ended": engagements.ended},
            }))
        })
        .collect())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EngagementQuery {
    /// Only engagements with this client.
    client: Option<String>,
    /// Only engagements of this person.
    person: Option<String>,
    /// `true`: only active engagements; `false`: only ended ones.
    active: Option<bool>,
    /// The `next_after` of the page before.
    after: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<i64>,
}

/// Engagements in id order, filtered.
///
/// Requires `read`.
#[utoipa::path(
    get,
    path = "/api/v1/engagements",
    tag = "clients",
    security(("bearerAuth" = ["read"])),
    params(EngagementQuery),
    responses(
        (status = 200, description = "A page of engagements: `{items, next_after}`.", body = Object),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn list_engagements(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<EngagementQuery>,
) -> Result<Json<Value>, ApiError> {
    p.require(Scope::Read)?;
    let filter = EngagementFilter {
        client: q.client.as_deref(),
        person: q.person.as_deref(),
        active: q.active,
        after: q.after.as_deref(),
        limit: limit(q.limit)?,
    };
    let mut c = s.store().reader().await?;
    let items = tenure_store::engagements_matching(&mut c, &filter).await?;
    let next = (items.len() as i64 == filter.limit).then(|| items.last().map(|e| e.id.clone()));
    Ok(Json(
        json!({ "items": items, "next_after": next.flatten() }),
    ))
}
