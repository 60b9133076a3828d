//! Input that used to reach the database or lock operators out, refused at the edge, against
//! the real binary on SQLite (and PostgreSQL with `TENURE_TEST_DATABASE_URL`): NUL characters
//! on every way in, SCIM filters beyond their bounds, and revoking the last admin token.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CONFIG: &str = r#"
[[systems]]
id = "directory"
connector = "sandbox"

[[entitlements]]
id = "directory:all-staff"
system = "directory"

[hr.people]
[hr.people.fields]
type = { pointer = "/kind", map = { Hired = "hire" } }
"person.id" = "/id"
"person.name" = "/name"
"person.email" = "/email"
"person.worker_type" = { value = "employee" }
"#;

const TEMPLATES: &[(&str, &str)] = &[("all-staff", "entitlements = [\"directory:all-staff\"]\n")];

const SCIM: &str = "application/scim+json";
const NUL: &str = "must not contain a NUL character";

async fn scim(s: &Server, token: &str, method: Method, path: &str, body: Option<Value>) -> Answer {
    s.request(
        method,
        &format!("/scim/v2{path}"),
        Some(token),
        &[("content-type", SCIM)],
        body.map(|b| b.to_string()),
    )
    .await
}

async fn scim_token(s: &Server) -> String {
    let a = s
        .post(
            "/api/v1/tokens",
            &json!({ "name": "identity-provider", "scopes": ["scim"] }),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    a.body["token"].as_str().expect("token").to_string()
}

fn assert_invalid(a: &Answer, field: &str) {
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.body["error"]["field"], field, "{}", a.body);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(NUL)),
        "{}",
        a.body
    );
}

fn assert_scim_400(a: &Answer, scim_type: &str, detail_has: &str) {
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.body["scimType"], scim_type, "{}", a.body);
    assert!(
        a.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains(detail_has)),
        "{}",
        a.body
    );
}

/// A NUL character is a 400 naming the field on every way in, on both databases (PostgreSQL
/// cannot store one), and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_refused_on_every_way_in_and_nothing_is_stored() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let s = env.start().await;
    let audit_before = s.items("/api/v1/audit").await.len();

    // The events API: a name, and a department.
    let mut hire = common::hire("E1", "Engineering");
    hire["person"]["name"] = json!("Ada\u{0}Lovelace");
    assert_invalid(&s.send_event(&hire, None).await, "person.name");
    let mut hire = common::hire("E1", "Eng\u{0}ineering");
    hire["source"] = json!("e2e");
    assert_invalid(&s.send_event(&hire, None).await, "person.department");

    // An HR webhook's payload.
    let a = s
        .post(
            "/api/v1/hr/people",
            &json!({ "kind": "Hired", "id": "E2", "name": "Bo\u{0}b", "email": "bob@example.com" }),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(
        a.body["error"]["message"].as_str().unwrap().contains(NUL),
        "{}",
        a.body
    );

    // SCIM: create, replace, PATCH and Bulk, in userName and elsewhere.
    let t = scim_token(&s).await;
    let a = scim(
        &s,
        &t,
        Method::POST,
        "/Users",
        Some(json!({ "userName": "cy\u{0}@example.com" })),
    )
    .await;
    assert_scim_400(&a, "invalidValue", NUL);
    let a = scim(
        &s,
        &t,
        Method::POST,
        "/Users",
        Some(json!({ "userName": "dee@example.com", "active": false })),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let id = a.body["id"].as_str().unwrap().to_string();
    let a = scim(
        &s,
        &t,
        Method::PUT,
        &format!("/Users/{id}"),
        Some(json!({ "userName": "dee@example.com", "displayName": "D\u{0}ee" })),
    )
    .await;
    assert_scim_400(&a, "invalidValue", NUL);
    let a = scim(
        &s,
        &t,
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(
            json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                     "Operations": [{ "op": "replace", "path": "nickName", "value": "\u{0}" }] }),
        ),
    )
    .await;
    assert_scim_400(&a, "invalidValue", NUL);
    let a = scim(
        &s,
        &t,
        Method::POST,
        "/Bulk",
        Some(
            json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                     "Operations": [{ "method": "POST", "path": "/Users", "bulkId": "b1",
                                      "data": { "userName": "eve\u{0}@example.com" } }] }),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["Operations"][0]["status"], "400", "{}", a.body);
    // A filter comparing against a NUL is refused too (PostgreSQL refuses the parameter).
    let a = scim(
        &s,
        &t,
        Method::POST,
        "/Users/.search",
        Some(json!({ "filter": "userName eq \"dee\\u0000\"" })),
    )
    .await;
    assert_scim_400(&a, "invalidFilter", "NUL");

    // A token's name, a request's justification, a task's message.
    let a = s
        .post(
            "/api/v1/tokens",
            &json!({ "name": "robot\u{0}", "scopes": ["read"] }),
        )
        .await;
    assert_invalid(&a, "name");
    let a = s
        .post(
            "/api/v1/requests",
            &json!({ "person_id": "E1", "entitlement": "directory:all-staff",
                     "justification": "because\u{0}" }),
        )
        .await;
    assert_invalid(&a, "justification");
    let a = s
        .post(
            "/api/v1/tasks/no-such-task/fail",
            &json!({ "message": "broken\u{0}" }),
        )
        .await;
    assert_invalid(&a, "message");

    // Nothing of it was stored: no person, one SCIM user (the clean one), no NUL token.
    for id in ["E1", "E2"] {
        let a = s
            .request(
                Method::GET,
                &format!("/api/v1/people/{id}"),
                Some(TOKEN),
                &[],
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{id}: {}", a.body);
    }
    let users = scim(&s, &t, Method::GET, "/Users", None).await;
    assert_eq!(users.body["totalResults"], 1, "{}", users.body);
    assert_eq!(users.body["Resources"][0]["userName"], "dee@example.com");
    let tokens = s.get("/api/v1/tokens").await;
    assert_eq!(tokens["items"].as_array().unwrap().len(), 2, "{tokens}");
    // The audit trail holds the SCIM token and the clean user only.
    let audit = s.items("/api/v1/audit").await;
    let actions: Vec<&str> = audit[audit_before..]
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions
            .iter()
            .all(|a| *a == "token.created" || a.starts_with("scim.")),
        "{actions:?}"
    );
}

