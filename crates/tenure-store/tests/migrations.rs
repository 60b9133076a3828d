//! Schema versions: a database made before they were recorded (by tenure 0.1.0, the fixtures in
//! `fixtures/unversioned/`) is upgraded in place and every row stays readable; opening it again
//! changes nothing; a database newer than this binary, or one whose applied migration was
//! edited, is refused. On SQLite, and on a scratch PostgreSQL database with
//! `TENURE_TEST_DATABASE_URL`.

use sqlx::{Connection, Executor};
use tenure_core::approval::ApprovalState;
use tenure_core::audit::Verifier;
use tenure_core::timer::{TimerKind, TimerState};
use tenure_core::{GrantState, PersonStatus};
use tenure_store::db;
use tenure_store::{
    ApprovalFilter, MIGRATIONS, MigrationError, Store, StoreError, applied_migrations,
};

/// The SQLite database tenure 0.1.0 left (see `fixtures/unversioned/README.md`).
const SQLITE_FIXTURE: &[u8] = include_bytes!("fixtures/unversioned/tenure.db");
/// The same rows on PostgreSQL, as `pg_dump --inserts` wrote them.
const POSTGRES_FIXTURE: &str = include_str!("fixtures/unversioned/postgres.sql");

/// The tables whose rows the fixture holds, to count before and after.
const TABLES: [&str; 14] = [
    "people",
    "accounts",
    "grants",
    "events",
    "runs",
    "steps",
    "audit_log",
    "tokens",
    "token_identities",
    "timers",
    "access_requests",
    "approvals",
    "approval_approvers",
    "approval_decisions",
];

/// A SQLite database of its own in a temporary folder: its URL, and the folder to remove.
fn sqlite_scratch(contents: Option<&[u8]>) -> (String, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("tenure-migrations-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tenure.db");
    if let Some(bytes) = contents {
        std::fs::write(&file, bytes).unwrap();
    }
    (format!("sqlite://{}?mode=rwc", file.display()), dir)
}

