//! People's keys, reading sealed records, forgetting, and sealing what was stored in clear
//! before a master key was given (see [`crate::vault`]).

use crate::db::{self, Conn, Row};
use crate::queries::{ENDED_RUN_STATES, person_columns, push_placeholders};
use crate::vault::{self, PersonKey};
use crate::{Result, StoreError};
use std::collections::HashMap;
use tenure_core::Person;
use tenure_core::privacy::ForgetFacts;

/// How people are read: id, the record (sealed or not), the person's wrapped key.
pub(crate) const PERSON_SELECT: &str = "SELECT id, data, (SELECT wrapped FROM person_keys k WHERE k.person_id = people.id) AS person_key FROM people";

/// The sealed columns: what each value's associated data names.
pub(crate) const PEOPLE_DATA: &str = "people.data";
pub(crate) const EVENTS_BODY: &str = "events.body";

/// The key `wrapped` holds for `person`, unwrapped; `None` when there is none (never made on
/// a plain vault, or deleted when the person was forgotten).
pub(crate) fn unwrap_key(
    c: &Conn,
    person: &str,
    wrapped: Option<String>,
) -> Result<Option<PersonKey>> {
    wrapped
        .map(|w| c.vault().person_key(person, &w))
        .transpose()
        .map_err(StoreError::from)
}

/// A person from a row of [`PERSON_SELECT`], their record opened (a forgotten person's is
/// their tombstone, stored in clear).
pub(crate) fn person_row(c: &Conn, r: &Row) -> Result<Person> {
    let id: String = r.try_get(0)?;
    let key = unwrap_key(c, &id, r.try_get(2)?)?;
    let data = vault::open(key.as_ref(), PEOPLE_DATA, &id, r.try_get(1)?)?;
    serde_json::from_str(&data).map_err(|e| StoreError::Corrupt(format!("person {id}: {e}")))
}

/// Whether this database's personal data can be read with the store's master key: it opens
/// a stored person key (the first), and no person's sealed record lacks a key. What
/// `tenure serve` checks before it starts, so a wrong key or a restore without its keys is
/// refused with the reason instead of failing request by request.
pub async fn check_keys(c: &mut Conn) -> Result<()> {
    let first = db::query("SELECT person_id, wrapped FROM person_keys ORDER BY person_id LIMIT 1")
        .fetch_optional(&mut *c)
        .await?;
    if let Some(r) = first {
        let person: String = r.try_get(0)?;
        c.vault()
            .person_key(&person, &r.try_get::<String, _>(1)?)
            .map_err(|e| match e {
                vault::VaultError::Unreadable(_) => vault::VaultError::WrongMasterKey,
                other => other,
            })?;
    }
    let missing = people_without_keys(c).await?;
    if missing > 0 {
        return Err(
            vault::VaultError::KeyMissing(format!("the record of {missing} person(s)")).into(),
        );
    }
    Ok(())
}

/// The keys of `people`, made now for those who have none; empty on a plain vault. Two
/// writers making one person's key at once agree on the first stored.
pub(crate) async fn keys_for(
    c: &mut Conn,
    people: &[&str],
    now: i64,
) -> Result<HashMap<String, PersonKey>> {
    let mut keys = HashMap::new();
    if !c.vault().seals() || people.is_empty() {
        return Ok(keys);
    }
    stored_keys(c, people, &mut keys).await?;
    let missing: Vec<&str> = people
        .iter()
        .copied()
        .filter(|p| !keys.contains_key(*p))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if missing.is_empty() {
        return Ok(keys);
    }
    let vault = c.vault().clone();
    let made: Vec<StoredKey> = missing
        .iter()
        .map(|p| StoredKey {
            person_id: p.to_string(),
            wrapped: vault.new_person_key(p).expect("a sealing vault").1,
            created_at: now,
        })
        .collect();
    // Another writer may have stored some meanwhile: theirs stay, and are read back below.
    put_person_keys(c, &made).await?;
    stored_keys(c, &missing, &mut keys).await?;
    Ok(keys)
}

