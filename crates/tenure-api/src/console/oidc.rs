//! Signing in to the console through the company's identity provider: OpenID Connect's
//! authorization code flow with PKCE (`[console.oidc]` in `tenure.toml`).
//!
//! 1. `GET /console/sign-in/oidc` makes a `state`, a `nonce` and a PKCE verifier, stores them
//!    keyed by the hash of a random cookie that only this browser holds (so an answer the
//!    provider sends to another browser is refused), and sends the browser to the provider.
//! 2. `GET /console/sign-in/oidc/callback` takes that record (once), checks `state`, trades the
//!    code and verifier for tokens, and checks the ID token (signature by the provider's keys,
//!    issuer, audience, expiry, nonce) with the `openidconnect` crate.
//! 3. The person is the one whose email (or id) equals the configured claim; they must work
//!    here now. The session then acts with a token made for it alone, revoked when the session
//!    ends, with the configured scopes: so everything after sign-in is the token sign-in's path,
//!    with its checks, and a leave or a revocation ends the session as it ends any other.

use super::pages::SignedIn;
use super::session::{self, SESSION_MS, next_path, random_hex};
use super::{PageError, PageResult, error_page, render, see_other};
use crate::auth::{Scope, hash_token, token_row};
use crate::{ApiError, AppState};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use base64::Engine as _;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreProviderMetadata,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, TokenResponse,
};
use serde_json::{Map, Value, json};
use std::sync::Mutex;
use std::time::Duration;
use tenure_core::config::OidcSettings;
use tenure_core::drift::PersonField;
use tenure_core::{Person, PersonStatus};
use tenure_store::{NewAudit, OidcLogin, SessionRow, SignInMethod};

/// The cookie that ties a sign-in under way to the browser that started it.
const COOKIE: &str = "tenure_oidc";
/// Where it is sent: the two sign-in routes only.
const COOKIE_PATH: &str = "/console/sign-in/oidc";
/// How long a person has at the provider to sign in (ms).
const LOGIN_MS: i64 = 10 * 60_000;
/// How long a provider's discovery document and keys are trusted before they are read again.
const DISCOVERY_MS: i64 = 3_600_000;
/// The largest answer read from the provider.
const MAX_ANSWER: usize = 1024 * 1024;
/// The longest claim value or provider error message taken.
const MAX_TEXT: usize = 512;

/// The provider's discovery document (with its signing keys), read at the first sign-in and
/// again after [`DISCOVERY_MS`], or at once when an ID token is signed by a key it lacks.
#[derive(Default)]
pub(crate) struct Discovery {
    cached: Mutex<Option<(String, CoreProviderMetadata, i64)>>,
}

/// The HTTP client for the provider: no redirects followed (a token or code is never sent
/// anywhere the discovery document did not name), bounded in time and answer size.
struct Http(reqwest::Client);

fn http_client() -> Result<Http, ApiError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map(Http)
        .map_err(|e| ApiError::internal(format!("HTTP client: {e}")))
}

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<openidconnect::HttpResponse, HttpError>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, req: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(send(&self.0, req))
    }
}

/// Why the provider could not be asked.
#[derive(Debug, thiserror::Error)]
enum HttpError {
    #[error("{0}")]
    Send(#[from] reqwest::Error),
    #[error("answer larger than {MAX_ANSWER} bytes")]
    TooLarge,
    #[error("{0}")]
    Http(#[from] openidconnect::http::Error),
}

/// One request to the provider through our own reqwest client.
async fn send(
    http: &reqwest::Client,
    req: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, HttpError> {
    let (parts, body) = req.into_parts();
    let mut answer = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let mut out = openidconnect::http::Response::builder().status(answer.status());
    for (k, v) in answer.headers() {
        out = out.header(k, v);
    }
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(HttpError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(out.body(body)?)
}

/// A 502 naming the provider: it could not be reached or answered wrongly.
fn provider_failed(cfg: &OidcSettings, what: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "identity_provider_failed",
        format!(
            "signing in with {} failed: {what}. Try again, or sign in with an API token",
            cfg.label
        ),
    )
}

/// A refusal of this sign-in (401): the person is not let in, and told why.
fn refused(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "sign_in_refused", message)
}

impl Discovery {
    /// The provider's metadata, read again when `fresh` or when older than [`DISCOVERY_MS`].
    async fn metadata(
        &self,
        http: &Http,
        cfg: &OidcSettings,
        now: i64,
        fresh: bool,
    ) -> Result<CoreProviderMetadata, ApiError> {
        if !fresh {
            let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((issuer, m, at)) = cached.as_ref()
                && *issuer == cfg.issuer
                && now >= *at
                && now - *at < DISCOVERY_MS
            {
                return Ok(m.clone());
            }
        }
        let issuer = IssuerUrl::new(cfg.issuer.clone())
            .map_err(|e| provider_failed(cfg, format!("issuer URL: {e}")))?;
        let m = CoreProviderMetadata::discover_async(issuer, http)
            .await
            .map_err(|e| provider_failed(cfg, error_chain(&e)))?;
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((cfg.issuer.clone(), m.clone(), now));
        Ok(m)
    }
}

/// An error and its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The configured provider, or 404 when the console signs in with tokens only.
fn settings(s: &AppState) -> Result<OidcSettings, ApiError> {
    s.engine().config().console.oidc.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "sign-in through an identity provider is not set up here ([console.oidc] in tenure.toml): sign in with an API token",
        )
    })
}

