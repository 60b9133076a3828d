//! The console's pages. Each calls the function behind the matching API route with the
//! session's principal and the page's own query parameters, then renders what it returns; the
//! page's filters are the API's filters, and a refusal is the API's refusal.

use super::session::{Session, form};
use super::timeline::{self, Timeline};
use super::{PageError, PageResult, error_page, render, see_other};
use crate::auth::{Principal, Scope};
use crate::bodies::{ChainVerification, PersonDetail};
use crate::path::Path;
use crate::query::{Query, parse};
use crate::{ApiError, AppState, access, routes, views};
use askama::Template;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use bytes::Bytes;
use std::collections::BTreeMap;
use tenure_core::approval::Verdict;
use tenure_core::run::RunState;
use tenure_core::{Entitlement, Person, PersonStatus, Risk};

// ---------------------------------------------------------------- frame

/// The signed-in person as the frame shows them, and what their token may do.
pub(crate) struct Me {
    pub(crate) name: String,
    pub(crate) person: Option<String>,
    pub(crate) read: bool,
    pub(crate) approve: bool,
    pub(crate) request: bool,
    pub(crate) admin: bool,
}

/// What every page's frame needs: who is signed in, the page it is on, the form secret.
pub(crate) struct Nav {
    pub(crate) me: Option<Me>,
    pub(crate) current: &'static str,
    pub(crate) csrf: String,
}

impl Nav {
    /// Whether the signed-in token holds `read`.
    pub(crate) fn can_read(&self) -> bool {
        self.me.as_ref().is_some_and(|m| m.read)
    }

    /// Whether the signed-in token may decide approvals.
    pub(crate) fn can_approve(&self) -> bool {
        self.me.as_ref().is_some_and(|m| m.approve)
    }

    /// Whether the signed-in token holds `admin`.
    pub(crate) fn is_admin(&self) -> bool {
        self.me.as_ref().is_some_and(|m| m.admin)
    }

    pub(crate) fn of(session: Option<&Session>, current: &'static str) -> Nav {
        let me = session.map(|s| {
            let p = &s.principal;
            let has = |scope| p.scopes.contains(&scope) || p.is_admin();
            Me {
                name: p.name.clone(),
                person: p.person_id.clone(),
                read: has(Scope::Read),
                approve: has(Scope::Approve) && p.person_id.is_some(),
                request: has(Scope::Request),
                admin: p.is_admin(),
            }
        });
        Nav {
            me,
            current,
            csrf: session.map(|s| s.csrf.clone()).unwrap_or_default(),
        }
    }
}

/// A short word a page shows after a form sent the browser to it (`?notice=`). Only these
/// fixed texts: a link cannot make a page say anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    Requested,
    Decided,
    Cancelled,
    Retried,
    Delegated,
    Withdrawn,
    Finished,
    Reviewed,
    ReviewClosed,
}

impl Notice {
    fn parse(s: &str) -> Option<Notice> {
        Some(match s {
            "requested" => Notice::Requested,
            "decided" => Notice::Decided,
            "cancelled" => Notice::Cancelled,
            "retried" => Notice::Retried,
            "delegated" => Notice::Delegated,
            "withdrawn" => Notice::Withdrawn,
            "finished" => Notice::Finished,
            "reviewed" => Notice::Reviewed,
            "closed" => Notice::ReviewClosed,
            _ => return None,
        })
    }

    pub(crate) fn text(self) -> &'static str {
        match self {
            Notice::Requested => "Your request was sent. It appears below with where it stands.",
            Notice::Decided => "Your decision was recorded.",
            Notice::Cancelled => "The run is being cancelled.",
            Notice::Retried => "The run will try its failed steps again.",
            Notice::Delegated => "Your delegation was recorded.",
            Notice::Withdrawn => "The delegation was withdrawn.",
            Notice::Finished => "The task was recorded: its step moves on.",
            Notice::Reviewed => "Your decisions were recorded.",
            Notice::ReviewClosed => {
                "The campaign is closed and its results applied: each revocation goes through a run."
            }
        }
    }
}

