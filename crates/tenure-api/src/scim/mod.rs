//! The SCIM 2.0 server under `/scim/v2` (RFC 7643, RFC 7644), for identity providers.
//!
//! - `Users` are people: each user an identity provider creates is stored as it sent it
//!   (`scim_users`, with a value index that filters run on in SQL) and becomes lifecycle events
//!   through the engine's normal ingest ([`lifecycle`]). tenure's own view of the person
//!   (status, engagements, entitlements held) is added read-only.
//! - `Groups` are the groups an identity provider pushes, written here with their members
//!   ([`groups`]): a person's groups are a fact role templates match on and policy reads, so a
//!   membership change re-plans the member's access. tenure's own entitlements are listed
//!   beside them, read-only (members are the people holding the grant); writing one answers
//!   `400 mutability`.
//! - Discovery (`ServiceProviderConfig`, `ResourceTypes`, `Schemas`) is generated from the same
//!   schema table validation and filtering use ([`schema`]).
//!
//! Every error is a SCIM error body; every change is written in one transaction with its audit
//! entry and the outbox row of the event it makes, so an event is never lost between the two.
//! Concurrent changes share that transaction, each in a savepoint of its own ([`writer`]).

mod groups;
mod index;
mod locks;
mod writer;

pub(crate) use locks::StripedLocks;
pub(crate) use writer::Writer;

use crate::auth::{Principal, Scope};
use crate::{ApiError, AppState};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lifecycle::Lifecycle;
use locks::LockKey;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use tenure_engine::{Engine, IngestOutcome, Submission};
use tenure_scim::bulk::{
    BulkOperation, BulkRequest, bulk_response, resolve_bulk_ids, resolve_bulk_path,
};
use tenure_scim::index::Cond;
use tenure_scim::query::{ListParams, list_response};
use tenure_scim::render::{self, Stored, etag, etag_matches, rfc3339_ms};
use tenure_scim::schema::USER_SCHEMAS;
use tenure_scim::{Filter, PatchRequest, ScimError, ScimType};
use tenure_scim::{lifecycle, resource, schema};
use tenure_store::{NewAudit, ScimUserRow, StoreError};

const SCIM_JSON: &str = "application/scim+json";

/// A SCIM error as a response.
#[derive(Debug)]
pub struct Scim(pub ScimError);

impl From<ScimError> for Scim {
    fn from(e: ScimError) -> Self {
        Scim(e)
    }
}

impl From<ApiError> for Scim {
    fn from(e: ApiError) -> Self {
        Scim(ScimError::with_status(e.status.as_u16(), e.message))
    }
}

impl From<StoreError> for Scim {
    fn from(e: StoreError) -> Self {
        if e.is_unique_violation() {
            return Scim(ScimError::new(
                ScimType::Uniqueness,
                "a unique attribute (userName, displayName) is already taken",
            ));
        }
        ApiError::internal(e).into()
    }
}

impl From<tenure_engine::EngineError> for Scim {
    fn from(e: tenure_engine::EngineError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for Scim {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = (status, scim_body(json!(self.0))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tenure-scim\""),
            );
        }
        res
    }
}

type R<T> = Result<T, Scim>;

fn scim_body(v: Value) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON))],
        Json(v),
    )
        .into_response()
}

fn err(t: ScimType, m: impl Into<String>) -> Scim {
    Scim(ScimError::new(t, m))
}

fn status(code: u16, m: impl Into<String>) -> Scim {
    Scim(ScimError::with_status(code, m))
}

fn auth(p: Result<Principal, ApiError>) -> R<Principal> {
    let p = p?;
    p.require(Scope::Scim)?;
    Ok(p)
}

/// The SCIM routes, to be nested under `/scim/v2`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema_one))
        .route("/Users", get(list_users).post(create_user))
        .route("/Users/.search", post(search_users))
        .route(
            "/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route(
            "/Groups",
            get(groups::list_groups).post(groups::create_group),
        )
        .route("/Groups/.search", post(groups::search_groups))
        .route(
            "/Groups/{id}",
            get(groups::get_group)
                .put(groups::replace_group)
                .patch(groups::patch_group)
                .delete(groups::delete_group),
        )
        .route("/Bulk", post(bulk))
        .route("/.search", post(search_root))
        .route("/Me", get(me).post(me).put(me).patch(me).delete(me))
        .fallback(|| async { status(404, "no such SCIM endpoint") })
        .method_not_allowed_fallback(|| async {
            status(405, "method not allowed on this SCIM endpoint")
        })
}

/// The absolute base URL of the SCIM endpoints, for `meta.location` and discovery: from the
/// configured public URL, never from the request's `Host` header (which the client chooses).
fn base_url(s: &AppState) -> String {
    format!("{}/scim/v2", s.public_url())
}

