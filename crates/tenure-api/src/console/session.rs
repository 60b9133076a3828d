//! Signing in to the console with an API token, the session cookie, and the checks every form
//! passes (same origin, the session's CSRF secret).

use super::pages::SignIn;
use super::{PageError, PageResult, error_page, render, see_other};
use crate::auth::{Principal, hash_token, principal_of};
use crate::{ApiError, AppState};
use axum::extract::{FromRequestParts, OptionalFromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rand::TryRngCore;
use serde_json::json;
use tenure_store::{NewAudit, SessionRow, SignInMethod};

/// The session cookie's name.
const COOKIE: &str = "tenure_session";

/// How long a session lasts from sign-in (ms): a working day.
pub(crate) const SESSION_MS: i64 = 10 * 3_600_000;

/// A signed-in browser: it acts as its token, with the token's scopes and person.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// Who the session acts as: its token.
    pub(crate) principal: Principal,
    /// The secret every form of this session carries.
    pub(crate) csrf: String,
    /// The hash of the session's cookie (its key in the store).
    id_hash: String,
}

/// 32 random bytes as 64 hex digits.
pub(super) fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random source works");
    hex::encode(bytes)
}

/// The value of the cookie `name` in a request, if it is well formed (as [`random_hex`] makes).
pub(super) fn cookie_named<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The session cookie's value in a request, if it has a well-formed one.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    cookie_named(headers, COOKIE)
}

/// Whether the console is reached over HTTPS (its cookies are then `Secure`).
pub(super) fn secure(s: &AppState) -> bool {
    s.public_url().starts_with("https://")
}

/// The `Set-Cookie` that opens a session, or (`value` `None`) ends it.
pub(super) fn set_cookie(s: &AppState, value: Option<&str>) -> HeaderValue {
    let secure = if secure(s) { "; Secure" } else { "" };
    let text = match value {
        Some(v) => format!(
            "{COOKIE}={v}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            SESSION_MS / 1000
        ),
        None => format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&text).expect("a cookie of hex digits and fixed text is a header value")
}

/// Why there is no session: none was presented, or the one presented no longer acts.
enum NoSession {
    /// No cookie, or one for no live session: sign in.
    SignIn,
    /// The session's token may no longer act (its person left): the API's refusal.
    Refused(ApiError),
    /// The store failed.
    Failed(ApiError),
}

async fn load(parts: &Parts, s: &AppState) -> Result<Session, NoSession> {
    let Some(id) = cookie(&parts.headers) else {
        return Err(NoSession::SignIn);
    };
    let id_hash = hash_token(id);
    let now = s.engine().clock().now_ms();
    let mut c = s
        .store()
        .reader()
        .await
        .map_err(|e| NoSession::Failed(e.into()))?;
    let Some((row, token)) = tenure_store::session_by_hash(&mut c, &id_hash, now)
        .await
        .map_err(|e| NoSession::Failed(e.into()))?
    else {
        return Err(NoSession::SignIn);
    };
    let principal = principal_of(&mut c, token).await.map_err(|e| {
        if e.status == StatusCode::INTERNAL_SERVER_ERROR {
            NoSession::Failed(e)
        } else {
            NoSession::Refused(e)
        }
    })?;
    Ok(Session {
        principal,
        csrf: row.csrf,
        id_hash,
    })
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        match load(parts, s).await {
            Ok(session) => Ok(session),
            Err(NoSession::SignIn) => {
                // Back to this page after signing in (a GET only: a form is not replayed).
                // The URI as the browser sent it: inside `/console` the router sees the rest.
                let uri = parts
                    .extensions
                    .get::<axum::extract::OriginalUri>()
                    .map(|u| &u.0)
                    .unwrap_or(&parts.uri);
                let next = match parts.method {
                    axum::http::Method::GET => uri
                        .path_and_query()
                        .map(|p| p.as_str())
                        .unwrap_or("/console"),
                    _ => "/console",
                };
                let to = format!(
                    "/console/sign-in?next={}",
                    form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                );
                Err(see_other(&to))
            }
            Err(NoSession::Refused(e)) => {
                let mut r = error_page(None, e).into_response();
                r.headers_mut()
                    .insert(header::SET_COOKIE, set_cookie(s, None));
                Err(r)
            }
            Err(NoSession::Failed(e)) => Err(error_page(None, e).into_response()),
        }
    }
}

impl OptionalFromRequestParts<AppState> for Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        s: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(load(parts, s).await.ok())
    }
}

/// A form as sent by a browser: its fields in order (a field may repeat, as checkboxes do).
#[derive(Debug, Default)]
pub(crate) struct FormData(Vec<(String, String)>);

