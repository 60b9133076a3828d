//! Reconciliation end to end on the real binary, against real target systems changed behind
//! tenure's back: a PostgreSQL database's roles and an OpenLDAP directory (slapd, as the
//! connector tests start it). Found over the API and the CLI, corrected through runs.

mod common;
#[path = "../../tenure-connectors/tests/support/slapd.rs"]
#[allow(dead_code)]
mod slapd;

use common::*;
use ldap3::{Mod, Scope, SearchEntry};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Executor, Row};
use std::collections::HashSet;

/// For `slapd.rs`: a missing slapd skips the test here and fails it in CI.
pub fn unavailable(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is required in CI (CI=true) but is not available");
    }
    eprintln!("SKIPPED: {what} is not available here; this test did not run");
}

const PEOPLE: &str = "ou=people,dc=example,dc=com";
const DISABLED: &str = "ou=disabled,dc=example,dc=com";
const GROUPS: &str = "ou=groups,dc=example,dc=com";
const PLACEHOLDER: &str = "cn=placeholder,dc=example,dc=com";

/// The PostgreSQL server the target database lives on.
fn target_admin_url() -> String {
    postgres_url().unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn with_database(url: &str, db: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_path(&format!("/{db}"));
    u.to_string()
}

/// A scratch database standing for a client's PostgreSQL, with a role prefix of its own.
struct Target {
    admin: sqlx::PgPool,
    db: String,
    url: String,
    prefix: String,
    groups: String,
}

impl Target {
    async fn new() -> Target {
        let admin = sqlx::PgPool::connect(&target_admin_url()).await.unwrap();
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
        let db = format!("tenure_target_{id}");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .await
            .unwrap();
        let t = Target {
            url: with_database(&target_admin_url(), &db),
            admin,
            db,
            prefix: format!("r{id}_"),
            groups: format!("g{id}_"),
        };
        for g in ["readers", "admins"] {
            t.sql(&format!("CREATE ROLE {}{g} NOLOGIN", t.groups)).await;
        }
        t
    }

    async fn sql(&self, sql: &str) {
        self.admin
            .execute(sqlx::AssertSqlSafe(sql.to_string()))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Whether the role exists, and can log in.
    async fn login(&self, who: &str) -> Option<bool> {
        sqlx::query("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1")
            .bind(format!("{}{who}", self.prefix))
            .fetch_optional(&self.admin)
            .await
            .unwrap()
            .map(|r| r.get(0))
    }

    async fn member_of(&self, who: &str) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
               JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1 ORDER BY 1",
        )
        .bind(format!("{}{who}", self.prefix))
        .fetch_all(&self.admin)
        .await
        .unwrap()
    }

    async fn finish(self) {
        let roles: Vec<String> = sqlx::query_scalar(
            "SELECT rolname::text FROM pg_roles WHERE starts_with(rolname, $1) OR starts_with(rolname, $2)",
        )
        .bind(&self.prefix)
        .bind(&self.groups)
        .fetch_all(&self.admin)
        .await
        .unwrap();
        self.sql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db))
            .await;
        for r in roles {
            self.sql(&format!("DROP ROLE IF EXISTS {r}")).await;
        }
    }
}

fn config(target: &Target, ldap_url: &str) -> String {
    format!(
        r#"
[[systems]]
id = "db"
connector = "postgres"
retention = "delete"
[systems.settings]
url = "{db_url}"
role_prefix = "{prefix}"
[systems.reconcile]
correlate = [{{ account = "username", person = "id" }}]
actions = {{ stale = "disable", excess = "revoke", unlinked = "link", orphan = "disable" }}
max_disable_percent = 100

[[systems]]
id = "dir"
connector = "ldap"
retention = "keep"
[systems.settings]
url = "{ldap_url}"
starttls = true
tls_insecure_skip_verify = true
bind_dn = "{admin_dn}"
bind_password_env = "E2E_LDAP_PASSWORD"
users_dn = "{PEOPLE}"
disabled_users_dn = "{DISABLED}"
groups_dn = "{GROUPS}"
empty_group_member = "{PLACEHOLDER}"
page_size = 2
[systems.reconcile]
actions = {{ stale = "disable", excess = "revoke", orphan = "disable" }}
max_disable_percent = 100

[[entitlements]]
id = "db:readers"
system = "db"
name = "{groups}readers"
[[entitlements]]
id = "db:admins"
system = "db"
name = "{groups}admins"
[[entitlements]]
id = "dir:vpn"
system = "dir"
name = "vpn users"
[[entitlements]]
id = "dir:developers"
system = "dir"
name = "developers"
"#,
        db_url = target.url,
        prefix = target.prefix,
        groups = target.groups,
        admin_dn = slapd::ADMIN_DN,
    )
}