/// How many rows a list page shows.
const PAGE_SIZE: u32 = 50;

/// A page's query string: the API's parameters for the same list, and the console's own
/// (`notice`, and fields a search form sent empty, which mean "any").
pub(crate) struct Params {
    api: BTreeMap<String, String>,
    notice: Option<Notice>,
}

impl Params {
    /// Splits `raw`; `own` names parameters the page reads itself rather than the API.
    pub(crate) fn new(raw: Option<&str>, own: &[&str]) -> (Params, BTreeMap<String, String>) {
        let mut api = BTreeMap::new();
        let mut mine = BTreeMap::new();
        let mut notice = None;
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let v = v.trim();
            if k == "notice" {
                notice = Notice::parse(v);
            } else if own.contains(&k.as_ref()) {
                mine.insert(k.into_owned(), v.to_string());
            } else if !v.is_empty() {
                api.insert(k.into_owned(), v.to_string());
            }
        }
        (Params { api, notice }, mine)
    }

    /// A list page's parameters: the API's, with the console's page size unless the link
    /// asks for another.
    pub(crate) fn paged(raw: Option<&str>) -> Params {
        let (mut p, _) = Params::new(raw, &[]);
        p.api
            .entry("limit".into())
            .or_insert_with(|| PAGE_SIZE.to_string());
        p
    }

    /// The API's query for these parameters, parsed and checked as the API does.
    pub(crate) fn query<T: serde::de::DeserializeOwned>(&self) -> Result<Query<T>, ApiError> {
        parse(&encode(self.api.iter())).map(Query)
    }

    /// The notice a form sent the browser here with, if any.
    pub(crate) fn notice(&self) -> Option<Notice> {
        self.notice
    }

    /// Sets the API's parameter `name` to `value` unless the link gives it.
    pub(crate) fn default(&mut self, name: &str, value: &str) {
        self.api
            .entry(name.to_string())
            .or_insert_with(|| value.to_string());
    }

    /// The value of a filter, or empty: what a search form shows.
    pub(crate) fn get(&self, name: &str) -> &str {
        self.api.get(name).map(String::as_str).unwrap_or("")
    }

    /// This page's link with `cursor` set to `value` (the next page).
    pub(crate) fn next(&self, path: &str, cursor: &str, value: Option<String>) -> Option<String> {
        let value = value?;
        let mut q = self.api.clone();
        q.insert(cursor.to_string(), value);
        Some(format!("{path}?{}", encode(q.iter())))
    }
}

fn encode<'a>(pairs: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Runs an API function for a page: its error becomes the page's error.
pub(crate) fn or_page<T>(session: &Session, r: Result<T, ApiError>) -> Result<T, PageError> {
    r.map_err(|e| error_page(Some(session), e))
}

/// A list page's parameters and the page the API's list function `list` answered for them
/// (with the console's page size unless the link asks for another), as this session.
pub(crate) async fn listed<Q, T, F, Fut>(
    s: &AppState,
    session: &Session,
    raw: Option<&str>,
    list: F,
) -> Result<(Params, T), PageError>
where
    Q: serde::de::DeserializeOwned,
    F: FnOnce(State<AppState>, Principal, Query<Q>) -> Fut,
    Fut: std::future::Future<Output = Result<Json<T>, ApiError>>,
{
    let params = Params::paged(raw);
    let q = or_page(session, params.query())?;
    let Json(page) = or_page(session, list(state(s), who(session), q).await)?;
    Ok((params, page))
}

pub(crate) fn state(s: &AppState) -> State<AppState> {
    State(s.clone())
}

pub(crate) fn who(session: &Session) -> Principal {
    session.principal.clone()
}

// ---------------------------------------------------------------- error and sign-in

