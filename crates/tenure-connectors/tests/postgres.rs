//! The `postgres` connector against the PostgreSQL server on this machine, in a database (and
//! under role names) the test creates and drops.

mod support;

use sqlx::postgres::PgPool;
use sqlx::{Connection, Executor, Row};
use support::*;
use tenure_connectors::postgres::{PostgresConnector, PostgresSettings};
use tenure_connectors::{Connector, ConnectorError, InventoryAccount, attribute};

/// The server to test against: `TENURE_TEST_DATABASE_URL`'s server, else 127.0.0.1:5432.
fn admin_url() -> String {
    match std::env::var("TENURE_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => "postgres://postgres@127.0.0.1:5432/postgres".into(),
    }
}

fn with_database(url: &str, db: &str) -> String {
    let mut u = url::Url::parse(url).expect("test database url");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

/// A scratch database and role prefix, dropped (with every role of the prefix) on `finish`.
struct Scratch {
    admin: PgPool,
    db: String,
    url: String,
    prefix: String,
}

impl Scratch {
    async fn new() -> Option<Scratch> {
        let admin = match PgPool::connect(&admin_url()).await {
            Ok(p) => p,
            Err(e) => {
                unavailable(&format!("PostgreSQL at {} ({e})", admin_url()));
                return None;
            }
        };
        let id = unique();
        let db = format!("tenure_conn_{id}");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .await
            .unwrap();
        let url = with_database(&admin_url(), &db);
        Some(Scratch {
            admin,
            db,
            url,
            prefix: format!("t{id}_"),
        })
    }

    fn connector(&self, extra: serde_json::Value) -> PostgresConnector {
        let mut map = serde_json::json!({ "url": self.url, "role_prefix": self.prefix });
        for (k, v) in extra.as_object().unwrap() {
            map[k] = v.clone();
        }
        PostgresConnector::from_map(map.as_object().unwrap()).unwrap()
    }

    /// A pool on the scratch database as the server's administrator, to look and prepare.
    async fn db(&self) -> PgPool {
        PgPool::connect(&self.url).await.unwrap()
    }

    async fn finish(self) {
        let roles: Vec<String> =
            sqlx::query_scalar("SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)")
                .bind(&self.prefix)
                .fetch_all(&self.admin)
                .await
                .unwrap();
        self.admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.db
            )))
            .await
            .unwrap();
        for r in roles {
            let q = tenure_connectors::postgres::quote_ident(&r).unwrap();
            self.admin
                .execute(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS {q}")))
                .await
                .unwrap();
        }
    }
}

async fn can_login(pool: &PgPool, role: &str) -> Option<bool> {
    sqlx::query_scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1")
        .bind(role)
        .fetch_optional(pool)
        .await
        .unwrap()
}