fn parse_body(body: &Bytes, headers: &HeaderMap) -> R<Value> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let essence = ct
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(status(
                415,
                format!("send {SCIM_JSON} or application/json, not `{essence}`"),
            ));
        }
    }
    serde_json::from_slice(body).map_err(|e| {
        err(
            ScimType::InvalidSyntax,
            format!("the body is not JSON: {e}"),
        )
    })
}

// ------------------------------------------------------------------ discovery

async fn service_provider_config(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
) -> R<Response> {
    auth(p)?;
    Ok(scim_body(schema::service_provider_config(&base_url(&s))))
}

async fn resource_types(State(s): State<AppState>, p: Result<Principal, ApiError>) -> R<Response> {
    auth(p)?;
    let base = base_url(&s);
    let items = ["User", "Group"]
        .iter()
        .filter_map(|n| schema::resource_type_json(n, &base))
        .collect::<Vec<_>>();
    Ok(scim_body(list_response(items.len() as i64, 1, items)))
}

async fn resource_type(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
    Path(id): Path<String>,
) -> R<Response> {
    auth(p)?;
    schema::resource_type_json(&id, &base_url(&s))
        .map(scim_body)
        .ok_or_else(|| status(404, format!("no resource type `{id}`")))
}

async fn schemas(State(s): State<AppState>, p: Result<Principal, ApiError>) -> R<Response> {
    auth(p)?;
    let base = base_url(&s);
    let items = schema::ALL_SCHEMAS
        .iter()
        .filter_map(|u| schema::schema_json(u, &base))
        .collect::<Vec<_>>();
    Ok(scim_body(list_response(items.len() as i64, 1, items)))
}

async fn schema_one(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
    Path(id): Path<String>,
) -> R<Response> {
    auth(p)?;
    schema::schema_json(&id, &base_url(&s))
        .map(scim_body)
        .ok_or_else(|| status(404, format!("no schema `{id}`")))
}

async fn me(p: Result<Principal, ApiError>) -> R<Response> {
    auth(p)?;
    Err(status(
        501,
        "/Me is not supported: tokens belong to systems, not to users",
    ))
}

// ------------------------------------------------------------------ queries

fn query_params(raw: Option<String>) -> R<ListParams> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| {
            err(
                ScimType::InvalidValue,
                format!("malformed query string: {e}"),
            )
        })?;
    Ok(ListParams::from_pairs(pairs)?)
}

fn search_params(body: &Value) -> R<ListParams> {
    Ok(ListParams::from_search(body)?)
}

fn parse_filter(f: &str) -> R<Filter> {
    Filter::parse(f).map_err(|e| Scim(ScimError::invalid_filter(&e)))
}

// ------------------------------------------------------------------ users: reading

fn parse_doc(row: &ScimUserRow) -> R<Map<String, Value>> {
    serde_json::from_str(&row.doc)
        .map_err(|e| ApiError::internal(format!("scim_users.doc: {e}")).into())
}

/// tenure's read-only view of a user's person: its status and engagements.
struct PersonView {
    person: tenure_core::Person,
    engagements: Vec<tenure_core::Engagement>,
}

/// The person behind a user, read only when `attributes` asks for its status: a plain read is
/// one query (the user with the grants behind `groups`).
async fn person_view(
    c: &mut tenure_store::Conn,
    id: &str,
    params: &ListParams,
) -> R<Option<PersonView>> {
    if !params.wants_tenure_view() {
        return Ok(None);
    }
    let Some(person) = tenure_store::get_person(c, id).await? else {
        return Ok(None);
    };
    let engagements = tenure_store::engagements_of(c, id).await?;
    Ok(Some(PersonView {
        person,
        engagements,
    }))
}

/// A user's `groups` (RFC 7643 §4.1.2, read-only): the groups the identity provider put it in
/// (by displayName), then the entitlements its person holds (in id order; each is a read-only
/// group at `/Groups/{id}` whose members are its holders). Every one is a direct membership.
fn user_groups(
    config: &tenure_core::config::Config,
    pushed: &[(String, String)],
    held: &[String],
    base: &str,
) -> Vec<Value> {
    let entitlements = held.iter().map(|e| {
        let display = config.entitlements.get(e).map_or(e.as_str(), |x| &x.name);
        (e.as_str(), display)
    });
    let pushed = pushed.iter().map(|(id, name)| (id.as_str(), name.as_str()));
    render::user_group_refs(pushed.chain(entitlements), base)
}