#[derive(Template)]
#[template(path = "console/error.html")]
pub(crate) struct ErrorPage {
    pub(crate) nav: Nav,
    pub(crate) status: u16,
    pub(crate) title: &'static str,
    pub(crate) message: String,
    pub(crate) field: Option<String>,
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
pub(crate) struct SignIn {
    nav: Nav,
    next: String,
    error: Option<String>,
    /// The identity provider's name, when people may sign in through it.
    provider: Option<String>,
    /// Where signing in through it starts (with `next`).
    provider_start: String,
}

impl SignIn {
    pub(crate) fn new(s: &AppState, next: &str, error: Option<String>) -> SignIn {
        SignIn {
            nav: Nav::of(None, "sign-in"),
            next: next.to_string(),
            error,
            provider: s
                .engine()
                .config()
                .console
                .oidc
                .as_ref()
                .map(|o| o.label.clone()),
            provider_start: format!(
                "/console/sign-in/oidc?next={}",
                form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            ),
        }
    }
}

/// Signed in through the identity provider: a page of the console's own leads on to `next`.
#[derive(Template)]
#[template(path = "console/signed_in.html")]
pub(crate) struct SignedIn {
    pub(crate) next: String,
}

// ---------------------------------------------------------------- home

#[derive(Template)]
#[template(path = "console/home.html")]
pub(crate) struct Home {
    nav: Nav,
    approvals: Option<Vec<views::Approval>>,
    /// Open campaigns with access review items waiting for me, when I may decide them.
    reviews: Vec<crate::reviews::Waiting>,
    /// How many items in all.
    review_items: i64,
    requests: Vec<views::Request>,
    /// The teams I am in (`[approvals.teams]`) and their open manual tasks, when I may read.
    team_tasks: Vec<(String, Vec<views::Task>)>,
    notice: Option<Notice>,
}

/// Open tasks listed per team on the home page at most.
const HOME_TASKS: usize = 10;

/// `GET /console/`: what waits for me (approvals, access review items, my teams' open tasks),
/// and my requests.
pub(crate) async fn home(
    State(s): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let (params, _) = Params::new(raw.as_deref(), &[]);
    let nav = Nav::of(Some(&session), "home");
    let approvals = match nav.me.as_ref().is_some_and(|m| m.approve) {
        true => {
            let q = or_page(&session, parse("limit=10").map(Query))?;
            let Json(page) = or_page(
                &session,
                access::list_approvals(state(&s), who(&session), q).await,
            )?;
            Some(page.items)
        }
        false => None,
    };
    let reviews = match nav.can_approve() {
        true => or_page(
            &session,
            crate::reviews::waiting(&s, &session.principal).await,
        )?,
        false => Vec::new(),
    };
    let review_items = reviews.iter().map(|w| w.items).sum();
    let requests = match session.principal.person_id {
        Some(_) => {
            let q = or_page(&session, parse("limit=10").map(Query))?;
            let Json(page) = or_page(
                &session,
                access::list_requests(state(&s), who(&session), q).await,
            )?;
            page.items
        }
        None => Vec::new(),
    };
    let mut team_tasks = Vec::new();
    if let (Some(me), true) = (
        &session.principal.person_id,
        nav.me.as_ref().is_some_and(|m| m.read),
    ) {
        let config = s.engine().config();
        for (team, members) in &config.approvals.teams {
            if !members.contains(me) {
                continue;
            }
            let open = format!(
                "state=open&limit={HOME_TASKS}&team={}",
                form_urlencoded::byte_serialize(team.as_bytes()).collect::<String>()
            );
            let q = or_page(&session, parse(&open).map(Query))?;
            let Json(list) = or_page(
                &session,
                crate::tasks::list_tasks(state(&s), who(&session), q).await,
            )?;
            team_tasks.push((team.clone(), list.tasks));
        }
    }
    render(&Home {
        nav,
        approvals,
        reviews,
        review_items,
        requests,
        team_tasks,
        notice: params.notice,
    })
}

// ---------------------------------------------------------------- requesting access

#[derive(Template)]
#[template(path = "console/catalog.html")]
pub(crate) struct Catalog {
    nav: Nav,
    risks: &'static [Risk],
    params: Params,
    text: String,
    items: Vec<Entitlement>,
    chosen: Option<Entitlement>,
    for_person: String,
    durations: &'static [(i64, &'static str)],
    /// The duration the form offers first: the longest that the chosen entitlement's risk
    /// allows, up to 30 days.
    default_secs: i64,
}