async fn stored_keys(
    c: &mut Conn,
    people: &[&str],
    keys: &mut HashMap<String, PersonKey>,
) -> Result<()> {
    let sqlite = c.is_sqlite();
    for chunk in people.chunks(500) {
        let mut sql =
            String::from("SELECT person_id, wrapped FROM person_keys WHERE person_id IN ");
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        let mut q = db::query(db::AssertSqlSafe(sql));
        for p in chunk {
            q = q.bind(p.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            let person: String = r.try_get(0)?;
            let key = c.vault().person_key(&person, &r.try_get::<String, _>(1)?)?;
            keys.insert(person, key);
        }
    }
    Ok(())
}

/// What [`may_forget`](tenure_core::privacy::may_forget) needs to know of `person`.
pub async fn forget_facts(c: &mut Conn, person: &str) -> Result<ForgetFacts> {
    let row = db::query("SELECT status, forgotten_at FROM people WHERE id = $1")
        .bind(person.to_string())
        .fetch_optional(&mut *c)
        .await?;
    let Some(row) = row else {
        return Ok(ForgetFacts {
            status: None,
            forgotten_at: None,
            open_runs: 0,
            held: 0,
        });
    };
    let count = |sql: String| db::query(db::AssertSqlSafe(sql)).bind(person.to_string());
    let open_runs: i64 = count(format!(
        "SELECT COUNT(*) FROM runs WHERE person_id = $1 AND state NOT IN ({ENDED_RUN_STATES})"
    ))
    .fetch_one(&mut *c)
    .await?
    .try_get(0)?;
    let grants: i64 = count(
        "SELECT COUNT(*) FROM grants WHERE person_id = $1
           AND state IN ('pending', 'awaiting_approval', 'granted', 'uncertain')"
            .into(),
    )
    .fetch_one(&mut *c)
    .await?
    .try_get(0)?;
    let accounts: i64 = count(
        "SELECT COUNT(*) FROM accounts WHERE person_id = $1 AND state IN ('pending', 'active', 'uncertain')"
            .into(),
    )
    .fetch_one(&mut *c)
    .await?
    .try_get(0)?;
    Ok(ForgetFacts {
        status: Some(crate::queries::parse(&row.try_get::<String, _>(0)?)?),
        forgotten_at: row.try_get(1)?,
        open_runs,
        held: grants + accounts,
    })
}

/// What forgetting a person erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Erased {
    /// Whether a key was deleted (none on a plain vault, or for a record stored in clear).
    pub key: bool,
    /// Event payloads dropped.
    pub event_payloads: u64,
}

/// Forgets `person` (the caller checked [`forget_facts`]): deletes their key, so whatever was
/// sealed under it (here and in every copy of the database) cannot be read; leaves their
/// record as a tombstone (id and status; [`Person::forgotten`]) and drops their event payloads,
/// so nothing of them stays in clear either. Grants, accounts, runs and the audit trail keep
/// the person's id alone.
pub async fn forget_person(c: &mut Conn, person: &str, now: i64) -> Result<Erased> {
    let key = db::query("DELETE FROM person_keys WHERE person_id = $1")
        .bind(person.to_string())
        .execute(&mut *c)
        .await?
        .rows_affected()
        > 0;
    let tomb = Person::forgotten(person);
    let [department, worker_type, manager, _] = person_columns(&tomb);
    db::query(
        "UPDATE people SET data = $1, department = $2, worker_type = $3, manager = $4, search = '',
           email_index = NULL, forgotten_at = $5, updated_at = $5
         WHERE id = $6",
    )
    .bind(serde_json::to_string(&tomb).expect("a person serializes"))
    .bind(department)
    .bind(worker_type)
    .bind(manager)
    .bind(now)
    .bind(person.to_string())
    .execute(&mut *c)
    .await?;
    db::query("DELETE FROM people_search_tokens WHERE person_id = $1")
        .bind(person.to_string())
        .execute(&mut *c)
        .await?;
    db::query("DELETE FROM people_search_pending WHERE person_id = $1")
        .bind(person.to_string())
        .execute(&mut *c)
        .await?;
    let event_payloads = db::query(
        "UPDATE events SET body = 'null', payload_dropped_at = COALESCE(payload_dropped_at, $1)
         WHERE person_id = $2 AND body <> 'null'",
    )
    .bind(now)
    .bind(person.to_string())
    .execute(&mut *c)
    .await?
    .rows_affected();
    Ok(Erased {
        key,
        event_payloads,
    })
}

