//! `/Groups`: the groups an identity provider pushes (stored in `scim_groups` and
//! `scim_group_members`, written here) listed beside tenure's own entitlements (configuration,
//! read-only: who holds one follows role templates, engagements and requests).
//!
//! A group change is one transaction: the group, its memberships, its audit entry and the
//! `transfer` event of every active member whose groups it changed, which the engine plans
//! like any other event (templates matching `groups`, policy, separation of duties, approvals).

use super::locks::LockKey;
use super::{
    ListParams, R, Scim, check_if_match, err, etag_matches, if_match, parse_body, parse_filter,
    query_params, resource, rfc3339_ms, schema, scim_body, search_params, status, with_etag,
};
use crate::auth::Principal;
use crate::{ApiError, AppState};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use tenure_scim::group::{self, GroupDoc};
use tenure_scim::index::{Cond, IndexedValue};
use tenure_scim::render::{self, Stored};
use tenure_scim::schema::GROUP_SCHEMAS;
use tenure_scim::{PatchRequest, ScimType};
use tenure_store::{NewAudit, ScimGroupRow};

/// A change to one pushed group.
pub(super) enum GroupChange {
    Create(Value),
    Replace(Value),
    Patch(Value),
    Delete,
}

/// A group as written.
pub(super) struct GroupWritten {
    pub row: ScimGroupRow,
    pub members: BTreeSet<String>,
    pub created: bool,
}

/// The answer to writing an entitlement's id.
fn entitlement_read_only(id: &str) -> Scim {
    err(
        ScimType::Mutability,
        format!(
            "group `{id}` is an entitlement managed by tenure and read-only over SCIM: who holds it follows role templates, engagements and access requests"
        ),
    )
}

fn too_many(n: usize) -> Scim {
    status(
        413,
        format!(
            "the request names {n} members; at most {} per request (send the rest in further PATCH requests)",
            schema::MAX_MEMBERS_PER_REQUEST
        ),
    )
}