/// How long access may be asked for, as the form offers it (seconds; 0 for no end).
pub(crate) const DURATIONS: [(i64, &str); 9] = [
    (3_600, "1 hour"),
    (2 * 3_600, "2 hours"),
    (8 * 3_600, "8 hours"),
    (86_400, "1 day"),
    (7 * 86_400, "7 days"),
    (30 * 86_400, "30 days"),
    (90 * 86_400, "90 days"),
    (365 * 86_400, "1 year"),
    (0, "Until revoked (low and medium risk only)"),
];

/// `GET /console/request`: the entitlement catalog, searchable, with the request form for the
/// entitlement chosen.
pub(crate) async fn catalog(
    State(s): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let (params, mine) = Params::new(raw.as_deref(), &["q", "entitlement", "for"]);
    let q = or_page(&session, params.query())?;
    let Json(list) = or_page(
        &session,
        routes::list_entitlements(state(&s), who(&session), q).await,
    )?;
    let text = mine.get("q").cloned().unwrap_or_default();
    let needle = text.to_lowercase();
    let max_window_secs = s.engine().config().approvals.max_window_ms / 1000;
    let chosen = mine
        .get("entitlement")
        .and_then(|id| list.items.iter().find(|e| &e.id == id).cloned());
    let items = list
        .items
        .into_iter()
        .filter(|e| {
            needle.is_empty()
                || e.id.to_lowercase().contains(&needle)
                || e.name.to_lowercase().contains(&needle)
        })
        .collect();
    let chosen_risk = chosen.as_ref().map(|e| e.risk);
    render(&Catalog {
        nav: Nav::of(Some(&session), "request"),
        risks: Risk::ALL,
        params,
        text,
        items,
        chosen,
        for_person: mine.get("for").cloned().unwrap_or_default(),
        durations: &DURATIONS,
        default_secs: default_duration(chosen_risk, max_window_secs),
    })
}

/// The duration the request form selects first: 30 days, or for `high` and `privileged`
/// access (which always ends, within `max_window_secs`) the longest offered that fits.
fn default_duration(risk: Option<Risk>, max_window_secs: i64) -> i64 {
    match risk {
        Some(Risk::High | Risk::Privileged) => DURATIONS
            .iter()
            .map(|d| d.0)
            .filter(|d| *d > 0 && *d <= max_window_secs)
            .max()
            .unwrap_or(DURATIONS[0].0),
        _ => 30 * 86_400,
    }
}

/// `POST /console/requests`: asks for access, as `POST /api/v1/requests` does.
pub(crate) async fn ask(
    State(s): State<AppState>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let f = form(&session, &headers, &body)?;
    let duration_secs = match f.get("duration").map(str::parse::<i64>) {
        None | Some(Ok(0)) => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => {
            return Err(error_page(
                Some(&session),
                ApiError::invalid("duration", "choose one of the durations offered"),
            ));
        }
    };
    let req = access::RequestBody {
        person_id: f.get("person_id").map(str::to_string),
        entitlement: f.get("entitlement").unwrap_or_default().to_string(),
        justification: f.get("justification").unwrap_or_default().to_string(),
        duration_secs,
        break_glass: false,
    };
    let accepted = or_page(&session, access::ask(&s, &session.principal, req).await)?;
    Ok(see_other(&format!(
        "/console/requests/{}?notice=requested",
        accepted.request_id
    )))
}

