//! Sessions of the web console, by the hash of their cookie, and the live token each acts with.

use crate::Result;
use crate::db::{self, Conn, Row};
use crate::queries::TokenRow;

/// A live console session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The token the session acts with.
    pub token_id: String,
    /// The secret every form of the session carries (cross-site request forgery).
    pub csrf: String,
    /// When it was opened (epoch ms).
    pub created_at: i64,
    /// When it ends (epoch ms).
    pub expires_at: i64,
}

/// Opens a session keyed by `id_hash` (the SHA-256 of its cookie), and drops the sessions that
/// ended before `now`, so the table holds only live ones.
pub async fn insert_session(c: &mut Conn, id_hash: &str, s: &SessionRow, now: i64) -> Result<()> {
    db::query("DELETE FROM console_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *c)
        .await?;
    db::query(
        "INSERT INTO console_sessions (id_hash, token_id, csrf, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id_hash.to_string())
    .bind(s.token_id.clone())
    .bind(s.csrf.clone())
    .bind(s.created_at)
    .bind(s.expires_at)
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
        "SELECT s.token_id, s.csrf, s.created_at AS s_created, s.expires_at,
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
            csrf: r.try_get("csrf")?,
            created_at: r.try_get("s_created")?,
            expires_at: r.try_get("expires_at")?,
        },
        crate::queries::token_row(r)?,
    ))
}

/// Ends the session keyed by `id_hash`; false when there was none.
pub async fn delete_session(c: &mut Conn, id_hash: &str) -> Result<bool> {
    let done = db::query("DELETE FROM console_sessions WHERE id_hash = $1")
        .bind(id_hash.to_string())
        .execute(c)
        .await?;
    Ok(done.rows_affected() == 1)
}
