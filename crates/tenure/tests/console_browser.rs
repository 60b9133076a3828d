//! The console in a real browser: starts the server, makes the people and tokens, and runs
//! `tests/browser/console.test.mjs` (headless Chromium through playwright-core, axe-core for
//! WCAG 2.2 A/AA). It needs Debian's `chromium` and `npm ci` in `tests/browser`, which
//! `.ci/run` installs; elsewhere it is skipped with a notice when they are missing (with
//! `CI=true` it fails instead).
//!
//! The pages do the same on both databases (their logic is the API's, tested on both in
//! `console.rs`), so this runs on SQLite only: on PostgreSQL it is skipped.
//!
//! Sign-in through OpenID Connect runs against a real provider, `oidc-provider` from npm
//! (`tests/browser/oidc_provider.mjs`), started here beside the server.
//!
//! `TENURE_SCREENSHOTS=docs/console` saves the screenshots in `docs/console.md`.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const CONFIG: &str = r#"
[[systems]]
id = "directory"
connector = "sandbox"
[[systems]]
id = "chat"
connector = "sandbox"

[[entitlements]]
id = "directory:staff"
system = "directory"
name = "Staff directory"
[[entitlements]]
id = "chat:general"
system = "chat"
name = "General chat"
[[entitlements]]
id = "directory:reports"
system = "directory"
name = "Board reports"
risk = "high"
owner = "olga"
[[entitlements]]
id = "directory:payroll"
system = "directory"
name = "Payroll exports"
risk = "privileged"
owner = "olga"

[approvals]
request_stages = ["manager", "owner"]
"#;

const ALL: &[(&str, &str)] = &[(
    "all",
    "entitlements = [\"directory:staff\", \"chat:general\"]\n",
)];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Why the browser test cannot run here, if it cannot.
fn missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "no Chromium at {chromium} (apt-get install chromium)"
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("no node".into());
    }
    let modules = repo_root().join("tests/browser/node_modules");
    if !["playwright-core", "axe-core", "oidc-provider"]
        .iter()
        .all(|m| modules.join(m).exists())
    {
        return Some("tests/browser has no node_modules (npm ci --prefix tests/browser)".into());
    }
    None
}