#[derive(Template)]
#[template(path = "console/request.html")]
pub(crate) struct RequestPage {
    nav: Nav,
    detail: views::RequestDetail,
    notice: Option<Notice>,
}

/// `GET /console/requests/{id}`: a request and its approval chain.
pub(crate) async fn request(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let (params, _) = Params::new(raw.as_deref(), &[]);
    let Json(detail) = or_page(
        &session,
        access::get_request(state(&s), who(&session), Path(id)).await,
    )?;
    render(&RequestPage {
        nav: Nav::of(Some(&session), "request"),
        detail,
        notice: params.notice,
    })
}

// ---------------------------------------------------------------- approvals

#[derive(Template)]
#[template(path = "console/approvals.html")]
pub(crate) struct Approvals {
    nav: Nav,
    notice: Option<Notice>,
    params: Params,
    items: Vec<views::Approval>,
    next: Option<String>,
}

/// `GET /console/approvals`: the inbox (pending by default), with a bulk decision.
pub(crate) async fn approvals(
    State(s): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let (params, _) = Params::new(raw.as_deref(), &[]);
    let q = or_page(&session, params.query())?;
    let Json(page) = or_page(
        &session,
        access::list_approvals(state(&s), who(&session), q).await,
    )?;
    render(&Approvals {
        nav: Nav::of(Some(&session), "approvals"),
        notice: params.notice,
        next: params.next("/console/approvals", "after", page.next_after),
        params,
        items: page.items,
    })
}

#[derive(Template)]
#[template(path = "console/approval.html")]
pub(crate) struct ApprovalPage {
    nav: Nav,
    detail: views::ApprovalDetail,
    notice: Option<Notice>,
}

/// `GET /console/approvals/{id}`: an approval's chain and decisions, with the decision form.
pub(crate) async fn approval(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let (params, _) = Params::new(raw.as_deref(), &[]);
    let Json(detail) = or_page(
        &session,
        access::get_approval(state(&s), who(&session), Path(id)).await,
    )?;
    render(&ApprovalPage {
        nav: Nav::of(Some(&session), "approvals"),
        detail,
        notice: params.notice,
    })
}

fn verdict(session: &Session, f: &super::session::FormData) -> Result<Verdict, PageError> {
    match f.get("decision") {
        Some("approve") => Ok(Verdict::Approve),
        Some("deny") => Ok(Verdict::Deny),
        _ => Err(error_page(
            Some(session),
            ApiError::invalid("decision", "choose approve or deny"),
        )),
    }
}

/// `POST /console/approvals/{id}`: decides one approval, as the API's decision route does.
pub(crate) async fn decide_one(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let f = form(&session, &headers, &body)?;
    let v = verdict(&session, &f)?;
    let comment = f.get("comment").unwrap_or_default();
    or_page(
        &session,
        access::decide(&s, &session.principal, &id, v, comment).await,
    )?;
    Ok(see_other(&format!(
        "/console/approvals/{id}?notice=decided"
    )))
}

/// The most approvals one bulk decision takes: a page of the inbox.
const MAX_BULK: usize = 100;

/// `POST /console/approvals/decide`: one decision and comment for every approval ticked.
/// Each is decided on its own, as if sent one by one; the first refusal stops the rest and is
/// shown, with how many were decided before it.
pub(crate) async fn decide_many(
    State(s): State<AppState>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    let f = form(&session, &headers, &body)?;
    let v = verdict(&session, &f)?;
    let comment = f.get("comment").unwrap_or_default();
    let ids: Vec<&str> = f.all("id").collect();
    if ids.is_empty() {
        return Err(error_page(
            Some(&session),
            ApiError::invalid("id", "tick at least one approval"),
        ));
    }
    if ids.len() > MAX_BULK {
        return Err(error_page(
            Some(&session),
            ApiError::invalid("id", format!("decide at most {MAX_BULK} at once")),
        ));
    }
    for (done, id) in ids.iter().enumerate() {
        if let Err(mut e) = access::decide(&s, &session.principal, id, v, comment).await {
            e.message = format!("{} decided; approval `{id}` was not: {}", done, e.message);
            return Err(error_page(Some(&session), e));
        }
    }
    Ok(see_other("/console/approvals?notice=decided"))
}