/// A fresh PostgreSQL database, when the tests run on PostgreSQL.
async fn postgres_scratch(what: &str) -> Option<String> {
    let url = std::env::var("TENURE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    let name = format!("tenure_{what}_{}", uuid::Uuid::new_v4().simple());
    Some(
        tenure_store::create_scratch_database(&url, &name)
            .await
            .unwrap(),
    )
}

/// How many rows each table holds.
async fn counts(store: &Store) -> Vec<(&'static str, i64)> {
    let mut c = store.reader().await.unwrap();
    let mut out = Vec::new();
    for t in TABLES {
        let row = db::query(db::AssertSqlSafe(format!("SELECT COUNT(*) FROM {t}")))
            .fetch_one(&mut c)
            .await
            .unwrap();
        out.push((t, row.get::<i64, _>(0)));
    }
    out
}

/// A SCIM user as tenure 0.1.0 stored one (the fixtures hold none): its row and value index.
const SCIM_USER_BEFORE: [&str; 4] = [
    "INSERT INTO scim_users (id, user_name_ci, deleted, lifecycle, version, created_at, updated_at, doc) \
     VALUES ('s1', 'goldsmith@example.com', 0, 'none', 1, 1, 1, '{\"userName\":\"goldsmith@example.com\"}')",
    "INSERT INTO scim_values (resource_id, attr, idx, sub, val) VALUES ('s1', 'id', 0, '', 's1')",
    "INSERT INTO scim_values (resource_id, attr, idx, sub, val) VALUES ('s1', 'username', 0, '', 'goldsmith@example.com')",
    "INSERT INTO scim_values (resource_id, attr, idx, sub, val) VALUES ('s1', 'emails', 0, 'value', 'g.smith@example.com')",
];

/// Substring filters on the SCIM user stored before the upgrade find it through the trigram
/// indexes the upgrade filled.
async fn check_scim_index(c: &mut tenure_store::Conn, sqlite: bool) {
    let co = |attr: &str, sub: &str, val: &str| tenure_store::Cond::Cmp {
        attr: attr.into(),
        sub: sub.into(),
        op: tenure_store::CondOp::Co,
        val: val.into(),
    };
    for cond in [
        co("username", "", "smith@"),
        tenure_store::Cond::Element {
            attr: "emails".into(),
            cond: Box::new(co("", "value", "g.smi")),
        },
    ] {
        let (total, users) = tenure_store::search_scim_users(c, Some(&cond), None, 0, 10)
            .await
            .unwrap();
        assert_eq!(total, 1, "{cond:?}");
        assert_eq!(users[0].0.id, "s1");
    }
    let none = co("username", "", "smithers");
    let (total, _) = tenure_store::search_scim_users(c, Some(&none), None, 0, 10)
        .await
        .unwrap();
    assert_eq!(total, 0);
    // PostgreSQL reads a table this small whole; the store's own tests cover its index. On
    // SQLite a `co` reads the per-user index (migration 4), an `ew` the per-value one (3).
    for (op, index) in [
        (tenure_store::CondOp::Co, "scim_users_trigram"),
        (tenure_store::CondOp::Ew, "scim_values_trigram"),
    ] {
        let cond = tenure_store::Cond::Cmp {
            attr: "username".into(),
            sub: String::new(),
            op,
            val: "example.com".into(),
        };
        let (total, _) = tenure_store::search_scim_users(c, Some(&cond), None, 0, 10)
            .await
            .unwrap();
        assert_eq!(total, 1, "{cond:?}");
        let plan = tenure_store::scim_search_plan(c, Some(&cond))
            .await
            .unwrap()
            .join("\n");
        if sqlite {
            assert!(plan.contains(index), "{cond:?}: {plan}");
        }
    }
}

/// Opens the fixture's database with this binary and reads everything back through the
/// store's queries (the two fixtures differ only in how many audit entries they hold).
async fn check_upgraded(url: &str, audit_entries: i64) {
    let store = Store::connect(url).await.unwrap();
    let latest = MIGRATIONS.last().unwrap();
    assert_eq!(store.schema_version().version, latest.version);
    assert_eq!(store.schema_version().name, latest.name);
    let mut c = store.reader().await.unwrap();
    let applied = applied_migrations(&mut c).await.unwrap();
    assert_eq!(
        applied
            .iter()
            .map(|a| (a.version, a.checksum.clone()))
            .collect::<Vec<_>>(),
        MIGRATIONS
            .iter()
            .map(|m| (m.version, m.checksum()))
            .collect::<Vec<_>>()
    );

    // People, with the list's filter columns.
    let people = tenure_store::list_people(&mut c, None, 100).await.unwrap();
    let ids: Vec<(&str, PersonStatus)> = people.iter().map(|p| (&*p.id, p.status)).collect();
    assert_eq!(
        ids,
        [
            ("E001", PersonStatus::Active),
            ("E002", PersonStatus::Active),
            ("E010", PersonStatus::Active),
            ("E900", PersonStatus::Terminated)
        ]
    );
    let sales = tenure_store::PeopleFilter {
        department: Some("Sales"),
        limit: 10,
        ..Default::default()
    };
    let found = tenure_store::people_matching(&mut c, &sales).await.unwrap();
    assert_eq!(found.iter().map(|p| &*p.id).collect::<Vec<_>>(), ["E010"]);

    // Accounts and grants: the leaver's revoked, the others' granted.
    let mut granted = 0;
    for p in &people {
        assert!(
            !tenure_store::accounts_of(&mut c, &p.id)
                .await
                .unwrap()
                .is_empty()
        );
        for (g, _system) in tenure_store::grants_of(&mut c, &p.id).await.unwrap() {
            if p.id == "E900" {
                assert_eq!(g.state, GrantState::Revoked, "{g:?}");
            } else if g.state == GrantState::Granted {
                granted += 1;
            }
        }
    }
    assert_eq!(granted, 12);

    // Runs and their steps.
    let runs = tenure_store::list_runs(&mut c, None, None, None, 100)
        .await
        .unwrap();
    assert_eq!(runs.len(), 7);
    let mut steps = 0;
    for r in &runs {
        steps += tenure_store::steps_of_run(&mut c, &r.id)
            .await
            .unwrap()
            .len();
        if let Some(event) = &r.event_id {
            assert!(
                tenure_store::get_event(&mut c, event)
                    .await
                    .unwrap()
                    .is_some()
            );
        }
    }
    assert_eq!(steps, 40);

    // The audit chain verifies up to its head.
    let mut verifier = Verifier::default();
    let entries = tenure_store::audit_page(&mut c, 0, None, 10_000)
        .await
        .unwrap();
    for e in &entries {
        verifier.push(e).unwrap();
    }
    let (seq, hash) = tenure_store::audit_head(&mut c).await.unwrap();
    assert_eq!(verifier.finish(seq, &hash).unwrap(), audit_entries);

    // Tokens, and the pending approval in its approvers' queues.
    assert_eq!(tenure_store::list_tokens(&mut c).await.unwrap().len(), 4);
    let pending = tenure_store::list_approvals(
        &mut c,
        &ApprovalFilter {
            states: &[ApprovalState::Pending],
            approver: Some("E001"),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        pending.iter().map(|a| &*a.person_id).collect::<Vec<_>>(),
        ["E010"]
    );
    // Its escalation and deadline read as typed timers of that approval.
    for kind in [TimerKind::ApprovalEscalate, TimerKind::ApprovalDeadline] {
        let timers = tenure_store::timers_of_kind(&mut c, kind, TimerState::Pending)
            .await
            .unwrap();
        assert_eq!(timers.len(), 1, "{kind}");
        let timer = timers[0].timer.as_ref().unwrap();
        assert_eq!(timer.kind(), kind);
        assert_eq!(timer.subject(), pending[0].id);
    }
    check_scim_index(&mut c, url.starts_with("sqlite:")).await;
    drop(c);
    let before = counts(&store).await;
    store.close().await;

    // Opening it again changes nothing: no migration applied twice, no row added.
    let store = Store::connect(url).await.unwrap();
    let mut c = store.reader().await.unwrap();
    assert_eq!(applied_migrations(&mut c).await.unwrap(), applied);
    drop(c);
    assert_eq!(counts(&store).await, before);
    store.close().await;
}

#[tokio::test]
async fn a_sqlite_database_made_before_versions_is_upgraded_in_place() {
    let (url, dir) = sqlite_scratch(Some(SQLITE_FIXTURE));
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    for statement in SCIM_USER_BEFORE {
        c.execute(statement).await.unwrap();
    }
    c.close().await.unwrap();
    check_upgraded(&url, 66).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_postgres_database_made_before_versions_is_upgraded_in_place() {
    let Some(url) = postgres_scratch("unversioned").await else {
        return;
    };
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(POSTGRES_FIXTURE))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    // A connection of its own: the dump leaves its session's search_path empty.
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    for statement in SCIM_USER_BEFORE {
        c.execute(statement).await.unwrap();
    }
    c.close().await.unwrap();
    check_upgraded(&url, 70).await;
}

/// Changes the recorded migrations of a database this binary made, then opens it again.
async fn reopen_after(url: &str, change: &str) -> StoreError {
    let store = Store::connect(url).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.conn()
        .execute(db::AssertSqlSafe(change.to_string()))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    store.close().await;
    Store::connect(url).await.unwrap_err()
}

async fn check_refusals(url: &str, url2: &str) {
    let latest = MIGRATIONS.last().unwrap().version;
    let newer = format!(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) \
         VALUES ({}, 'from-the-future', 'x', 1)",
        latest + 1
    );
    match reopen_after(url, &newer).await {
        StoreError::Migration(e @ MigrationError::TooNew { .. }) => {
            assert_eq!(
                e,
                MigrationError::TooNew {
                    database: latest + 1,
                    binary: latest
                }
            );
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("version {}", latest + 1))
                    && msg.contains(&format!("version {latest}")),
                "{msg}"
            );
        }
        other => panic!("opened a newer database: {other}"),
    }

    let edited = "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1";
    match reopen_after(url2, edited).await {
        StoreError::Migration(MigrationError::Changed {
            version,
            recorded,
            expected,
            database,
            binary,
            ..
        }) => {
            assert_eq!(version, 1);
            assert_eq!(recorded, "edited");
            assert_eq!(expected, MIGRATIONS[0].checksum());
            assert_eq!((database, binary), (latest, latest));
        }
        other => panic!("opened an edited database: {other}"),
    }
}

