//! Access reviews: the campaigns, a campaign's items waiting for me with what is recommended
//! and why, a decision on several at once, and (for admins) closing a campaign and exporting
//! its evidence, through the API's own functions.

use super::pages::{Nav, Notice, Params, listed, or_page, state, who};
use super::session::{Session, form};
use super::{PageResult, error_page, render, see_other};
use crate::path::Path;
use crate::query::{Query, parse};
use crate::reviews::{self, Campaign, Item};
use crate::{ApiError, AppState};
use askama::Template;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use bytes::Bytes;
use tenure_core::Risk;
use tenure_core::review::{
    ApplyAt, CampaignDefinition, CampaignState, ReviewDecision, ReviewScope, ReviewerKind,
    WhenUndecided,
};

/// A campaign's path in the console.
fn campaign_path(id: &str) -> String {
    format!(
        "/console/reviews/{}",
        form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    )
}

#[derive(Template)]
#[template(path = "console/reviews.html")]
pub(crate) struct Reviews {
    nav: Nav,
    params: Params,
    items: Vec<Campaign>,
    next: Option<String>,
}

/// `GET /console/reviews`: campaigns, newest first (open, closed or all, as
/// `GET /api/v1/reviews` takes `state`), each with how far it got and when it is due.
pub(crate) async fn campaigns(
    State(s): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let (params, page) = listed(&s, &session, raw.as_deref(), reviews::list_campaigns).await?;
    render(&Reviews {
        nav: Nav::of(Some(&session), "reviews"),
        next: params.next("/console/reviews", "before", page.next_before),
        params,
        items: page.items,
    })
}

/// An item as its row shows it.
pub(crate) struct Row {
    item: Item,
    /// High or privileged: keeping it needs a justification.
    high: bool,
    /// Ticked to be decided here: undecided, in my own list of an open campaign.
    pick: bool,
}