// ---------------------------------------------------------------- people

#[derive(Template)]
#[template(path = "console/people.html")]
pub(crate) struct People {
    nav: Nav,
    statuses: &'static [PersonStatus],
    params: Params,
    items: Vec<Person>,
    next: Option<String>,
}

/// `GET /console/people`: search and filter, a page at a time.
pub(crate) async fn people(
    State(s): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let (params, page) = listed(&s, &session, raw.as_deref(), routes::list_people).await?;
    render(&People {
        nav: Nav::of(Some(&session), "people"),
        statuses: PersonStatus::ALL,
        next: params.next("/console/people", "after", page.next_after),
        params,
        items: page.items,
    })
}

#[derive(Template)]
#[template(path = "console/person.html")]
pub(crate) struct PersonPage {
    nav: Nav,
    detail: PersonDetail,
    timeline: Timeline,
}

/// `GET /console/people/{id}`: accounts, grants with why and until when, engagements, and the
/// person's timeline (their latest events, runs and audit entries, newest first).
pub(crate) async fn person(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> PageResult {
    let Json(detail) = or_page(
        &session,
        routes::get_person(state(&s), who(&session), Path(id.clone())).await,
    )?;
    let person = form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>();
    let latest = format!("person={person}&limit={}", timeline::LIMIT);
    let q = or_page(&session, parse(&latest).map(Query))?;
    let Json(runs) = or_page(
        &session,
        routes::list_runs(state(&s), who(&session), q).await,
    )?;
    let q = or_page(
        &session,
        parse(&format!("{latest}&order=newest")).map(Query),
    )?;
    let Json(audit) = or_page(
        &session,
        routes::list_audit(state(&s), who(&session), q).await,
    )?;
    render(&PersonPage {
        nav: Nav::of(Some(&session), "people"),
        timeline: timeline::merge(&id, runs.items, audit.items),
        detail,
    })
}

// ---------------------------------------------------------------- runs

#[derive(Template)]
#[template(path = "console/runs.html")]
pub(crate) struct Runs {
    nav: Nav,
    states: &'static [RunState],
    params: Params,
    items: Vec<views::Run>,
    next: Option<String>,
}

/// `GET /console/runs`: runs, newest first, with the API's filters.
pub(crate) async fn runs(
    State(s): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let (params, page) = listed(&s, &session, raw.as_deref(), routes::list_runs).await?;
    render(&Runs {
        nav: Nav::of(Some(&session), "runs"),
        states: RunState::ALL,
        next: params.next("/console/runs", "before", page.next_before),
        params,
        items: page.items,
    })
}

#[derive(Template)]
#[template(path = "console/run.html")]
pub(crate) struct RunPage {
    nav: Nav,
    detail: views::RunDetail,
    notice: Option<Notice>,
}

/// `GET /console/runs/{id}`: a run's systems and steps; cancel and retry for admins.
pub(crate) async fn run(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let (params, _) = Params::new(raw.as_deref(), &[]);
    let q = or_page(&session, parse("").map(Query))?;
    let Json(detail) = or_page(
        &session,
        routes::get_run(state(&s), who(&session), Path(id), q).await,
    )?;
    render(&RunPage {
        nav: Nav::of(Some(&session), "runs"),
        detail,
        notice: params.notice,
    })
}

/// `POST /console/runs/{id}/cancel`.
pub(crate) async fn cancel_run(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    form(&session, &headers, &body)?;
    let Json(_) = or_page(
        &session,
        routes::cancel_run(state(&s), who(&session), Path(id.clone())).await,
    )?;
    Ok(see_other(&format!("/console/runs/{id}?notice=cancelled")))
}

/// `POST /console/runs/{id}/retry`.
pub(crate) async fn retry_run(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    form(&session, &headers, &body)?;
    let Json(_) = or_page(
        &session,
        routes::retry_run(state(&s), who(&session), Path(id.clone())).await,
    )?;
    Ok(see_other(&format!("/console/runs/{id}?notice=retried")))
}

// ---------------------------------------------------------------- systems and audit

#[derive(Template)]
#[template(path = "console/systems.html")]
pub(crate) struct Systems {
    nav: Nav,
    items: Vec<views::System>,
}

/// `GET /console/systems`: health, circuit breaker, calls in flight.
pub(crate) async fn systems(State(s): State<AppState>, session: Session) -> PageResult {
    let q = or_page(&session, parse("").map(Query))?;
    let Json(list) = or_page(
        &session,
        routes::list_systems(state(&s), who(&session), q).await,
    )?;
    render(&Systems {
        nav: Nav::of(Some(&session), "systems"),
        items: list.items,
    })
}

#[derive(Template)]
#[template(path = "console/audit.html")]
pub(crate) struct Audit {
    nav: Nav,
    params: Params,
    /// Newest first (`order=newest`) rather than in chain order.
    newest_first: bool,
    items: Vec<views::AuditEntry>,
    next: Option<String>,
    /// How the server's check of the chain stands.
    chain: ChainVerification,
}

/// `GET /console/audit`: how the server's check of the chain stands, and the trail, searched by
/// person, actor, action, system and time, in chain order or newest first.
pub(crate) async fn audit(
    State(s): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let (params, page) = listed(&s, &session, raw.as_deref(), routes::list_audit).await?;
    let (cursor, value) = match page.next_before {
        Some(b) => ("before", Some(b)),
        None => ("after", page.next_after),
    };
    let next = params.next("/console/audit", cursor, value.map(|v| v.to_string()));
    let q = or_page(&session, parse("").map(Query))?;
    let Json(chain) = or_page(
        &session,
        crate::chain::audit_verification(state(&s), who(&session), q).await,
    )?;
    render(&Audit {
        nav: Nav::of(Some(&session), "audit"),
        newest_first: params.get("order") == "newest",
        chain,
        next,
        params,
        items: page.items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_offers_first_the_longest_duration_the_risk_allows() {
        assert_eq!(default_duration(None, 8 * 3_600), 30 * 86_400);
        assert_eq!(default_duration(Some(Risk::Low), 8 * 3_600), 30 * 86_400);
        assert_eq!(default_duration(Some(Risk::High), 8 * 3_600), 8 * 3_600);
        assert_eq!(
            default_duration(Some(Risk::Privileged), 3 * 3_600),
            2 * 3_600
        );
        assert_eq!(default_duration(Some(Risk::High), 60), 3_600);
    }

    #[test]
    fn params_split_the_api_filters_from_the_page_own_and_drop_empty_fields() {
        let (p, mine) = Params::new(
            Some("q=ann&status=&department=Sales&notice=decided&entitlement=x%3Ay"),
            &["entitlement"],
        );
        assert_eq!(p.get("q"), "ann");
        assert_eq!(p.get("status"), "");
        assert_eq!(p.notice, Some(Notice::Decided));
        assert_eq!(mine.get("entitlement").map(String::as_str), Some("x:y"));
        assert_eq!(
            p.next("/console/people", "after", Some("E9".into()))
                .as_deref(),
            Some("/console/people?after=E9&department=Sales&q=ann")
        );
        let (p, _) = Params::new(Some("notice=<script>"), &[]);
        assert_eq!(p.notice, None, "only the fixed notices are shown");
    }
}