/// Applies one change to a pushed group in one transaction, and answers with the group as
/// written (`None` for a delete).
pub(super) async fn write_group(
    s: &AppState,
    actor: &str,
    id: Option<&str>,
    change: GroupChange,
    if_match: Option<&str>,
) -> R<Option<GroupWritten>> {
    if let Some(id) = id
        && s.engine().config().entitlements.contains_key(id)
    {
        return Err(entitlement_read_only(id));
    }
    if let GroupChange::Create(v) | GroupChange::Replace(v) | GroupChange::Patch(v) = &change {
        let n = group::member_values(v);
        if n > schema::MAX_MEMBERS_PER_REQUEST {
            return Err(too_many(n));
        }
    }
    // One group's changes are written one at a time.
    let _turn = match id {
        Some(id) => Some(s.scim_locks().lock(LockKey::Group(id)).await),
        None => None,
    };
    let engine = s.engine();
    let now = engine.clock().now_ms();
    let mut tx = s.store().begin().await?;
    let before = match id {
        None => None,
        Some(id) => Some(
            tenure_store::scim_group(tx.conn(), id)
                .await?
                .ok_or_else(|| status(404, format!("no group `{id}`")))?,
        ),
    };
    check_if_match(if_match, before.as_ref().map(|b| b.version))?;
    let before_doc = match &before {
        None => None,
        Some(b) => Some(GroupDoc {
            display_name: b.display_name.clone(),
            external_id: b.external_id.clone(),
            members: tenure_store::scim_group_members(tx.conn(), &[b.id.as_str()])
                .await?
                .remove(&b.id)
                .unwrap_or_default(),
        }),
    };
    let after = match &change {
        GroupChange::Create(v) | GroupChange::Replace(v) => Some(group::parse_group(v)?),
        GroupChange::Patch(v) => {
            let req: PatchRequest = serde_json::from_value(v.clone())
                .map_err(|e| err(ScimType::InvalidSyntax, format!("not a PATCH request: {e}")))?;
            Some(group::patch_group(
                before_doc.as_ref().expect("a patch has a group"),
                &req,
            )?)
        }
        GroupChange::Delete => None,
    };
    if let (Some(b), Some(a), Some(row)) = (&before_doc, &after, &before)
        && a == b
    {
        // An identity provider's retry or resync: no new version.
        return Ok(Some(GroupWritten {
            row: row.clone(),
            members: a.members.clone(),
            created: false,
        }));
    }
    let empty = BTreeSet::new();
    let old_members = before_doc.as_ref().map_or(&empty, |d| &d.members);
    let new_members = after.as_ref().map_or(&empty, |d| &d.members);
    let added: Vec<&str> = new_members
        .difference(old_members)
        .map(String::as_str)
        .collect();
    let removed: Vec<&str> = old_members
        .difference(new_members)
        .map(String::as_str)
        .collect();
    if !added.is_empty() {
        let known = tenure_store::live_scim_users(tx.conn(), &added).await?;
        let unknown: Vec<&str> = added
            .iter()
            .copied()
            .filter(|m| !known.contains_key(*m))
            .collect();
        if !unknown.is_empty() {
            let shown: Vec<String> = unknown.iter().take(20).map(|u| format!("`{u}`")).collect();
            return Err(err(
                ScimType::InvalidValue,
                format!(
                    "members name no known user: {}{}",
                    shown.join(", "),
                    if unknown.len() > 20 {
                        format!(" and {} more", unknown.len() - 20)
                    } else {
                        String::new()
                    }
                ),
            ));
        }
    }
    let gid = before
        .as_ref()
        .map(|b| b.id.clone())
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let version = before.as_ref().map_or(1, |b| b.version + 1);
    let (row, action) = match &after {
        Some(doc) => {
            if let Some(other) =
                tenure_store::scim_group_id_by_name(tx.conn(), &doc.display_name.to_lowercase())
                    .await?
                && other != gid
            {
                return Err(err(
                    ScimType::Uniqueness,
                    format!(
                        "displayName `{}` is already taken by group {other}",
                        doc.display_name
                    ),
                ));
            }
            let row = ScimGroupRow {
                id: gid.clone(),
                display_name: doc.display_name.clone(),
                external_id: doc.external_id.clone(),
                version,
                created_at: before.as_ref().map_or(now, |b| b.created_at),
                updated_at: now,
            };
            if !tenure_store::put_scim_group(tx.conn(), &row, before.as_ref().map(|b| b.version))
                .await?
            {
                return Err(status(409, "the group changed concurrently; try again"));
            }
            tenure_store::change_scim_group_members(tx.conn(), &gid, &added, &removed).await?;
            let action = if before.is_none() {
                "scim.group.created"
            } else {
                "scim.group.updated"
            };
            (row, action)
        }
        None => {
            let b = before.clone().expect("a delete has a group");
            if !tenure_store::delete_scim_group(tx.conn(), &gid, b.version).await? {
                return Err(status(409, "the group changed concurrently; try again"));
            }
            (b, "scim.group.deleted")
        }
    };
    let renamed = before_doc.as_ref().is_some_and(|b| {
        after
            .as_ref()
            .is_none_or(|a| a.display_name != b.display_name)
    });
    let affected: BTreeSet<&str> = if renamed {
        old_members.union(new_members).map(String::as_str).collect()
    } else {
        added.iter().chain(&removed).copied().collect()
    };
    let why = |person: &str| match (&after, new_members.contains(person)) {
        (None, _) => format!("group `{}` deleted", row.display_name),
        (Some(_), true) if old_members.contains(person) => format!(
            "group `{}` renamed from `{}`",
            row.display_name,
            before_doc.as_ref().map_or("", |b| b.display_name.as_str())
        ),
        (Some(_), true) => format!("added to group `{}`", row.display_name),
        (Some(_), false) => format!("removed from group `{}`", row.display_name),
    };
    membership_events(engine, &mut tx, actor, now, &gid, version, &affected, why).await?;
    tx.audit(NewAudit {
        at_ms: now,
        actor: actor.to_string(),
        action: action.into(),
        reason: format!("SCIM group `{}`", row.display_name),
        details: json!({
            "group": gid,
            "display_name": row.display_name,
            "version": version,
            "members_added": added.len(),
            "members_removed": removed.len(),
        }),
        ..Default::default()
    });
    tx.commit().await?;
    Ok(after.map(|doc| GroupWritten {
        created: before.is_none(),
        row,
        members: doc.members,
    }))
}

/// Takes a user being deleted out of every group it is in, inside the delete's transaction:
/// each group moves to its next version and gets an audit entry, as any membership change, and
/// the person one naming each group. No `transfer` is made: the delete's own lifecycle event
/// (a leave) decides what the person keeps.
pub(super) async fn leave_groups(
    tx: &mut tenure_store::Tx,
    actor: &str,
    now: i64,
    person: &str,
) -> R<()> {
    for g in tenure_store::leave_scim_groups(tx.conn(), person, now).await? {
        tx.audit(NewAudit {
            at_ms: now,
            actor: actor.to_string(),
            action: "scim.group.updated".into(),
            reason: format!("SCIM group `{}`: member user deleted", g.display_name),
            details: json!({
                "group": g.id,
                "display_name": g.display_name,
                "version": g.version,
                "members_added": 0,
                "members_removed": 1,
            }),
            ..Default::default()
        });
        tx.audit(NewAudit {
            at_ms: now,
            actor: actor.to_string(),
            action: "scim.group.membership".into(),
            person_id: Some(person.to_string()),
            reason: format!("removed from group `{}`: user deleted", g.display_name),
            details: json!({ "group": g.id, "version": g.version }),
            ..Default::default()
        });
    }
    Ok(())
}

