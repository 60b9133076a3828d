//! Delegations (an approver away names who decides for them) and manual tasks (a team does a
//! step by hand, then says so), each through the API's own functions.

use super::pages::{Nav, Notice, Params, or_page};
use super::session::{FormData, Session, form};
use super::{PageResult, render, see_other};
use crate::path::Path;
use crate::{ApiError, AppState, access, tasks, views};
use askama::Template;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::json;

// ---------------------------------------------------------------- delegations

#[derive(Template)]
#[template(path = "console/delegations.html")]
pub(crate) struct Delegations {
    nav: Nav,
    notice: Option<Notice>,
    /// Each delegation, and whether this session may withdraw it (as the API would let it).
    items: Vec<(views::Delegation, bool)>,
    include_ended: bool,
}

/// `GET /console/delegations`: the delegations I made or received, and the form for a new one.
pub(crate) async fn delegations(
    State(s): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let (params, _) = Params::new(raw.as_deref(), &[]);
    let q = or_page(&session, params.query())?;
    let Json(page) = or_page(
        &session,
        access::list_delegations(State(s.clone()), session.principal.clone(), q).await,
    )?;
    let p = &session.principal;
    let items = page
        .items
        .into_iter()
        .map(|d| {
            let mine = p.person_id.as_deref() == Some(d.delegator.as_str()) || p.is_admin();
            let live = d.revoked_at.is_none();
            (d, mine && live)
        })
        .collect();
    render(&Delegations {
        nav: Nav::of(Some(&session), "delegations"),
        notice: params.notice(),
        include_ended: params.get("include_ended") == "true",
        items,
    })
}

/// A date of the form (`YYYY-MM-DD`, UTC) as the start of that day, RFC 3339.
fn day_start(f: &FormData, field: &str) -> Result<String, ApiError> {
    let day = f
        .get(field)
        .ok_or_else(|| ApiError::invalid(field, "choose a date"))?;
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map(|d| format!("{d}T00:00:00Z"))
        .map_err(|_| ApiError::invalid(field, format!("`{day}` is not a date (YYYY-MM-DD)")))
}

/// `POST /console/delegations`: as `POST /api/v1/delegations`, from the first day to the end
/// of the last (UTC).
pub(crate) async fn delegate(
    State(s): State<AppState>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let f = form(&session, &headers, &body)?;
    let dates = day_start(&f, "starts").and_then(|starts| {
        let last = day_start(&f, "ends")?;
        let ends = chrono::DateTime::parse_from_rfc3339(&last)
            .map(|t| (t + chrono::Duration::days(1)).to_rfc3339())
            .map_err(|_| ApiError::invalid("ends", "not a date"))?;
        Ok((starts, ends))
    });
    let (starts, ends) = or_page(&session, dates)?;
    let delegation = json!({
        "delegate": f.get("delegate").unwrap_or_default(),
        "starts_at": starts,
        "ends_at": ends,
    });
    let body = Bytes::from(delegation.to_string());
    or_page(
        &session,
        access::post_delegation(State(s), session.principal.clone(), body).await,
    )?;
    Ok(see_other("/console/delegations?notice=delegated"))
}

/// `POST /console/delegations/{id}/withdraw`.
pub(crate) async fn withdraw(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    form(&session, &headers, &body)?;
    or_page(
        &session,
        access::revoke_delegation(State(s), session.principal.clone(), Path(id)).await,
    )?;
    Ok(see_other("/console/delegations?notice=withdrawn"))
}

// ---------------------------------------------------------------- manual tasks

#[derive(Template)]
#[template(path = "console/tasks.html")]
pub(crate) struct Tasks {
    nav: Nav,
    notice: Option<Notice>,
    params: Params,
    items: Vec<views::Task>,
    can_finish: bool,
}

/// `GET /console/tasks`: open tasks (or by state and team), with done and failed forms for
/// tokens holding `tasks:write`.
pub(crate) async fn tasks(
    State(s): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let (params, _) = Params::new(raw.as_deref(), &[]);
    let q = or_page(&session, params.query())?;
    let Json(list) = or_page(
        &session,
        tasks::list_tasks(State(s.clone()), session.principal.clone(), q).await,
    )?;
    let p = &session.principal;
    render(&Tasks {
        nav: Nav::of(Some(&session), "tasks"),
        notice: params.notice(),
        can_finish: p.scopes.contains(&crate::Scope::TasksWrite) || p.is_admin(),
        params,
        items: list.tasks,
    })
}

/// `POST /console/tasks/{id}`: done or failed, with a note (required when failed).
pub(crate) async fn finish(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let f = form(&session, &headers, &body)?;
    let note = match f.get("message") {
        Some(m) => json!({ "message": m }),
        None => json!({}),
    };
    let body = Bytes::from(note.to_string());
    let p = session.principal.clone();
    let done = match f.get("outcome") {
        Some("done") => tasks::complete_task(State(s), p, Path(id), body).await,
        Some("failed") => tasks::fail_task(State(s), p, Path(id), body).await,
        _ => Err(ApiError::invalid("outcome", "choose done or failed")),
    };
    or_page(&session, done)?;
    Ok(see_other("/console/tasks?notice=finished"))
}
