//! Reconciliation's findings (what differs between a system and tenure's records) and one
//! reconciliation with its counts, through the API's own functions.

use super::pages::{Nav, Params, listed, or_page, state, who};
use super::session::Session;
use super::{PageResult, render};
use crate::path::Path;
use crate::reconciliations::{self, Finding, ReconciliationDetail};
use crate::{AppState, query::Query};
use askama::Template;
use axum::Json;
use axum::extract::{RawQuery, State};
use tenure_core::drift::Situation;

/// What the findings list's `status` may be, as `GET /api/v1/reconciliations/findings` takes it.
const STATUSES: [&str; 2] = ["open", "all"];

#[derive(Template)]
#[template(path = "console/findings.html")]
pub(crate) struct Findings {
    nav: Nav,
    situations: &'static [Situation],
    statuses: &'static [&'static str],
    params: Params,
    items: Vec<Finding>,
    next: Option<String>,
}

/// `GET /console/findings`: open findings (or all) over every reconciliation, with the API's
/// filters, a page at a time.
pub(crate) async fn findings(
    State(s): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let (params, page) =
        listed(&s, &session, raw.as_deref(), reconciliations::list_findings).await?;
    render(&Findings {
        nav: Nav::of(Some(&session), "findings"),
        situations: Situation::ALL,
        statuses: &STATUSES,
        next: params.next("/console/findings", "after", page.next_after),
        params,
        items: page.items,
    })
}

#[derive(Template)]
#[template(path = "console/reconciliation.html")]
pub(crate) struct ReconciliationPage {
    nav: Nav,
    situations: &'static [Situation],
    params: Params,
    detail: ReconciliationDetail,
    next: Option<String>,
}

/// `GET /console/reconciliations/{id}`: one reconciliation's state and counts, and a page of
/// the findings it saw (filtered as the API filters them).
pub(crate) async fn reconciliation(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let params = Params::paged(raw.as_deref());
    let q: Query<_> = or_page(&session, params.query())?;
    let Json(detail) = or_page(
        &session,
        reconciliations::get_reconciliation(state(&s), who(&session), Path(id.clone()), q).await,
    )?;
    let path = format!(
        "/console/reconciliations/{}",
        form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    );
    render(&ReconciliationPage {
        nav: Nav::of(Some(&session), "findings"),
        situations: Situation::ALL,
        next: params.next(&path, "after", detail.next_after.clone()),
        params,
        detail,
    })
}