/// A filter beyond the parser's bounds is `invalidFilter`, by GET and by `.search`; the
/// largest filters within the bounds run on the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_filters_beyond_their_bounds_are_invalid_and_those_within_run() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let s = env.start().await;
    let t = scim_token(&s).await;
    for name in ["u1@example.com", "u2@example.com"] {
        let a = scim(
            &s,
            &t,
            Method::POST,
            "/Users",
            Some(json!({ "userName": name, "active": false,
                         "emails": [{ "value": name, "type": "work" }] })),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    }
    let search = async |filter: &str| {
        scim(
            &s,
            &t,
            Method::POST,
            "/Users/.search",
            Some(json!({ "filter": filter })),
        )
        .await
    };
    let get = async |filter: &str| {
        let q: String = url_encode(filter);
        scim(&s, &t, Method::GET, &format!("/Users?filter={q}"), None).await
    };

    // The report's filter: a thousand terms (a 500 from SQLite's expression depth before).
    let thousand = (0..1_000)
        .map(|i| format!("userName eq \"u{i}@example.com\""))
        .collect::<Vec<_>>()
        .join(" or ");
    for a in [get(&thousand).await, search(&thousand).await] {
        assert_scim_400(&a, "invalidFilter", "maximum of 100 attribute expressions");
    }

    // Within the bounds: 100 terms in one chain; nesting 63 groups deep, alternating and/or,
    // with value filters; 64 nested `not`s.
    let chain = (0..100)
        .map(|i| format!("userName eq \"u{i}@example.com\""))
        .collect::<Vec<_>>()
        .join(" or ");
    let mut nested = "emails[type eq \"work\" and value sw \"u\"]".to_string();
    for i in 0..63 {
        let op = if i % 2 == 0 { "or" } else { "and" };
        nested = format!("userName ne \"x{i}\" {op} ({nested})");
    }
    let nots = format!("{}userName pr{}", "not (".repeat(64), ")".repeat(64));
    for (filter, want) in [(&chain, 2), (&nested, 2), (&nots, 2)] {
        for a in [get(filter).await, search(filter).await] {
            assert_eq!(a.status, StatusCode::OK, "{}", a.body);
            assert_eq!(a.body["totalResults"], want, "{}", a.body);
        }
    }
    let one_more = format!("{chain} or userName eq \"late@example.com\"");
    assert_scim_400(
        &search(&one_more).await,
        "invalidFilter",
        "maximum of 100 attribute expressions",
    );
}