async fn groups_of(pool: &PgPool, role: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
           JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1 ORDER BY 1",
    )
    .bind(role)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn hire_transfer_leave_against_real_postgres() {
    let Some(s) = Scratch::new().await else {
        return;
    };
    let db = s.db().await;
    let p = &s.prefix;
    // Group roles, one with a hostile name.
    let crm = format!("{p}crm_read");
    let hostile_group = format!("{p}we\"ird; DROP ROLE postgres; --");
    for g in [&crm, &hostile_group] {
        let q = tenure_connectors::postgres::quote_ident(g).unwrap();
        db.execute(sqlx::AssertSqlSafe(format!("CREATE ROLE {q} NOLOGIN")))
            .await
            .unwrap();
    }
    let c = s.connector(serde_json::json!({}));
    c.health().await.unwrap();

    // A person whose HR id would break naive SQL.
    let ada = person("ada\"; DROP TABLE x; --");
    let role = c.role_name(&ada.id);
    let e_crm = entitlement("wh:crm", "wh", &crm);
    let e_hostile = entitlement("wh:weird", "wh", &hostile_group);

    // Hire, twice (a retry after a crash): the second is "already done".
    c.create_account(&op("1"), &ada).await.unwrap();
    c.create_account(&op("1"), &ada).await.unwrap();
    c.grant(&op("2"), &ada, &e_crm).await.unwrap();
    c.grant(&op("2"), &ada, &e_crm).await.unwrap();
    assert_eq!(can_login(&db, &role).await, Some(true));
    assert_eq!(groups_of(&db, &role).await, vec![crm.clone()]);

    // Transfer: one group goes, another comes.
    c.revoke(&op("3"), &ada, &e_crm).await.unwrap();
    c.revoke(&op("3"), &ada, &e_crm).await.unwrap();
    c.grant(&op("4"), &ada, &e_hostile).await.unwrap();
    assert_eq!(groups_of(&db, &role).await, vec![hostile_group.clone()]);
    assert_eq!(
        c.list_memberships(&ada.id).await.unwrap(),
        vec![hostile_group.clone()]
    );
    let listed = c.list_accounts().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].person_id, ada.id);
    assert!(listed[0].enabled);

    // The person signs in; leaving disables the role and ends the session.
    let mut url = url::Url::parse(&s.url).unwrap();
    url.set_username(&role).unwrap();
    let mut session = sqlx::PgConnection::connect(url.as_str()).await.unwrap();
    let who: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut session)
        .await
        .unwrap();
    assert_eq!(who, role);
    c.disable_account(&op("5"), &ada).await.unwrap();
    c.disable_account(&op("5"), &ada).await.unwrap();
    assert_eq!(can_login(&db, &role).await, Some(false));
    assert!(
        sqlx::query("SELECT 1")
            .fetch_one(&mut session)
            .await
            .is_err(),
        "the open session must have been terminated"
    );
    assert!(
        sqlx::PgConnection::connect(url.as_str()).await.is_err(),
        "a disabled role must not sign in"
    );
    assert!(!c.list_accounts().await.unwrap()[0].enabled);

    // Revoke on the disabled account, then delete, twice; a revoke after delete is a no-op.
    c.revoke(&op("6"), &ada, &e_hostile).await.unwrap();
    c.delete_account(&op("7"), &ada).await.unwrap();
    c.delete_account(&op("7"), &ada).await.unwrap();
    c.revoke(&op("8"), &ada, &e_hostile).await.unwrap();
    c.disable_account(&op("9"), &ada).await.unwrap();
    assert_eq!(can_login(&db, &role).await, None);
    assert!(c.list_accounts().await.unwrap().is_empty());
    // The hostile names did nothing but name.
    assert_eq!(can_login(&db, "postgres").await, Some(true));
    db.close().await;
    s.finish().await;
}

#[tokio::test]
async fn delete_reassigns_owned_objects() {
    let Some(s) = Scratch::new().await else {
        return;
    };
    let db = s.db().await;
    let owner = format!("{}owner", s.prefix);
    db.execute(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE \"{owner}\" NOLOGIN"
    )))
    .await
    .unwrap();
    let c = s.connector(serde_json::json!({ "reassign_owned_to": owner }));
    let bob = person("bob");
    let role = c.role_name("bob");
    c.create_account(&op("1"), &bob).await.unwrap();
    db.execute(sqlx::AssertSqlSafe(format!(
        "GRANT CREATE ON SCHEMA public TO \"{role}\""
    )))
    .await
    .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE bobs_work (x int); ALTER TABLE bobs_work OWNER TO \"{role}\""
    )))
    .execute(&db)
    .await
    .unwrap();
    c.delete_account(&op("2"), &bob).await.unwrap();
    assert_eq!(can_login(&db, &role).await, None);
    let table_owner: String =
        sqlx::query("SELECT tableowner::text FROM pg_tables WHERE tablename = 'bobs_work'")
            .fetch_one(&db)
            .await
            .unwrap()
            .get(0);
    assert_eq!(table_owner, owner);
    db.close().await;
    s.finish().await;
}