/// The client for `cfg` at this provider, answering at this server's callback.
fn client_for(
    s: &AppState,
    cfg: &OidcSettings,
    metadata: CoreProviderMetadata,
) -> Result<
    CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    ApiError,
> {
    let secret = match &cfg.client_secret_env {
        None => None,
        Some(var) => Some(ClientSecret::new(
            std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    ApiError::internal(format!(
                        "console.oidc.client_secret_env names `{var}`, which is not set"
                    ))
                })?,
        )),
    };
    // Send the secret in the request body when the provider does not take it in a header.
    let body_only = metadata
        .token_endpoint_auth_methods_supported()
        .is_some_and(|m| {
            !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
                && m.contains(&CoreClientAuthMethod::ClientSecretPost)
        });
    let redirect = RedirectUrl::new(format!("{}{COOKIE_PATH}/callback", s.public_url()))
        .map_err(|e| ApiError::internal(format!("callback URL: {e}")))?;
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new(cfg.client_id.clone()), secret)
            .set_redirect_uri(redirect);
    Ok(if body_only {
        client.set_auth_type(AuthType::RequestBody)
    } else {
        client
    })
}

/// The cookie of a sign-in under way, set (`Some`) or cleared.
fn login_cookie(s: &AppState, value: Option<&str>) -> HeaderValue {
    let secure = if session::secure(s) { "; Secure" } else { "" };
    // `Lax`, not `Strict`: the provider's answer is a top-level navigation from its site, on
    // which a `Strict` cookie is not sent.
    let text = match value {
        Some(v) => format!(
            "{COOKIE}={v}; Path={COOKIE_PATH}; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            LOGIN_MS / 1000
        ),
        None => format!("{COOKIE}=; Path={COOKIE_PATH}; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&text).expect("a cookie of hex digits and fixed text is a header value")
}

#[derive(serde::Deserialize)]
pub(crate) struct StartQuery {
    next: Option<String>,
}

/// `GET /console/sign-in/oidc`: off to the identity provider.
pub(crate) async fn start(State(s): State<AppState>, Query(q): Query<StartQuery>) -> PageResult {
    let page = |e| error_page(None, e);
    let cfg = settings(&s).map_err(page)?;
    let now = s.engine().clock().now_ms();
    let http = http_client().map_err(page)?;
    let metadata = s
        .oidc()
        .metadata(&http, &cfg, now, false)
        .await
        .map_err(page)?;
    let client = client_for(&s, &cfg, metadata).map_err(page)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut ask = client.authorize_url(
        CoreAuthenticationFlow::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for scope in ["email", "profile"] {
        ask = ask.add_scope(openidconnect::Scope::new(scope.into()));
    }
    let (url, state, nonce) = ask.set_pkce_challenge(challenge).url();
    let id = random_hex();
    let login = OidcLogin {
        state: state.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        next: next_path(q.next.as_deref()).to_string(),
        expires_at: now + LOGIN_MS,
    };
    let stored = async {
        let mut tx = s.store().begin().await?;
        let taken =
            tenure_store::insert_oidc_login(tx.conn(), &hash_token(&id), &login, now).await?;
        tx.commit().await?;
        if taken {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many sign-ins are under way: try again in a few minutes",
            ))
        }
    }
    .await;
    stored.map_err(page)?;
    let mut r = see_other(url.as_str());
    r.headers_mut()
        .insert(header::SET_COOKIE, login_cookie(&s, Some(&id)));
    Ok(r)
}

#[derive(serde::Deserialize)]
pub(crate) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The value of this browser's sign-in cookie, if well formed.
fn login_id(headers: &HeaderMap) -> Option<&str> {
    session::cookie_named(headers, COOKIE)
}

/// `text` cut to at most [`MAX_TEXT`] bytes (on a character boundary).
fn bounded(text: &str) -> &str {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `GET /console/sign-in/oidc/callback`: the provider's answer. Opens a session, or says why
/// not; the sign-in record is used up either way.
pub(crate) async fn callback(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> PageResult {
    let now = s.engine().clock().now_ms();
    let login = async {
        let Some(id) = login_id(&headers) else {
            return Ok(None);
        };
        let mut tx = s.store().begin().await?;
        let login = tenure_store::take_oidc_login(tx.conn(), &hash_token(id), now).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(login)
    }
    .await;
    let fail = |e: ApiError| -> PageError {
        let mut r = error_page(None, e).0;
        r.headers_mut()
            .insert(header::SET_COOKIE, login_cookie(&s, None));
        PageError(r)
    };
    let login = login.map_err(fail)?.ok_or_else(|| {
        fail(ApiError::new(
            StatusCode::BAD_REQUEST,
            "sign_in_expired",
            "this sign-in has expired, was already used, or was started in another browser: sign in again",
        ))
    })?;
    if let Some(error) = &q.error {
        let detail = q
            .error_description
            .as_deref()
            .map(|d| format!(" ({})", bounded(d)))
            .unwrap_or_default();
        return Err(fail(refused(format!(
            "the identity provider did not sign you in: {}{detail}",
            bounded(error)
        ))));
    }
    let sent_state = q.state.as_deref().unwrap_or_default();
    if !session::same_secret(sent_state, &login.state) {
        return Err(fail(ApiError::new(
            StatusCode::BAD_REQUEST,
            "sign_in_mismatch",
            "the identity provider's answer does not belong to this sign-in: sign in again",
        )));
    }
    let Some(code) = q.code.filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return Err(fail(ApiError::new(
            StatusCode::BAD_REQUEST,
            "sign_in_mismatch",
            "the identity provider's answer has no authorization code: sign in again",
        )));
    };
    let cfg = settings(&s).map_err(fail)?;
    let who = identify(&s, &cfg, &login, code, now).await.map_err(fail)?;
    let person = person_of(&s, &cfg, &who).await.map_err(fail)?;
    open_session(&s, &cfg, who, person, &login.next, now).await
}

/// What the provider vouched for: the ID token's subject, and its claims (with the userinfo
/// answer's, when the ID token lacked the configured claim).
struct Identity {
    subject: String,
    claims: Map<String, Value>,
}

/// Trades the code for tokens and checks the ID token.
async fn identify(
    s: &AppState,
    cfg: &OidcSettings,
    login: &OidcLogin,
    code: String,
    now: i64,
) -> Result<Identity, ApiError> {
    let http = http_client()?;
    let metadata = s.oidc().metadata(&http, cfg, now, false).await?;
    let userinfo_url = metadata.userinfo_endpoint().map(|u| u.url().clone());
    let client = client_for(s, cfg, metadata)?;
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| provider_failed(cfg, e))?
        .set_pkce_verifier(PkceCodeVerifier::new(login.verifier.clone()))
        .request_async(&http)
        .await
        .map_err(|e| provider_failed(cfg, error_chain(&e)))?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| provider_failed(cfg, "its token answer holds no ID token"))?;
    let nonce = Nonce::new(login.nonce.clone());
    let subject = match id_token.claims(&client.id_token_verifier(), &nonce) {
        Ok(c) => c.subject().to_string(),
        Err(first) => {
            // Keys rotate: read them again once before refusing.
            let fresh = s.oidc().metadata(&http, cfg, now, true).await?;
            let client = client_for(s, cfg, fresh)?;
            id_token
                .claims(&client.id_token_verifier(), &nonce)
                .map_err(|_| {
                    refused(format!(
                        "the identity provider's ID token failed its checks: {first}"
                    ))
                })?
                .subject()
                .to_string()
        }
    };
    // Checked above; its payload read as JSON for the configured claims, whatever their names.
    let mut claims = payload(&id_token.to_string())
        .ok_or_else(|| provider_failed(cfg, "its ID token's payload is not a JSON object"))?;
    let wants_userinfo = !claims.contains_key(&cfg.claim)
        || (!cfg.roles.is_empty() && !claims.contains_key(&cfg.roles_claim));
    if wants_userinfo && let Some(url) = userinfo_url {
        let info = userinfo(&http, cfg, &url, tokens.access_token().secret()).await?;
        if info.get("sub").and_then(Value::as_str) != Some(subject.as_str()) {
            return Err(provider_failed(
                cfg,
                "its userinfo answer is about another subject than the ID token",
            ));
        }
        for (k, v) in info {
            claims.entry(k).or_insert(v);
        }
    }
    Ok(Identity { subject, claims })
}

