//! Accounts and grants: what tenure records of each person's access.

use super::*;

/// The person's accounts.
pub async fn accounts_of(c: &mut Conn, person: &str) -> Result<Vec<Account>> {
    let rows = db::query(
        "SELECT system, state, discovered FROM accounts WHERE person_id = $1 ORDER BY system",
    )
    .bind(person.to_string())
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Account {
                person_id: person.to_string(),
                system: r.try_get(0)?,
                state: parse::<AccountState>(&r.try_get::<String, _>(1)?)?,
                discovered: r.try_get::<i64, _>(2)? != 0,
            })
        })
        .collect()
}

/// An account's new state on conflict: an `uncertain` account planned again (`pending`) stays
/// `uncertain`. Only a call settles it, so a create cancelled or failed before it ran does not
/// forget an account an earlier call may have made.
const ACCOUNT_STATE_ON_CONFLICT: &str =
    "state = CASE WHEN accounts.state = 'uncertain' AND excluded.state = 'pending'
                        THEN accounts.state ELSE excluded.state END";

/// Sets the state of a person's account on a system (see [`ACCOUNT_STATE_ON_CONFLICT`]).
pub async fn set_account(
    c: &mut Conn,
    person: &str,
    system: &str,
    state: AccountState,
    now: i64,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO accounts (person_id, system, state, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (person_id, system) DO UPDATE SET {ACCOUNT_STATE_ON_CONFLICT}, updated_at = excluded.updated_at"
    );
    db::query(db::AssertSqlSafe(sql))
        .bind(person.to_string())
        .bind(system.to_string())
        .bind(state.as_str())
        .bind(now)
        .execute(c)
        .await?;
    Ok(())
}

/// The person's grants in every state.
pub async fn grants_of(c: &mut Conn, person: &str) -> Result<Vec<(Grant, String)>> {
    let rows = db::query(
        "SELECT entitlement, system, source, source_ref, state, granted_at, expires_at
         FROM grants WHERE person_id = $1 ORDER BY entitlement",
    )
    .bind(person.to_string())
    .fetch_all(c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                Grant {
                    person_id: person.to_string(),
                    entitlement: r.try_get(0)?,
                    source: parse::<GrantSource>(&r.try_get::<String, _>(2)?)?,
                    source_ref: r.try_get(3)?,
                    state: parse::<GrantState>(&r.try_get::<String, _>(4)?)?,
                    granted_at: r.try_get(5)?,
                    expires_at: r.try_get(6)?,
                },
                r.try_get::<String, _>(1)?,
            ))
        })
        .collect()
}

/// The grant states that only plan or give up on a change: written over an `uncertain` grant,
/// they leave it `uncertain`. Access that may be held stays known as such until a call settles
/// it (`granted`, `revoked`), so a planned grant cancelled, denied or failed before it ran does
/// not forget a membership an earlier call may have made.
const GRANT_PLANNED: &str = "('pending', 'awaiting_approval', 'failed', 'denied')";

/// Stores a grant (on `system`) as it is now; an `uncertain` one stays so when `g` only plans
/// it (see [`GRANT_PLANNED`]).
pub async fn upsert_grant(c: &mut Conn, g: &Grant, system: &str, now: i64) -> Result<()> {
    upsert_grants(c, &[(g.clone(), system.to_string())], now).await
}

/// Sets a grant's state: [`set_grant_states`] for one grant.
pub async fn set_grant_state(
    c: &mut Conn,
    person: &str,
    entitlement: &str,
    state: GrantState,
    now: i64,
) -> Result<()> {
    let row = (person.to_string(), entitlement.to_string(), state);
    set_grant_states(c, &[row], now).await
}

/// Sets many accounts' states at once (later entries win for the same person and system; see
/// [`ACCOUNT_STATE_ON_CONFLICT`]).
pub async fn upsert_accounts(
    c: &mut Conn,
    rows: &[(String, String, AccountState)],
    now: i64,
) -> Result<()> {
    let rows = dedupe_last(rows, |r| (r.0.clone(), r.1.clone()));
    let suffix = format!(
        " ON CONFLICT (person_id, system) DO UPDATE SET {ACCOUNT_STATE_ON_CONFLICT}, updated_at = excluded.updated_at"
    );
    bulk!(
        c,
        rows,
        4,
        "INSERT INTO accounts (person_id, system, state, updated_at) VALUES ",
        suffix.as_str(),
        |q, r| {
            q.bind(r.0.clone())
                .bind(r.1.clone())
                .bind(r.2.as_str())
                .bind(now)
        }
    );
    Ok(())
}

