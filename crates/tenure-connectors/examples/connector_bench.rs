//! Operations per second of the `postgres` and `ldap` connectors against the servers on this
//! machine: PostgreSQL at `TENURE_TEST_DATABASE_URL` (else postgres://postgres@127.0.0.1:5432),
//! and a throwaway slapd started here (Debian's slapd must be installed).
//!
//!   cargo run --release -p tenure-connectors --example connector_bench -- postgres 2000 8
//!   cargo run --release -p tenure-connectors --example connector_bench -- ldap 2000 8
//!
//! For each of N people it runs create, grant, disable and delete, `CONCURRENCY` people at a
//! time, and prints each phase's rate. Everything it creates is removed at the end.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Instant;
use support::*;
use tenure_connectors::Connector;
use tenure_core::{Entitlement, Person};

type Phase = fn(Arc<dyn Connector>, Person, Entitlement) -> futures_like::BoxFut;

mod futures_like {
    pub type BoxFut = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), tenure_connectors::ConnectorError>> + Send>,
    >;
}

async fn phase(
    name: &str,
    c: &Arc<dyn Connector>,
    people: &[Person],
    ent: &Entitlement,
    concurrency: usize,
    f: Phase,
) {
    let start = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut set = tokio::task::JoinSet::new();
    for p in people {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let fut = f(c.clone(), p.clone(), ent.clone());
        set.spawn(async move {
            let r = fut.await;
            drop(permit);
            r
        });
    }
    let mut failures = 0;
    while let Some(r) = set.join_next().await {
        if let Err(e) = r.unwrap() {
            failures += 1;
            if failures <= 3 {
                eprintln!("{name}: {e}");
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:<8} {:>6} ops in {secs:>6.2} s = {:>8.0} ops/s ({failures} failed)",
        people.len(),
        people.len() as f64 / secs
    );
}

async fn run_all(c: Arc<dyn Connector>, n: usize, concurrency: usize, ent: Entitlement) {
    let people: Vec<Person> = (0..n).map(|i| person(&format!("bench{i:06}"))).collect();
    phase("create", &c, &people, &ent, concurrency, |c, p, _| {
        Box::pin(async move { c.create_account(&op("b"), &p).await })
    })
    .await;
    phase("grant", &c, &people, &ent, concurrency, |c, p, e| {
        Box::pin(async move { c.grant(&op("b"), &p, &e).await })
    })
    .await;
    phase("revoke", &c, &people, &ent, concurrency, |c, p, e| {
        Box::pin(async move { c.revoke(&op("b"), &p, &e).await })
    })
    .await;
    phase("disable", &c, &people, &ent, concurrency, |c, p, _| {
        Box::pin(async move { c.disable_account(&op("b"), &p).await })
    })
    .await;
    phase("delete", &c, &people, &ent, concurrency, |c, p, _| {
        Box::pin(async move { c.delete_account(&op("b"), &p).await })
    })
    .await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map(String::as_str).unwrap_or("postgres");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let concurrency: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(8);
    println!("{kind}: {n} people, {concurrency} at a time");
    match kind {
        "postgres" => postgres(n, concurrency).await,
        "ldap" => ldap(n, concurrency).await,
        other => panic!("unknown kind `{other}`: postgres or ldap"),
    }
}

async fn postgres(n: usize, concurrency: usize) {
    use sqlx::postgres::PgPool;
    let admin_url = std::env::var("TENURE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin = PgPool::connect(&admin_url).await.expect("PostgreSQL");
    let id = unique();
    let db = format!("tenure_bench_{id}");
    let prefix = format!("b{id}_");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&admin)
        .await
        .unwrap();
    let group = format!("{prefix}group");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE \"{group}\" NOLOGIN"
    )))
    .execute(&admin)
    .await
    .unwrap();
    let mut url = url::Url::parse(&admin_url).unwrap();
    url.set_path(&format!("/{db}"));
    let map = serde_json::json!({
        "url": url.as_str(), "role_prefix": prefix, "max_connections": concurrency,
    });
    let c =
        tenure_connectors::postgres::PostgresConnector::from_map(map.as_object().unwrap()).unwrap();
    run_all(
        Arc::new(c),
        n,
        concurrency,
        entitlement("wh:g", "wh", &group),
    )
    .await;
    for sql in [
        format!("DROP DATABASE {db} WITH (FORCE)"),
        format!("DROP ROLE \"{group}\""),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&admin)
            .await
            .unwrap();
    }
}

async fn ldap(n: usize, concurrency: usize) {
    use support::slapd::{ADMIN_DN, ADMIN_PASSWORD, SUFFIX, Slapd};
    let slapd = Slapd::start().expect("slapd is installed");
    support::slapd::seed(&slapd.url, &["staff"], "cn=nobody").await;
    let map = serde_json::json!({
        "url": slapd.url, "bind_dn": ADMIN_DN, "bind_password_env": "UNUSED",
        "users_dn": format!("ou=people,{SUFFIX}"),
        "disabled_users_dn": format!("ou=disabled,{SUFFIX}"),
        "groups_dn": format!("ou=groups,{SUFFIX}"),
        "empty_group_member": "cn=nobody",
    });
    let s = tenure_connectors::ldap::LdapSettings::from_map(map.as_object().unwrap()).unwrap();
    let c = tenure_connectors::ldap::LdapConnector::new(
        s,
        tenure_connectors::settings::Secret::new(ADMIN_PASSWORD),
    );
    run_all(
        Arc::new(c),
        n,
        concurrency,
        entitlement("dir:staff", "dir", "staff"),
    )
    .await;
}
