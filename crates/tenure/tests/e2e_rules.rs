//! Rules changes through the real binary: what-if over HTTP, reload by API and by SIGHUP while
//! events keep coming (none lost), and an invalid policy refused with file and line while the
//! rules in force keep working.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const CONFIG: &str = r#"
[[systems]]
id = "directory"
connector = "sandbox"

[[entitlements]]
id = "directory:staff"
system = "directory"
[[entitlements]]
id = "directory:eng"
system = "directory"
[[entitlements]]
id = "directory:admins"
system = "directory"
risk = "privileged"
owner = "it-ops"
"#;

const TEMPLATES: &[(&str, &str)] = &[
    ("all", "entitlements = [\"directory:staff\"]\n"),
    (
        "eng",
        "entitlements = [\"directory:eng\"]\n[match]\ndepartment = [\"Engineering\"]\n",
    ),
];

const BASE: &str = r#"@id("base") permit (principal is Person, action == Action::"grant", resource is Entitlement);"#;

fn write_policy(env: &TestEnv, name: &str, text: &str) {
    let dir = env.dir.path().join("policies");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

#[tokio::test]
async fn a_what_if_shows_a_template_change_and_reload_then_applies_it() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let server = env.start().await;
    for i in 0..4 {
        server
            .apply_ok(&hire(&format!("e{i}"), "Engineering"))
            .await;
    }
    server.apply_ok(&hire("s1", "Sales")).await;

    // One event: what a hire into Engineering would get; nothing is stored.
    let a = server
        .post(
            "/api/v1/simulate",
            &json!({ "event": hire("new", "Engineering") }),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let ents: Vec<&str> = a.body["plans"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["entitlement"].as_str())
        .collect();
    assert_eq!(ents, vec!["directory:eng", "directory:staff"]);
    assert_eq!(
        server.get("/api/v1/people").await["items"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    // A changed template folder: engineers get the admin group instead of theirs.
    let changed = json!({
        "templates": {
            "all.toml": "entitlements = [\"directory:staff\"]\n",
            "eng.toml": "entitlements = [\"directory:admins\"]\n[match]\ndepartment = [\"Engineering\"]\n",
        }
    });
    let a = server.post("/api/v1/simulate", &changed).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["people"], 5);
    assert_eq!(a.body["people_changed"], 4);
    assert_eq!(a.body["grants"], 4);
    assert_eq!(a.body["revokes"], 4);
    assert_eq!(a.body["plans"][0]["person_id"], "e0");

    // Apply it: write the folder, reload; the four engineers are re-planned, Sales untouched.
    std::fs::write(
        env.dir.path().join("templates/eng.toml"),
        "entitlements = [\"directory:admins\"]\n[match]\ndepartment = [\"Engineering\"]\n",
    )
    .unwrap();
    let a = server.post("/api/v1/reload", &json!({})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["runs"], 4, "{}", a.body);
    settle(&server).await;
    let e0 = server.person("e0").await;
    assert_eq!(
        grants(&e0),
        map(&[
            ("directory:admins", "granted"),
            ("directory:eng", "revoked"),
            ("directory:staff", "granted")
        ])
    );
    let audit = server.get("/api/v1/audit?limit=1000").await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "rules.reloaded"),
        "{audit}"
    );
}

