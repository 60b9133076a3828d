//! Access requests and approvals through the real binary: tokens that act as people, scopes
//! enforced on every route, a chain approved over HTTP and with `tenure approvals`, a denial,
//! break-glass, and bad input refused with the field at fault.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CONFIG: &str = r#"
[[systems]]
id = "directory"
connector = "sandbox"
[[systems]]
id = "db"
connector = "sandbox"

[[entitlements]]
id = "directory:staff"
system = "directory"
[[entitlements]]
id = "directory:reports"
system = "directory"
owner = "olga"
[[entitlements]]
id = "db:prod-admin"
system = "db"
risk = "privileged"
owner = "olga"

[approvals]
request_stages = ["manager", "owner"]
"#;

const ALL: &[(&str, &str)] = &[("all", "entitlements = [\"directory:staff\"]\n")];

fn person(id: &str, manager: Option<&str>) -> Value {
    let mut p = json!({
        "id": id, "name": format!("N {id}"), "email": format!("{id}@example.com"),
        "worker_type": "employee",
    });
    if let Some(m) = manager {
        p["manager"] = m.into();
    }
    json!({ "type": "hire", "person": p })
}

/// Creates a token with the CLI; returns its secret.
fn token(env: &TestEnv, name: &str, scopes: &[&str], person: Option<&str>) -> String {
    let mut args = vec!["token", "create", "--name", name];
    for s in scopes {
        args.extend(["--scope", s]);
    }
    if let Some(p) = person {
        args.extend(["--as", p]);
    }
    let out = env.cli(&args);
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn call(s: &Server, method: Method, path: &str, token: &str, body: Option<Value>) -> Answer {
    s.request(
        method,
        path,
        Some(token),
        &[("content-type", "application/json")],
        body.map(|b| b.to_string()),
    )
    .await
}

fn approvals_cli(env: &TestEnv, s: &Server, token: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .arg("approvals")
        .args(args)
        .env("TENURE_URL", &s.base)
        .env("TENURE_TOKEN", token)
        .current_dir(env.dir.path())
        .output()
        .expect("running tenure approvals")
}

/// Polls a run (a few ms apart) until its grant waits for approval: its accounts come first.
async fn awaiting(s: &Server, run_id: &str) {
    let start = std::time::Instant::now();
    loop {
        let run = s.get(&format!("/api/v1/runs/{run_id}")).await;
        if run["state"] == "awaiting_approval" {
            return;
        }
        assert!(!is_terminal(&run) && start.elapsed() < PATIENCE, "{run:#}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Asks for access with `requester`'s token; returns the run and the first approval waiting
/// for `approver`.
async fn ask_first_approval(
    s: &Server,
    requester: &str,
    body: Value,
    approver: &str,
) -> (String, String) {
    let a = call(s, Method::POST, "/api/v1/requests", requester, Some(body)).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let run_id = a.body["run_id"].as_str().unwrap().to_string();
    let id = call(s, Method::GET, "/api/v1/approvals", approver, None)
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    (run_id, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_approvals_over_http_and_the_cli_with_scopes_enforced() {
    let env = TestEnv::new(CONFIG, ALL).await;
    let s = env.start().await;
    for (id, m) in [
        ("mia", None),
        ("olga", None),
        ("ann", Some("mia")),
        ("bob", Some("mia")),
    ] {
        s.apply_ok(&person(id, m)).await;
    }
    let ann = token(&env, "ann", &["request", "read"], Some("ann"));
    let mia = token(&env, "mia", &["approve", "request"], Some("mia"));
    let olga = token(&env, "olga", &["approve"], Some("olga"));
    let reader = token(&env, "reader", &["read"], None);
    let nobody = token(&env, "svc", &["request"], None);
    assert!(
        !env.cli(&[
            "token", "create", "--name", "x", "--scope", "read", "--as", "ghost"
        ])
        .status
        .success()
    );

    let ask = |ent: &str| json!({ "entitlement": ent, "justification": "month-end close", "duration_secs": 3600 });

    // Scopes and identities.
    let a = call(
        &s,
        Method::POST,
        "/api/v1/requests",
        &reader,
        Some(ask("db:prod-admin")),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    let a = call(
        &s,
        Method::POST,
        "/api/v1/requests",
        &nobody,
        Some(ask("db:prod-admin")),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--as")
    );
    let mut glass = ask("db:prod-admin");
    glass["break_glass"] = true.into();
    let a = call(
        &s,
        Method::POST,
        "/api/v1/requests",
        &ann,
        Some(glass.clone()),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    let mut for_bob = ask("directory:reports");
    for_bob["person_id"] = "bob".into();
    let a = call(
        &s,
        Method::POST,
        "/api/v1/requests",
        &ann,
        Some(for_bob.clone()),
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::FORBIDDEN,
        "ann is not bob's manager: {}",
        a.body
    );
    let a = call(&s, Method::GET, "/api/v1/approvals", &ann, None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);

    // Bad input: the field at fault, nothing stored.
    let a = call(
        &s,
        Method::POST,
        "/api/v1/requests",
        &ann,
        Some(json!({ "entitlement": "db:prod-admin", "justification": " " })),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.body["error"]["field"], "justification");
    let a = call(
        &s,
        Method::POST,
        "/api/v1/requests",
        &ann,
        Some(json!({ "entitlement": "db:prod-admin", "justification": "x", "why": 1 })),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    let a = call(
        &s,
        Method::POST,
        "/api/v1/requests",
        &ann,
        Some(
            json!({ "entitlement": "db:prod-admin", "justification": "x", "duration_secs": 86400 }),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert_eq!(a.body["error"]["field"], "duration_secs");
    let a = call(
        &s,
        Method::POST,
        "/api/v1/requests",
        &ann,
        Some(json!({ "entitlement": "nope", "justification": "x" })),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert!(
        s.get("/api/v1/runs?state=awaiting_approval").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A request: 202 with its ids; the run waits for approval.
    let a = call(
        &s,
        Method::POST,
        "/api/v1/requests",
        &ann,
        Some(ask("db:prod-admin")),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let (request_id, run_id) = (
        a.body["request_id"].as_str().unwrap().to_string(),
        a.body["run_id"].as_str().unwrap().to_string(),
    );
    awaiting(&s, &run_id).await;

    // mia (manager) sees it; olga (owner) not yet.
    let mine = call(&s, Method::GET, "/api/v1/approvals", &mia, None).await;
    assert_eq!(mine.status, StatusCode::OK);
    let items = mine.body["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{items:#?}");
    let approval_id = items[0]["id"].as_str().unwrap().to_string();
    let theirs = call(&s, Method::GET, "/api/v1/approvals", &olga, None).await;
    assert!(theirs.body["items"].as_array().unwrap().is_empty());
    // A decision needs a comment and a known verdict.
    let path = format!("/api/v1/approvals/{approval_id}/decision");
    let a = call(
        &s,
        Method::POST,
        &path,
        &mia,
        Some(json!({ "decision": "maybe", "comment": "hm" })),
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.body["error"]["field"], "decision");
    let a = call(
        &s,
        Method::POST,
        &path,
        &olga,
        Some(json!({ "decision": "approve", "comment": "early" })),
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::FORBIDDEN,
        "not olga's stage yet: {}",
        a.body
    );

    // mia approves with the CLI, olga with the API.
    let out = approvals_cli(&env, &s, &mia, &["list"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&approval_id));
    let out = approvals_cli(
        &env,
        &s,
        &mia,
        &["approve", &approval_id, "-c", "fine for close"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let a = call(
        &s,
        Method::POST,
        &path,
        &olga,
        Some(json!({ "decision": "approve", "comment": "ok" })),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["state"], "approved");
    assert_eq!(a.body["decisions"].as_array().unwrap().len(), 2);
    let run = s.wait_run(&run_id).await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    let r = call(
        &s,
        Method::GET,
        &format!("/api/v1/requests/{request_id}"),
        &ann,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["request"]["state"], "approved");
    assert!(r.body["request"]["expires_at"].as_i64().is_some());
    assert_eq!(grants(&s.person("ann").await)["db:prod-admin"], "granted");
    // Someone else's request is not theirs to read without the read scope.
    let r = call(
        &s,
        Method::GET,
        &format!("/api/v1/requests/{request_id}"),
        &olga,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // mia asks for her report bob; olga denies with the CLI: the run ends denied.
    let a = call(&s, Method::POST, "/api/v1/requests", &mia, Some(for_bob)).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let run_id = a.body["run_id"].as_str().unwrap().to_string();
    let items = call(&s, Method::GET, "/api/v1/approvals", &olga, None)
        .await
        .body["items"]
        .clone();
    // The manager stage would be mia, who asked: it goes above her, and there is nobody.
    let run = s.get(&format!("/api/v1/runs/{run_id}")).await;
    if run["state"] == "denied" {
        assert!(items.as_array().unwrap().is_empty());
    } else {
        panic!("a chain with no approver but the requester must be denied: {run:#}");
    }
    let audit = s.get("/api/v1/audit?limit=1000").await;
    let denied: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "approval.denied")
        .collect();
    assert_eq!(denied.len(), 1);
    assert!(
        denied[0]["reason"].as_str().unwrap().contains("manager"),
        "{:#}",
        denied[0]
    );

    // ann asks for directory:reports; olga denies it with the CLI after mia approved.
    let (run_id, id) = ask_first_approval(&s, &ann, ask("directory:reports"), &mia).await;
    let out = approvals_cli(&env, &s, &mia, &["approve", &id, "-c", "ok by me"]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = approvals_cli(
        &env,
        &s,
        &olga,
        &["deny", &id, "-c", "use the shared dashboard"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(s.wait_run(&run_id).await["state"], "denied");
    let out = approvals_cli(&env, &s, &olga, &["deny", &id, "-c", "again"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already"),
        "{}",
        describe(&out)
    );

    // Break-glass with its own scope: no approval, flagged, time-bound.
    let glass_token = token(&env, "ann-glass", &["break_glass"], Some("ann"));
    let mut glass = json!({ "entitlement": "directory:reports", "justification": "incident 42", "break_glass": true });
    let a = call(
        &s,
        Method::POST,
        "/api/v1/requests",
        &glass_token,
        Some(glass.clone()),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    assert_eq!(
        s.wait_run(a.body["run_id"].as_str().unwrap()).await["state"],
        "succeeded"
    );
    let r = s
        .get(&format!(
            "/api/v1/requests/{}",
            a.body["request_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r["request"]["break_glass"], true);
    assert_eq!(
        r["request"]["expires_at"].as_i64().unwrap() - r["request"]["decided_at"].as_i64().unwrap(),
        3_600_000
    );
    glass["duration_secs"] = 7200.into();
    let a = call(
        &s,
        Method::POST,
        "/api/v1/requests",
        &glass_token,
        Some(glass),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);

    // bob asks for reports access and leaves before anyone decides: the approval is
    // withdrawn, and a decision on it afterwards is a 409 that grants nothing.
    let bob = token(&env, "bob", &["request"], Some("bob"));
    let (run_id, id) = ask_first_approval(&s, &bob, ask("directory:reports"), &mia).await;
    awaiting(&s, &run_id).await;
    s.apply_ok(&json!({ "type": "leave", "person": { "id": "bob" } }))
        .await;
    assert_eq!(s.wait_run(&run_id).await["state"], "cancelled");
    let a = call(
        &s,
        Method::POST,
        &format!("/api/v1/approvals/{id}/decision"),
        &mia,
        Some(json!({ "decision": "approve", "comment": "too late" })),
    )
    .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "conflict");
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("withdrawn"),
        "{}",
        a.body
    );
    let a = call(
        &s,
        Method::GET,
        &format!("/api/v1/approvals/{id}"),
        &mia,
        None,
    )
    .await;
    assert_eq!(a.body["state"], "withdrawn", "{}", a.body);
    assert!(!grants(&s.person("bob").await).contains_key("directory:reports"));

    let out = env.cli(&["audit", "verify"]);
    assert!(out.status.success(), "{}", describe(&out));
}