/// Starts a reconciliation over the API and waits for its end.
async fn reconcile(s: &Server, system: &str) -> Value {
    reconciled(s, system, false).await
}

/// Waits for every `remediate` run to end; returns their people and states.
async fn remediated(s: &Server) -> Vec<(String, String)> {
    let runs = s.get("/api/v1/runs?kind=remediate").await;
    let mut out = Vec::new();
    for r in runs["items"].as_array().unwrap() {
        let run = s.wait_run(r["id"].as_str().unwrap()).await;
        out.push((
            run["person_id"].as_str().unwrap().to_string(),
            run["state"].as_str().unwrap().to_string(),
        ));
    }
    out.sort();
    out
}

fn situations(r: &Value) -> Vec<(String, String, Option<String>)> {
    let mut v: Vec<_> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["situation"].as_str().unwrap().to_string(),
                f["account"].as_str().unwrap().to_string(),
                f["entitlement"].as_str().map(str::to_string),
            )
        })
        .collect();
    v.sort();
    v
}

fn sit(s: &str, k: &str, e: Option<&str>) -> (String, String, Option<String>) {
    (s.to_string(), k.to_string(), e.map(str::to_string))
}

async fn ldap_entry(url: &str, base: &str, uid: &str) -> Option<SearchEntry> {
    let mut l = slapd::admin(url).await;
    let (rs, _) = l
        .search(base, Scope::OneLevel, &format!("(uid={uid})"), vec!["*"])
        .await
        .unwrap()
        .success()
        .unwrap();
    rs.into_iter().next().map(SearchEntry::construct)
}

async fn group_members(url: &str, group: &str) -> Vec<String> {
    slapd::members(url, &format!("cn={group},{GROUPS}")).await
}