/// Re-plans the access of each active member whose groups a change altered: a `transfer`
/// carrying the person's groups as they now stand (read inside `tx`, after the change), stored
/// through the engine's ingest in the change's own transaction, so templates, policy,
/// separation of duties and approvals all hold. Each person gets an audit entry naming the
/// group as the reason. Members never hired, or gone, have no access to re-plan (a hire reads
/// the person's groups when it comes).
#[allow(clippy::too_many_arguments)]
async fn membership_events(
    engine: &tenure_engine::Engine,
    tx: &mut tenure_store::Tx,
    actor: &str,
    now: i64,
    group: &str,
    version: i64,
    affected: &BTreeSet<&str>,
    why: impl Fn(&str) -> String,
) -> R<()> {
    if affected.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = affected.iter().copied().collect();
    let lifecycles = tenure_store::live_scim_users(tx.conn(), &ids).await?;
    let active: Vec<&str> = ids
        .into_iter()
        .filter(|id| lifecycles.get(*id).is_some_and(|l| l == "active"))
        .collect();
    let mut groups = tenure_store::scim_groups_of(tx.conn(), &active).await?;
    let mut submissions = Vec::with_capacity(active.len());
    for person in active {
        let names: Vec<String> = groups
            .remove(person)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, name)| name)
            .collect();
        let key = format!("scim-group:{group}:{version}:{person}");
        tx.audit(NewAudit {
            at_ms: now,
            actor: actor.to_string(),
            action: "scim.group.membership".into(),
            person_id: Some(person.to_string()),
            reason: why(person),
            details: json!({ "group": group, "version": version, "groups": names, "event_key": key }),
            ..Default::default()
        });
        submissions.push(tenure_engine::Submission {
            event: tenure_engine::groups_transfer(person, names),
            idempotency_key: Some(key),
            actor: "scim".into(),
            request_id: None,
            trace: tenure_store::trace::current(),
        });
    }
    // A group of thousands re-plans thousands of people: the change is stored with their
    // events and runs, and the engine plans those right after the commit.
    super::store_events(
        engine,
        tx,
        &submissions,
        tenure_engine::Planning::AfterCommit,
    )
    .await
}

// ------------------------------------------------------------------ rendering

/// A pushed group as served.
fn render(row: &ScimGroupRow, members: &BTreeSet<String>, base: &str) -> Value {
    let stored = Stored {
        created_ms: row.created_at,
        updated_ms: row.updated_at,
        version: row.version,
    };
    let external_id = row.external_id.as_deref();
    render::pushed_group(
        base,
        &row.id,
        &row.display_name,
        external_id,
        members,
        &stored,
    )
}

/// An entitlement as a read-only group: its holders are its members.
fn render_entitlement(e: &tenure_core::Entitlement, holders: &[String], base: &str) -> Value {
    render::entitlement_group(base, &e.id, &e.name, holders)
}

/// A group of either kind, for filtering, sorting and paging together.
enum Listed<'a> {
    Entitlement(&'a tenure_core::Entitlement),
    Pushed(ScimGroupRow),
}

impl Listed<'_> {
    fn id(&self) -> &str {
        match self {
            Listed::Entitlement(e) => &e.id,
            Listed::Pushed(r) => &r.id,
        }
    }
    fn name(&self) -> &str {
        match self {
            Listed::Entitlement(e) => &e.name,
            Listed::Pushed(r) => &r.display_name,
        }
    }
    fn external_id(&self) -> &str {
        match self {
            Listed::Entitlement(_) => "",
            Listed::Pushed(r) => r.external_id.as_deref().unwrap_or(""),
        }
    }
}