#[tokio::test]
async fn a_newer_or_edited_schema_is_refused() {
    let (url, dir) = sqlite_scratch(None);
    let (url2, dir2) = sqlite_scratch(None);
    check_refusals(&url, &url2).await;
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir2).unwrap();
    if let (Some(url), Some(url2)) = (
        postgres_scratch("newer").await,
        postgres_scratch("edited").await,
    ) {
        check_refusals(&url, &url2).await;
    }
}

async fn check_fresh(url: &str) {
    let store = Store::connect(url).await.unwrap();
    let mut c = store.reader().await.unwrap();
    let applied = applied_migrations(&mut c).await.unwrap();
    assert_eq!(
        applied.iter().map(|a| a.version).collect::<Vec<_>>(),
        MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>()
    );
    assert!(applied.iter().all(|a| a.applied_at > 0));
    drop(c);
    store.close().await;
    let store = Store::connect(url).await.unwrap();
    let mut c = store.reader().await.unwrap();
    assert_eq!(applied_migrations(&mut c).await.unwrap(), applied);
}

#[tokio::test]
async fn a_new_database_records_every_migration_once() {
    let (url, dir) = sqlite_scratch(None);
    check_fresh(&url).await;
    std::fs::remove_dir_all(&dir).unwrap();
    if let Some(url) = postgres_scratch("fresh").await {
        check_fresh(&url).await;
    }
}

async fn check_together(url: &str) {
    let (a, b) = tokio::join!(Store::connect(url), Store::connect(url));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.schema_version(), b.schema_version());
    let mut c = a.reader().await.unwrap();
    let applied = applied_migrations(&mut c).await.unwrap();
    assert_eq!(applied.len(), MIGRATIONS.len());
    drop(c);
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn instances_opening_one_new_database_together_take_turns() {
    let (url, dir) = sqlite_scratch(None);
    check_together(&url).await;
    std::fs::remove_dir_all(&dir).unwrap();
    if let Some(url) = postgres_scratch("together").await {
        check_together(&url).await;
    }
}