#[tokio::test]
async fn drift_on_real_postgres_and_ldap_is_found_and_corrected_through_runs() {
    let Some(ldap) = slapd::Slapd::start() else {
        return;
    };
    slapd::seed(&ldap.url, &["vpn users", "developers"], PLACEHOLDER).await;
    let target = Target::new().await;
    let env = TestEnv::new(
        &config(&target, &ldap.url),
        &[("all", "entitlements = [\"db:readers\", \"dir:vpn\"]\n")],
    )
    .await;
    let s = env
        .start_with_env(&[("E2E_LDAP_PASSWORD", slapd::ADMIN_PASSWORD)])
        .await;
    s.apply_ok(&hire("ada", "Engineering")).await;
    s.apply_ok(&hire("bob", "Engineering")).await;
    s.apply_ok(&json!({"type": "leave", "person": {"id": "bob"}}))
        .await;
    assert_eq!(target.login("bob").await, None, "db deletes leavers' roles");
    assert!(ldap_entry(&ldap.url, DISABLED, "bob").await.is_some());

    // Behind tenure's back: a role nobody owns, the leaver's role made again by hand (no
    // comment: found by the username rule), and a membership tenure never granted.
    let (p, g) = (&target.prefix, &target.groups);
    target.sql(&format!("CREATE ROLE {p}mallory LOGIN")).await;
    target.sql(&format!("CREATE ROLE {p}bob LOGIN")).await;
    target.sql(&format!("GRANT {g}admins TO {p}ada")).await;
    // And in the directory: the leaver's entry moved back (enabled again), an entry nobody
    // owns, and ada added to a group.
    let mut l = slapd::admin(&ldap.url).await;
    l.modifydn(
        &format!("uid=bob,{DISABLED}"),
        "uid=bob",
        true,
        Some(PEOPLE),
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<HashSet<_>>();
    l.add(
        &format!("uid=eve,{PEOPLE}"),
        vec![
            ("objectClass".to_string(), set(&["inetOrgPerson"])),
            ("uid".to_string(), set(&["eve"])),
            ("cn".to_string(), set(&["Eve"])),
            ("sn".to_string(), set(&["Eve"])),
        ],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    l.modify(
        &format!("cn=developers,{GROUPS}"),
        vec![Mod::Add(
            "member".to_string(),
            set(&[&format!("uid=ada,{PEOPLE}")]),
        )],
    )
    .await
    .unwrap()
    .success()
    .unwrap();

    // PostgreSQL, over the API.
    let r = reconcile(&s, "db").await;
    assert_eq!(r["state"], "completed", "{r:#}");
    assert_eq!(
        r["counts"],
        json!({"orphan": 1, "stale": 1, "excess": 1, "expected": 1}),
        "{r:#}"
    );
    assert_eq!(
        situations(&r),
        [
            sit("excess", &format!("{p}ada"), Some("db:admins")),
            sit("orphan", &format!("{p}mallory"), None),
            sit("stale", &format!("{p}bob"), None),
        ]
    );
    let stale = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["situation"] == "stale")
        .unwrap();
    assert_eq!(stale["severity"], "high");
    assert_eq!(
        (r["corrected"].clone(), r["runs"].clone()),
        (json!(3), json!(3))
    );
    assert_eq!(
        remediated(&s).await,
        [
            ("ada".to_string(), "succeeded".to_string()),
            ("bob".to_string(), "succeeded".to_string()),
            ("mallory".to_string(), "succeeded".to_string())
        ]
    );
    // Bob's role is disabled, not dropped: tenure did not make it. Ada keeps only what she
    // was given. Mallory's, nobody's, is disabled by a run of its own and kept.
    assert_eq!(target.login("bob").await, Some(false));
    assert_eq!(target.member_of("ada").await, [format!("{g}readers")]);
    assert_eq!(target.login("mallory").await, Some(false));
    let nobody = s
        .request(
            reqwest::Method::GET,
            "/api/v1/people/mallory",
            Some(TOKEN),
            &[],
            None,
        )
        .await;
    assert_eq!(
        nobody.status,
        StatusCode::NOT_FOUND,
        "no person is made for it"
    );

    // The directory, over the CLI.
    let out = env
        .command()
        .args(["reconcile", "--system", "dir", "--url", &s.base])
        .env("TENURE_TOKEN", TOKEN)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(": completed"), "{text}");
    for line in [
        "stale     high    account bob (person bob)",
        "orphan    normal  account eve",
        "excess    normal  account ada (person ada), dir:developers",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
    remediated(&s).await;
    assert!(ldap_entry(&ldap.url, PEOPLE, "bob").await.is_none());
    assert!(ldap_entry(&ldap.url, DISABLED, "bob").await.is_some());
    // The entry nobody owns is disabled (moved) too, and kept.
    assert!(ldap_entry(&ldap.url, PEOPLE, "eve").await.is_none());
    assert!(ldap_entry(&ldap.url, DISABLED, "eve").await.is_some());
    assert_eq!(group_members(&ldap.url, "developers").await, [PLACEHOLDER]);

    // Once corrected, only what is reported stays open.
    let again = reconcile(&s, "dir").await;
    assert_eq!(situations(&again), [sit("orphan", "eve", None)]);
    let open = s
        .get("/api/v1/reconciliations/findings?situation=stale&system=dir")
        .await;
    assert_eq!(open["items"], json!([]), "{open:#}");
    let all = s
        .get("/api/v1/reconciliations/findings?situation=stale&status=all")
        .await;
    // db's stays open until db is reconciled again; dir's is resolved by the last pass.
    let states: Vec<(&str, bool)> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["system"].as_str().unwrap(),
                f["resolved_by"] == again["id"],
            )
        })
        .collect();
    assert_eq!(states, [("db", false), ("dir", true)], "{all:#}");
    let metrics = s
        .request(reqwest::Method::GET, "/metrics", Some(TOKEN), &[], None)
        .await;
    let text = metrics.body.as_str().unwrap_or_default().to_string();
    for line in [
        "tenure_reconciliation_open_findings{system=\"dir\",situation=\"orphan\"} 1",
        "tenure_reconciliation_open_findings{system=\"dir\",situation=\"stale\"} 0",
        "tenure_reconciliation_open_findings{system=\"db\",situation=\"orphan\"} 1",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
    let audit = s.get("/api/v1/audit?limit=1000").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("reconciliation."))
        .collect();
    for a in [
        "reconciliation.started",
        "reconciliation.stale",
        "reconciliation.corrected",
        "reconciliation.ended",
    ] {
        assert!(actions.contains(&a), "{a} not in {actions:?}");
    }
    target.finish().await;
}