/// The value index of a group, for evaluating a filter in memory; its `meta` times only when
/// `meta` is read (formatting and normalizing them is most of the cost over many groups).
fn index_of(g: &Listed<'_>, members: &BTreeSet<String>, meta: bool) -> Vec<IndexedValue> {
    let (doc, created, modified) = match g {
        Listed::Entitlement(e) => (
            GroupDoc {
                display_name: e.name.clone(),
                external_id: None,
                members: members.clone(),
            },
            String::new(),
            String::new(),
        ),
        Listed::Pushed(r) => (
            GroupDoc {
                display_name: r.display_name.clone(),
                external_id: r.external_id.clone(),
                members: members.clone(),
            },
            if meta {
                rfc3339_ms(r.created_at)
            } else {
                String::new()
            },
            if meta {
                rfc3339_ms(r.updated_at)
            } else {
                String::new()
            },
        ),
    };
    resource::index(&GROUP_SCHEMAS, g.id(), &doc.to_doc(), &created, &modified)
}

async fn members_of(
    c: &mut tenure_store::Conn,
    groups: &[&Listed<'_>],
) -> R<std::collections::HashMap<String, BTreeSet<String>>> {
    let pushed: Vec<&str> = groups
        .iter()
        .filter(|g| matches!(g, Listed::Pushed(_)))
        .map(|g| g.id())
        .collect();
    let mut out: std::collections::HashMap<String, BTreeSet<String>> =
        tenure_store::scim_group_members(c, &pushed)
            .await?
            .into_iter()
            .collect();
    for g in groups {
        if let Listed::Entitlement(e) = g {
            let holders = tenure_store::entitlement_holders(c, &e.id).await?;
            out.insert(e.id.clone(), holders.into_iter().collect());
        }
    }
    Ok(out)
}

async fn list(s: &AppState, params: ListParams) -> R<Response> {
    let filter = params.filter.as_deref().map(parse_filter).transpose()?;
    let cond = filter
        .as_ref()
        .map(|f| resource::to_cond(&GROUP_SCHEMAS, f))
        .transpose()?;
    let (total, items) = group_page(
        s,
        &params,
        cond.as_ref(),
        params.start_index - 1,
        params.count,
    )
    .await?;
    Ok(scim_body(tenure_scim::query::list_response(
        total as i64,
        params.start_index,
        items,
    )))
}

/// A displayName comparison that `cond` cannot hold without: itself, or one of the conditions
/// it joins with `and`.
fn name_test(cond: &Cond) -> Option<(tenure_store::NameMatch, &str)> {
    use tenure_scim::CompareOp;
    use tenure_store::NameMatch;
    match cond {
        Cond::Cmp { attr, sub, op, val } if attr == "displayname" && sub.is_empty() => {
            let how = match op {
                CompareOp::Eq => NameMatch::Eq,
                CompareOp::Co => NameMatch::Co,
                CompareOp::Sw => NameMatch::Sw,
                CompareOp::Ew => NameMatch::Ew,
                _ => return None,
            };
            Some((how, val.as_str()))
        }
        Cond::And(cs) => cs.iter().find_map(name_test),
        _ => None,
    }
}

/// One page of groups (entitlements first, then pushed groups, unless sorted) matching
/// `cond`, as served, with the total count of matches.
pub(super) async fn group_page(
    s: &AppState,
    params: &ListParams,
    cond: Option<&Cond>,
    offset: i64,
    limit: i64,
) -> R<(usize, Vec<Value>)> {
    let config = s.engine().config();
    let mut c = s.store().reader().await?;
    let mut all: Vec<Listed<'_>> = config
        .entitlements
        .values()
        .map(Listed::Entitlement)
        .collect();
    // A filter that cannot hold without a displayName comparison reads only the pushed groups
    // passing it (the filter itself is still evaluated on each below).
    let pushed = match cond.and_then(name_test) {
        Some((how, text)) => tenure_store::scim_groups_by_name(&mut c, how, text).await?,
        None => tenure_store::scim_groups(&mut c).await?,
    };
    all.extend(pushed.into_iter().map(Listed::Pushed));
    if let Some(cond) = cond {
        let members = if cond.reads("members") {
            members_of(&mut c, &all.iter().collect::<Vec<_>>()).await?
        } else {
            Default::default()
        };
        let meta = cond.reads("meta");
        let none = BTreeSet::new();
        all.retain(|g| {
            tenure_scim::index::eval(
                &index_of(g, members.get(g.id()).unwrap_or(&none), meta),
                cond,
            )
        });
    }
    if let Some(by) = &params.sort_by {
        let key: fn(&Listed<'_>) -> String = if by.eq_ignore_ascii_case("displayName") {
            |g| g.name().to_lowercase()
        } else if by.eq_ignore_ascii_case("id") {
            |g| g.id().to_string()
        } else if by.eq_ignore_ascii_case("externalId") {
            |g| g.external_id().to_string()
        } else {
            return Err(err(
                ScimType::InvalidValue,
                format!("groups sort by id, displayName or externalId, not `{by}`"),
            ));
        };
        all.sort_by_cached_key(key);
        if params.descending {
            all.reverse();
        }
    }
    let total = all.len();
    let page: Vec<&Listed<'_>> = all
        .iter()
        .skip(offset.max(0) as usize)
        .take(limit.max(0) as usize)
        .collect();
    let wants_members = resource::project(
        &GROUP_SCHEMAS,
        json!({"members": [{"value": "x"}]}),
        &params.attributes,
        &params.excluded,
    )
    .get("members")
    .is_some();
    let members = if wants_members && !page.is_empty() {
        members_of(&mut c, &page).await?
    } else {
        Default::default()
    };
    let base = super::base_url(s);
    let none = BTreeSet::new();
    let items = page
        .into_iter()
        .map(|g| {
            let m = members.get(g.id()).unwrap_or(&none);
            let full = match g {
                Listed::Entitlement(e) => {
                    render_entitlement(e, &m.iter().cloned().collect::<Vec<_>>(), &base)
                }
                Listed::Pushed(r) => render(r, m, &base),
            };
            resource::project(&GROUP_SCHEMAS, full, &params.attributes, &params.excluded)
        })
        .collect();
    Ok((total, items))
}

// ------------------------------------------------------------------ handlers

pub(super) async fn list_groups(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
    RawQuery(q): RawQuery,
) -> R<Response> {
    super::auth(p)?;
    list(&s, query_params(q)?).await
}

pub(super) async fn search_groups(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
    headers: HeaderMap,
    body: Bytes,
) -> R<Response> {
    super::auth(p)?;
    let params = search_params(&parse_body(&body, &headers)?)?;
    list(&s, params).await
}

pub(super) async fn get_group(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> R<Response> {
    super::auth(p)?;
    let params = query_params(q)?;
    let base = super::base_url(&s);
    let mut c = s.store().reader().await?;
    if let Some(e) = s.engine().config().entitlements.get(&id) {
        let holders = tenure_store::entitlement_holders(&mut c, &e.id).await?;
        let full = render_entitlement(e, &holders, &base);
        return Ok(scim_body(resource::project(
            &GROUP_SCHEMAS,
            full,
            &params.attributes,
            &params.excluded,
        )));
    }
    let row = tenure_store::scim_group(&mut c, &id)
        .await?
        .ok_or_else(|| status(404, format!("no group `{id}`")))?;
    if let Some(v) = headers
        .get(axum::http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        && etag_matches(v, row.version)
    {
        return Ok(with_etag(
            StatusCode::NOT_MODIFIED.into_response(),
            row.version,
            None,
        ));
    }
    let members = tenure_store::scim_group_members(&mut c, &[id.as_str()])
        .await?
        .remove(&id)
        .unwrap_or_default();
    let full = render(&row, &members, &base);
    let body = resource::project(&GROUP_SCHEMAS, full, &params.attributes, &params.excluded);
    Ok(with_etag(scim_body(body), row.version, None))
}

fn respond(s: &AppState, w: GroupWritten) -> Response {
    let base = super::base_url(s);
    let location = format!("{base}/Groups/{}", w.row.id);
    let code = if w.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    with_etag(
        (code, scim_body(render(&w.row, &w.members, &base))).into_response(),
        w.row.version,
        w.created.then_some(location.as_str()),
    )
}

async fn change(
    s: &AppState,
    p: Result<Principal, ApiError>,
    headers: &HeaderMap,
    id: Option<&str>,
    body: Option<&Bytes>,
    make: fn(Value) -> GroupChange,
) -> R<Response> {
    let p = super::auth(p)?;
    let change = match body {
        Some(b) => make(parse_body(b, headers)?),
        None => GroupChange::Delete,
    };
    match write_group(s, &p.name, id, change, if_match(headers).as_deref()).await? {
        Some(w) => Ok(respond(s, w)),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

pub(super) async fn create_group(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
    headers: HeaderMap,
    body: Bytes,
) -> R<Response> {
    change(&s, p, &headers, None, Some(&body), GroupChange::Create).await
}

pub(super) async fn replace_group(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> R<Response> {
    change(
        &s,
        p,
        &headers,
        Some(&id),
        Some(&body),
        GroupChange::Replace,
    )
    .await
}

pub(super) async fn patch_group(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> R<Response> {
    change(&s, p, &headers, Some(&id), Some(&body), GroupChange::Patch).await
}

pub(super) async fn delete_group(
    State(s): State<AppState>,
    p: Result<Principal, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> R<Response> {
    change(&s, p, &headers, Some(&id), None, |_| GroupChange::Delete).await
}
