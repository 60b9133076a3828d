//! The web console: server-rendered pages for the people who use tenure every day (approvers,
//! requesters, IT admins, auditors), served under `/console` by the same binary.
//!
//! It has no permission model of its own. A browser signs in with an API token, or through the
//! company's identity provider (OpenID Connect), which makes a token for that session alone;
//! the session then acts as that token, and every page calls the very function the matching API route
//! calls, with the same principal and the same query parameters. So what a person may see or
//! do in the console is exactly what their token may see or do through the API, with the same
//! errors.
//!
//! Safety: the session cookie is random, `HttpOnly`, `SameSite=Strict` and `Secure` behind
//! HTTPS, and stored only as a hash; every form carries the session's CSRF secret and must come
//! from the console's own origin; pages are sent with a Content-Security-Policy that allows no
//! inline script or style, and templates escape everything they print.

mod dashboard;
mod duties;
mod findings;
mod oidc;
mod pages;
mod reviews;
mod session;
mod timeline;

use crate::{ApiError, AppState};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

pub(crate) use dashboard::Snapshot;
pub(crate) use oidc::Discovery;
pub(crate) use session::Session;

/// The largest form the console takes: a bulk decision over a page of approvals fits many
/// times over, and one over the most review items a decision takes (1,000) with the longest
/// justification.
const MAX_FORM: usize = 64 * 1024;

/// What every console page is sent with: nothing but the console's own stylesheet and script
/// may load, no frame may hold it, and forms post only to it.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console, under `/console`, and `/` leading there.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .nest("/console", pages())
        .route("/", get(to_console))
        .route("/console/", get(to_console))
}

/// The console's home, for a browser pointed at the server itself.
async fn to_console() -> Redirect {
    Redirect::to("/console")
}

/// The console's pages.
fn pages() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route(
            "/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/sign-in/oidc", get(oidc::start))
        .route("/sign-in/oidc/callback", get(oidc::callback))
        .route("/sign-out", post(session::sign_out))
        .route("/request", get(pages::catalog))
        .route("/requests", post(pages::ask))
        .route("/requests/{id}", get(pages::request))
        .route("/approvals", get(pages::approvals))
        .route("/approvals/decide", post(pages::decide_many))
        .route(
            "/approvals/{id}",
            get(pages::approval).post(pages::decide_one),
        )
        .route("/reviews", get(reviews::campaigns))
        .route("/reviews/{id}", get(reviews::campaign))
        .route("/reviews/{id}/decide", post(reviews::decide))
        .route("/reviews/{id}/close", post(reviews::close))
        .route("/reviews/{id}/export.csv", get(reviews::export_csv))
        .route("/reviews/{id}/export.json", get(reviews::export_json))
        .route("/people", get(pages::people))
        .route("/people/{id}", get(pages::person))
        .route("/runs", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/runs/{id}/cancel", post(pages::cancel_run))
        .route("/runs/{id}/retry", post(pages::retry_run))
        .route("/systems", get(pages::systems))
        .route("/findings", get(findings::findings))
        .route("/reconciliations/{id}", get(findings::reconciliation))
        .route("/dashboard", get(dashboard::dashboard))
        .route(
            "/delegations",
            get(duties::delegations).post(duties::delegate),
        )
        .route("/delegations/{id}/withdraw", post(duties::withdraw))
        .route("/tasks", get(duties::tasks))
        .route("/tasks/{id}", post(duties::finish))
        .route("/audit", get(pages::audit))
        .route("/assets/console.css", get(stylesheet))
        .route("/assets/console.js", get(script))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_FORM))
        .layer(axum::middleware::from_fn(headers))
}

/// Security headers on every console answer; pages are never cached (they show what one
/// person may see).
async fn headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

async fn stylesheet() -> Response {
    asset(
        include_str!("../../assets/console.css"),
        "text/css; charset=utf-8",
    )
}

async fn script() -> Response {
    asset(
        include_str!("../../assets/console.js"),
        "text/javascript; charset=utf-8",
    )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn not_found(session: Option<Session>) -> Response {
    error_page(session.as_ref(), ApiError::not_found("this page")).into_response()
}

/// A page that failed, already rendered as the answer to send (boxed: a response is large,
/// and failures are the rare path).
#[derive(Debug)]
pub(crate) struct PageError(Box<Response>);

impl From<Response> for PageError {
    fn from(r: Response) -> PageError {
        PageError(Box::new(r))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// A page, or the error that stopped it.
pub(crate) type PageResult = Result<Response, PageError>;

/// Renders `t` as an HTML page.
pub(crate) fn render<T: askama::Template>(t: &T) -> PageResult {
    match t.render() {
        Ok(html) => Ok(Html(html).into_response()),
        Err(e) => {
            tracing::error!(error = %e, "a console page failed to render");
            let failed = (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            );
            Err(failed.into_response().into())
        }
    }
}

/// A page's answer to an error: the API's status and message, inside the console's frame.
pub(crate) fn error_page(session: Option<&Session>, e: ApiError) -> PageError {
    let page = pages::ErrorPage {
        nav: pages::Nav::of(session, ""),
        status: e.status.as_u16(),
        title: e.status.canonical_reason().unwrap_or("Error"),
        message: e.message,
        field: e.field,
    };
    match render(&page) {
        Ok(mut r) => {
            *r.status_mut() = e.status;
            r.into()
        }
        Err(r) => r,
    }
}

/// After a form: to `to` (a console path), as a fresh GET.
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}