/// The `groups` of each of `users` (id and the entitlements its person holds), read in one
/// query for the pushed groups.
async fn groups_of_users(
    s: &AppState,
    c: &mut tenure_store::Conn,
    users: &[(&str, &[String])],
) -> R<HashMap<String, Vec<Value>>> {
    let ids: Vec<&str> = users.iter().map(|(id, _)| *id).collect();
    let mut pushed = tenure_store::scim_groups_of(c, &ids).await?;
    let config = s.engine().config();
    let base = base_url(s);
    Ok(users
        .iter()
        .map(|(id, held)| {
            let p = pushed.remove(*id).unwrap_or_default();
            (id.to_string(), user_groups(&config, &p, held, &base))
        })
        .collect())
}

/// The user as served: the stored document, tenure's read-only view (`groups`, see
/// [`user_groups`]; `view` its status when asked for), and `meta`.
fn render_user(
    row: &ScimUserRow,
    groups: Vec<Value>,
    view: Option<&PersonView>,
    base: &str,
) -> R<Value> {
    let view = view.map(|v| render::PersonView {
        person: &v.person,
        engagements: &v.engagements,
    });
    let stored = Stored {
        created_ms: row.created_at,
        updated_ms: row.updated_at,
        version: row.version,
    };
    Ok(render::user(
        base,
        &row.id,
        parse_doc(row)?,
        groups,
        view,
        &stored,
    ))
}