#[tokio::test]
async fn errors_are_classified() {
    let Some(s) = Scratch::new().await else {
        return;
    };
    let c = s.connector(serde_json::json!({}));
    let eve = person("eve");

    // Schema-level refusals are permanent.
    c.create_account(&op("1"), &eve).await.unwrap();
    let missing = entitlement("wh:none", "wh", &format!("{}no_such_group", s.prefix));
    let e = c.grant(&op("2"), &eve, &missing).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Permanent(_)), "{e}");
    assert!(e.to_string().contains("42704"), "{e}");
    let e = c
        .enable_account(&op("3"), &person("nobody"))
        .await
        .unwrap_err();
    assert!(matches!(e, ConnectorError::Permanent(_)), "{e}");
    let e = c
        .create_account(&op("4"), &person(&"x".repeat(70)))
        .await
        .unwrap_err();
    assert!(matches!(e, ConnectorError::Permanent(_)), "{e}");
    assert!(e.to_string().contains("63 bytes"), "{e}");

    // An unreachable server is retryable.
    let map = serde_json::json!({
        "url": "postgres://postgres@127.0.0.1:1/postgres",
        "timeout_ms": 1000,
    });
    let down = PostgresConnector::new(
        PostgresSettings::from_map(map.as_object().unwrap()).unwrap(),
        None,
    )
    .unwrap();
    let e = down.create_account(&op("5"), &eve).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(down.health().await.unwrap_err().is_retryable());
    s.finish().await;
}

/// Every role of the prefix pages out in name order, the ones made by hand too (no person id,
/// or a comment that is not tenure's), with its login flag, its name less the prefix, and the
/// roles it is a member of; group roles outside the prefix are not accounts.
#[tokio::test]
async fn inventory_pages_through_every_role_of_the_prefix() {
    let Some(s) = Scratch::new().await else {
        return;
    };
    let db = s.db().await;
    let p = s.prefix.clone();
    let run = |sql: String| {
        let db = db.clone();
        async move {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&db)
                .await
                .unwrap();
        }
    };
    // Group roles under a prefix of their own, as a warehouse keeps them.
    let crm = format!("g{p}crm_read");
    let vpn = format!("g{p}vpn");
    for g in [&crm, &vpn] {
        run(format!("CREATE ROLE \"{g}\" NOLOGIN")).await;
    }
    let c = s.connector(serde_json::json!({}));
    let e_crm = entitlement("wh:crm", "wh", &crm);
    let e_vpn = entitlement("wh:vpn", "wh", &vpn);
    for id in ["dan", "ada", "cat", "bob"] {
        c.create_account(&op(id), &person(id)).await.unwrap();
    }
    c.grant(&op("g1"), &person("ada"), &e_vpn).await.unwrap();
    c.grant(&op("g2"), &person("ada"), &e_crm).await.unwrap();
    c.grant(&op("g3"), &person("bob"), &e_vpn).await.unwrap();
    c.disable_account(&op("d1"), &person("cat")).await.unwrap();
    // Behind tenure's back: a login role with no comment and a membership, and a disabled
    // role whose comment is someone else's.
    run(format!(
        "CREATE ROLE \"{p}zed\" LOGIN; GRANT \"{crm}\" TO \"{p}zed\""
    ))
    .await;
    run(format!(
        "CREATE ROLE \"{p}eve\" NOLOGIN; COMMENT ON ROLE \"{p}eve\" IS 'made by the DBA'"
    ))
    .await;

    let (sizes, got) = support::read_inventory(&c, 2).await;
    assert_eq!(sizes, [2, 2, 2]);
    let account =
        |name: &str, person: Option<&str>, enabled: bool, groups: &[&String]| InventoryAccount {
            key: format!("{p}{name}"),
            person_id: person.map(str::to_string),
            enabled,
            attributes: [(attribute::USERNAME.to_string(), name.to_string())].into(),
            memberships: groups.iter().map(|g| g.to_string()).collect(),
        };
    assert_eq!(
        got,
        vec![
            account("ada", Some("ada"), true, &[&crm, &vpn]),
            account("bob", Some("bob"), true, &[&vpn]),
            account("cat", Some("cat"), false, &[]),
            account("dan", Some("dan"), true, &[]),
            account("eve", None, false, &[]),
            account("zed", None, true, &[&crm]),
        ]
    );
    db.close().await;
    for g in [&crm, &vpn] {
        s.admin
            .execute(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS \"{g}\"")))
            .await
            .unwrap();
    }
    s.finish().await;
}
