//! Access requests and approvals through the real binary: tokens that act as people, scopes
//! enforced on every route, a chain approved over HTTP and with `tenure approvals`, a denial,
//! break-glass, and bad input refused with the field at fault; the approvers', requesters' and
//! delegations' lists, paged and filtered, each caller seeing only what their token allows.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CONFIG: &str = APPROVALS_CONFIG;
const ALL: &[(&str, &str)] = APPROVALS_TEMPLATES;

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
        s.apply_ok(&hire_under(id, m)).await;
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
    // ann holds read, not approve: she lists her own queue (empty); deciding is refused below.
    let a = call(&s, Method::GET, "/api/v1/approvals", &ann, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["items"], json!([]));

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
    s.awaiting_approval(&run_id).await;

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
    let out = api_cli(&env, &s, &mia, &["approvals", "list"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&approval_id));
    let out = api_cli(
        &env,
        &s,
        &mia,
        &["approvals", "approve", &approval_id, "-c", "fine for close"],
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
    time_ms(&r.body["request"]["expires_at"]);
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
    let out = api_cli(
        &env,
        &s,
        &mia,
        &["approvals", "approve", &id, "-c", "ok by me"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let out = api_cli(
        &env,
        &s,
        &olga,
        &["approvals", "deny", &id, "-c", "use the shared dashboard"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(s.wait_run(&run_id).await["state"], "denied");
    let out = api_cli(&env, &s, &olga, &["approvals", "deny", &id, "-c", "again"]);
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
        time_ms(&r["request"]["expires_at"]) - time_ms(&r["request"]["decided_at"]),
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
    s.awaiting_approval(&run_id).await;
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

/// Runs `tenure ARGS` as `token`; its standard output, or a panic with what went wrong.
fn cli_ok(env: &TestEnv, s: &Server, token: &str, args: &[&str]) -> String {
    let out = api_cli(env, s, token, args);
    assert!(out.status.success(), "{}", describe(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// POSTs a decision on an approval as `token`.
async fn decide(s: &Server, token: &str, approval: &str, decision: &str, comment: &str) -> Answer {
    let path = format!("/api/v1/approvals/{approval}/decision");
    let body = json!({ "decision": decision, "comment": comment });
    call(s, Method::POST, &path, token, Some(body)).await
}

/// The ids of a list's items.
fn item_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {page:#}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

/// GET as `token`; panics unless 200.
async fn list(s: &Server, token: &str, path: &str) -> Value {
    let a = call(s, Method::GET, path, token, None).await;
    assert_eq!(a.status, StatusCode::OK, "GET {path}: {}", a.body);
    a.body
}

/// GET as `token`; asserts the status.
async fn refused(s: &Server, token: &str, path: &str, status: StatusCode) -> Value {
    let a = call(s, Method::GET, path, token, None).await;
    assert_eq!(a.status, status, "GET {path}: {}", a.body);
    a.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvers_requesters_and_delegations_are_listed_paged_and_scoped() {
    let env = TestEnv::new(CONFIG, ALL).await;
    let s = env.start().await;
    for (id, m) in [
        ("mia", None),
        ("olga", None),
        ("sam", None),
        ("ann", Some("mia")),
        ("bob", Some("mia")),
        ("cat", Some("mia")),
    ] {
        s.apply_ok(&hire_under(id, m)).await;
    }
    let ann = token(&env, "ann", &["request"], Some("ann"));
    let bob = token(&env, "bob", &["request"], Some("bob"));
    let cat = token(&env, "cat", &["request"], Some("cat"));
    let mia = token(&env, "mia", &["approve", "request"], Some("mia"));
    let olga = token(&env, "olga", &["approve"], Some("olga"));
    let sam = token(&env, "sam", &["approve"], Some("sam"));
    let reader = token(&env, "auditor", &["read"], None);

    // A query that does not parse is a 400 with the JSON error body, on every list.
    for path in [
        "/api/v1/people",
        "/api/v1/runs",
        "/api/v1/audit",
        "/api/v1/tasks",
        "/api/v1/approvals",
        "/api/v1/requests",
        "/api/v1/delegations",
    ] {
        let b = refused(
            &s,
            TOKEN,
            &format!("{path}?limit=abc"),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(b["error"]["code"], "invalid_request", "{path}: {b}");
        assert_eq!(b["error"]["field"], "limit", "{path}: {b}");
    }
    let b = refused(
        &s,
        TOKEN,
        "/api/v1/runs/x?wait_ms=-1",
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(b["error"]["field"], "wait_ms");
    for path in [
        "/api/v1/approvals?state=maybe",
        "/api/v1/requests?state=maybe",
    ] {
        let b = refused(&s, TOKEN, path, StatusCode::BAD_REQUEST).await;
        assert_eq!(b["error"]["field"], "state", "{path}: {b}");
    }
    let b = refused(
        &s,
        &mia,
        "/api/v1/approvals?stat=denied",
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        b["error"]["message"].as_str().unwrap().contains("stat"),
        "{b}"
    );

    // Three requests (ann, cat, bob), each waiting for mia (their manager) first.
    let mut requests = Vec::new();
    for (t, ent) in [
        (&ann, "directory:reports"),
        (&cat, "db:prod-admin"),
        (&bob, "directory:reports"),
    ] {
        let a = call(
            &s,
            Method::POST,
            "/api/v1/requests",
            t,
            Some(json!({ "entitlement": ent, "justification": "audit season", "duration_secs": 3600 })),
        )
        .await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
        s.awaiting_approval(a.body["run_id"].as_str().unwrap())
            .await;
        requests.push(a.body["request_id"].as_str().unwrap().to_string());
    }
    let all_pending = item_ids(&list(&s, &mia, "/api/v1/approvals").await);
    assert_eq!(all_pending.len(), 3);

    // Paged in the database: two, then the one after them, then the end.
    let first = list(&s, &mia, "/api/v1/approvals?limit=2").await;
    assert_eq!(item_ids(&first), all_pending[..2]);
    let next = first["next_after"].as_str().unwrap();
    let second = list(&s, &mia, &format!("/api/v1/approvals?limit=2&after={next}")).await;
    assert_eq!(item_ids(&second), all_pending[2..]);
    assert!(second["next_after"].is_null());
    // Filters an approver asks for.
    let bobs = list(&s, &mia, "/api/v1/approvals?person=bob").await;
    assert_eq!(item_ids(&bobs).len(), 1);
    assert_eq!(bobs["items"][0]["person_id"], "bob");
    let db = list(&s, &mia, "/api/v1/approvals?entitlement=db:prod-admin").await;
    assert_eq!(item_ids(&db).len(), 1);
    assert_eq!(db["items"][0]["entitlement"], "db:prod-admin");

    // Who sees what: olga's stage has not opened; ann holds no approve scope; someone else's
    // queue or everyone's needs read; the auditor (read, no person) sees them all.
    assert!(item_ids(&list(&s, &olga, "/api/v1/approvals").await).is_empty());
    refused(&s, &ann, "/api/v1/approvals", StatusCode::FORBIDDEN).await;
    refused(
        &s,
        &olga,
        "/api/v1/approvals?approver=mia",
        StatusCode::FORBIDDEN,
    )
    .await;
    refused(
        &s,
        &olga,
        "/api/v1/approvals?all=true",
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(
        item_ids(&list(&s, &reader, "/api/v1/approvals?approver=mia").await),
        all_pending
    );
    assert_eq!(
        item_ids(&list(&s, &reader, "/api/v1/approvals").await),
        all_pending
    );
    // Reading one approval by id: an approver only reads their own.
    let bob_approval = bobs["items"][0]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/approvals/{bob_approval}");
    list(&s, &mia, &path).await;
    refused(&s, &sam, &path, StatusCode::FORBIDDEN).await;
    list(&s, &reader, &path).await;
    // Deciding needs the approve scope and a token acting as a person.
    for t in [&reader, &ann] {
        let a = decide(&s, t, &bob_approval, "approve", "not mine to decide").await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    }

    // mia denies bob's request and approves ann's reports (CLI); olga then approves those.
    let a = decide(&s, &mia, &bob_approval, "deny", "not this quarter").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let reports = list(
        &s,
        &mia,
        "/api/v1/approvals?person=ann&entitlement=directory:reports",
    )
    .await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    cli_ok(
        &env,
        &s,
        &mia,
        &["approvals", "approve", &reports, "-c", "for the audit"],
    );
    let out = cli_ok(&env, &s, &olga, &["approvals", "list"]);
    assert!(out.contains(&reports), "{out}");
    cli_ok(
        &env,
        &s,
        &olga,
        &["approvals", "approve", &reports, "-c", "owner agrees"],
    );
    assert_eq!(
        list(&s, &olga, &format!("/api/v1/approvals/{reports}")).await["state"],
        "approved"
    );
    // Decided approvals stay visible for audit, by state.
    assert_eq!(
        item_ids(&list(&s, &mia, "/api/v1/approvals").await).len(),
        1,
        "only cat's db:prod-admin still waits for mia"
    );
    assert_eq!(
        item_ids(&list(&s, &mia, "/api/v1/approvals?state=denied").await),
        vec![bob_approval.clone()]
    );
    assert_eq!(
        item_ids(&list(&s, &mia, "/api/v1/approvals?state=approved").await),
        vec![reports.clone()]
    );
    assert_eq!(
        item_ids(&list(&s, &mia, "/api/v1/approvals?state=decided").await).len(),
        2
    );
    assert_eq!(
        item_ids(&list(&s, &mia, "/api/v1/approvals?state=all").await).len(),
        3
    );
    assert!(
        item_ids(&list(&s, &sam, "/api/v1/approvals?state=all").await).is_empty(),
        "sam was never asked"
    );

    // Requests: the caller's own by default; everyone's with read, newest first and paged.
    assert_eq!(
        item_ids(&list(&s, &ann, "/api/v1/requests").await),
        vec![requests[0].clone()]
    );
    let page = list(&s, &reader, "/api/v1/requests?limit=2").await;
    assert_eq!(
        item_ids(&page),
        vec![requests[2].clone(), requests[1].clone()]
    );
    let before = page["next_before"].as_str().unwrap();
    let page = list(
        &s,
        &reader,
        &format!("/api/v1/requests?limit=2&before={before}"),
    )
    .await;
    assert_eq!(item_ids(&page), vec![requests[0].clone()]);
    assert!(page["next_before"].is_null());
    assert_eq!(
        item_ids(&list(&s, &ann, "/api/v1/requests?state=approved").await),
        vec![requests[0].clone()]
    );
    assert!(item_ids(&list(&s, &ann, "/api/v1/requests?state=pending").await).is_empty());
    assert!(
        item_ids(&list(&s, &ann, "/api/v1/requests?person=bob").await).is_empty(),
        "ann never sees bob's requests"
    );
    refused(&s, &ann, "/api/v1/requests?all=true", StatusCode::FORBIDDEN).await;
    assert_eq!(
        item_ids(&list(&s, &reader, "/api/v1/requests").await).len(),
        3
    );
    assert_eq!(
        item_ids(&list(&s, &reader, "/api/v1/requests?person=bob&state=denied").await),
        vec![requests[2].clone()]
    );
    // mia, who asked for none, lists none of her own.
    assert!(item_ids(&list(&s, &mia, "/api/v1/requests").await).is_empty());

    // Where a request stands: stages, who decided what with their comment, when it ends.
    let d = list(&s, &ann, &format!("/api/v1/requests/{}", requests[0])).await;
    assert_eq!(d["request"]["state"], "approved");
    time_ms(&d["request"]["expires_at"]);
    let approval = &d["approvals"][0];
    assert_eq!(approval["state"], "approved");
    assert_eq!(approval["chain"]["stages"].as_array().unwrap().len(), 2);
    let decisions: Vec<(&str, &str)> = approval["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["actor"].as_str().unwrap(), x["comment"].as_str().unwrap()))
        .collect();
    assert_eq!(
        decisions,
        vec![("mia", "for the audit"), ("olga", "owner agrees")]
    );
    refused(
        &s,
        &bob,
        &format!("/api/v1/requests/{}", requests[0]),
        StatusCode::FORBIDDEN,
    )
    .await;
    let text = cli_ok(&env, &s, &ann, &["requests", "list"]);
    assert!(
        text.contains(&requests[0]) && !text.contains(&requests[1]) && !text.contains(&requests[2]),
        "{text}"
    );
    let text = cli_ok(&env, &s, &ann, &["requests", "show", &requests[0]]);
    assert!(
        text.contains("approve by mia: for the audit") && text.contains("owner agrees"),
        "{text}"
    );

    // Delegations: mia names sam with the CLI; sam then sees mia's queue.
    let until = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    cli_ok(
        &env,
        &s,
        &mia,
        &["delegations", "add", "sam", "--until", &until],
    );
    let mias = list(&s, &mia, "/api/v1/delegations").await;
    let delegation = item_ids(&mias);
    assert_eq!(delegation.len(), 1);
    let delegation = delegation[0].clone();
    assert_eq!(mias["items"][0]["delegate"], "sam");
    assert_eq!(
        item_ids(&list(&s, &sam, "/api/v1/delegations").await),
        vec![delegation.clone()]
    );
    assert!(item_ids(&list(&s, &olga, "/api/v1/delegations").await).is_empty());
    refused(
        &s,
        &olga,
        "/api/v1/delegations?all=true",
        StatusCode::FORBIDDEN,
    )
    .await;
    refused(
        &s,
        &olga,
        "/api/v1/delegations?person=mia",
        StatusCode::FORBIDDEN,
    )
    .await;
    refused(&s, &reader, "/api/v1/delegations", StatusCode::FORBIDDEN).await;
    assert_eq!(
        item_ids(&list(&s, TOKEN, "/api/v1/delegations?all=true").await),
        vec![delegation.clone()]
    );
    assert_eq!(
        item_ids(&list(&s, &sam, "/api/v1/approvals").await),
        item_ids(&list(&s, &mia, "/api/v1/approvals").await)
    );
    let out = cli_ok(&env, &s, &sam, &["delegations", "list"]);
    assert!(out.contains(&delegation));

    // Only the delegator (or an admin) withdraws it; then sam decides nothing for mia.
    let path = format!("/api/v1/delegations/{delegation}");
    for t in [&sam, &olga, &ann] {
        let a = call(&s, Method::DELETE, &path, t, None).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    }
    cli_ok(&env, &s, &mia, &["delegations", "remove", &delegation]);
    assert!(item_ids(&list(&s, &sam, "/api/v1/approvals").await).is_empty());
    assert!(item_ids(&list(&s, &mia, "/api/v1/delegations").await).is_empty());
    let ended = list(&s, &mia, "/api/v1/delegations?include_ended=true").await;
    time_ms(&ended["items"][0]["revoked_at"]);
    let a = call(&s, Method::DELETE, &path, &mia, None).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    let a = call(&s, Method::DELETE, "/api/v1/delegations/nope", &mia, None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    let revoked: Vec<Value> = s
        .items("/api/v1/audit")
        .await
        .into_iter()
        .filter(|e| e["action"] == "approval.delegation_revoked")
        .collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["actor"], "mia");

    let out = env.cli(&["audit", "verify"]);
    assert!(out.status.success(), "{}", describe(&out));
}

/// The demo's directory, support desk and separation-of-duties rule, with the demo's policies.
const SUPPORT: &str = r#"
[[systems]]
id = "directory"
connector = "sandbox"
[[systems]]
id = "ticketing"
connector = "sandbox"

[[entitlements]]
id = "directory:staff"
system = "directory"
[[entitlements]]
id = "directory:admins"
system = "directory"
kind = "group"
risk = "privileged"
owner = "it-ops"
[[entitlements]]
id = "ticketing:agent"
system = "ticketing"
kind = "license"

[[separation_of_duties]]
id = "admins-are-not-support-agents"
entitlements = ["directory:admins", "ticketing:agent"]

[approvals]
request_stages = ["manager"]
[approvals.teams]
it-ops = ["olga"]
"#;

const SUPPORT_TEMPLATES: &[(&str, &str)] = &[
    ("all", "entitlements = [\"directory:staff\"]\n"),
    (
        "support",
        "entitlements = [\"ticketing:agent\"]\n[match]\ndepartment = [\"Support\"]\n",
    ),
];

/// Writes the demo's Cedar policies beside the test's `tenure.toml`.
fn demo_policies(env: &TestEnv) {
    let dir = env.dir.path().join("policies");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in [
        (
            "approvals.cedar",
            include_str!("../demo/policies/approvals.cedar"),
        ),
        ("base.cedar", include_str!("../demo/policies/base.cedar")),
        (
            "contractors.cedar",
            include_str!("../demo/policies/contractors.cedar"),
        ),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

/// A support agent asks for the directory admins, then breaks the glass for them: separation of
/// duties denies both, with the rule named, and nothing is granted; a contractor's break-glass
/// for privileged access is denied by policy, never `approved`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_break_glass_meet_separation_of_duties_and_policy() {
    let env = TestEnv::new(SUPPORT, SUPPORT_TEMPLATES).await;
    demo_policies(&env);
    let s = env.start().await;
    s.apply_ok(&hire_under("mia", None)).await;
    s.apply_ok(&hire_under("olga", None)).await;
    let mut sam = hire_under("sam", Some("mia"));
    sam["person"]["department"] = "Support".into();
    s.apply_ok(&sam).await;
    assert_eq!(
        grants(&s.person("sam").await)
            .get("ticketing:agent")
            .map(String::as_str),
        Some("granted")
    );
    let mut cora = hire_under("cora", Some("mia"));
    cora["person"]["worker_type"] = "contractor".into();
    s.apply_ok(&cora).await;
    let sam_token = token(&env, "sam", &["request", "break_glass"], Some("sam"));
    let cora_token = token(&env, "cora", &["break_glass"], Some("cora"));

    let asks = [
        (&sam_token, false, "sod:admins-are-not-support-agents"),
        (&sam_token, true, "sod:admins-are-not-support-agents"),
        (&cora_token, true, "contractors-never-privileged"),
    ];
    for (t, break_glass, policy) in asks {
        let body = json!({ "entitlement": "directory:admins", "justification": "printer outage",
            "break_glass": break_glass });
        let a = call(&s, Method::POST, "/api/v1/requests", t, Some(body)).await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
        let run = s.wait_run(a.body["run_id"].as_str().unwrap()).await;
        assert_ne!(run["state"], "awaiting_approval", "{run:#}");
        let note = &run["note"];
        assert_eq!(note["denied"][0]["policies"], json!([policy]), "{run:#}");
        let id = a.body["request_id"].as_str().unwrap();
        let r = s.get(&format!("/api/v1/requests/{id}")).await;
        assert_eq!(r["request"]["state"], "denied", "{r:#}");
        assert_eq!(r["denied_by"], json!([policy]), "{r:#}");
        let audit: Vec<Value> = s
            .items("/api/v1/audit")
            .await
            .into_iter()
            .filter(|e| e["correlation_id"] == id)
            .collect();
        let actions: Vec<&str> = audit.iter().filter_map(|e| e["action"].as_str()).collect();
        assert!(actions.contains(&"request.denied"), "{actions:?}");
        assert!(!actions.contains(&"request.approved"), "{actions:?}");
    }
    for who in ["sam", "cora"] {
        let p = s.person(who).await;
        assert_eq!(grants(&p).get("directory:admins"), None, "{p:#}");
    }
    let out = env.cli(&["audit", "verify"]);
    assert!(out.status.success(), "{}", describe(&out));
}

/// A manager leaves while an approval waits on them: their token stops working at once (no
/// cache outlives the leave), the approval goes to their own manager, and a rehire does not
/// bring the old token back; a new one works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaver_s_tokens_stop_and_their_approvals_go_up_the_line() {
    let env = TestEnv::new(CONFIG, ALL).await;
    let s = env.start().await;
    for (id, m) in [
        ("ceo", None),
        ("mia", Some("ceo")),
        ("olga", Some("ceo")),
        ("ann", Some("mia")),
    ] {
        s.apply_ok(&hire_under(id, m)).await;
    }
    let ann = token(&env, "ann", &["request"], Some("ann"));
    let mia = token(&env, "mia", &["approve"], Some("mia"));
    let ceo = token(&env, "ceo", &["approve"], Some("ceo"));
    let ask = json!({ "entitlement": "db:prod-admin", "justification": "failover drill" });
    let (run_id, id) = ask_first_approval(&s, &ann, ask, &mia).await;
    let a = call(&s, Method::GET, "/api/v1/approvals", &mia, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    s.apply_ok(&json!({ "type": "leave", "person": { "id": "mia" } }))
        .await;
    let decision = json!({ "decision": "approve", "comment": "fine" });
    let path = format!("/api/v1/approvals/{id}/decision");
    let a = call(&s, Method::POST, &path, &mia, Some(decision.clone())).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    let message = a.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("who has left"), "{message}");
    let a = call(&s, Method::GET, "/api/v1/approvals", &mia, None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    // Nor can a new token be made to act as them, by the CLI or the API.
    let out = env.cli(&[
        "token", "create", "--name", "mia2", "--scope", "approve", "--as", "mia",
    ]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("person `mia` has left"),
        "{}",
        describe(&out)
    );
    let ask = json!({ "name": "mia2", "scopes": ["approve"], "person_id": "mia" });
    let a = call(&s, Method::POST, "/api/v1/tokens", TOKEN, Some(ask)).await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has left"),
        "{}",
        a.body
    );
    let tokens = call(&s, Method::GET, "/api/v1/tokens", TOKEN, None).await;
    assert!(
        !tokens.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "mia2"),
        "{}",
        tokens.body
    );

    // The manager stage is the ceo's now; the owner stage is still olga's.
    let a = call(&s, Method::GET, "/api/v1/approvals", &ceo, None).await;
    assert_eq!(a.body["items"][0]["id"], id, "{}", a.body);
    let audit = s.items("/api/v1/audit").await;
    let by = |action: &str| -> Vec<Value> {
        audit
            .iter()
            .filter(|e| e["action"] == action)
            .cloned()
            .collect()
    };
    let esc = by("approval.escalated");
    assert_eq!(esc.len(), 1, "{esc:#?}");
    assert_eq!(
        esc[0]["reason"],
        "approver `mia` left; their part goes to ceo"
    );
    let revoked = by("token.revoked");
    assert_eq!(revoked.len(), 1, "{revoked:#?}");
    assert_eq!(revoked[0]["actor"], "engine");
    let a = call(&s, Method::POST, &path, &ceo, Some(decision.clone())).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let olga = token(&env, "olga", &["approve"], Some("olga"));
    let a = call(&s, Method::POST, &path, &olga, Some(decision.clone())).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(s.wait_run(&run_id).await["state"], "succeeded");

    // Rehired: the old token stays revoked; a new one works.
    s.apply_ok(
        &json!({ "type": "rehire", "person": { "id": "mia", "name": "N mia",
        "email": "mia@example.com", "worker_type": "employee", "manager": "ceo" } }),
    )
    .await;
    let a = call(&s, Method::GET, "/api/v1/approvals", &mia, None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("was revoked"),
        "{}",
        a.body
    );
    let again = token(&env, "mia-again", &["approve"], Some("mia"));
    let a = call(&s, Method::GET, "/api/v1/approvals", &again, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    // A token made for someone who has not started yet works from their first day only.
    s.apply_ok(
        &json!({ "type": "hire", "person": { "id": "neo", "name": "N neo",
        "email": "neo@example.com", "worker_type": "employee", "manager": "ceo",
        "start_date": "2999-01-01" } }),
    )
    .await;
    let neo = token(&env, "neo", &["request"], Some("neo"));
    let a = call(&s, Method::GET, "/api/v1/requests", &neo, None).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has not started yet"),
        "{}",
        a.body
    );
}