#[tokio::test]
async fn an_invalid_policy_is_refused_with_its_line_and_the_old_rules_stay() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    write_policy(&env, "base.cedar", BASE);
    let server = env.start().await;

    // A what-if with a broken policy: 422, located.
    let a = server
        .post(
            "/api/v1/simulate",
            &json!({ "policies": { "base.cedar": BASE, "bad.cedar": "permit (\n  principal is Persn,\n  action,\n  resource\n);" } }),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "invalid_rules");
    let msg = a.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("bad.cedar:2:"), "{msg}");

    // The same on disk, then a reload: refused, and the rules in force still work.
    write_policy(
        &env,
        "bad.cedar",
        "permit (\n  principal is Persn,\n  action,\n  resource\n);",
    );
    let a = server.post("/api/v1/reload", &json!({})).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    let run = server.apply_ok(&hire("p1", "Engineering")).await;
    assert_eq!(run["state"], "succeeded", "{run}");

    // Reload needs the admin scope; what-if needs read.
    let a = server
        .request(reqwest::Method::POST, "/api/v1/reload", None, &[], None)
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let bad = server
        .post(
            "/api/v1/simulate",
            &json!({ "event": {"type": "hire"}, "templates": {} }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
}

#[tokio::test]
async fn a_what_if_lays_the_files_sent_over_the_folder_by_name_and_removes_only_on_request() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    write_policy(&env, "base.cedar", BASE);
    let no_legal = r#"@id("no-legal") forbid (principal is Person, action == Action::"grant", resource is Entitlement)
when { principal has department && principal.department == "Legal" };"#;
    write_policy(&env, "departments.cedar", no_legal);
    let server = env.start().await;
    for i in 0..4 {
        server
            .apply_ok(&hire(&format!("e{i}"), "Engineering"))
            .await;
    }
    server.apply_ok(&hire("s1", "Sales")).await;

    // One changed policy file: only its effect, Sales losing directory:staff. The folder's
    // base permit stays (sent alone, it once replaced the whole folder: everything revoked).
    let no_sales = no_legal.replace("Legal", "Sales");
    let a = server
        .post(
            "/api/v1/simulate",
            &json!({ "policies": { "departments.cedar": no_sales } }),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["people_changed"], 1, "{}", a.body);
    assert_eq!(a.body["revokes"], 1, "{}", a.body);
    assert_eq!(a.body["grants"], 0, "{}", a.body);
    assert_eq!(a.body["plans"][0]["person_id"], "s1", "{}", a.body);

    // A new file is added beside the folder's; one changed template changes only its people.
    let a = server
        .post(
            "/api/v1/simulate",
            &json!({ "templates": { "eng.toml": "entitlements = [\"directory:eng\"]\n[match]\ndepartment = [\"Sales\"]\n" } }),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        (
            &a.body["people_changed"],
            &a.body["grants"],
            &a.body["revokes"]
        ),
        (&json!(5), &json!(1), &json!(4)),
        "{}",
        a.body
    );

    // Removing is explicit: `null` in place of the text. Without the base permit nothing is
    // allowed, so everything held is revoked.
    let a = server
        .post(
            "/api/v1/simulate",
            &json!({ "policies": { "base.cedar": null } }),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["people_changed"], 5, "{}", a.body);
    assert_eq!(a.body["revokes"], 9, "{}", a.body);

    // Removing a file the folder does not have is an error naming it, not a quiet no-op.
    let a = server
        .post(
            "/api/v1/simulate",
            &json!({ "policies": { "bsae.cedar": null } }),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    let msg = a.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("policies/bsae.cedar"), "{msg}");

    // A name that is not a file of its folder is refused with the field at fault.
    for (set, name) in [
        ("policies", "../base.cedar"),
        ("policies", "base.toml"),
        ("templates", ".toml"),
    ] {
        let a = server
            .post("/api/v1/simulate", &json!({ set: { name: "x" } }))
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{name}: {}", a.body);
        assert_eq!(
            a.body["error"]["field"],
            format!("{set}.{name}"),
            "{}",
            a.body
        );
    }

    // `tenure plan --url` sends a folder's files the same way, and names removals.
    let out = env
        .command()
        .env("TENURE_TOKEN", TOKEN)
        .args([
            "plan",
            "--url",
            &server.base,
            "--remove",
            "policies/base.cedar",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["revokes"], 9, "{plan}");
    let changed = tempfile::tempdir().unwrap();
    std::fs::write(changed.path().join("tenure.toml"), CONFIG).unwrap();
    std::fs::create_dir_all(changed.path().join("policies")).unwrap();
    std::fs::write(changed.path().join("policies/departments.cedar"), &no_sales).unwrap();
    let out = env
        .command()
        .env("TENURE_TOKEN", TOKEN)
        .args(["plan", "--url", &server.base, "--config"])
        .arg(changed.path().join("tenure.toml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&plan["people_changed"], &plan["revokes"]),
        (&json!(1), &json!(1)),
        "{plan}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn reloads_under_load_lose_no_event() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    write_policy(&env, "base.cedar", BASE);
    let server = env.start().await;
    const N: usize = 200;
    let sender = {
        let events: Vec<Value> = (0..N)
            .map(|i| hire(&format!("l{i:03}"), "Engineering"))
            .collect();
        let server = &server;
        async move {
            let mut runs = Vec::new();
            for e in &events {
                runs.push(server.accept(e).await);
            }
            runs
        }
    };
    let reloader = async {
        for i in 0..6 {
            if i % 2 == 0 {
                let a = server.post("/api/v1/reload", &json!({})).await;
                assert_eq!(a.status, StatusCode::OK, "{}", a.body);
            } else {
                // SIGHUP does the same.
                let status = std::process::Command::new("kill")
                    .args(["-HUP", &server.pid().to_string()])
                    .status()
                    .unwrap();
                assert!(status.success());
            }
            tokio::task::yield_now().await;
        }
    };
    let (runs, ()) = tokio::join!(sender, reloader);
    assert_eq!(runs.len(), N);
    for r in &runs {
        let run = server.wait_run(r).await;
        assert_eq!(run["state"], "succeeded", "{run}");
    }
    let people = server.items("/api/v1/people").await;
    assert_eq!(people.len(), N);
    // Every reload, by API or by signal, swapped the rules and said so in the audit trail.
    let mut reloads = 0;
    for _ in 0..200 {
        reloads = server
            .items("/api/v1/audit")
            .await
            .iter()
            .filter(|e| e["action"] == "rules.reloaded")
            .count();
        if reloads == 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(reloads, 6, "{}", server.log_text());
}

/// Waits until no run is pending or running.
async fn settle(server: &Server) {
    for _ in 0..400 {
        let runs = server.items("/api/v1/runs").await;
        if runs.iter().all(is_terminal) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("runs did not settle");
}