fn with_etag(mut res: Response, version: i64, location: Option<&str>) -> Response {
    if let Ok(v) = HeaderValue::from_str(&etag(version)) {
        res.headers_mut().insert(header::ETAG, v);
    }
    if let Some(l) = location
        && let Ok(v) = HeaderValue::from_str(l)
    {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// `412` when an `If-Match` value does not name the stored `version`.
fn check_if_match(if_match: Option<&str>, version: Option<i64>) -> R<()> {
    match (version, if_match) {
        (Some(v), Some(m)) if !etag_matches(m, v) => Err(status(
            412,
            format!("If-Match does not match the current version {}", etag(v)),
        )),
        _ => Ok(()),
    }
}

async fn get_user(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> R<Response> {
    auth(p)?;
    let params = query_params(q)?;
    let mut c = s.store().reader().await?;
    let (row, held) = tenure_store::scim_user_with_groups(&mut c, &id)
        .await?
        .ok_or_else(|| status(404, format!("no user `{id}`")))?;
    if let Some(v) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        && etag_matches(v, row.version)
    {
        return Ok(with_etag(
            StatusCode::NOT_MODIFIED.into_response(),
            row.version,
            None,
        ));
    }
    let base = base_url(&s);
    let view = person_view(&mut c, &row.id, &params).await?;
    let groups = groups_of_users(&s, &mut c, &[(row.id.as_str(), held.as_slice())])
        .await?
        .remove(&row.id)
        .unwrap_or_default();
    let full = render_user(&row, groups, view.as_ref(), &base)?;
    let body = resource::project(&USER_SCHEMAS, full, &params.attributes, &params.excluded);
    Ok(with_etag(scim_body(body), row.version, None))
}

async fn list_users(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
    RawQuery(q): RawQuery,
) -> R<Response> {
    auth(p)?;
    let params = query_params(q)?;
    search(&s, params).await
}

async fn search_users(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
    headers: HeaderMap,
    body: Bytes,
) -> R<Response> {
    auth(p)?;
    let params = search_params(&parse_body(&body, &headers)?)?;
    search(&s, params).await
}

async fn search(s: &AppState, params: ListParams) -> R<Response> {
    let cond = params
        .filter
        .as_deref()
        .map(|f| resource::to_cond(&USER_SCHEMAS, &parse_filter(f)?).map_err(Scim))
        .transpose()?;
    let (total, items) = user_page(
        s,
        &params,
        cond.as_ref(),
        params.start_index - 1,
        params.count,
    )
    .await?;
    Ok(scim_body(list_response(total, params.start_index, items)))
}

/// One page of users matching `cond`, as served, with the total count of matches.
async fn user_page(
    s: &AppState,
    params: &ListParams,
    cond: Option<&Cond>,
    offset: i64,
    limit: i64,
) -> R<(i64, Vec<Value>)> {
    let sort = params
        .sort_by
        .as_deref()
        .map(|b| resource::sort_key(&USER_SCHEMAS, b, params.descending))
        .transpose()?
        .map(index::store_sort);
    let cond = cond.map(index::store_cond);
    let mut c = s.store().reader().await?;
    let (total, rows) =
        tenure_store::search_scim_users(&mut c, cond.as_ref(), sort.as_ref(), offset, limit)
            .await?;
    let base = base_url(s);
    let held: Vec<(&str, &[String])> = rows
        .iter()
        .map(|(row, held)| (row.id.as_str(), held.as_slice()))
        .collect();
    let mut groups = if rows.is_empty() {
        HashMap::new()
    } else {
        groups_of_users(s, &mut c, &held).await?
    };
    let mut items = Vec::with_capacity(rows.len());
    for (row, _) in &rows {
        let view = person_view(&mut c, &row.id, params).await?;
        let groups = groups.remove(&row.id).unwrap_or_default();
        let full = render_user(row, groups, view.as_ref(), &base)?;
        items.push(resource::project(
            &USER_SCHEMAS,
            full,
            &params.attributes,
            &params.excluded,
        ));
    }
    Ok((total, items))
}

/// `POST /.search` (RFC 7644 §3.4.3): users, then groups, paged as one list. A filter applies
/// to the resource types whose schema has its attributes (`userName` finds users only); one
/// that neither has is `400 invalidFilter`. Sorting is per resource type, so it is refused here.
async fn search_root(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
    headers: HeaderMap,
    body: Bytes,
) -> R<Response> {
    auth(p)?;
    let params = search_params(&parse_body(&body, &headers)?)?;
    if params.sort_by.is_some() {
        return Err(err(
            ScimType::InvalidValue,
            "sortBy is not supported when searching across resource types: search /Users/.search or /Groups/.search",
        ));
    }
    let filter = params.filter.as_deref().map(parse_filter).transpose()?;
    // Which types the filter applies to (`None`: every resource of the type).
    let (users, groups) = match &filter {
        None => (Some(None), Some(None)),
        Some(f) => {
            let u = resource::to_cond(&USER_SCHEMAS, f);
            let g = resource::to_cond(&schema::GROUP_SCHEMAS, f);
            match (u, g) {
                (Err(e), Err(_)) => return Err(Scim(e)),
                (u, g) => (u.ok().map(Some), g.ok().map(Some)),
            }
        }
    };
    let offset = params.start_index - 1;
    let mut items = Vec::new();
    let mut total = 0;
    if let Some(cond) = users {
        let (n, page) = user_page(&s, &params, cond.as_ref(), offset, params.count).await?;
        total += n;
        items = page;
    }
    if let Some(cond) = groups {
        let left = params.count - items.len() as i64;
        let (n, page) =
            groups::group_page(&s, &params, cond.as_ref(), (offset - total).max(0), left).await?;
        total += n as i64;
        items.extend(page);
    }
    Ok(scim_body(list_response(total, params.start_index, items)))
}

// ------------------------------------------------------------------ users: writing

/// A change to one user, as the write path needs it.
enum Change {
    Create(Value),
    Replace(Value),
    Patch(Value),
    Delete,
}

/// What a write did.
pub(crate) struct Written {
    row: ScimUserRow,
    created: bool,
}

/// Applies one change (the user, its index, the audit entry and the event's outbox row)
/// through the group-commit writer, then hands the event to the engine.
async fn write_user(
    s: &AppState,
    actor: &str,
    id: Option<&str>,
    change: Change,
    if_match: Option<&str>,
) -> R<Written> {
    let engine = s.engine();
    // One user's changes are written and handed to the engine one at a time, so its events
    // reach the engine in the order of its versions.
    let _turn = match id {
        Some(id) => Some(s.scim_locks().lock(LockKey::User(id)).await),
        None => None,
    };
    // A writer that lost a race on the version starts over on fresh state.
    for _ in 0..5 {
        let prepared = match prepare(engine, actor, id, &change, if_match).await? {
            Step::Unchanged(written) => return Ok(written),
            Step::Write(p) => p,
        };
        if let Some(written) = s.scim_writer().write(engine, *prepared).await? {
            return Ok(written);
        }
    }
    Err(status(
        409,
        "the user keeps changing under concurrent writes; try again",
    ))
}

/// A change validated against the stored version it read, ready to be written.
pub(crate) struct Prepared {
    actor: String,
    id: String,
    before: Option<ScimUserRow>,
    after_doc: Option<Map<String, Value>>,
    outcome: lifecycle::Outcome,
    now: i64,
}

impl Prepared {
    /// Whether this change creates a user.
    pub(crate) fn is_create(&self) -> bool {
        self.before.is_none() && self.after_doc.is_some()
    }
}

/// What a change comes to before it is written.
enum Step {
    /// Nothing changed: no new version, no event (an identity provider's retry or resync).
    Unchanged(Written),
    /// To write.
    Write(Box<Prepared>),
}

/// What writing a prepared change did: `None` when the stored version moved on since it was
/// read (the caller starts over), else the written user.
pub(crate) type Applied = Option<Written>;

/// Reads and validates a change outside any transaction; the write checks the version read.
async fn prepare(
    engine: &Engine,
    actor: &str,
    id: Option<&str>,
    change: &Change,
    if_match: Option<&str>,
) -> R<Step> {
    let store = engine.store();
    let now = engine.clock().now_ms();
    // Read and validate outside the transaction; the write checks the version it read.
    let before = match id {
        None => None,
        Some(id) => {
            let mut c = store.reader().await?;
            Some(
                tenure_store::scim_user(&mut c, id)
                    .await?
                    .ok_or_else(|| status(404, format!("no user `{id}`")))?,
            )
        }
    };
    check_if_match(if_match, before.as_ref().map(|b| b.version))?;
    let before_doc = before.as_ref().map(parse_doc).transpose()?;
    let after_doc = match change {
        Change::Create(v) | Change::Replace(v) => Some(resource::clean(&USER_SCHEMAS, v)?),
        Change::Patch(v) => {
            let req: PatchRequest = serde_json::from_value(v.clone())
                .map_err(|e| err(ScimType::InvalidSyntax, format!("not a PATCH request: {e}")))?;
            Some(resource::apply_patch(
                &USER_SCHEMAS,
                before_doc.as_ref().expect("patch has a user"),
                &req,
            )?)
        }
        Change::Delete => None,
    };
    let id = before
        .as_ref()
        .map(|b| b.id.clone())
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let lifecycle = match &before {
        None => Lifecycle::None,
        Some(b) => Lifecycle::parse(&b.lifecycle).map_err(ApiError::internal)?,
    };
    if let (Some(b), Some(a)) = (&before_doc, &after_doc)
        && b == a
    {
        let b = before.expect("before");
        return Ok(Step::Unchanged(Written {
            row: b,
            created: false,
        }));
    }
    let mut outcome =
        lifecycle::event_for(&id, lifecycle, before_doc.as_ref(), after_doc.as_ref())?;
    // A user hired (again) brings the groups the identity provider already put it in (a user
    // just created has a fresh id, in no group yet).
    if before.is_some()
        && let Some(e) = outcome.event.as_mut()
        && matches!(
            e.kind,
            tenure_core::event::EventType::Hire | tenure_core::event::EventType::Rehire
        )
    {
        let mut c = store.reader().await?;
        let groups = tenure_store::scim_groups_of(&mut c, &[id.as_str()])
            .await?
            .remove(&id)
            .unwrap_or_default();
        if !groups.is_empty() {
            let names = groups.into_iter().map(|(_, n)| Value::String(n)).collect();
            e.person.attributes.get_or_insert_default().insert(
                tenure_core::config::GROUPS_ATTRIBUTE.into(),
                Value::Array(names),
            );
        }
    }
    Ok(Step::Write(Box::new(Prepared {
        actor: actor.to_string(),
        id,
        before,
        after_doc,
        outcome,
        now,
    })))
}

/// The row and value index a prepared change writes for `doc`, at `version`.
fn user_write(
    p: &Prepared,
    doc: &Map<String, Value>,
    version: i64,
) -> (ScimUserRow, Vec<tenure_store::IndexedValue>) {
    let row = ScimUserRow {
        id: p.id.clone(),
        user_name_ci: user_name_ci(doc),
        lifecycle: p.outcome.next.as_str().to_string(),
        version,
        created_at: p.before.as_ref().map_or(p.now, |b| b.created_at),
        updated_at: p.now,
        doc: Value::Object(doc.clone()).to_string(),
    };
    let index = resource::index(
        &USER_SCHEMAS,
        &p.id,
        doc,
        &rfc3339_ms(row.created_at),
        &rfc3339_ms(p.now),
    );
    (row, index::store_rows(index))
}

/// The userName as uniqueness compares it.
fn user_name_ci(doc: &Map<String, Value>) -> String {
    doc.get("userName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase()
}

fn name_taken(name: &str, by: &str) -> Scim {
    err(
        ScimType::Uniqueness,
        format!("userName `{name}` is already taken by user {by}"),
    )
}

/// The lifecycle event a prepared change hands to the engine, under the key of its version.
fn submission(p: &Prepared, version: i64) -> Option<Submission> {
    p.outcome.event.as_ref().map(|event| Submission {
        event: event.clone(),
        idempotency_key: Some(format!("scim:{}:{version}", p.id)),
        actor: "scim".into(),
        request_id: None,
        trace: tenure_store::trace::current(),
    })
}

/// Stores the events of changes inside `tx`; each must be accepted (a key already taken by
/// another event would be a bug: the key names the user's new version). A change whose event
/// tenure refuses (its person's hire was cancelled before it took effect) is refused too.
async fn store_events(
    engine: &Engine,
    tx: &mut tenure_store::Tx,
    submissions: &[Submission],
    planning: tenure_engine::Planning,
) -> R<()> {
    if submissions.is_empty() {
        return Ok(());
    }
    let outcomes = engine.submit_in(tx, submissions, planning).await?;
    if outcomes.len() != submissions.len() {
        return Err(
            ApiError::internal("the engine answered a different number of outcomes").into(),
        );
    }
    for outcome in outcomes {
        match outcome {
            IngestOutcome::Accepted { .. } => {}
            IngestOutcome::KeyReused { key, event_id } => {
                return Err(ApiError::internal(format!(
                    "the event key `{key}` is already taken by event {event_id}"
                ))
                .into());
            }
            IngestOutcome::Refused { message, .. } => {
                return Err(err(ScimType::InvalidValue, message));
            }
        }
    }
    Ok(())
}

/// The audit entry of a change. It names the user by id alone: the `userName` (most often an
/// email) is personal data, which the hash-chained trail must not hold in clear (a forgotten
/// person's would stay readable there for good).
fn change_audit(p: &Prepared, action: &str, version: i64) -> NewAudit {
    NewAudit {
        at_ms: p.now,
        actor: p.actor.clone(),
        action: action.into(),
        person_id: Some(p.id.clone()),
        reason: match (&p.outcome.event, &p.outcome.waiting) {
            (Some(e), _) => format!("SCIM change becomes a {} event", e.kind),
            (None, Some(w)) => w.clone(),
            (None, None) => "SCIM change with no lifecycle effect".into(),
        },
        details: json!({ "version": version }),
        ..Default::default()
    }
}

/// Writes a prepared change and stores the lifecycle event it makes inside `tx` (the caller
/// commits): the change and its event are on disk together or not at all.
async fn apply(engine: &Engine, tx: &mut tenure_store::Tx, p: &Prepared) -> R<Applied> {
    let version = p.before.as_ref().map_or(1, |b| b.version + 1);
    let (row, action) = match &p.after_doc {
        Some(doc) => {
            let (row, index) = user_write(p, doc, version);
            if let Some(other) =
                tenure_store::scim_user_id_by_name(tx.conn(), &row.user_name_ci).await?
                && other != p.id
            {
                return Err(name_taken(&row.user_name_ci, &other));
            }
            let prev = p.before.as_ref().map(|b| b.version);
            if !tenure_store::put_scim_user(tx.conn(), &row, prev, &index).await? {
                return Ok(None);
            }
            let action = if p.before.is_none() {
                "scim.user.created"
            } else {
                "scim.user.updated"
            };
            (row, action)
        }
        None => {
            let b = p.before.clone().expect("delete has a user");
            let next = p.outcome.next.as_str();
            if !tenure_store::delete_scim_user(tx.conn(), &p.id, b.version, next, p.now).await? {
                return Ok(None);
            }
            groups::leave_groups(tx, &p.actor, p.now, &p.id).await?;
            let row = ScimUserRow {
                version,
                lifecycle: next.to_string(),
                updated_at: p.now,
                ..b
            };
            (row, "scim.user.deleted")
        }
    };
    tx.audit(change_audit(p, action, version));
    store_events(
        engine,
        tx,
        submission(p, version).as_slice(),
        tenure_engine::Planning::InTransaction,
    )
    .await?;
    Ok(Some(Written {
        created: p.before.is_none(),
        row,
    }))
}

/// Writes many new users at once inside `tx`, in a handful of statements whatever their
/// number: one uniqueness lookup for all their userNames, one insert of the users, one of their
/// value index, and one ingest of their events. A userName taken (by a stored user or by an
/// earlier create of the same group) refuses that create alone, with `409 uniqueness`. An error
/// of the outer `Result` means the database failed somewhere in the group: the caller rolls
/// the group back and writes its creates one at a time.
pub(crate) async fn apply_creates(
    engine: &Engine,
    tx: &mut tenure_store::Tx,
    creates: &[&Prepared],
) -> R<Vec<R<Applied>>> {
    let names: Vec<String> = creates
        .iter()
        .map(|p| user_name_ci(p.after_doc.as_ref().expect("a create has a document")))
        .collect();
    let stored = {
        let mut unique: Vec<&str> = names.iter().map(String::as_str).collect();
        unique.sort_unstable();
        unique.dedup();
        tenure_store::scim_user_ids_by_names(tx.conn(), &unique).await?
    };
    let mut claimed: HashMap<&str, &str> = HashMap::new();
    let (mut answers, mut writes, mut submissions) = (Vec::new(), Vec::new(), Vec::new());
    for (p, name) in creates.iter().zip(&names) {
        if let Some(other) = stored
            .get(name.as_str())
            .map(String::as_str)
            .or_else(|| claimed.get(name.as_str()).copied())
        {
            answers.push(Err(name_taken(name, other)));
            continue;
        }
        claimed.insert(name, &p.id);
        let doc = p.after_doc.as_ref().expect("a create has a document");
        let (row, index) = user_write(p, doc, 1);
        tx.audit(change_audit(p, "scim.user.created", 1));
        submissions.extend(submission(p, 1));
        answers.push(Ok(Some(Written {
            created: true,
            row: row.clone(),
        })));
        writes.push((row, index));
    }
    tenure_store::insert_scim_users(tx.conn(), &writes).await?;
    store_events(
        engine,
        tx,
        &submissions,
        tenure_engine::Planning::InTransaction,
    )
    .await?;
    Ok(answers)
}

/// Sends the lifecycle events an earlier version of tenure left in the SCIM outbox (it stored
/// a change's event there and handed it to the engine after the commit; a crash in between
/// left it queued). Changes now store their events in their own transaction, so nothing new
/// arrives here. Returns how many the engine took; idempotency keys make a repeat a replay.
pub async fn drain_outbox(engine: &Engine) -> Result<usize, tenure_engine::EngineError> {
    let mut total = 0;
    loop {
        let rows = {
            let mut c = engine.store().reader().await?;
            tenure_store::scim_outbox(&mut c, 500).await?
        };
        if rows.is_empty() {
            return Ok(total);
        }
        let mut sent = Vec::with_capacity(rows.len());
        for row in rows {
            let event = match serde_json::from_str(&row.event) {
                Ok(e) => e,
                Err(e) => {
                    // Left queued, and looked at again at the next start.
                    tracing::error!(key = %row.key, error = %e, "unreadable SCIM outbox event; left queued");
                    continue;
                }
            };
            let submission = Submission {
                event,
                idempotency_key: Some(row.key.clone()),
                actor: "scim".into(),
                request_id: None,
                trace: tenure_store::trace::current(),
            };
            engine.submit(submission).await?;
            sent.push(row.key);
        }
        if sent.is_empty() {
            return Ok(total);
        }
        total += sent.len();
        let mut tx = engine.store().begin().await?;
        tenure_store::delete_scim_outbox(tx.conn(), &sent).await?;
        tx.commit().await?;
    }
}

async fn respond_written(s: &AppState, w: Written) -> R<Response> {
    let base = base_url(s);
    // A user just created has a fresh id: its person holds nothing yet, and it is in no group.
    let groups = if w.created {
        Vec::new()
    } else {
        let mut c = s.store().reader().await?;
        let held = tenure_store::granted_entitlements(&mut c, &[w.row.id.as_str()])
            .await?
            .remove(&w.row.id)
            .unwrap_or_default();
        groups_of_users(s, &mut c, &[(w.row.id.as_str(), held.as_slice())])
            .await?
            .remove(&w.row.id)
            .unwrap_or_default()
    };
    let body = render_user(&w.row, groups, None, &base)?;
    let location = format!("{base}/Users/{}", w.row.id);
    let code = if w.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(with_etag(
        (code, scim_body(body)).into_response(),
        w.row.version,
        w.created.then_some(location.as_str()),
    ))
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn create_user(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
    headers: HeaderMap,
    body: Bytes,
) -> R<Response> {
    let p = auth(p)?;
    let v = parse_body(&body, &headers)?;
    let w = write_user(&s, &p.name, None, Change::Create(v), None).await?;
    respond_written(&s, w).await
}

async fn replace_user(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> R<Response> {
    let p = auth(p)?;
    let v = parse_body(&body, &headers)?;
    let w = write_user(
        &s,
        &p.name,
        Some(&id),
        Change::Replace(v),
        if_match(&headers).as_deref(),
    )
    .await?;
    respond_written(&s, w).await
}

async fn patch_user(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> R<Response> {
    let p = auth(p)?;
    let v = parse_body(&body, &headers)?;
    let w = write_user(
        &s,
        &p.name,
        Some(&id),
        Change::Patch(v),
        if_match(&headers).as_deref(),
    )
    .await?;
    respond_written(&s, w).await
}

async fn delete_user(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> R<Response> {
    let p = auth(p)?;
    write_user(
        &s,
        &p.name,
        Some(&id),
        Change::Delete,
        if_match(&headers).as_deref(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ------------------------------------------------------------------ bulk

async fn bulk(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
    headers: HeaderMap,
    body: Bytes,
) -> R<Response> {
    let p = auth(p)?;
    if body.len() > schema::MAX_BULK_PAYLOAD {
        return Err(status(
            413,
            format!(
                "the bulk request is {} bytes; at most {} are accepted",
                body.len(),
                schema::MAX_BULK_PAYLOAD
            ),
        ));
    }
    let req = BulkRequest::parse(&parse_body(&body, &headers)?)?;
    let base = base_url(&s);
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut results = Vec::new();
    let mut errors = 0u64;
    for (i, op) in req.operations.into_iter().enumerate() {
        if req.fail_on_errors.is_some_and(|n| errors >= n) {
            break;
        }
        let mut entry = json!({ "method": op.method });
        if let Some(b) = &op.bulk_id {
            entry["bulkId"] = json!(b);
        }
        let outcome = bulk_one(&s, &p, op, &mut ids, i).await;
        match outcome {
            Ok((code, written)) => {
                if let Some((location, version)) = written {
                    entry["location"] = json!(format!("{base}{location}"));
                    entry["version"] = json!(etag(version));
                }
                entry["status"] = json!(code.to_string());
            }
            Err(Scim(e)) => {
                errors += 1;
                entry["status"] = json!(e.status.to_string());
                entry["response"] = json!(e);
            }
        }
        results.push(entry);
    }
    Ok(scim_body(bulk_response(results)))
}

/// What one bulk operation wrote: its status, and the resource's path and version.
type BulkOutcome = (u16, Option<(String, i64)>);

async fn bulk_one(
    s: &AppState,
    p: &Principal,
    op: BulkOperation,
    ids: &mut HashMap<String, String>,
    i: usize,
) -> Result<BulkOutcome, Scim> {
    let unresolved = |m: String| err(ScimType::InvalidValue, format!("Operations[{i}]: {m}"));
    let BulkOperation {
        method,
        bulk_id,
        path,
        version,
        mut data,
    } = op;
    resolve_bulk_ids(&mut data, ids).map_err(unresolved)?;
    let path = resolve_bulk_path(&path, ids).map_err(unresolved)?;
    let (method, bulk_id, version) = (method.as_str(), bulk_id.as_deref(), version.as_deref());
    let needs_bulk_id = || {
        bulk_id.ok_or_else(|| {
            err(
                ScimType::InvalidSyntax,
                format!("Operations[{i}]: a POST needs a bulkId"),
            )
        })
    };
    let user = |w: Written| Some((format!("/Users/{}", w.row.id), w.row.version));
    let group = |w: Option<groups::GroupWritten>| {
        w.map(|w| (format!("/Groups/{}", w.row.id), w.row.version))
    };
    if let Some(target) = path.strip_prefix("/Groups/").map(str::to_string) {
        use groups::GroupChange as G;
        let (code, change) = match method {
            "PUT" => (200, G::Replace(data)),
            "PATCH" => (200, G::Patch(data)),
            "DELETE" => (204, G::Delete),
            m => {
                return Err(err(
                    ScimType::InvalidSyntax,
                    format!(
                        "Operations[{i}]: `{m} {path}` is not a bulk operation this server performs"
                    ),
                ));
            }
        };
        let w = groups::write_group(s, &p.name, Some(&target), change, version).await?;
        return Ok((code, group(w)));
    }
    let target = path.strip_prefix("/Users/").map(str::to_string);
    match (method, path.as_str(), target) {
        ("POST", "/Users", _) => {
            let b = needs_bulk_id()?;
            let w = write_user(s, &p.name, None, Change::Create(data), None).await?;
            ids.insert(b.to_string(), w.row.id.clone());
            Ok((201, user(w)))
        }
        ("POST", "/Groups", _) => {
            let b = needs_bulk_id()?;
            let w = groups::write_group(s, &p.name, None, groups::GroupChange::Create(data), None)
                .await?;
            let out = group(w);
            if let Some((loc, _)) = &out {
                ids.insert(
                    b.to_string(),
                    loc.trim_start_matches("/Groups/").to_string(),
                );
            }
            Ok((201, out))
        }
        ("PUT", _, Some(id)) => {
            let w = write_user(s, &p.name, Some(&id), Change::Replace(data), version).await?;
            Ok((200, user(w)))
        }
        ("PATCH", _, Some(id)) => {
            let w = write_user(s, &p.name, Some(&id), Change::Patch(data), version).await?;
            Ok((200, user(w)))
        }
        ("DELETE", _, Some(id)) => {
            write_user(s, &p.name, Some(&id), Change::Delete, version).await?;
            Ok((204, None))
        }
        (m, p, _) => Err(err(
            ScimType::InvalidSyntax,
            format!("Operations[{i}]: `{m} {p}` is not a bulk operation this server performs"),
        )),
    }
}