/// `tenure bench --reconcile --target` makes its accounts on a real PostgreSQL through the
/// connector, finds the drift it seeded, and deletes what it made.
#[tokio::test]
async fn the_reconciliation_benchmark_runs_against_a_real_postgres() {
    let target = Target::new().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tenure.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[[systems]]
id = "db"
connector = "postgres"
[systems.settings]
url = "{url}"
role_prefix = "{prefix}"
[[entitlements]]
id = "db:admins"
system = "db"
name = "{groups}admins"
[[entitlements]]
id = "db:readers"
system = "db"
name = "{groups}readers"
"#,
            url = target.url,
            prefix = target.prefix,
            groups = target.groups,
        ),
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["bench", "--reconcile", "--target"])
        .arg(&file)
        .args([
            "--system",
            "db",
            "--accounts",
            "200",
            "--memberships",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["connector"].clone(), v["accounts"].clone()),
        (json!("postgres"), json!(202)),
        "{v}"
    );
    assert_eq!(
        v["counts"],
        json!({"orphan": 2, "stale": 2, "unlinked": 2, "excess": 2, "missing": 2, "expected": 196}),
        "{v}"
    );
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1)")
            .bind(&target.prefix)
            .fetch_one(&target.admin)
            .await
            .unwrap();
    assert_eq!(left, 0, "the benchmark deletes the roles it made");
    // A sandbox system is refused: the sandbox has a mode of its own.
    std::fs::write(&file, "[[systems]]\nid = \"s\"\nconnector = \"sandbox\"\n").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["bench", "--reconcile", "--target"])
        .arg(&file)
        .args(["--system", "s", "--memberships", "0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("leave out --target"),
        "{}",
        describe(&o)
    );
    target.finish().await;
}

#[tokio::test]
async fn bad_reconciliation_requests_get_clear_errors() {
    let env = TestEnv::new(
        "[[systems]]\nid = \"desk\"\nconnector = \"manual\"\n[systems.settings]\nteam = \"it\"\n",
        &[],
    )
    .await;
    let s = env.start().await;
    for (body, status, says) in [
        (
            json!({"system": "nowhere"}),
            StatusCode::NOT_FOUND,
            "system `nowhere`",
        ),
        (
            json!({"sytem": "desk"}),
            StatusCode::BAD_REQUEST,
            "unknown field `sytem`",
        ),
        (
            json!({"system": 7}),
            StatusCode::BAD_REQUEST,
            "must be {\"system\"",
        ),
    ] {
        let a = s.post("/api/v1/reconciliations", &body).await;
        assert_eq!(a.status, status, "{body}: {}", a.body);
        assert!(
            a.body["error"]["message"].as_str().unwrap().contains(says),
            "{body}: {}",
            a.body
        );
    }
    // A manual system cannot list what it holds: the reconciliation says so.
    let r = reconcile(&s, "desk").await;
    assert_eq!(r["state"], "not_covered", "{r:#}");
    assert!(
        r["message"].as_str().unwrap().contains("cannot list"),
        "{r:#}"
    );
    // Reading needs the read scope, starting one admin.
    let reader = token(&env, "reader", &["read"], None);
    let a = s
        .request(
            reqwest::Method::POST,
            "/api/v1/reconciliations",
            Some(&reader),
            &[("content-type", "application/json")],
            Some(json!({"system": "desk"}).to_string()),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    let a = s
        .request(
            reqwest::Method::GET,
            "/api/v1/reconciliations?system=desk",
            Some(&reader),
            &[],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["items"].as_array().unwrap().len(), 1);
    let a = s
        .request(
            reqwest::Method::GET,
            "/api/v1/reconciliations/findings?situation=lost",
            Some(&reader),
            &[],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    let a = s
        .request(
            reqwest::Method::GET,
            "/api/v1/reconciliations/nope",
            Some(&reader),
            &[],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
}