/// A person's key as stored: sealed under the master key, so it opens nowhere else.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredKey {
    /// The person's HR id.
    pub person_id: String,
    /// The key, wrapped (`enc1:...`).
    pub wrapped: String,
    /// When it was made (epoch ms).
    pub created_at: i64,
}

/// Every person key, in person id order: what `tenure backup --keys` exports and what a
/// restore carries over from the database it replaces.
pub async fn person_keys(c: &mut Conn) -> Result<Vec<StoredKey>> {
    db::query("SELECT person_id, wrapped, created_at FROM person_keys ORDER BY person_id")
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| {
            Ok(StoredKey {
                person_id: r.try_get(0)?,
                wrapped: r.try_get(1)?,
                created_at: r.try_get(2)?,
            })
        })
        .collect()
}

/// Stores `keys` where their people have none (a key already there stays). Returns how many
/// were added.
pub async fn put_person_keys(c: &mut Conn, keys: &[StoredKey]) -> Result<u64> {
    let sqlite = c.is_sqlite();
    let mut added = 0;
    for chunk in keys.chunks(500) {
        let mut sql =
            String::from("INSERT INTO person_keys (person_id, wrapped, created_at) VALUES ");
        push_placeholders(&mut sql, chunk.len(), 3, sqlite);
        sql.push_str(" ON CONFLICT (person_id) DO NOTHING");
        let mut q = db::query(db::AssertSqlSafe(sql));
        for k in chunk {
            q = q
                .bind(k.person_id.clone())
                .bind(k.wrapped.clone())
                .bind(k.created_at);
        }
        added += q.execute(&mut *c).await?.rows_affected();
    }
    Ok(added)
}

/// How many people (not forgotten) have a sealed record and no key: unreadable, as after a
/// restore that was given neither the database it replaced nor a keys file.
pub async fn people_without_keys(c: &mut Conn) -> Result<i64> {
    db::query(
        "SELECT COUNT(*) FROM people WHERE forgotten_at IS NULL AND data LIKE 'enc1:%'
           AND id NOT IN (SELECT person_id FROM person_keys)",
    )
    .fetch_one(c)
    .await?
    .try_get(0)
}

/// When `person` was forgotten, if they were.
pub async fn forgotten_at(c: &mut Conn, person: &str) -> Result<Option<i64>> {
    Ok(db::query("SELECT forgotten_at FROM people WHERE id = $1")
        .bind(person.to_string())
        .fetch_optional(c)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?
        .flatten())
}

/// The people forgotten, in id order: what a restore re-applies to an older copy.
pub async fn forgotten_people(c: &mut Conn) -> Result<Vec<String>> {
    db::query("SELECT id FROM people WHERE forgotten_at IS NOT NULL ORDER BY id")
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect()
}

/// Up to `limit` people after `after` (in id order) who left (terminated) and were last
/// changed before `before`, not yet forgotten: what `[retention] forget_people` looks at.
pub async fn people_left_before(
    c: &mut Conn,
    before: i64,
    after: &str,
    limit: i64,
) -> Result<Vec<String>> {
    db::query(
        "SELECT id FROM people WHERE status = 'terminated' AND forgotten_at IS NULL AND updated_at < $1
           AND id > $2
         ORDER BY id LIMIT $3",
    )
    .bind(before)
    .bind(after.to_string())
    .bind(limit)
    .fetch_all(c)
    .await?
    .iter()
    .map(|r| r.try_get(0))
    .collect()
}

