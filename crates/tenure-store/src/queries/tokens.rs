//! API tokens (their hashes only) and the people they sign in as.

use super::*;

/// A stored API token (its hash only).
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Token id (shown, never secret).
    pub id: String,
    /// Who or what holds it.
    pub name: String,
    /// Space-separated scopes.
    pub scopes: String,
    /// When it was made.
    pub created_at: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// The person the token acts as, when it asks for or approves access.
    pub person_id: Option<String>,
}

/// Stores a token by the hash of its secret (and the person it acts as).
pub async fn insert_token(c: &mut Conn, t: &TokenRow, hash: &str) -> Result<()> {
    db::query("INSERT INTO tokens (id, name, hash, scopes, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, NULL)")
        .bind(t.id.clone())
        .bind(t.name.clone())
        .bind(hash.to_string())
        .bind(t.scopes.clone())
        .bind(t.created_at)
        .execute(&mut *c)
        .await?;
    if let Some(person) = &t.person_id {
        db::query("INSERT INTO token_identities (token_id, person_id) VALUES ($1, $2)")
            .bind(t.id.clone())
            .bind(person.clone())
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

pub(crate) fn token_row(r: &Row) -> Result<TokenRow> {
    Ok(TokenRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        scopes: r.try_get("scopes")?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
        person_id: r.try_get("person_id")?,
    })
}

/// The live (unrevoked) token with this secret hash.
pub async fn token_by_hash(c: &mut Conn, hash: &str) -> Result<Option<TokenRow>> {
    let row = db::query(
        "SELECT t.id, t.name, t.scopes, t.created_at, t.revoked_at, i.person_id
         FROM tokens t LEFT JOIN token_identities i ON i.token_id = t.id
         WHERE t.hash = $1 AND t.revoked_at IS NULL",
    )
    .bind(hash.to_string())
    .fetch_optional(c)
    .await?;
    row.as_ref().map(token_row).transpose()
}

/// Every token, revoked ones too.
pub async fn list_tokens(c: &mut Conn) -> Result<Vec<TokenRow>> {
    let rows = db::query(
        "SELECT t.id, t.name, t.scopes, t.created_at, t.revoked_at, i.person_id
         FROM tokens t LEFT JOIN token_identities i ON i.token_id = t.id ORDER BY t.created_at, t.id",
    )
    .fetch_all(c)
    .await?;
    rows.iter().map(token_row).collect()
}

/// Revokes a token; false if no live token has this id.
pub async fn revoke_token(c: &mut Conn, id: &str, now: i64) -> Result<bool> {
    let done = db::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(id.to_string())
        .execute(c)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The revoked token with this secret hash, to tell its holder why it no longer works.
pub async fn revoked_token_by_hash(c: &mut Conn, hash: &str) -> Result<Option<TokenRow>> {
    let row = db::query(
        "SELECT t.id, t.name, t.scopes, t.created_at, t.revoked_at, i.person_id
         FROM tokens t LEFT JOIN token_identities i ON i.token_id = t.id
         WHERE t.hash = $1 AND t.revoked_at IS NOT NULL",
    )
    .bind(hash.to_string())
    .fetch_optional(c)
    .await?;
    row.as_ref().map(token_row).transpose()
}

/// Revokes every live token that acts as `person` (they left); returns the tokens revoked.
pub async fn revoke_tokens_of_person(
    c: &mut Conn,
    person: &str,
    now: i64,
) -> Result<Vec<TokenRow>> {
    let rows = db::query(
        "SELECT t.id, t.name, t.scopes, t.created_at, t.revoked_at, i.person_id
         FROM tokens t JOIN token_identities i ON i.token_id = t.id
         WHERE i.person_id = $1 AND t.revoked_at IS NULL ORDER BY t.id",
    )
    .bind(person.to_string())
    .fetch_all(&mut *c)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut t = token_row(r)?;
        revoke_token(c, &t.id, now).await?;
        t.revoked_at = Some(now);
        out.push(t);
    }
    Ok(out)
}

/// The ids of the live tokens holding the `admin` scope. On PostgreSQL their rows stay locked
/// until the transaction ends, so two revocations at once cannot each leave the other's token
/// as the last admin and then both commit (SQLite writers are serialized already).
pub async fn lock_live_admin_tokens(c: &mut Conn) -> Result<Vec<String>> {
    let lock = if c.is_sqlite() { "" } else { " FOR UPDATE" };
    let sql = format!(
        "SELECT id FROM tokens WHERE revoked_at IS NULL AND (' ' || scopes || ' ') LIKE '% admin %' ORDER BY id{lock}"
    );
    let rows = db::query(db::AssertSqlSafe(sql)).fetch_all(c).await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}

/// How many tokens exist (revoked included).
pub async fn count_tokens(c: &mut Conn) -> Result<i64> {
    db::query("SELECT COUNT(*) FROM tokens")
        .fetch_one(c)
        .await?
        .try_get(0)
}
