//! Queries over one connection (a transaction's or a reader's). Every function here takes
//! `&mut Conn`, so reads run the same inside a write transaction and outside it.
//!
//! A file per table group (people, access, events, runs, steps, tokens, audit); this one holds
//! what they share: placeholders, `bulk!` for multi-row statements, reading stored enums.

use crate::db::{self, Conn, Row};
use crate::{Backend, Result, StoreError};
use serde::Serialize;
use std::str::FromStr;
use tenure_core::audit::AuditEntry;
use tenure_core::planner::Action;
use tenure_core::run::{Lane, Priority, RunKind, RunState, StepState, StepStatus};
use tenure_core::{
    Account, AccountState, Client, Engagement, Grant, GrantSource, GrantState, Person,
};

/// Appends `rows` groups of `cols` placeholders: `($1, $2), ($3, $4)` on PostgreSQL, anonymous
/// `(?, ?), (?, ?)` on SQLite, where looking up numbered parameters costs time linear in their
/// count (quadratic over a large multi-row statement).
pub fn push_placeholders(sql: &mut String, rows: usize, cols: usize, sqlite: bool) {
    push_placeholders_after(sql, rows, cols, sqlite, 0);
}

/// [`push_placeholders`] in a statement whose first `before` parameters come ahead of the rows
/// (`$1` to `$before`, named the same on both databases: SQLite numbers a named parameter on
/// its first use and each `?` after the highest number given so far).
pub(crate) fn push_placeholders_after(
    sql: &mut String,
    rows: usize,
    cols: usize,
    sqlite: bool,
    before: usize,
) {
    use std::fmt::Write;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            if sqlite {
                sql.push('?');
            } else {
                let _ = write!(sql, "${}", before + r * cols + c + 1);
            }
        }
        sql.push(')');
    }
}

/// A parenthesised list of `n` placeholders: `?` on SQLite, `$first`, `$first+1`, ... on
/// PostgreSQL (after the statement's earlier parameters).
pub(crate) fn in_list(sql: &mut String, n: usize, sqlite: bool, first: usize) {
    use std::fmt::Write;
    sql.push('(');
    for i in 0..n {
        if i > 0 {
            sql.push_str(", ");
        }
        if sqlite {
            sql.push('?');
        } else {
            let _ = write!(sql, "${}", first + i);
        }
    }
    sql.push(')');
}

/// Runs `make(chunk)` over `items` in chunks small enough for any database's parameter limit.
macro_rules! bulk {
    ($c:expr, $items:expr, $cols:expr, $prefix:expr, $suffix:expr, |$q:ident, $it:ident| $bind:block) => {
        bulk!($c, $items, $cols, $prefix, $suffix, lead = [], |$q, $it| $bind)
    };
    // `lead`: values bound ahead of the rows, as `$1`, `$2`, ... in the prefix (a timestamp
    // bound, not written into the text, keeps the statement the same and its prepared form
    // cached).
    ($c:expr, $items:expr, $cols:expr, $prefix:expr, $suffix:expr, lead = [$($lead:expr),*], |$q:ident, $it:ident| $bind:block) => {{
        let sqlite = $c.is_sqlite();
        let lead: &[db::Value] = &[$(db::Value::from($lead)),*];
        for chunk in $items.chunks((30_000 / $cols).min(500)) {
            let mut sql = String::from($prefix);
            push_placeholders_after(&mut sql, chunk.len(), $cols, sqlite, lead.len());
            sql.push_str($suffix);
            let mut $q = db::query(db::AssertSqlSafe(sql));
            for v in lead {
                $q = $q.bind(v.clone());
            }
            for $it in chunk {
                $q = $bind;
            }
            $q.execute(&mut *$c).await?;
        }
    }};
}

pub(crate) fn parse<T: FromStr>(s: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e: T::Err| StoreError::Corrupt(e.to_string()))
}

/// A stored value that cannot be read back.
pub(crate) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A stored priority (0 or 10).
pub(crate) fn priority(n: i64) -> Result<Priority> {
    Priority::try_from(n).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("model types serialize")
}

