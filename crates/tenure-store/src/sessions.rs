//! Sessions of the web console, by the hash of their cookie, and the live token each acts with;
//! sign-ins through OpenID Connect under way.

use crate::Result;
use crate::db::{self, Conn, Row};
use crate::queries::TokenRow;

/// How a console session was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMethod {
    /// With an API token its holder keeps: ending the session leaves the token live.
    Token,
    /// Through the identity provider, with a token made for this session alone: ending the
    /// session revokes it.
    Oidc,
}

impl SignInMethod {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            SignInMethod::Token => "token",
            SignInMethod::Oidc => "oidc",
        }
    }

    fn parse(text: &str) -> Result<SignInMethod> {
        match text {
            "token" => Ok(SignInMethod::Token),
            "oidc" => Ok(SignInMethod::Oidc),
            other => Err(crate::StoreError::Corrupt(format!(
                "console session signed in by unknown method `{other}`"
            ))),
        }
    }
}

/// A live console session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The token the session acts with.
    pub token_id: String,
    /// How it was opened.
    pub sign_in: SignInMethod,
    /// The secret every form of the session carries (cross-site request forgery).
    pub csrf: String,
    /// When it was opened (epoch ms).
    pub created_at: i64,
    /// When it ends (epoch ms).
    pub expires_at: i64,
}

/// Opens a session keyed by `id_hash` (the SHA-256 of its cookie), and drops the sessions that
/// ended before `now` (revoking the tokens made for them), so the table holds only live ones.
pub async fn insert_session(c: &mut Conn, id_hash: &str, s: &SessionRow, now: i64) -> Result<()> {
    db::query(
        "UPDATE tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND id IN
           (SELECT token_id FROM console_sessions WHERE expires_at <= $1 AND sign_in = 'oidc')",
    )
    .bind(now)
    .execute(&mut *c)
    .await?;
    db::query("DELETE FROM console_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *c)
        .await?;
    db::query(
        "INSERT INTO console_sessions (id_hash, token_id, csrf, created_at, expires_at, sign_in)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id_hash.to_string())
    .bind(s.token_id.clone())
    .bind(s.csrf.clone())
    .bind(s.created_at)
    .bind(s.expires_at)
    .bind(s.sign_in.as_str())
    .execute(c)
    .await?;
    Ok(())
}

/// The session keyed by `id_hash` if it is live at `now`, with its token if that is live too.
pub async fn session_by_hash(
    c: &mut Conn,
    id_hash: &str,
    now: i64,
) -> Result<Option<(SessionRow, TokenRow)>> {
    let row = db::query(
        "SELECT s.token_id, s.sign_in, s.csrf, s.created_at AS s_created, s.expires_at,
                t.id, t.name, t.scopes, t.created_at, t.revoked_at, i.person_id
         FROM console_sessions s
         JOIN tokens t ON t.id = s.token_id AND t.revoked_at IS NULL
         LEFT JOIN token_identities i ON i.token_id = t.id
         WHERE s.id_hash = $1 AND s.expires_at > $2",
    )
    .bind(id_hash.to_string())
    .bind(now)
    .fetch_optional(c)
    .await?;
    row.as_ref().map(session_row).transpose()
}

fn session_row(r: &Row) -> Result<(SessionRow, TokenRow)> {
    Ok((
        SessionRow {
            token_id: r.try_get("token_id")?,
            sign_in: SignInMethod::parse(&r.try_get::<String, _>("sign_in")?)?,
            csrf: r.try_get("csrf")?,
            created_at: r.try_get("s_created")?,
            expires_at: r.try_get("expires_at")?,
        },
        crate::queries::token_row(r)?,
    ))
}

/// Ends the session keyed by `id_hash`, revoking its token at `now` when the token was made
/// for it; false when there was no session.
pub async fn delete_session(c: &mut Conn, id_hash: &str, now: i64) -> Result<bool> {
    let ended =
        db::query("DELETE FROM console_sessions WHERE id_hash = $1 RETURNING token_id, sign_in")
            .bind(id_hash.to_string())
            .fetch_optional(&mut *c)
            .await?;
    let Some(r) = ended else {
        return Ok(false);
    };
    if SignInMethod::parse(&r.try_get::<String, _>(1)?)? == SignInMethod::Oidc {
        crate::revoke_token(c, &r.try_get::<String, _>(0)?, now).await?;
    }
    Ok(true)
}

/// A sign-in through OpenID Connect under way: what the provider's answer is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcLogin {
    /// The `state` the provider must send back.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
    /// The console page to go to once signed in.
    pub next: String,
    /// When it lapses (epoch ms).
    pub expires_at: i64,
}

/// Sign-ins under way at most: each starts with an unauthenticated request, so their number is
/// bounded (they lapse in minutes; a real company's people never come near it).
pub const MAX_OIDC_LOGINS: i64 = 10_000;

/// Records a sign-in under way, keyed by `id_hash` (the SHA-256 of the browser's cookie), and
/// drops those that lapsed before `now`; false (nothing recorded) when [`MAX_OIDC_LOGINS`] are
/// under way already.
pub async fn insert_oidc_login(
    c: &mut Conn,
    id_hash: &str,
    l: &OidcLogin,
    now: i64,
) -> Result<bool> {
    db::query("DELETE FROM console_oidc_logins WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *c)
        .await?;
    let under_way: i64 = db::query("SELECT COUNT(*) FROM console_oidc_logins")
        .fetch_one(&mut *c)
        .await?
        .try_get(0)?;
    if under_way >= MAX_OIDC_LOGINS {
        return Ok(false);
    }
    db::query(
        "INSERT INTO console_oidc_logins (id_hash, state, nonce, verifier, next, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id_hash.to_string())
    .bind(l.state.clone())
    .bind(l.nonce.clone())
    .bind(l.verifier.clone())
    .bind(l.next.clone())
    .bind(l.expires_at)
    .execute(c)
    .await?;
    Ok(true)
}

/// Takes the sign-in under way keyed by `id_hash` (it can be used once), if it has not lapsed
/// at `now`.
pub async fn take_oidc_login(c: &mut Conn, id_hash: &str, now: i64) -> Result<Option<OidcLogin>> {
    let row = db::query(
        "DELETE FROM console_oidc_logins WHERE id_hash = $1
         RETURNING state, nonce, verifier, next, expires_at",
    )
    .bind(id_hash.to_string())
    .fetch_optional(c)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let l = OidcLogin {
        state: r.try_get(0)?,
        nonce: r.try_get(1)?,
        verifier: r.try_get(2)?,
        next: r.try_get(3)?,
        expires_at: r.try_get(4)?,
    };
    Ok((l.expires_at > now).then_some(l))
}

/// Migration 16's data step: on SQLite, adds `console_sessions.sign_in` where missing
/// (PostgreSQL's migration does it in SQL).
pub(crate) fn add_session_sign_in(
    c: &mut Conn,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + '_>> {
    Box::pin(async move {
        if !c.is_sqlite() {
            return Ok(());
        }
        crate::migrate::sqlite_add_column(
            c,
            "console_sessions",
            "sign_in",
            "TEXT NOT NULL DEFAULT 'token'",
        )
        .await
    })
}