/// The claims of a JWT's payload (its second part), once its signature was checked.
fn payload(jwt: &str) -> Option<Map<String, Value>> {
    let part = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// The provider's userinfo answer (JSON), for the access token just issued.
async fn userinfo(
    http: &Http,
    cfg: &OidcSettings,
    url: &openidconnect::url::Url,
    access_token: &str,
) -> Result<Map<String, Value>, ApiError> {
    let req = openidconnect::http::Request::get(url.as_str())
        .header(header::AUTHORIZATION, format!("Bearer {access_token}"))
        .header(header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| provider_failed(cfg, e))?;
    let answer = send(&http.0, req)
        .await
        .map_err(|e| provider_failed(cfg, format!("userinfo: {}", error_chain(&e))))?;
    if !answer.status().is_success() {
        return Err(provider_failed(
            cfg,
            format!("userinfo answered {}", answer.status()),
        ));
    }
    match serde_json::from_slice(answer.body()) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(provider_failed(
            cfg,
            "userinfo did not answer a JSON object",
        )),
    }
}

/// A claim's text values: a string, or each string of a list.
fn texts(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The scopes a person signed in with `claims` gets: everyone's, and their roles'.
pub(crate) fn scopes_for(cfg: &OidcSettings, claims: &Map<String, Value>) -> Vec<Scope> {
    let mut out = cfg.scopes.clone();
    for role in texts(claims.get(&cfg.roles_claim)) {
        if let Some(more) = cfg.roles.get(role) {
            out.extend(more.iter().copied());
        }
    }
    Scope::ALL.into_iter().filter(|s| out.contains(s)).collect()
}

/// Finds the person the configured claim names; they must work here now.
async fn person_of(s: &AppState, cfg: &OidcSettings, who: &Identity) -> Result<Person, ApiError> {
    let value = match who.claims.get(&cfg.claim) {
        Some(Value::String(v)) if !v.trim().is_empty() => bounded(v.trim()).to_string(),
        _ => {
            return Err(refused(format!(
                "the identity provider did not send the `{}` claim this console finds people by",
                cfg.claim
            )));
        }
    };
    if cfg.claim == "email" && who.claims.get("email_verified") == Some(&Value::Bool(false)) {
        return Err(refused(
            "the identity provider says this email address is not verified",
        ));
    }
    let mut c = s.store().reader().await?;
    let person = match cfg.person_field {
        PersonField::Id => tenure_store::get_person(&mut c, &value).await?,
        PersonField::Email => {
            let found = tenure_store::people_by_emails(&mut c, &[value.to_lowercase()]).await?;
            if found.len() > 1 {
                return Err(refused(format!(
                    "{} people here have the email `{value}`: ask an administrator to correct the HR records",
                    found.len()
                )));
            }
            match found.into_iter().next() {
                Some((_, id, _)) => tenure_store::get_person(&mut c, &id).await?,
                None => None,
            }
        }
    };
    let field = cfg.person_field.as_str();
    let person = person.ok_or_else(|| {
        refused(format!(
            "no one here has the {field} `{value}` that the identity provider signed you in as"
        ))
    })?;
    if !person.status.is_working() {
        let why = match person.status {
            PersonStatus::PreHire => "has not started yet",
            _ => "has left",
        };
        return Err(refused(format!(
            "`{}` {why}: only people who work here may sign in",
            person.id
        )));
    }
    Ok(person)
}

/// Makes the session's token and the session, audited in one transaction, and leads the browser
/// on to `next`.
async fn open_session(
    s: &AppState,
    cfg: &OidcSettings,
    who: Identity,
    person: Person,
    next: &str,
    now: i64,
) -> PageResult {
    let scopes = scopes_for(cfg, &who.claims);
    if scopes.is_empty() {
        return Err(error_page(
            None,
            refused("signing in would give you no scope: ask an administrator for a role"),
        ));
    }
    let token = token_row(
        &format!("oidc:{}", person.id),
        &scopes,
        Some(&person.id),
        now,
    );
    let id = random_hex();
    let session = SessionRow {
        token_id: token.id.clone(),
        sign_in: SignInMethod::Oidc,
        csrf: random_hex(),
        created_at: now,
        expires_at: now + SESSION_MS,
    };
    let opened = async {
        let mut tx = s.store().begin().await?;
        // The token's secret is never shown: it acts only through this session.
        tenure_store::insert_token(tx.conn(), &token, &hash_token(&random_hex())).await?;
        tenure_store::insert_session(tx.conn(), &hash_token(&id), &session, now).await?;
        tx.audit(NewAudit {
            at_ms: now,
            actor: token.name.clone(),
            action: "console.signed_in".into(),
            person_id: Some(person.id.clone()),
            reason: format!(
                "signed in to the console through {} as `{}`",
                cfg.label, person.id
            ),
            details: json!({
                "method": "oidc",
                "issuer": cfg.issuer,
                "subject": who.subject,
                "token_id": token.id,
                "scopes": token.scopes,
            }),
            ..Default::default()
        });
        tx.commit().await?;
        Ok::<_, ApiError>(())
    }
    .await;
    opened.map_err(|e| error_page(None, e))?;
    // A page of our own leads on: the browser came here from the provider's site, and a
    // `SameSite=Strict` cookie is sent on the next navigation only when it starts here.
    let mut r = render(&SignedIn {
        next: next.to_string(),
    })?;
    let h = r.headers_mut();
    h.append(header::SET_COOKIE, session::set_cookie(s, Some(&id)));
    h.append(header::SET_COOKIE, login_cookie(s, None));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OidcSettings {
        OidcSettings {
            issuer: "https://idp.example.com".into(),
            client_id: "tenure".into(),
            client_secret_env: None,
            label: "Example".into(),
            claim: "email".into(),
            person_field: PersonField::Email,
            scopes: vec![Scope::Read, Scope::Request],
            roles_claim: "groups".into(),
            roles: [
                ("it-admins".to_string(), vec![Scope::Admin]),
                ("approvers".to_string(), vec![Scope::Approve, Scope::Read]),
            ]
            .into(),
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn scopes_are_everyones_and_the_roles_named_in_the_claim() {
        let c = cfg();
        assert_eq!(
            scopes_for(&c, &claims(json!({}))),
            [Scope::Read, Scope::Request]
        );
        assert_eq!(
            scopes_for(&c, &claims(json!({ "groups": ["approvers", "unknown"] }))),
            [Scope::Read, Scope::Approve, Scope::Request]
        );
        assert_eq!(
            scopes_for(&c, &claims(json!({ "groups": "it-admins" }))),
            [Scope::Read, Scope::Request, Scope::Admin]
        );
        // A claim of another shape grants nothing more.
        assert_eq!(
            scopes_for(&c, &claims(json!({ "groups": { "it-admins": true } }))),
            [Scope::Read, Scope::Request]
        );
    }

    #[test]
    fn a_jwt_payload_is_read_as_json_and_nonsense_is_none() {
        let body =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"sub":"a","email":"x@y"}"#);
        let m = payload(&format!("h.{body}.s")).unwrap();
        assert_eq!(m["email"], "x@y");
        assert!(payload("nodots").is_none());
        assert!(payload("h.!!!.s").is_none());
        let list = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("[1]");
        assert!(payload(&format!("h.{list}.s")).is_none());
    }

    #[test]
    fn long_provider_text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_TEXT && cut.chars().all(|c| c == 'é'));
        assert_eq!(bounded("short"), "short");
    }
}