#[derive(Template)]
#[template(path = "console/review.html")]
pub(crate) struct ReviewPage {
    nav: Nav,
    notice: Option<Notice>,
    params: Params,
    campaign: Campaign,
    /// The definition in words: (what, how).
    summary: Vec<(&'static str, String)>,
    /// The list shows every reviewer's items rather than mine.
    everyone: bool,
    rows: Vec<Row>,
    /// Whether any row may be ticked (the decision form is shown).
    decidable: bool,
    path: String,
    next: Option<String>,
    max_items: usize,
}

/// `GET /console/reviews/{id}`: the campaign, and a page of its items as
/// `GET /api/v1/reviews/{id}/items` lists them (waiting for me by default; decided, or all;
/// every reviewer's with `read`), with one decision for those ticked. A token that may read
/// but not decide sees every reviewer's items.
pub(crate) async fn campaign(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let nav = Nav::of(Some(&session), "reviews");
    let mut params = Params::paged(raw.as_deref());
    if nav.can_read() && !nav.can_approve() {
        params.default("reviewer", "all");
    }
    let Json(campaign) = or_page(
        &session,
        reviews::get_campaign(state(&s), who(&session), Path(id.clone())).await,
    )?;
    let q: Query<_> = or_page(&session, params.query())?;
    let Json(page) = or_page(
        &session,
        reviews::list_items(state(&s), who(&session), Path(id.clone()), q).await,
    )?;
    let everyone = params.get("reviewer") == "all";
    let open = campaign.state == CampaignState::Open;
    let rows: Vec<Row> = page
        .items
        .into_iter()
        .map(|item| Row {
            high: item.risk >= Risk::High,
            pick: open && !everyone && item.decision.is_none(),
            item,
        })
        .collect();
    let path = campaign_path(&id);
    render(&ReviewPage {
        notice: params.notice(),
        summary: summary(&campaign.definition),
        everyone,
        decidable: rows.iter().any(|r| r.pick),
        next: params.next(&path, "after", page.next_after.map(|n| n.to_string())),
        nav,
        params,
        campaign,
        rows,
        path,
        max_items: tenure_engine::MAX_DECISION_ITEMS,
    })
}

/// A campaign's definition in words, as its page shows it.
fn summary(d: &CampaignDefinition) -> Vec<(&'static str, String)> {
    let reviewer = match d.reviewer {
        ReviewerKind::Manager => "each person's manager".to_string(),
        ReviewerKind::Owner => "the entitlement's owner".to_string(),
        ReviewerKind::ClientOwner => "the owner of the entitlement's client".to_string(),
        ReviewerKind::Team => format!("team {}", d.team.as_deref().unwrap_or_default()),
    };
    let fallback = match &d.fallback {
        Some(f) => format!("{reviewer}; otherwise {f}"),
        None => format!("{reviewer}; otherwise an admin"),
    };
    let mut out = vec![
        ("Covers", scope(&d.scope)),
        ("Reviewers", fallback),
        ("Lasts", format!("{} days", d.duration_days)),
        (
            "Undecided items",
            match d.when_undecided {
                WhenUndecided::Keep => "are kept".to_string(),
                WhenUndecided::Revoke => "are revoked".to_string(),
                WhenUndecided::Recommendation => {
                    "follow the recommendation (high and privileged access is kept)".to_string()
                }
            },
        ),
        (
            "Revocations",
            match d.apply {
                ApplyAt::Close => "are carried out when the campaign closes".to_string(),
                ApplyAt::Decision => "are carried out as soon as decided".to_string(),
            },
        ),
        (
            "Closes",
            if d.auto_close {
                "by itself at its due date".to_string()
            } else {
                "when an admin closes it (items open past the due date are overdue)".to_string()
            },
        ),
    ];
    if let Some(r) = d.recurrence {
        out.push(("Opens again", r.to_string()));
    }
    out
}

/// What a scope covers, in words.
fn scope(s: &ReviewScope) -> String {
    fn list<T: ToString>(out: &mut Vec<String>, what: &str, v: &[T]) {
        if !v.is_empty() {
            let names: Vec<String> = v.iter().map(T::to_string).collect();
            out.push(format!("{what} {}", names.join(", ")));
        }
    }
    let mut parts = Vec::new();
    list(&mut parts, "clients", &s.clients);
    list(&mut parts, "systems", &s.systems);
    list(&mut parts, "entitlements", &s.entitlements);
    list(&mut parts, "risks", &s.risks);
    list(&mut parts, "given by", &s.sources);
    list(&mut parts, "departments", &s.departments);
    list(&mut parts, "worker types", &s.worker_types);
    if parts.is_empty() {
        "every grant held when it opened".to_string()
    } else {
        format!("grants held when it opened: {}", parts.join("; "))
    }
}

/// `POST /console/reviews/{id}/decide`: one decision and justification for every item ticked,
/// through the API's decision (all of them or none: the first refusal is shown and nothing is
/// recorded).
pub(crate) async fn decide(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let f = form(&session, &headers, &body)?;
    let refuse = |field: &str, message: String| {
        error_page(Some(&session), ApiError::invalid(field, message))
    };
    let decision = match f.get("decision") {
        Some("keep") => ReviewDecision::Keep,
        Some("revoke") => ReviewDecision::Revoke,
        _ => return Err(refuse("decision", "choose keep or revoke".into())),
    };
    let items = f
        .all("item")
        .map(|v| v.trim().parse::<i64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| refuse("item", "an item is not one of this page's".into()))?;
    if items.is_empty() {
        return Err(refuse("item", "tick at least one item".into()));
    }
    let max = tenure_engine::MAX_DECISION_ITEMS;
    if items.len() > max {
        return Err(refuse(
            "item",
            format!("decide at most {max} items at once"),
        ));
    }
    let justification = f.get("justification").map(str::to_string);
    or_page(
        &session,
        reviews::decide(
            &s,
            &session.principal,
            id.clone(),
            items,
            decision,
            justification,
        )
        .await,
    )?;
    Ok(see_other(&format!(
        "{}?notice=reviewed",
        campaign_path(&id)
    )))
}

/// `POST /console/reviews/{id}/close`: closes the campaign now and applies its results, as
/// `POST /api/v1/reviews/{id}/close` does (admins only).
pub(crate) async fn close(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    form(&session, &headers, &body)?;
    let Json(_) = or_page(
        &session,
        reviews::close_campaign(state(&s), who(&session), Path(id.clone())).await,
    )?;
    Ok(see_other(&format!(
        "{}?notice=closed&state=all",
        campaign_path(&id)
    )))
}

/// `GET /console/reviews/{id}/export.csv`: the campaign's evidence, as
/// `GET /api/v1/reviews/{id}/export?format=csv` sends it.
pub(crate) async fn export_csv(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> PageResult {
    export(&s, &session, id, "csv").await
}

/// `GET /console/reviews/{id}/export.json`: the campaign's evidence as JSON.
pub(crate) async fn export_json(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> PageResult {
    export(&s, &session, id, "json").await
}

async fn export(s: &AppState, session: &Session, id: String, format: &str) -> PageResult {
    let q = or_page(session, parse(&format!("format={format}")).map(Query))?;
    let r = or_page(
        session,
        reviews::export_campaign(state(s), who(session), Path(id), q).await,
    )?;
    Ok(r.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenure_core::review::Recurrence;

    #[test]
    fn a_definition_reads_as_words() {
        let d = CampaignDefinition {
            scope: ReviewScope {
                systems: vec!["crm".into()],
                risks: vec![Risk::High, Risk::Privileged],
                ..Default::default()
            },
            reviewer: ReviewerKind::Team,
            team: Some("sec".into()),
            fallback: None,
            duration_days: 14,
            reminder_days: vec![],
            recurrence: Some(Recurrence::Quarterly),
            when_undecided: WhenUndecided::Recommendation,
            apply: ApplyAt::Close,
            auto_close: false,
        };
        let s = summary(&d);
        let get = |k: &str| s.iter().find(|(w, _)| *w == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("Covers"),
            Some("grants held when it opened: systems crm; risks high, privileged")
        );
        assert_eq!(get("Reviewers"), Some("team sec; otherwise an admin"));
        assert_eq!(get("Opens again"), Some("quarterly"));
        assert_eq!(
            scope(&ReviewScope::default()),
            "every grant held when it opened"
        );
    }
}
