//! Access reviews through the real binary: a campaign opened from `[[reviews]]` with the CLI,
//! a reviewer's items and decisions over HTTP and with `tenure reviews`, every refusal with its
//! status (own access, someone else's item, wrong scope, bad input), the close that revokes
//! through a run, and the evidence exported as JSON and CSV with the audit entries that prove
//! each item.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const REVIEWS: &str = r#"
[[reviews]]
name = "reports"
reviewer = "manager"
fallback = "olga"
duration_days = 14
reminder_days = [7]
when_undecided = "keep"
[reviews.scope]
entitlements = ["directory:reports"]
"#;

/// `who` asks for `entitlement`; the manager then the owner approve; the run succeeds.
async fn granted(s: &Server, who: &str, entitlement: &str, approvers: &[&str]) {
    let a = call(
        s,
        Method::POST,
        "/api/v1/requests",
        who,
        Some(json!({ "entitlement": entitlement, "justification": "monthly reports" })),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let run = a.body["run_id"].as_str().unwrap().to_string();
    let approval = a.body["request_id"].as_str().unwrap().to_string();
    for approver in approvers {
        let list = call(s, Method::GET, "/api/v1/approvals", approver, None).await;
        let id = list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["request_id"] == approval.as_str())
            .unwrap_or_else(|| panic!("{}", list.body))["id"]
            .as_str()
            .unwrap()
            .to_string();
        let d = call(
            s,
            Method::POST,
            &format!("/api/v1/approvals/{id}/decision"),
            approver,
            Some(json!({ "decision": "approve", "comment": "ok" })),
        )
        .await;
        assert_eq!(d.status, StatusCode::OK, "{}", d.body);
    }
    assert_eq!(s.wait_run(&run).await["state"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_over_http_and_the_cli_revokes_through_a_run_and_exports_its_evidence() {
    let env = TestEnv::new(&format!("{APPROVALS_CONFIG}{REVIEWS}"), APPROVALS_TEMPLATES).await;
    let s = env.start().await;
    for (id, m) in [
        ("mia", None),
        ("olga", None),
        ("ann", Some("mia")),
        ("bob", Some("mia")),
    ] {
        s.apply_ok(&hire_under(id, m)).await;
    }
    let admin = token(&env, "admin", &["admin"], None);
    let ann = token(&env, "ann", &["request", "approve"], Some("ann"));
    let bob = token(&env, "bob", &["request", "approve"], Some("bob"));
    let mia = token(&env, "mia", &["approve"], Some("mia"));
    let olga = token(&env, "olga", &["approve"], Some("olga"));
    let reader = token(&env, "reader", &["read"], None);
    granted(&s, &ann, "directory:reports", &[&mia, &olga]).await;
    granted(&s, &bob, "directory:reports", &[&mia, &olga]).await;

    // Opened from tenure.toml with the CLI (admin only).
    let out = api_cli(&env, &s, &mia, &["reviews", "open", "reports"]);
    assert!(!out.status.success(), "a reviewer does not open campaigns");
    assert!(describe(&out).contains("403"), "{}", describe(&out));
    let out = api_cli(&env, &s, &admin, &["reviews", "open", "reports"]);
    assert!(out.status.success(), "{}", describe(&out));
    let line = String::from_utf8(out.stdout).unwrap();
    let id = line.split_whitespace().next().unwrap().to_string();
    assert!(line.contains("0 of 2 decided"), "{line}");
    let again = call(
        &s,
        Method::POST,
        "/api/v1/reviews",
        &admin,
        Some(json!({"definition": "reports"})),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);

    // The manager sees both items, each with its recommendation; ann sees none of her own.
    let items = call(
        &s,
        Method::GET,
        &format!("/api/v1/reviews/{id}/items"),
        &mia,
        None,
    )
    .await;
    assert_eq!(items.status, StatusCode::OK, "{}", items.body);
    let list = items.body["items"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{}", items.body);
    let seq_of = |who: &str| {
        list.iter().find(|i| i["person_id"] == who).unwrap()["seq"]
            .as_i64()
            .unwrap()
    };
    let (ann_item, bob_item) = (seq_of("ann"), seq_of("bob"));
    let mine = call(
        &s,
        Method::GET,
        &format!("/api/v1/reviews/{id}/items"),
        &ann,
        None,
    )
    .await;
    assert_eq!(mine.body["items"], json!([]), "{}", mine.body);
    let everyone = call(
        &s,
        Method::GET,
        &format!("/api/v1/reviews/{id}/items?reviewer=all"),
        &reader,
        None,
    )
    .await;
    assert_eq!(everyone.body["items"].as_array().unwrap().len(), 2);
    let no_read = call(
        &s,
        Method::GET,
        &format!("/api/v1/reviews/{id}/items?reviewer=all"),
        &mia,
        None,
    )
    .await;
    assert_eq!(no_read.status, StatusCode::FORBIDDEN, "{}", no_read.body);

    // Refusals, each with its status, and nothing recorded.
    let decide = |items: Value, decision: &str| json!({ "items": items, "decision": decision, "justification": "moved to sales" });
    let path = format!("/api/v1/reviews/{id}/decisions");
    let own = call(
        &s,
        Method::POST,
        &path,
        &ann,
        Some(decide(json!([ann_item]), "keep")),
    )
    .await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "{}", own.body);
    assert!(
        own.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("own access")
    );
    let other = call(
        &s,
        Method::POST,
        &path,
        &bob,
        Some(decide(json!([ann_item]), "keep")),
    )
    .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN, "{}", other.body);
    let no_scope = call(
        &s,
        Method::POST,
        &path,
        &reader,
        Some(decide(json!([ann_item]), "keep")),
    )
    .await;
    assert_eq!(no_scope.status, StatusCode::FORBIDDEN, "{}", no_scope.body);
    let bad = call(
        &s,
        Method::POST,
        &path,
        &mia,
        Some(decide(json!([ann_item]), "maybe")),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    let none = call(
        &s,
        Method::POST,
        &path,
        &mia,
        Some(decide(json!([]), "keep")),
    )
    .await;
    assert_eq!(
        none.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        none.body
    );
    let missing = call(
        &s,
        Method::POST,
        &path,
        &mia,
        Some(decide(json!([ann_item, 99]), "keep")),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    let nowhere = call(
        &s,
        Method::POST,
        "/api/v1/reviews/rc_nope/decisions",
        &mia,
        Some(decide(json!([1]), "keep")),
    )
    .await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND, "{}", nowhere.body);
    let typo = call(
        &s,
        Method::GET,
        &format!("/api/v1/reviews/{id}/items?sate=open"),
        &mia,
        None,
    )
    .await;
    assert_eq!(typo.status, StatusCode::BAD_REQUEST, "{}", typo.body);
    let c = s.get(&format!("/api/v1/reviews/{id}")).await;
    assert_eq!(
        (c["decided"].as_i64(), c["open_items"].as_i64()),
        (Some(0), Some(2))
    );

    // The manager revokes ann's with the CLI and keeps bob's over HTTP.
    let out = api_cli(
        &env,
        &s,
        &mia,
        &[
            "reviews",
            "decide",
            &id,
            &ann_item.to_string(),
            "--revoke",
            "-j",
            "moved to sales",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("decided revoke by mia"));
    let kept = call(
        &s,
        Method::POST,
        &path,
        &mia,
        Some(decide(json!([bob_item]), "keep")),
    )
    .await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    let twice = call(
        &s,
        Method::POST,
        &path,
        &mia,
        Some(decide(json!([bob_item]), "revoke")),
    )
    .await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.body);
    let out = api_cli(
        &env,
        &s,
        &mia,
        &["reviews", "show", &id, "--state", "decided"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(
        shown.contains("2 of 2 decided") && shown.contains("ann holds directory:reports"),
        "{shown}"
    );
    let metrics = s
        .request(Method::GET, "/metrics", Some(&reader), &[], None)
        .await;
    assert_eq!(metrics.status, StatusCode::OK, "{}", metrics.body);
    let text = metrics.body.as_str().unwrap_or_default().to_string();
    assert!(text.contains("tenure_review_items_open 0"), "{text}");

    // Closed: ann's access goes through a run of kind `review`; bob's stays.
    let closed = call(
        &s,
        Method::POST,
        &format!("/api/v1/reviews/{id}/close"),
        &admin,
        None,
    )
    .await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.body);
    assert_eq!(closed.body["state"], "closed");
    let all = call(
        &s,
        Method::GET,
        &format!("/api/v1/reviews/{id}/items?reviewer=all&state=all"),
        &reader,
        None,
    )
    .await;
    let ann_row = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["person_id"] == "ann")
        .unwrap()
        .clone();
    assert_eq!(ann_row["outcome"], "revoked");
    let run = s.wait_run(ann_row["run_id"].as_str().unwrap()).await;
    assert_eq!(
        (run["state"].as_str(), run["kind"].as_str()),
        (Some("succeeded"), Some("review"))
    );
    let grants = s.person("ann").await["grants"].clone();
    let reports = grants
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["entitlement"] == "directory:reports")
        .unwrap()
        .clone();
    assert_eq!(reports["state"], "revoked");
    let grants = s.person("bob").await["grants"].clone();
    assert!(
        grants
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["entitlement"] == "directory:reports" && g["state"] == "granted")
    );

    // The evidence: every item, who decided, why, and the audit entries that prove it.
    let export = s
        .request(
            Method::GET,
            &format!("/api/v1/reviews/{id}/export"),
            Some(&reader),
            &[],
            None,
        )
        .await;
    assert_eq!(export.status, StatusCode::OK);
    assert_eq!(export.body["campaign"]["state"], "closed");
    let items = export.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{}", export.body);
    let a = items.iter().find(|i| i["person_id"] == "ann").unwrap();
    assert_eq!(
        (a["decided_by"].as_str(), a["justification"].as_str()),
        (Some("mia"), Some("moved to sales"))
    );
    let (d, applied, revoked) = (
        a["decision_seq"].as_i64().unwrap(),
        a["applied_seq"].as_i64().unwrap(),
        a["revoke_seq"].as_i64().unwrap(),
    );
    assert!(d < applied && applied < revoked, "{a}");
    let audit = s.get("/api/v1/audit?person=ann&limit=1000").await;
    let action_at = |seq: i64| {
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["seq"] == seq)
            .unwrap()["action"]
            .clone()
    };
    assert_eq!(action_at(d), "review.decided");
    assert_eq!(action_at(applied), "review.revoked");
    assert_eq!(action_at(revoked), "step.revoke");
    let b = items.iter().find(|i| i["person_id"] == "bob").unwrap();
    assert_eq!(
        (b["outcome"].as_str(), b["revoke_seq"].clone()),
        (Some("kept"), Value::Null)
    );
    let file = env.dir.path().join("review.csv");
    let out = api_cli(
        &env,
        &s,
        &reader,
        &[
            "reviews",
            "export",
            &id,
            "--format",
            "csv",
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let csv = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("item,person_id,entitlement"), "{csv}");
    assert!(
        csv.contains("moved to sales") && csv.contains(&revoked.to_string()),
        "{csv}"
    );
    let csv_out = api_cli(&env, &s, &mia, &["reviews", "export", &id]);
    assert!(!csv_out.status.success(), "exporting takes read");
}