/// Stores many grants at once (later entries win for the same person and entitlement); an
/// `uncertain` one stays so when only planned (see [`GRANT_PLANNED`]).
pub async fn upsert_grants(c: &mut Conn, rows: &[(Grant, String)], now: i64) -> Result<()> {
    let rows = dedupe_last(rows, |(g, _)| (g.person_id.clone(), g.entitlement.clone()));
    let suffix = format!(
        " ON CONFLICT (person_id, entitlement) DO UPDATE SET system = excluded.system, source = excluded.source,
           source_ref = excluded.source_ref,
           state = CASE WHEN grants.state = 'uncertain' AND excluded.state IN {GRANT_PLANNED}
                        THEN grants.state ELSE excluded.state END,
           granted_at = excluded.granted_at,
           expires_at = excluded.expires_at, updated_at = excluded.updated_at"
    );
    bulk!(
        c,
        rows,
        9,
        "INSERT INTO grants (person_id, entitlement, system, source, source_ref, state, granted_at, expires_at, updated_at) VALUES ",
        suffix.as_str(),
        |q, r| {
            let (g, system) = r;
            q.bind(g.person_id.clone())
                .bind(g.entitlement.clone())
                .bind(system.clone())
                .bind(g.source.as_str())
                .bind(g.source_ref.clone())
                .bind(g.state.as_str())
                .bind(g.granted_at)
                .bind(g.expires_at)
                .bind(now)
        }
    );
    Ok(())
}

/// Sets many grants' states at once; `granted_at` is set for those that become granted. A grant
/// revoked before its expiry forgets it (it did not run out: a rehire or a new source may give
/// it again); one revoked at or after its expiry keeps it as the record that it ran out. An
/// `uncertain` grant stays so when only planned or failed (see [`GRANT_PLANNED`]).
pub async fn set_grant_states(
    c: &mut Conn,
    rows: &[(String, String, GrantState)],
    now: i64,
) -> Result<()> {
    let rows = dedupe_last(rows, |r| (r.0.clone(), r.1.clone()));
    let suffix =
        ") AS v WHERE grants.person_id = v.column1 AND grants.entitlement = v.column2".to_string();
    let prefix = format!(
        "UPDATE grants SET
           state = CASE WHEN grants.state = 'uncertain' AND v.column3 IN {GRANT_PLANNED}
                        THEN grants.state ELSE v.column3 END,
           updated_at = $1,
           granted_at = CASE WHEN v.column3 = 'granted' THEN $1 ELSE grants.granted_at END,
           expires_at = CASE WHEN v.column3 = 'revoked' AND grants.expires_at > $1 THEN NULL
                             ELSE grants.expires_at END
         FROM (VALUES "
    );
    bulk!(
        c,
        rows,
        3,
        prefix.as_str(),
        suffix.as_str(),
        lead = [now],
        |q, r| { q.bind(r.0.clone()).bind(r.1.clone()).bind(r.2.as_str()) }
    );
    Ok(())
}

fn dedupe_last<T: Clone, K: Eq + std::hash::Hash>(rows: &[T], key: impl Fn(&T) -> K) -> Vec<T> {
    let mut last = std::collections::HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        last.insert(key(r), i);
    }
    rows.iter()
        .enumerate()
        .filter(|(i, r)| last[&key(r)] == *i)
        .map(|(_, r)| r.clone())
        .collect()
}

/// People by id, for a batch of steps.
pub async fn people_by_ids(c: &mut Conn, ids: &[String]) -> Result<Vec<Person>> {
    let mut out = Vec::with_capacity(ids.len());
    let sqlite = c.is_sqlite();
    for chunk in ids.chunks(500) {
        let mut sql = format!("{} WHERE id IN ", crate::privacy::PERSON_SELECT);
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        let mut q = db::query(db::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.push(crate::privacy::person_row(c, &r)?);
        }
    }
    Ok(out)
}

/// Migration 9's data step on SQLite: adds `accounts.discovered` unless the table has it
/// (PostgreSQL's SQL says `IF NOT EXISTS` itself).
pub(crate) fn add_account_discovered(
    c: &mut Conn,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + '_>> {
    Box::pin(async move {
        if !c.is_sqlite() {
            return Ok(());
        }
        crate::migrate::sqlite_add_column(c, "accounts", "discovered", "BIGINT NOT NULL DEFAULT 0")
            .await
    })
}
