//! One tenure instance provisions into another's SCIM server through the `scim` connector:
//! hire, transfer, leave (disable, then delete), and linking an account that already exists.
//! Both are the real binary; the target behaves as a real SCIM provider does (uniqueness
//! conflicts, read-only groups, its own lifecycle runs).

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TARGET_CONFIG: &str = r#"
[[systems]]
id = "directory"
connector = "sandbox"
retention = "delete"

[[entitlements]]
id = "directory:all-staff"
system = "directory"
"#;

const TARGET_TEMPLATES: &[(&str, &str)] =
    &[("all-staff", "entitlements = [\"directory:all-staff\"]\n")];

fn source_config(base: &str) -> String {
    format!(
        r#"
[engine]
max_attempts = 3
backoff_base_ms = 10
backoff_max_ms = 50

[[systems]]
id = "peer"
connector = "scim"
retention = "delete"
[systems.settings]
base_url = "{base}/scim/v2"
token_env = "TENURE_TEST_PEER_SCIM_TOKEN"
[systems.settings.attributes]
userName = "email"
displayName = "name"
title = "title"
"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department" = "department"

[[entitlements]]
id = "peer:account"
system = "peer"
kind = "account"
"#
    )
}

const SOURCE_TEMPLATES: &[(&str, &str)] = &[("all-staff", "entitlements = [\"peer:account\"]\n")];

async fn target_user(target: &Server, token: &str, person: &str) -> Option<Value> {
    let filter = format!("externalId eq \"{person}\"")
        .replace(' ', "%20")
        .replace('"', "%22");
    let a = target
        .request(
            Method::GET,
            &format!("/scim/v2/Users?filter={filter}"),
            Some(token),
            &[],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a.body["Resources"].as_array().unwrap().first().cloned()
}

/// Waits for every run of a person on `s` to end in success and returns the person.
async fn settled(s: &Server, id: &str) -> Value {
    for run in s.items(&format!("/api/v1/runs?person={id}")).await {
        let r = s.wait_run(run["id"].as_str().unwrap()).await;
        assert_eq!(r["state"], "succeeded", "run of {id}: {r}");
    }
    s.person(id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenure_provisions_into_another_over_scim() {
    let target_env = TestEnv::new(TARGET_CONFIG, TARGET_TEMPLATES).await;
    let target = target_env.start().await;
    let a = target
        .post(
            "/api/v1/tokens",
            &json!({ "name": "upstream-tenure", "scopes": ["scim"] }),
        )
        .await;
    let token = a.body["token"].as_str().unwrap().to_string();
    // SAFETY: this test binary runs this one test; nothing else reads the environment now.
    unsafe { std::env::set_var("TENURE_TEST_PEER_SCIM_TOKEN", &token) };

    let source_env = TestEnv::new(&source_config(&target.base), SOURCE_TEMPLATES).await;
    let source = source_env.start().await;

    // Hire: the account appears on the target as a SCIM user, which the target hires.
    let mut ev = hire("p1", "Engineering");
    ev["person"]["title"] = json!("Engineer");
    source.apply_ok(&ev).await;
    let p = source.person("p1").await;
    assert_eq!(accounts(&p), map(&[("peer", "active")]));
    let u = target_user(&target, &token, "p1")
        .await
        .expect("user on the target");
    assert_eq!(u["userName"], ev["person"]["email"]);
    assert_eq!(u["title"], "Engineer");
    assert_eq!(
        u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
        "Engineering"
    );
    let remote = u["id"].as_str().unwrap().to_string();
    let tp = settled(&target, &remote).await;
    assert_eq!(tp["status"], "active");
    assert_eq!(grants(&tp), map(&[("directory:all-staff", "granted")]));

    // Transfer: the new title reaches the target and becomes a transfer there.
    source
        .apply_ok(
            &json!({ "type": "transfer", "person": { "id": "p1", "title": "Staff Engineer" } }),
        )
        .await;
    let u = target_user(&target, &token, "p1").await.unwrap();
    assert_eq!(u["title"], "Staff Engineer");
    let tp = settled(&target, &remote).await;
    assert_eq!(tp["title"], "Staff Engineer");

    // Leave: disabled (active false: a leave on the target), then deleted (retention).
    source
        .apply_ok(&json!({ "type": "leave", "person": { "id": "p1" } }))
        .await;
    let p = source.person("p1").await;
    assert_eq!(accounts(&p), map(&[("peer", "deleted")]));
    assert!(
        target_user(&target, &token, "p1").await.is_none(),
        "deleted on the target"
    );
    let tp = settled(&target, &remote).await;
    assert_eq!(tp["status"], "terminated");
    let kinds: Vec<String> = target
        .items(&format!("/api/v1/runs?person={remote}"))
        .await
        .iter()
        .rev()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["hire", "transfer", "leave"]);

    // An account that already exists on the target (same userName, made by hand) is linked
    // on the 409, not duplicated.
    let existing = target
        .request(
            Method::POST,
            "/scim/v2/Users",
            Some(&token),
            &[("content-type", "application/scim+json")],
            Some(json!({ "userName": "grace@example.com", "displayName": "Grace" }).to_string()),
        )
        .await;
    assert_eq!(existing.status, StatusCode::CREATED, "{}", existing.body);
    let mut ev = hire("p2", "Sales");
    ev["person"]["email"] = json!("Grace@Example.com");
    source.apply_ok(&ev).await;
    let u = target_user(&target, &token, "p2").await.expect("linked");
    assert_eq!(u["id"], existing.body["id"], "the existing user was linked");
    let all = target
        .request(Method::GET, "/scim/v2/Users", Some(&token), &[], None)
        .await;
    assert_eq!(all.body["totalResults"], 1, "{}", all.body);

    // The connector reports the target healthy (it reads ServiceProviderConfig).
    let systems = source.get("/api/v1/systems").await;
    assert_eq!(systems["items"][0]["health"], "ok", "{systems}");
}