// The table groups, each in its own file; declared after `bulk!` so they can use it.
mod access;
mod audit;
mod events;
mod people;
mod runs;
mod steps;
mod tokens;

pub use access::*;
pub use audit::*;
pub use events::*;
pub use people::*;
pub use runs::*;
pub use steps::*;
pub use tokens::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_across_rows() {
        let mut s = String::new();
        push_placeholders(&mut s, 2, 3, false);
        assert_eq!(s, "($1, $2, $3), ($4, $5, $6)");
        let mut s = String::new();
        push_placeholders(&mut s, 2, 2, true);
        assert_eq!(s, "(?, ?), (?, ?)");
    }

    /// A scratch store: PostgreSQL when `TENURE_TEST_DATABASE_URL` is set, else SQLite.
    async fn scratch() -> (crate::Store, Option<std::path::PathBuf>) {
        let name = format!("tenure_store_{}", uuid::Uuid::new_v4().simple());
        match std::env::var("TENURE_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                let url = crate::create_scratch_database(&url, &name).await.unwrap();
                (crate::Store::connect(&url).await.unwrap(), None)
            }
            _ => {
                let dir = std::env::temp_dir().join(name);
                std::fs::create_dir_all(&dir).unwrap();
                let store = crate::Store::open_sqlite(&dir.join("t.db")).await.unwrap();
                (store, Some(dir))
            }
        }
    }

    /// A page of users read in id order comes with each user's granted entitlements (one row
    /// per grant, folded back per user), the same as a sorted page reads them afterwards.
    #[tokio::test]
    async fn a_page_of_users_carries_each_ones_groups() {
        let (store, dir) = scratch().await;
        let mut tx = store.begin().await.unwrap();
        let mut users = Vec::new();
        for id in ["u1", "u2", "u3"] {
            let row = crate::ScimUserRow {
                id: id.into(),
                user_name_ci: format!("{id}@example.com"),
                lifecycle: "person".into(),
                version: 1,
                created_at: 0,
                updated_at: 0,
                doc: "{}".into(),
            };
            users.push((row, Vec::new()));
        }
        crate::insert_scim_users(tx.conn(), &users).await.unwrap();
        for (person, entitlement, state) in [
            ("u1", "crm:b", GrantState::Granted),
            ("u1", "crm:a", GrantState::Granted),
            ("u1", "crm:c", GrantState::Pending),
            ("u3", "dir:x", GrantState::Granted),
        ] {
            let g = Grant {
                person_id: person.into(),
                entitlement: entitlement.into(),
                source: GrantSource::Birthright,
                source_ref: "t".into(),
                state,
                granted_at: None,
                expires_at: None,
            };
            upsert_grant(tx.conn(), &g, "crm", 0).await.unwrap();
        }
        tx.commit().await.unwrap();
        let key = crate::SortKey {
            attr: "username".into(),
            sub: String::new(),
            descending: false,
        };
        let mut c = store.reader().await.unwrap();
        for sort in [None, Some(&key)] {
            let (total, page) = crate::search_scim_users(&mut c, None, sort, 0, 10)
                .await
                .unwrap();
            let got: Vec<(String, Vec<String>)> =
                page.into_iter().map(|(u, g)| (u.id, g)).collect();
            assert_eq!(total, 3);
            assert_eq!(
                got,
                [
                    (
                        "u1".to_string(),
                        vec!["crm:a".to_string(), "crm:b".to_string()]
                    ),
                    ("u2".to_string(), vec![]),
                    ("u3".to_string(), vec!["dir:x".to_string()]),
                ],
                "sorted: {}",
                sort.is_some()
            );
        }
        // A page cut after the first user still counts every match.
        let (total, page) = crate::search_scim_users(&mut c, None, None, 0, 1)
            .await
            .unwrap();
        assert_eq!((total, page.len(), page[0].1.len()), (3, 1, 2));
        drop(c);
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Access that may be held stays `uncertain` through every write that only plans or gives
    /// up on a change (planned again, awaiting approval, failed, denied, a planned row forgotten), on
    /// each of the store's writers; a call's outcome (granted, revoked, active) settles it.
    #[tokio::test]
    async fn uncertain_access_stays_so_until_a_call_settles_it() {
        let (store, dir) = scratch().await;
        let grant = |e: &str, state| Grant {
            person_id: "p".into(),
            entitlement: e.into(),
            source: GrantSource::Birthright,
            source_ref: "t".into(),
            state,
            granted_at: None,
            expires_at: None,
        };
        let mut tx = store.begin().await.unwrap();
        let c = tx.conn();
        for e in ["crm:a", "crm:b", "crm:c", "crm:d", "crm:e", "crm:f"] {
            upsert_grant(c, &grant(e, GrantState::Uncertain), "crm", 0)
                .await
                .unwrap();
        }
        set_account(c, "p", "crm", AccountState::Uncertain, 0)
            .await
            .unwrap();
        set_account(c, "p", "dir", AccountState::Uncertain, 0)
            .await
            .unwrap();

        // Planned again, through each writer, then forgotten as never made.
        upsert_grant(c, &grant("crm:a", GrantState::Pending), "crm", 1)
            .await
            .unwrap();
        let awaiting = (grant("crm:b", GrantState::AwaitingApproval), "crm".into());
        upsert_grants(c, &[awaiting], 1).await.unwrap();
        set_grant_state(c, "p", "crm:c", GrantState::Failed, 1)
            .await
            .unwrap();
        // Its approval denied: the grant is not made again, but may still be held.
        set_grant_state(c, "p", "crm:f", GrantState::Denied, 1)
            .await
            .unwrap();
        forget_pending_grant(c, "p", "crm:a").await.unwrap();
        forget_pending_grant(c, "p", "crm:b").await.unwrap();
        upsert_accounts(c, &[("p".into(), "crm".into(), AccountState::Pending)], 1)
            .await
            .unwrap();
        forget_pending_account(c, "p", "crm").await.unwrap();
        // Settled by calls.
        let settled = [
            ("p".to_string(), "crm:d".to_string(), GrantState::Granted),
            ("p".to_string(), "crm:e".to_string(), GrantState::Revoked),
        ];
        set_grant_states(c, &settled, 2).await.unwrap();
        set_account(c, "p", "dir", AccountState::Active, 2)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut c = store.reader().await.unwrap();
        let grants: Vec<(String, GrantState)> = grants_of(&mut c, "p")
            .await
            .unwrap()
            .into_iter()
            .map(|(g, _)| (g.entitlement, g.state))
            .collect();
        let g = |e: &str, s| (e.to_string(), s);
        assert_eq!(
            grants,
            [
                g("crm:a", GrantState::Uncertain),
                g("crm:b", GrantState::Uncertain),
                g("crm:c", GrantState::Uncertain),
                g("crm:d", GrantState::Granted),
                g("crm:e", GrantState::Revoked),
                g("crm:f", GrantState::Uncertain),
            ]
        );
        let mut accounts: Vec<(String, AccountState)> = accounts_of(&mut c, "p")
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.system, a.state))
            .collect();
        accounts.sort();
        assert_eq!(
            accounts,
            [
                ("crm".to_string(), AccountState::Uncertain),
                ("dir".to_string(), AccountState::Active),
            ]
        );
        drop(c);
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// A cancel and the outcome of a run's last running step, committed at the same moment,
    /// must not judge the run from stale views of each other. On PostgreSQL the run row is
    /// the lock: whoever judges second waits and then sees the other's change. (On SQLite a
    /// write transaction starts with `BEGIN IMMEDIATE`, so writers never overlap at all.)
    #[tokio::test]
    async fn a_run_judged_while_it_is_cancelled_sees_the_cancel() {
        let (store, dir) = scratch().await;
        if store.backend() == Backend::Sqlite {
            let _ = std::fs::remove_dir_all(dir.unwrap());
            return;
        }
        let run = RunRow {
            state: RunState::Running,
            planned_at: Some(0),
            ..RunRow::pending("r1".into(), "p1".into(), RunKind::Hire, Priority::Normal, 0)
        };
        let mut tx = store.begin().await.unwrap();
        insert_run(tx.conn(), &run).await.unwrap();
        tx.commit().await.unwrap();

        // The operator's cancel holds the run...
        let mut cancel = store.begin().await.unwrap();
        let held = lock_run(cancel.conn(), "r1").await.unwrap().unwrap();
        assert!(!held.cancel_requested);
        request_cancel(cancel.conn(), "r1").await.unwrap();
        // ...while a step outcome comes to judge the same run.
        let judge = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                let runs = runs_by_ids(tx.conn(), &["r1".to_string()]).await.unwrap();
                tx.commit().await.unwrap();
                runs
            })
        };
        // Wait until the judge is blocked on the lock (or, were there none, has finished
        // with what it saw).
        let mut watch = store.reader().await.unwrap();
        loop {
            let waiting: i64 = db::query(
                "SELECT COUNT(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut watch)
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
            if waiting > 0 || judge.is_finished() {
                break;
            }
            tokio::task::yield_now().await;
        }
        cancel.commit().await.unwrap();
        let seen = judge.await.unwrap();
        assert!(
            seen[0].cancel_requested,
            "the run was judged without the cancel committed alongside"
        );
    }

    /// A pending, ready step of run `r1` at `idx`, of `priority`, claimable from
    /// `available_at`.
    fn pending_step(id: &str, idx: i64, priority: Priority, available_at: i64) -> StepRow {
        StepRow {
            id: id.into(),
            run_id: "r1".into(),
            idx,
            phase: 0,
            ready: true,
            state: StepState::Pending,
            priority,
            available_at,
            person_id: "p1".into(),
            system: "directory".into(),
            action: Action::CreateAccount,
            entitlement: None,
            source: None,
            source_ref: None,
            op_id: format!("op-{id}"),
            attempts: 0,
            last_error: None,
            compensation_of: None,
            lease_until: None,
            started_at: None,
            finished_at: None,
            maybe_applied: false,
        }
    }

    /// The dispatcher's wake-up time: the earliest step of either priority, steps not ready
    /// or not pending left out.
    #[tokio::test]
    async fn the_next_step_available_is_the_earliest_of_either_priority() {
        let (store, dir) = scratch().await;
        let next = |store: crate::Store| async move {
            let mut c = store.reader().await.unwrap();
            next_step_available(&mut c).await.unwrap()
        };
        assert_eq!(next(store.clone()).await, None);
        let waiting = StepRow {
            ready: false,
            ..pending_step("s0", 0, Priority::Urgent, 5)
        };
        let running = StepRow {
            state: StepState::Running,
            ..pending_step("s1", 1, Priority::Normal, 7)
        };
        let mut tx = store.begin().await.unwrap();
        insert_steps(
            tx.conn(),
            &[
                waiting,
                running,
                pending_step("s2", 2, Priority::Normal, 40),
                pending_step("s3", 3, Priority::Urgent, 90),
                pending_step("s4", 4, Priority::Normal, 30),
            ],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(next(store.clone()).await, Some(30), "a normal step first");
        let mut tx = store.begin().await.unwrap();
        insert_steps(tx.conn(), &[pending_step("s5", 5, Priority::Urgent, 20)])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(next(store.clone()).await, Some(20), "an urgent step first");
        store.close().await;
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    #[tokio::test]
    async fn a_late_outcome_does_not_count_once_the_lease_was_taken_back() {
        let (store, dir) = scratch().await;
        let step = pending_step("s1", 1, Priority::Normal, 0);
        let mut tx = store.begin().await.unwrap();
        insert_steps(tx.conn(), &[step]).await.unwrap();
        let claimed = claim_steps(tx.conn(), store.backend(), 10, 1_000, 10, false)
            .await
            .unwrap();
        assert_eq!(claimed[0].lease_until, Some(1_000));
        assert!(
            steps_still_leased(tx.conn(), &[("s1", Some(1_000))])
                .await
                .unwrap()
                .contains("s1")
        );
        // The call outlives its lease: the step is taken back and claimed again.
        assert_eq!(requeue_expired(tx.conn(), 1_001, 1_001).await.unwrap(), 1);
        assert!(
            steps_still_leased(tx.conn(), &[("s1", Some(1_000))])
                .await
                .unwrap()
                .is_empty()
        );
        let again = claim_steps(tx.conn(), store.backend(), 1_001, 2_001, 10, false)
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        let first = steps_still_leased(tx.conn(), &[("s1", Some(1_000))])
            .await
            .unwrap();
        let second = steps_still_leased(tx.conn(), &[("s1", Some(2_001))])
            .await
            .unwrap();
        assert!(
            first.is_empty() && second.contains("s1"),
            "{first:?} {second:?}"
        );
        tx.commit().await.unwrap();
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// One person with everything the planner reads about them.
#[derive(Debug, Clone)]
pub struct PersonState {
    /// The person.
    pub person: Person,
    /// Their engagements, in id order.
    pub engagements: Vec<Engagement>,
    /// Their accounts, in system order.
    pub accounts: Vec<Account>,
    /// Their grants (every state), in entitlement order.
    pub grants: Vec<Grant>,
}

/// A page of people after `after` in id order, each with engagements, accounts and grants:
/// four range reads per page, however many people it holds (for what-if over everyone).
pub async fn people_states(
    c: &mut Conn,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<PersonState>> {
    let people = list_people(c, after, limit).await?;
    let (Some(first), Some(last)) = (people.first(), people.last()) else {
        return Ok(Vec::new());
    };
    let (lo, hi) = (first.id.clone(), last.id.clone());
    let mut out: Vec<PersonState> = people
        .into_iter()
        .map(|person| PersonState {
            person,
            engagements: Vec::new(),
            accounts: Vec::new(),
            grants: Vec::new(),
        })
        .collect();
    let index: std::collections::HashMap<String, usize> = out
        .iter()
        .enumerate()
        .map(|(i, s)| (s.person.id.clone(), i))
        .collect();
    let filter = "person_id >= $1 AND person_id <= $2";
    let binds = [lo, hi];
    let (engagements, accounts, grants) = holdings_where(c, filter, &binds).await?;
    for (person, e) in engagements {
        if let Some(&i) = index.get(&person) {
            out[i].engagements.push(e);
        }
    }
    for a in accounts {
        if let Some(&i) = index.get(&a.person_id) {
            out[i].accounts.push(a);
        }
    }
    for g in grants {
        if let Some(&i) = index.get(&g.person_id) {
            out[i].grants.push(g);
        }
    }
    Ok(out)
}

/// What the planner reads of one person: the person if stored, their engagements, accounts
/// and grants (every state), each in the same order as the single-person reads give them.
#[derive(Debug, Clone, Default)]
pub struct StoredPerson {
    /// The person, if stored.
    pub person: Option<Person>,
    /// Their engagements, in id order.
    pub engagements: Vec<Engagement>,
    /// Their accounts, in system order.
    pub accounts: Vec<Account>,
    /// Their grants, in entitlement order.
    pub grants: Vec<Grant>,
}

/// [`StoredPerson`] for each of `ids` (those unknown too, with no person): four reads for the
/// whole batch, however many people it names.
pub async fn stored_people(
    c: &mut Conn,
    ids: &[String],
) -> Result<std::collections::HashMap<String, StoredPerson>> {
    let mut out: std::collections::HashMap<String, StoredPerson> = ids
        .iter()
        .map(|id| (id.clone(), StoredPerson::default()))
        .collect();
    for p in people_by_ids(c, ids).await? {
        if let Some(s) = out.get_mut(&p.id) {
            s.person = Some(p);
        }
    }
    let sqlite = c.is_sqlite();
    for chunk in ids.chunks(500) {
        let mut filter = String::from("person_id IN ");
        push_placeholders(&mut filter, 1, chunk.len(), sqlite);
        let (engagements, accounts, grants) = holdings_where(c, &filter, chunk).await?;
        for (person, e) in engagements {
            if let Some(s) = out.get_mut(&person) {
                s.engagements.push(e);
            }
        }
        for a in accounts {
            if let Some(s) = out.get_mut(&a.person_id) {
                s.accounts.push(a);
            }
        }
        for g in grants {
            if let Some(s) = out.get_mut(&g.person_id) {
                s.grants.push(g);
            }
        }
    }
    Ok(out)
}

/// Engagements (with their person's id), accounts and grants of the people `filter` (a
/// condition on `person_id` binding `binds`) selects, ordered by person then as
/// [`engagements_of`], [`accounts_of`] and [`grants_of`] order them.
async fn holdings_where(
    c: &mut Conn,
    filter: &str,
    binds: &[String],
) -> Result<(Vec<(String, Engagement)>, Vec<Account>, Vec<Grant>)> {
    let read = async |c: &mut Conn, sql: String| -> Result<Vec<Row>> {
        let mut q = db::query(db::AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b.clone());
        }
        q.fetch_all(&mut *c).await
    };
    let rows = read(
        c,
        format!("SELECT person_id, data FROM engagements WHERE {filter} ORDER BY person_id, id"),
    )
    .await?;
    let engagements = rows
        .iter()
        .map(|r| Ok((r.try_get(0)?, json(&r.try_get::<String, _>(1)?)?)))
        .collect::<Result<_>>()?;
    let rows = read(
        c,
        format!(
            "SELECT person_id, system, state, discovered FROM accounts WHERE {filter} ORDER BY person_id, system"
        ),
    )
    .await?;
    let accounts = rows
        .iter()
        .map(|r| {
            Ok(Account {
                person_id: r.try_get(0)?,
                system: r.try_get(1)?,
                state: parse::<AccountState>(&r.try_get::<String, _>(2)?)?,
                discovered: r.try_get::<i64, _>(3)? != 0,
            })
        })
        .collect::<Result<_>>()?;
    let rows = read(
        c,
        format!(
            "SELECT person_id, entitlement, source, source_ref, state, granted_at, expires_at
             FROM grants WHERE {filter} ORDER BY person_id, entitlement"
        ),
    )
    .await?;
    let grants = rows
        .iter()
        .map(|r| {
            Ok(Grant {
                person_id: r.try_get(0)?,
                entitlement: r.try_get(1)?,
                source: parse::<GrantSource>(&r.try_get::<String, _>(2)?)?,
                source_ref: r.try_get(3)?,
                state: parse::<GrantState>(&r.try_get::<String, _>(4)?)?,
                granted_at: r.try_get(5)?,
                expires_at: r.try_get(6)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok((engagements, accounts, grants))
}

/// The open runs (pending, running or awaiting approval) of each of `people`, in
/// (effective time, id) order: what [`earlier_open_runs`] filters, for a batch.
pub async fn open_runs_of_people(
    c: &mut Conn,
    people: &[String],
) -> Result<std::collections::HashMap<String, Vec<RunRow>>> {
    let mut out: std::collections::HashMap<String, Vec<RunRow>> = Default::default();
    let sqlite = c.is_sqlite();
    // Found by person (`runs_person`), then filtered by state. Left to itself, SQLite reads
    // them through `runs_state` instead: every open run, thousands under a backlog, for a
    // batch of a few people. `+state` keeps it off that index (SQLite only: for PostgreSQL `+`
    // is no operator on text, and its planner weighs the two by statistics).
    let state = if sqlite { "+state" } else { "state" };
    for chunk in people.chunks(500) {
        let mut sql = format!("SELECT {RUN_COLS} FROM runs WHERE person_id IN ");
        push_placeholders(&mut sql, 1, chunk.len(), sqlite);
        sql.push_str(&format!(
            " AND {state} IN ('pending', 'running', 'awaiting_approval') ORDER BY effective_at, id"
        ));
        let mut q = db::query(db::AssertSqlSafe(sql));
        for p in chunk {
            q = q.bind(p.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            let run = run_row(&r)?;
            out.entry(run.person_id.clone()).or_default().push(run);
        }
    }
    Ok(out)
}

/// The values of a person the people list filters on, as stored beside the person's document:
/// department, worker type, manager, and the lowercased name and email text search looks in.
pub(crate) fn person_columns(p: &Person) -> [Option<String>; 4] {
    [
        p.department.clone(),
        Some(p.worker_type.as_str().to_string()),
        p.manager.clone(),
        Some(format!(
            "{}\n{}",
            p.name.to_lowercase(),
            p.email.to_lowercase()
        )),
    ]
}