impl FormData {
    fn parse(body: &[u8]) -> FormData {
        FormData(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `name`.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Refuses a form that does not come from the console's own pages: a browser names the page's
/// origin in `Origin` (or says `Sec-Fetch-Site: same-origin`), and another site's cannot match.
fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let forbidden = |m: &str| ApiError::new(StatusCode::FORBIDDEN, "forbidden", m);
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ => Err(forbidden("this form was sent from another site")),
        };
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        // No browser header at all: not a browser's form post (curl, a script). Their
        // requests carry no session cookie of the victim's, and the CSRF secret still guards.
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let origin = origin.to_str().unwrap_or_default();
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or_default();
    if !host.is_empty() && origin_host == host {
        Ok(())
    } else {
        Err(forbidden("this form was sent from another site"))
    }
}

/// Compares two secrets in time that does not depend on where they differ.
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A signed-in form: the session, and its fields once the origin and CSRF secret checked out.
pub(crate) fn form(
    session: &Session,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<FormData, PageError> {
    same_origin(headers).map_err(|e| error_page(Some(session), e))?;
    let form = FormData::parse(body);
    match form.get("csrf") {
        Some(sent) if same_secret(sent, &session.csrf) => Ok(form),
        _ => Err(error_page(
            Some(session),
            ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this form has expired or was not sent from the console: reload the page and try again",
            ),
        )),
    }
}

/// Where to go after signing in: a console path only (never another site).
pub(super) fn next_path(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if (n == "/console" || n.starts_with("/console/") || n.starts_with("/console?"))
                && !n.contains(['\\', '\r', '\n']) =>
        {
            n
        }
        _ => "/console",
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct SignInQuery {
    next: Option<String>,
}

/// `GET /console/sign-in`: the form, or home when already signed in.
pub(crate) async fn sign_in_page(
    State(s): State<AppState>,
    session: Option<Session>,
    axum::extract::Query(q): axum::extract::Query<SignInQuery>,
) -> PageResult {
    if session.is_some() {
        return Ok(see_other(next_path(q.next.as_deref())));
    }
    render(&SignIn::new(&s, next_path(q.next.as_deref()), None))
}

/// `POST /console/sign-in`: checks the token as the API does, then opens a session.
pub(crate) async fn sign_in(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    same_origin(&headers).map_err(|e| error_page(None, e))?;
    let form = FormData::parse(&body);
    let next = next_path(form.get("next")).to_string();
    let refuse = |status: StatusCode, message: String| -> PageResult {
        let mut r = render(&SignIn::new(&s, &next, Some(message)))?;
        *r.status_mut() = status;
        Err(r.into())
    };
    let Some(secret) = form.get("token") else {
        return refuse(StatusCode::BAD_REQUEST, "Enter your API token.".into());
    };
    let hash = hash_token(secret);
    let now = s.engine().clock().now_ms();
    let found = async {
        let mut c = s.store().reader().await?;
        let Some(token) = tenure_store::token_by_hash(&mut c, &hash).await? else {
            return Ok::<_, ApiError>(None);
        };
        principal_of(&mut c, token).await.map(Some)
    }
    .await;
    let principal = match found {
        Ok(Some(p)) => p,
        Ok(None) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "That token is unknown or revoked.".into(),
            );
        }
        Err(e) if e.status == StatusCode::INTERNAL_SERVER_ERROR => return Err(error_page(None, e)),
        Err(e) => return refuse(e.status, e.message),
    };
    let id = random_hex();
    let row = SessionRow {
        token_id: principal.token_id.clone(),
        sign_in: SignInMethod::Token,
        csrf: random_hex(),
        created_at: now,
        expires_at: now + SESSION_MS,
    };
    let opened = async {
        let mut tx = s.store().begin().await?;
        tenure_store::insert_session(tx.conn(), &hash_token(&id), &row, now).await?;
        tx.audit(NewAudit {
            at_ms: now,
            actor: principal.name.clone(),
            action: "console.signed_in".into(),
            person_id: principal.person_id.clone(),
            reason: format!(
                "signed in to the console with token `{}`",
                principal.token_id
            ),
            details: json!({ "token_id": principal.token_id }),
            ..Default::default()
        });
        tx.commit().await?;
        Ok::<_, ApiError>(())
    }
    .await;
    opened.map_err(|e| error_page(None, e))?;
    let mut r = see_other(&next);
    r.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&s, Some(&id)));
    Ok(r)
}

/// `POST /console/sign-out`: ends the session.
pub(crate) async fn sign_out(
    State(s): State<AppState>,
    session: Session,
    headers: HeaderMap,
    body: Bytes,
) -> PageResult {
    form(&session, &headers, &body)?;
    let now = s.engine().clock().now_ms();
    let ended = async {
        let mut tx = s.store().begin().await?;
        if tenure_store::delete_session(tx.conn(), &session.id_hash, now).await? {
            tx.audit(NewAudit {
                at_ms: now,
                actor: session.principal.name.clone(),
                action: "console.signed_out".into(),
                person_id: session.principal.person_id.clone(),
                reason: "signed out of the console".into(),
                details: json!({ "token_id": session.principal.token_id }),
                ..Default::default()
            });
        }
        tx.commit().await?;
        Ok::<_, ApiError>(())
    }
    .await;
    ended.map_err(|e| error_page(Some(&session), e))?;
    let mut r = see_other("/console/sign-in");
    r.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&s, None));
    Ok(r.into_response())
}