/// Seals (on a sealing vault) and indexes up to `limit` people and `limit` event payloads
/// stored in clear: what was stored before the master key was given, or before this version
/// (people sealed before the search index, migration 17, are indexed here too).
/// Returns how many rows it rewrote; 0 once all are done.
pub async fn seal_existing(c: &mut Conn, limit: i64, now: i64) -> Result<u64> {
    let seals = c.vault().seals();
    let clear = if seals {
        format!(
            "(email_index IS NULL OR data NOT LIKE 'enc1:%' OR NOT EXISTS
               (SELECT 1 FROM people_search_tokens t WHERE t.token = '{}' AND t.person_id = people.id))",
            crate::queries::SEARCH_INDEXED
        )
    } else {
        "email_index IS NULL".to_string()
    };
    let sql =
        format!("{PERSON_SELECT} WHERE forgotten_at IS NULL AND {clear} ORDER BY id LIMIT $1");
    let rows = db::query(db::AssertSqlSafe(sql))
        .bind(limit)
        .fetch_all(&mut *c)
        .await?;
    let people = rows
        .iter()
        .map(|r| person_row(c, r))
        .collect::<Result<Vec<_>>>()?;
    let ids: Vec<&str> = people.iter().map(|p| p.id.as_str()).collect();
    let keys = keys_for(c, &ids, now).await?;
    for p in &people {
        let data = serde_json::to_string(p).expect("a person serializes");
        let data = vault::seal(keys.get(&p.id), PEOPLE_DATA, &p.id, &data);
        db::query("UPDATE people SET data = $1, email_index = $2, search = $3 WHERE id = $4")
            .bind(data)
            .bind(c.vault().email_index(&p.email))
            .bind(search_text(c, p))
            .bind(p.id.clone())
            .execute(&mut *c)
            .await?;
        crate::queries::index_person_search(c, p, false).await?;
    }
    let mut done = people.len() as u64;
    if seals {
        let rows = db::query(
            "SELECT id, person_id, body FROM events WHERE body <> 'null' AND body NOT LIKE 'enc1:%'
             ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&mut *c)
        .await?;
        let events = rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<Vec<(String, String, String)>>>()?;
        let people: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
        let keys = keys_for(c, &people, now).await?;
        for (id, person, body) in &events {
            db::query("UPDATE events SET body = $1 WHERE id = $2")
                .bind(vault::seal(keys.get(person), EVENTS_BODY, id, body))
                .bind(id.clone())
                .execute(&mut *c)
                .await?;
        }
        done += events.len() as u64;
    }
    Ok(done)
}

/// What `people.search` holds for `p`: name and email lowercased, for the list's text filter
/// in SQL; empty on a sealing vault, where that filter looks up the blind index
/// `people_search_tokens` instead (a name in clear would defeat the sealing).
pub(crate) fn search_text(c: &Conn, p: &Person) -> String {
    if c.vault().seals() {
        String::new()
    } else {
        format!("{}\n{}", p.name.to_lowercase(), p.email.to_lowercase())
    }
}

/// Migration 13's data step: on SQLite, adds `people.email_index`, `people.forgotten_at` and
/// the index on the first where missing (PostgreSQL's migration does it in SQL).
pub(crate) fn add_people_privacy_columns(
    c: &mut Conn,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + '_>> {
    Box::pin(async move {
        if !c.is_sqlite() {
            return Ok(());
        }
        crate::migrate::sqlite_add_column(c, "people", "email_index", "TEXT").await?;
        crate::migrate::sqlite_add_column(c, "people", "forgotten_at", "BIGINT").await?;
        c.execute("CREATE INDEX IF NOT EXISTS people_email_index ON people (email_index)")
            .await?;
        Ok(())
    })
}