#[tokio::test]
async fn the_console_works_in_chromium_and_every_page_passes_axe() {
    if postgres_url().is_some() {
        eprintln!("skipped on PostgreSQL: the browser test runs on SQLite (see the module docs)");
        return;
    }
    if let Some(why) = missing() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the browser test cannot run on CI: {why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    let env = TestEnv::new(CONFIG, ALL).await;
    let s = env
        .start_with_env(&[("TEST_OIDC_SECRET", OIDC_SECRET)])
        .await;
    let root = repo_root();
    let provider_log = env.dir.path().join("oidc-provider.log");
    let (_provider, issuer) = provider(&root, &s.base, &provider_log).await;
    // The provider's address is known only now: sign-in through it is configured by a reload,
    // as an administrator would add it to a running server.
    let mut config = std::fs::read_to_string(&env.config).unwrap();
    config.push_str(&format!(
        "\n[console.oidc]\nissuer = \"{issuer}\"\nclient_id = \"tenure\"\n\
         client_secret_env = \"TEST_OIDC_SECRET\"\nlabel = \"Test IdP\"\n\
         [console.oidc.roles]\n\"tenure-admins\" = [\"admin\"]\n"
    ));
    std::fs::write(&env.config, config).unwrap();
    let reloaded = s.post("/api/v1/reload", &serde_json::json!({})).await;
    assert_eq!(reloaded.status, 200, "{}", reloaded.body);
    for (id, name, manager) in [
        ("mia", "Mia Manager", None),
        ("olga", "Olga Owner", None),
        ("eve", "Eve Employee", Some("mia")),
        ("sam", "Sam Smith", Some("mia")),
        ("leo", "Leo Leaver", Some("mia")),
    ] {
        let mut p = serde_json::json!({
            "id": id, "name": name, "email": format!("{id}@example.com"),
            "worker_type": "employee", "department": "Finance", "title": "Analyst",
        });
        if let Some(m) = manager {
            p["manager"] = m.into();
        }
        s.apply_ok(&serde_json::json!({ "type": "hire", "person": p }))
            .await;
    }
    // An account nobody holds on `directory`, found by a reconciliation: the findings pages
    // have a row to show.
    orphan_account(&env, "directory", "ghost").await;
    let found = reconciled(&s, "directory", true).await;
    assert_eq!(found["state"], "completed", "{found:#}");
    // Leo has left: the identity provider may still sign him in, tenure must not.
    s.apply_ok(&serde_json::json!({ "type": "leave", "person": { "id": "leo" } }))
        .await;
    // Sam's leave is announced for next month, and an access review of the chat is open: mia
    // reviews her reports' access (eve's and sam's), sam's with a recommendation to revoke.
    let leaves_at = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    s.accept(&serde_json::json!({
        "type": "leave", "person": { "id": "sam" }, "effective_at": leaves_at,
    }))
    .await;
    let opened = s
        .post(
            "/api/v1/reviews",
            &serde_json::json!({
                "name": "Chat access", "reviewer": "manager",
                "scope": { "entitlements": ["chat:general"] },
            }),
        )
        .await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let employee = token(&env, "eve", &["request", "read"], Some("eve"));
    let manager = token(&env, "mia", &["approve", "read"], Some("mia"));
    let owner = token(&env, "olga", &["approve", "read"], Some("olga"));

    let out = tokio::process::Command::new("node")
        .arg(root.join("tests/browser/console.test.mjs"))
        .current_dir(&root)
        .env("TENURE_URL", &s.base)
        .env("TENURE_EMPLOYEE_TOKEN", employee)
        .env("TENURE_MANAGER_TOKEN", manager)
        .env("TENURE_OWNER_TOKEN", owner)
        .env("TENURE_ADMIN_TOKEN", TOKEN)
        .env("TENURE_OIDC_ISSUER", &issuer)
        .kill_on_drop(true)
        .output();
    // Each step waits at most 30 s; the whole run, a bound well above its usual minute.
    let out = tokio::time::timeout(std::time::Duration::from_secs(600), out)
        .await
        .expect("the browser tests did not finish within 10 minutes")
        .expect("running node");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "the browser tests failed:\n{text}\nserver output:\n{}\nOpenID provider's output:\n{}",
        s.log_text(),
        std::fs::read_to_string(&provider_log).unwrap_or_default()
    );
    assert!(text.contains(" passed, 0 failed"), "{text}");
}

/// The client secret the test provider and the server share.
const OIDC_SECRET: &str = "browser-test-client-secret";

/// Starts the OpenID provider for a console at `base`, its errors written to `log`; the child
/// (stopped when dropped) and the provider's issuer URL.
async fn provider(root: &Path, base: &str, log: &Path) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new("node")
        .arg(root.join("tests/browser/oidc_provider.mjs"))
        .current_dir(root.join("tests/browser"))
        .env(
            "REDIRECT_URI",
            format!("{base}/console/sign-in/oidc/callback"),
        )
        .env("CLIENT_SECRET", OIDC_SECRET)
        .env(
            "GROUPS",
            serde_json::json!({ "mia@example.com": ["tenure-admins"] }).to_string(),
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(log).expect("the provider's log"))
        .kill_on_drop(true)
        .spawn()
        .expect("starting the OpenID provider");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("the OpenID provider did not start within 30 s")
        .expect("reading the OpenID provider's output")
        .expect("the OpenID provider stopped before it listened");
    let issuer = serde_json::from_str::<serde_json::Value>(&first)
        .ok()
        .and_then(|v| v["issuer"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("the OpenID provider said `{first}`, not its issuer"));
    // It goes on writing notes to its output: read them, or its writes would fail.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, issuer)
}