/// The last live token holding `admin` cannot be revoked, through the API (the bootstrap
/// token's id is fixed and known) or the CLI; once another admin token exists, it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_admin_token_cannot_be_revoked() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let s = env.start().await;
    // A token without admin does not count.
    let a = s
        .post(
            "/api/v1/tokens",
            &json!({ "name": "reader", "scopes": ["read"] }),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);

    let a = s.delete("/api/v1/tokens/tok_bootstrap").await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("last live token holding `admin`"),
        "{}",
        a.body
    );
    let out = env.cli(&["token", "revoke", "tok_bootstrap"]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("last live token holding `admin`"),
        "{}",
        describe(&out)
    );
    // Still working, still listed live, and no revocation audited.
    let tokens = s.get("/api/v1/tokens").await;
    let boot = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "tok_bootstrap")
        .expect("bootstrap token listed")
        .clone();
    assert!(boot["revoked_at"].is_null(), "{boot}");
    let revoked = s.items("/api/v1/audit").await;
    assert!(!revoked.iter().any(|e| e["action"] == "token.revoked"));

    // With a second admin token, the first can go; then the second is the last.
    let a = s
        .post(
            "/api/v1/tokens",
            &json!({ "name": "ops", "scopes": ["admin"] }),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let (ops_id, ops) = (
        a.body["id"].as_str().unwrap().to_string(),
        a.body["token"].as_str().unwrap().to_string(),
    );
    let a = s.delete("/api/v1/tokens/tok_bootstrap").await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    let a = s
        .request(
            Method::DELETE,
            &format!("/api/v1/tokens/{ops_id}"),
            Some(&ops),
            &[],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    let a = s
        .request(Method::GET, "/api/v1/tokens", Some(&ops), &[], None)
        .await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "the last admin still works: {}",
        a.body
    );
}

/// The engine's limits are checked before it starts: out of range, `serve` stops with a
/// message naming the limit; in range, it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_limits_out_of_range_stop_serve_with_a_message() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    for (args, want) in [
        (
            &["--claim-batch", "0"][..],
            "claim_batch: 0 is outside 1 to 65536",
        ),
        (
            &["--max-in-flight", "100", "--claim-batch", "200"][..],
            "claim_batch: 200 is more than max_in_flight (100)",
        ),
        (
            &["--max-urgent-in-flight", "70000"][..],
            "max_urgent_in_flight: 70000 is outside 1 to 65536",
        ),
    ] {
        let mut cmd = env.command();
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .args(env.db_args());
        let o = cmd.output().unwrap();
        assert!(!o.status.success(), "{args:?}: {}", common::describe(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{args:?}: {}", common::describe(&o));
    }
    let s = env
        .start_with(
            &[
                "--max-in-flight",
                "8",
                "--claim-batch",
                "2",
                "--max-urgent-in-flight",
                "4",
            ],
            None,
        )
        .await;
    // Two steps claimed at a time: the hires still finish, every one of them.
    let mut runs = Vec::new();
    for i in 0..6 {
        runs.push(s.accept(&hire(&format!("lim-{i}"), "engineering")).await);
    }
    for id in runs {
        assert_eq!(s.wait_run(&id).await["state"], "succeeded");
    }
}

/// SCIM's absolute links come from `--public-url`, or the listen address without it, never
/// from the `Host` header a client sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_locations_come_from_the_public_url_never_the_host_header() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let spoofed = [
        ("content-type", SCIM),
        ("host", "evil.example.net"),
        ("x-forwarded-proto", "https"),
    ];
    let create = async |s: &Server, t: &str, name: &str| {
        let a = s
            .request(
                Method::POST,
                "/scim/v2/Users",
                Some(t),
                &spoofed,
                Some(json!({ "userName": name, "active": false }).to_string()),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        a
    };

    let s = env
        .start_with(&["--public-url", "https://idm.example.com/tenure/"], None)
        .await;
    let t = scim_token(&s).await;
    let a = create(&s, &t, "ann@example.com").await;
    let want = format!(
        "https://idm.example.com/tenure/scim/v2/Users/{}",
        a.body["id"].as_str().unwrap()
    );
    assert_eq!(a.body["meta"]["location"], want, "{}", a.body);
    assert_eq!(a.headers["location"].to_str().unwrap(), want);
    let spc = s
        .request(
            Method::GET,
            "/scim/v2/ServiceProviderConfig",
            Some(&t),
            &spoofed,
            None,
        )
        .await;
    assert_eq!(
        spc.body["meta"]["location"],
        "https://idm.example.com/tenure/scim/v2/ServiceProviderConfig",
        "{}",
        spc.body
    );
    drop(s);

    // Without --public-url: the address tenure listens on.
    let s = env.start().await;
    let a = create(&s, &t, "bo@example.com").await;
    let location = a.body["meta"]["location"].as_str().unwrap();
    assert_eq!(
        location,
        format!(
            "{}/scim/v2/Users/{}",
            s.base,
            a.body["id"].as_str().unwrap()
        ),
        "{}",
        a.body
    );
}
