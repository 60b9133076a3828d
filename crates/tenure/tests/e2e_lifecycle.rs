//! End to end over HTTP against the real binary: a person's whole lifecycle, idempotent replay,
//! refused input and authentication.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const CONFIG: &str = r#"
[engine]
max_attempts = 3
backoff_base_ms = 10
backoff_max_ms = 50

[[systems]]
id = "directory"
connector = "sandbox"
retention = "delete"
[[systems]]
id = "chat"
connector = "sandbox"
retention = "keep"
[[systems]]
id = "crm"
connector = "sandbox"
retention = "keep"
[[systems]]
id = "ticketing"
connector = "sandbox"
retention = "delete"

[[clients]]
id = "acme"
[[clients]]
id = "globex"

[[entitlements]]
id = "directory:all-staff"
system = "directory"
[[entitlements]]
id = "directory:engineering"
system = "directory"
[[entitlements]]
id = "directory:sales"
system = "directory"
[[entitlements]]
id = "chat:general"
system = "chat"
[[entitlements]]
id = "chat:engineering"
system = "chat"
[[entitlements]]
id = "chat:client-acme"
system = "chat"
client = "acme"
[[entitlements]]
id = "chat:client-globex"
system = "chat"
client = "globex"
[[entitlements]]
id = "crm:user"
system = "crm"
[[entitlements]]
id = "crm:client-acme"
system = "crm"
client = "acme"
[[entitlements]]
id = "crm:client-globex"
system = "crm"
client = "globex"
[[entitlements]]
id = "ticketing:client-acme"
system = "ticketing"
client = "acme"
[[entitlements]]
id = "ticketing:client-globex"
system = "ticketing"
client = "globex"
"#;

const TEMPLATES: &[(&str, &str)] = &[
    (
        "all-staff",
        "entitlements = [\"directory:all-staff\", \"chat:general\"]\n",
    ),
    (
        "engineering",
        "entitlements = [\"directory:engineering\", \"chat:engineering\"]\n[match]\ndepartment = [\"Engineering\"]\n",
    ),
    (
        "sales",
        "entitlements = [\"directory:sales\", \"crm:user\"]\n[match]\ndepartment = [\"Sales\"]\n",
    ),
    (
        "client-consultant",
        "entitlements = [\"chat:client-{client}\", \"ticketing:client-{client}\"]\n[match]\nengagement_role = [\"consultant\"]\n",
    ),
    (
        "client-account-lead",
        "entitlements = [\"chat:client-{client}\", \"crm:client-{client}\"]\n[match]\nengagement_role = [\"account-lead\"]\n",
    ),
];

/// Expected `changes` per system (directory, chat, crm, ticketing); `calls` must match, as no
/// failure is injected and nothing is repeated.
async fn assert_counters(s: &Server, after: &str, want: [i64; 4]) {
    let stats = s.stats().await;
    let got: BTreeMap<String, (i64, i64, i64)> = stats
        .iter()
        .map(|(k, v)| (k.clone(), (v.changes, v.calls, v.failures)))
        .collect();
    let expected: BTreeMap<String, (i64, i64, i64)> = ["directory", "chat", "crm", "ticketing"]
        .iter()
        .zip(want)
        .map(|(k, n)| (k.to_string(), (n, n, 0)))
        .collect();
    assert_eq!(
        got, expected,
        "sandbox (changes, calls, failures) after {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_lifecycle_end_to_end() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let s = env.start().await;
    let health = s.request(Method::GET, "/healthz", None, &[], None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");

    // Hire into Engineering: accounts on directory and chat, four birthright grants.
    let mut ev = hire("p1", "Engineering");
    ev["person"]["title"] = json!("Engineer");
    ev["person"]["start_date"] = json!("2024-01-08");
    s.apply_ok(&ev).await;
    let p = s.person("p1").await;
    assert_eq!(p["status"], "active");
    assert_eq!(
        accounts(&p),
        map(&[("chat", "active"), ("directory", "active")])
    );
    assert_eq!(
        grants(&p),
        map(&[
            ("chat:engineering", "granted"),
            ("chat:general", "granted"),
            ("directory:all-staff", "granted"),
            ("directory:engineering", "granted"),
        ])
    );
    for g in p["grants"].as_array().unwrap() {
        assert_eq!(g["source"], "birthright", "{g}");
        time_ms(&g["granted_at"]);
    }
    assert_counters(&s, "hire", [3, 3, 0, 0]).await;

    // Transfer to Sales: engineering access goes, sales access (and a CRM account) comes, and
    // the accounts that stay get the new attributes.
    s.apply_ok(&json!({"type": "transfer", "person": {"id": "p1", "department": "Sales", "title": "Account Executive"}}))
        .await;
    let p = s.person("p1").await;
    assert_eq!(p["department"], "Sales");
    assert_eq!(p["title"], "Account Executive");
    assert_eq!(
        accounts(&p),
        map(&[
            ("chat", "active"),
            ("crm", "active"),
            ("directory", "active")
        ])
    );
    assert_eq!(
        grants(&p),
        map(&[
            ("chat:engineering", "revoked"),
            ("chat:general", "granted"),
            ("crm:user", "granted"),
            ("directory:all-staff", "granted"),
            ("directory:engineering", "revoked"),
            ("directory:sales", "granted"),
        ])
    );
    // directory: update + revoke + grant; chat: update + revoke; crm: create + grant.
    assert_counters(&s, "transfer", [6, 5, 2, 0]).await;

    // Two engagements start: each client's access is added.
    let acme = json!({"client": "acme", "role": "consultant"});
    let globex = json!({"client": "globex", "role": "account-lead"});
    s.apply_ok(&json!({"type": "engagement_start", "person": {"id": "p1"}, "engagement": acme}))
        .await;
    s.apply_ok(&json!({"type": "engagement_start", "person": {"id": "p1"}, "engagement": globex}))
        .await;
    let p = s.person("p1").await;
    assert_eq!(accounts(&p)["ticketing"], "active");
    let g = grants(&p);
    for e in [
        "chat:client-acme",
        "ticketing:client-acme",
        "chat:client-globex",
        "crm:client-globex",
    ] {
        assert_eq!(g[e], "granted", "{e} after engagement_start: {p:#}");
    }
    for g in p["grants"].as_array().unwrap() {
        let e = g["entitlement"].as_str().unwrap();
        if e.contains("client-acme") {
            assert_eq!(g["source"], "engagement");
            assert_eq!(g["source_ref"], "p1:acme:consultant");
        }
    }
    let engagements = p["engagements"].as_array().unwrap();
    assert_eq!(engagements.len(), 2, "{p:#}");
    assert!(engagements.iter().all(|e| e["active"] == true));
    assert_counters(&s, "engagement starts", [6, 7, 3, 2]).await;

    // The acme engagement ends: exactly acme's access goes; globex's stays.
    s.apply_ok(&json!({"type": "engagement_end", "person": {"id": "p1"}, "engagement": acme}))
        .await;
    let p = s.person("p1").await;
    let g = grants(&p);
    assert_eq!(g["chat:client-acme"], "revoked");
    assert_eq!(g["ticketing:client-acme"], "revoked");
    assert_eq!(g["chat:client-globex"], "granted");
    assert_eq!(g["crm:client-globex"], "granted");
    assert_eq!(g["chat:general"], "granted");
    assert_eq!(g["crm:user"], "granted");
    assert_eq!(g["directory:sales"], "granted");
    assert_eq!(g["directory:all-staff"], "granted");
    // Ticketing was only there for acme: disabled, then deleted (retention = delete).
    assert_eq!(
        accounts(&p),
        map(&[
            ("chat", "active"),
            ("crm", "active"),
            ("directory", "active"),
            ("ticketing", "deleted"),
        ])
    );
    let by_id: BTreeMap<&str, &Value> = p["engagements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e))
        .collect();
    assert_eq!(by_id["p1:acme:consultant"]["active"], false);
    assert_eq!(by_id["p1:globex:account-lead"]["active"], true);
    assert_counters(&s, "engagement_end", [6, 8, 3, 5]).await;

    // A contract change moves the end date and touches no system.
    let run = s
        .apply_ok(
            &json!({"type": "contract_change", "person": {"id": "p1", "end_date": "2031-06-30"}}),
        )
        .await;
    assert_eq!(run["steps"].as_array().unwrap().len(), 0, "{run:#}");
    let p = s.person("p1").await;
    assert_eq!(p["end_date"], "2031-06-30");
    assert_eq!(p["start_date"], "2024-01-08");
    assert_counters(&s, "contract_change", [6, 8, 3, 5]).await;

    // Leave: every account disabled, every grant revoked, accounts deleted or kept per system.
    let run = s
        .apply_ok(&json!({"type": "leave", "person": {"id": "p1"}}))
        .await;
    let disables: Vec<_> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|st| st["action"] == "disable_account")
        .map(|st| st["phase"].as_i64().unwrap())
        .collect();
    assert_eq!(
        disables,
        vec![0, 0, 0],
        "every account disabled first: {run:#}"
    );
    let p = s.person("p1").await;
    assert_eq!(p["status"], "terminated");
    assert_eq!(
        accounts(&p),
        map(&[
            ("chat", "disabled"),
            ("crm", "disabled"),
            ("directory", "deleted"),
            ("ticketing", "deleted"),
        ])
    );
    let g = grants(&p);
    assert!(g.values().all(|s| s == "revoked"), "after leave: {g:?}");
    assert_eq!(g.len(), 10, "{g:?}");
    assert!(
        p["engagements"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["active"] == false),
        "{p:#}"
    );
    // directory: disable + 2 revokes + delete; chat and crm: disable + 2 revokes each.
    assert_counters(&s, "leave", [10, 11, 6, 5]).await;

    // Rehire: access comes back (a new directory account, the kept ones enabled again).
    let mut ev = hire("p1", "Sales");
    ev["type"] = json!("rehire");
    ev["person"]["title"] = json!("Account Executive");
    s.apply_ok(&ev).await;
    let p = s.person("p1").await;
    assert_eq!(p["status"], "active");
    assert_eq!(
        p["end_date"],
        Value::Null,
        "a rehire clears the old end date"
    );
    assert_eq!(
        accounts(&p),
        map(&[
            ("chat", "active"),
            ("crm", "active"),
            ("directory", "active"),
            ("ticketing", "deleted"),
        ])
    );
    let g = grants(&p);
    let held: Vec<&str> = g
        .iter()
        .filter(|(_, s)| *s == "granted")
        .map(|(e, _)| e.as_str())
        .collect();
    assert_eq!(
        held,
        vec![
            "chat:general",
            "crm:user",
            "directory:all-staff",
            "directory:sales"
        ]
    );
    // directory: create + 2 grants; chat: enable + grant; crm: enable + grant.
    assert_counters(&s, "rehire", [13, 13, 8, 5]).await;

    // The audit trail tells the story: eight runs, each ended once.
    let audit = s.items("/api/v1/audit?person=p1").await;
    let ended = audit
        .iter()
        .filter(|e| e["action"] == "run.succeeded")
        .count();
    assert_eq!(ended, 8, "run.succeeded entries for p1");
    let runs = s.items("/api/v1/runs?person=p1").await;
    assert_eq!(runs.len(), 8);
    assert!(runs.iter().all(|r| r["state"] == "succeeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_idempotent() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let s = env.start().await;

    // Three times under one Idempotency-Key: during the run, after it, and re-serialized.
    let a = hire("pa", "Engineering");
    let first = s.send_event(&a, Some("key-a")).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let second = s.send_event(&a, Some("key-a")).await;
    assert_eq!(second.status, StatusCode::ACCEPTED, "{}", second.body);
    assert_eq!(second.body, first.body);
    assert_eq!(
        second
            .headers
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    let run_a = first.body["run_id"].as_str().unwrap().to_string();
    s.wait_run(&run_a).await;
    let reordered = r#"{ "source": "e2e", "person": { "department": "Engineering",
        "worker_type": "employee", "email": "pa@example.com", "name": "Person pa", "id": "pa" },
        "type": "hire" }"#;
    let third = s.send_raw_event(reordered, Some("key-a")).await;
    assert_eq!(third.status, StatusCode::ACCEPTED, "{}", third.body);
    assert_eq!(third.body, first.body, "same event, other key order");

    // Three times relying on the event's own id, all at once.
    let mut b = hire("pb", "Sales");
    b["id"] = json!("hr-event-b");
    let answers = tokio::join!(
        s.send_event(&b, None),
        s.send_event(&b, None),
        s.send_event(&b, None)
    );
    let answers = [answers.0, answers.1, answers.2];
    for x in &answers {
        assert_eq!(x.status, StatusCode::ACCEPTED, "{}", x.body);
        assert_eq!(x.body, answers[0].body, "concurrent repeats answer alike");
    }
    let replays = answers
        .iter()
        .filter(|x| x.headers.get("idempotent-replayed").is_some())
        .count();
    assert_eq!(replays, 2, "exactly one of three stored");
    let run_b = answers[0].body["run_id"].as_str().unwrap().to_string();
    s.wait_run(&run_b).await;
    let again = s.send_event(&b, None).await;
    assert_eq!(again.body, answers[0].body);

    // Each ran once: one run per person, each effect applied once.
    for (person, run) in [("pa", &run_a), ("pb", &run_b)] {
        let runs = s.items(&format!("/api/v1/runs?person={person}")).await;
        assert_eq!(runs.len(), 1, "runs of {person}: {runs:#?}");
        assert_eq!(runs[0]["id"], run.as_str());
        assert_eq!(runs[0]["state"], "succeeded");
    }
    let stats = s.stats().await;
    // pa: directory + chat accounts and four grants; pb: directory, chat, crm and four grants.
    assert_eq!(total_changes(&stats), 6 + 7, "{stats:?}");
    assert_eq!(
        stats.values().map(|s| s.calls).sum::<i64>(),
        13,
        "no call repeated: {stats:?}"
    );
    let received = s
        .items("/api/v1/audit")
        .await
        .iter()
        .filter(|e| e["action"] == "event.received")
        .count();
    assert_eq!(received, 2);

    // The same key (or event id) with a different event is refused, and stores nothing.
    let mut other = a.clone();
    other["person"]["department"] = json!("Sales");
    let reused = s.send_event(&other, Some("key-a")).await;
    assert_eq!(
        reused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reused.body
    );
    assert_eq!(reused.body["error"]["code"], "idempotency_key_reused");
    assert_eq!(reused.body["error"]["field"], "Idempotency-Key");
    let mut other_b = b.clone();
    other_b["person"]["name"] = json!("Someone Else");
    let reused = s.send_event(&other_b, None).await;
    assert_eq!(
        reused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reused.body
    );
    assert_eq!(s.items("/api/v1/runs").await.len(), 2);
    assert_eq!(s.person("pa").await["department"], "Engineering");
    assert_eq!(s.person("pb").await["name"], "Person pb");
    assert_eq!(total_changes(&s.stats().await), 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field_and_stores_nothing() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let s = env.start().await;
    s.apply_ok(&hire("p0", "Engineering")).await;
    let people = s.items("/api/v1/people").await;
    let audit = s.items("/api/v1/audit").await;
    let runs = s.items("/api/v1/runs").await;

    let ok_person = r#""id":"p9","name":"Nine","email":"p9@example.com","worker_type":"employee""#;
    let cases: Vec<(&str, String, &str)> = vec![
        ("malformed JSON", r#"{"type":"hire","person":{"id":"p9""#.into(), "body"),
        ("not an object", "[1, 2, 3]".into(), "body"),
        // serde's sequence form of a struct: must not pass for an event.
        ("an array holding an event", format!(r#"[null, "hire", {{{ok_person}}}]"#), "body"),
        ("unknown event type", format!(r#"{{"type":"fire","person":{{{ok_person}}}}}"#), "type"),
        ("id of the wrong type", r#"{"type":"hire","person":{"id":42,"name":"N","email":"n@example.com","worker_type":"employee"}}"#.into(), "person.id"),
        ("unknown worker type", r#"{"type":"hire","person":{"id":"p9","name":"N","email":"n@example.com","worker_type":"robot"}}"#.into(), "person.worker_type"),
        ("hire without email", r#"{"type":"hire","person":{"id":"p9","name":"N","worker_type":"employee"}}"#.into(), "person.email"),
        ("hire without name", r#"{"type":"hire","person":{"id":"p9","email":"n@example.com","worker_type":"employee"}}"#.into(), "person.name"),
        ("hire without worker type", r#"{"type":"hire","person":{"id":"p9","name":"N","email":"n@example.com"}}"#.into(), "person.worker_type"),
        ("hire without person id", r#"{"type":"hire","person":{"name":"N","email":"n@example.com","worker_type":"employee"}}"#.into(), "person.id"),
        ("empty person id", r#"{"type":"hire","person":{"id":"","name":"N","email":"n@example.com","worker_type":"employee"}}"#.into(), "person.id"),
        ("bad email", r#"{"type":"hire","person":{"id":"p9","name":"N","email":"not-an-email","worker_type":"employee"}}"#.into(), "person.email"),
        ("impossible date", format!(r#"{{"type":"hire","person":{{{ok_person},"start_date":"2026-02-30"}}}}"#), "person.start_date"),
        ("date in another format", format!(r#"{{"type":"hire","person":{{{ok_person},"end_date":"30/06/2026"}}}}"#), "person.end_date"),
        ("end before start", format!(r#"{{"type":"hire","person":{{{ok_person},"start_date":"2026-03-01","end_date":"2026-02-01"}}}}"#), "person.end_date"),
        ("bad effective_at", format!(r#"{{"type":"hire","person":{{{ok_person}}},"effective_at":"next tuesday"}}"#), "effective_at"),
        ("unknown top-level field", format!(r#"{{"type":"hire","person":{{{ok_person}}},"colour":"blue"}}"#), "colour"),
        ("unknown person field", format!(r#"{{"type":"hire","person":{{{ok_person},"nmae":"x"}}}}"#), "person.nmae"),
        ("engagement on a hire", format!(r#"{{"type":"hire","person":{{{ok_person}}},"engagement":{{"client":"acme","role":"consultant"}}}}"#), "engagement"),
        ("engagement_start without engagement", r#"{"type":"engagement_start","person":{"id":"p0"}}"#.into(), "engagement"),
        ("engagement without role", r#"{"type":"engagement_start","person":{"id":"p0"},"engagement":{"client":"acme","role":" "}}"#.into(), "engagement.role"),
    ];
    let mut wrong = Vec::new();
    for (what, body, field) in &cases {
        let a = s.send_raw_event(body, None).await;
        let got_field = a.body["error"]["field"].as_str().unwrap_or("<none>");
        if a.status != StatusCode::BAD_REQUEST
            || a.body["error"]["code"] != "invalid_request"
            || got_field != *field
        {
            wrong.push(format!(
                "{what}: expected 400 naming `{field}`, got {} {}",
                a.status, a.body
            ));
        }
    }

    // Not JSON at all: 415, whatever the body.
    let valid = hire("p9", "Engineering").to_string();
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "application/jsonp",
    ] {
        let a = s
            .request(
                Method::POST,
                "/api/v1/events",
                Some(TOKEN),
                &[("content-type", ct)],
                Some(valid.clone()),
            )
            .await;
        if a.status != StatusCode::UNSUPPORTED_MEDIA_TYPE
            || a.body["error"]["code"] != "unsupported_media_type"
        {
            wrong.push(format!("content type {ct}: got {} {}", a.status, a.body));
        }
    }
    // A blank Idempotency-Key is refused too.
    let a = s.send_raw_event(&valid, Some(" ")).await;
    if a.status != StatusCode::BAD_REQUEST || a.body["error"]["field"] != "Idempotency-Key" {
        wrong.push(format!(
            "blank Idempotency-Key: got {} {}",
            a.status, a.body
        ));
    }

    // Nothing was stored by any of them.
    let after = s.items("/api/v1/people").await;
    if after != people {
        let ids: Vec<&Value> = after.iter().map(|p| &p["id"]).collect();
        wrong.push(format!("people were stored: now {ids:?}"));
    }
    let after = s.items("/api/v1/runs").await;
    if after != runs {
        wrong.push(format!("{} runs were started", after.len() - runs.len()));
    }
    let after = s.items("/api/v1/audit").await;
    if after != audit {
        wrong.push(format!(
            "{} audit entries were written",
            after.len() - audit.len()
        ));
    }
    assert!(
        wrong.is_empty(),
        "refusals not as expected:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_authenticate_and_scopes_authorize() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let s = env.start().await;
    let event = hire("p1", "Engineering").to_string();
    let post = |token: Option<&str>| {
        let token = token.map(str::to_string);
        let event = event.clone();
        let s = &s;
        async move {
            s.request(
                Method::POST,
                "/api/v1/events",
                token.as_deref(),
                &[("content-type", "application/json")],
                Some(event),
            )
            .await
        }
    };

    // No token, an unknown token, a malformed header: 401, nothing stored.
    assert_eq!(post(None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        post(Some("tnr_not_a_real_token")).await.status,
        StatusCode::UNAUTHORIZED
    );
    let basic = s
        .request(
            Method::GET,
            "/api/v1/people",
            None,
            &[("authorization", "Basic dXNlcjpwYXNz")],
            None,
        )
        .await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
    for path in [
        "/api/v1/people",
        "/api/v1/runs",
        "/api/v1/audit",
        "/metrics",
    ] {
        let a = s.request(Method::GET, path, None, &[], None).await;
        assert_eq!(
            a.status,
            StatusCode::UNAUTHORIZED,
            "GET {path} without a token"
        );
        assert_eq!(a.body["error"]["code"], "unauthorized");
    }
    assert_eq!(
        s.request(Method::GET, "/healthz", None, &[], None)
            .await
            .status,
        StatusCode::OK
    );

    // A read-only token made with the CLI reads but cannot write or administer.
    let out = env.cli(&["token", "create", "--name", "auditor", "--scope", "read"]);
    assert!(out.status.success(), "{}", describe(&out));
    let read = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(read.starts_with("tnr_"), "{read}");
    let r = s
        .request(Method::GET, "/api/v1/people", Some(&read), &[], None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let m = s
        .request(Method::GET, "/metrics", Some(&read), &[], None)
        .await;
    assert_eq!(m.status, StatusCode::OK);
    let denied = post(Some(&read)).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);
    assert_eq!(denied.body["error"]["code"], "forbidden");
    let denied = s
        .request(
            Method::POST,
            "/api/v1/tokens",
            Some(&read),
            &[("content-type", "application/json")],
            Some(json!({"name": "x", "scopes": ["admin"]}).to_string()),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert!(s.items("/api/v1/people").await.is_empty(), "nothing stored");

    // A token made through the API works until it is revoked.
    let made = s
        .post(
            "/api/v1/tokens",
            &json!({"name": "hr-feed", "scopes": ["events:write"]}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let (id, secret) = (
        made.body["id"].as_str().unwrap().to_string(),
        made.body["token"].as_str().unwrap().to_string(),
    );
    let accepted = post(Some(&secret)).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    let run = s.wait_run(accepted.body["run_id"].as_str().unwrap()).await;
    assert_eq!(run["state"], "succeeded");
    let event_id = accepted.body["event_id"].as_str().unwrap();
    assert_eq!(
        s.get(&format!("/api/v1/events/{event_id}")).await["actor"],
        "hr-feed",
        "the token's name is the event's actor"
    );
    let cannot_read = s
        .request(Method::GET, "/api/v1/people", Some(&secret), &[], None)
        .await;
    assert_eq!(cannot_read.status, StatusCode::FORBIDDEN);
    let bad_scope = s
        .post("/api/v1/tokens", &json!({"name": "x", "scopes": ["root"]}))
        .await;
    assert_eq!(bad_scope.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_scope.body["error"]["field"], "scopes");

    let revoked = s.delete(&format!("/api/v1/tokens/{id}")).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    let after = post(Some(&secret)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "{}", after.body);
    let again = s.delete(&format!("/api/v1/tokens/{id}")).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let audit = s.items("/api/v1/audit").await;
    let actions: Vec<&str> = audit
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("token."))
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "token.created",
            "token.created",
            "token.created",
            "token.revoked"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_for_one_person_due_together_apply_in_order() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let s = env.start().await;
    let acme = json!({"client": "acme", "role": "consultant"});
    let globex = json!({"client": "globex", "role": "account-lead"});
    // A batch of changes from HR, all effective at the same moment (1.5 s from now), sent in
    // order: they must apply in that order. (Sent without effective_at, back to back, the
    // same happens whenever the earlier runs are still open.)
    let at = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    let mut run_ids = Vec::new();
    for mut ev in [
        hire("p2", "Engineering"),
        json!({"type": "transfer", "person": {"id": "p2", "department": "Sales"}}),
        json!({"type": "engagement_start", "person": {"id": "p2"}, "engagement": acme}),
        json!({"type": "engagement_end", "person": {"id": "p2"}, "engagement": acme}),
        json!({"type": "engagement_start", "person": {"id": "p2"}, "engagement": globex}),
    ] {
        ev["effective_at"] = json!(at);
        run_ids.push(s.accept(&ev).await);
    }
    let first = s.get(&format!("/api/v1/runs/{}", run_ids[0])).await;
    assert_eq!(first["state"], "pending", "not due yet: {first:#}");
    let mut ended = Vec::new();
    for id in &run_ids {
        let run = s.wait_run(id).await;
        ended.push(run);
    }
    let p = s.person("p2").await;
    let outcome: Vec<String> = ended
        .iter()
        .map(|r| {
            let error = r["error"]
                .as_str()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            format!(
                "{}: {}{error}",
                r["kind"].as_str().unwrap(),
                r["state"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        ended.iter().all(|r| r["state"] == "succeeded"),
        "every run should succeed, in order; got {outcome:?}; the person ends with \
         grants {:?} and accounts {:?}",
        grants(&p),
        accounts(&p)
    );
    let mut previous_end = 0;
    for run in &ended {
        let planned = time_ms(&run["planned_at"]);
        assert!(
            planned >= previous_end,
            "run {} was planned before the one before it ended: {run:#}",
            run["kind"]
        );
        previous_end = time_ms(&run["finished_at"]);
    }
    assert_eq!(
        grants(&p),
        map(&[
            ("chat:client-acme", "revoked"),
            ("chat:client-globex", "granted"),
            ("chat:engineering", "revoked"),
            ("chat:general", "granted"),
            ("crm:client-globex", "granted"),
            ("crm:user", "granted"),
            ("directory:all-staff", "granted"),
            ("directory:engineering", "revoked"),
            ("directory:sales", "granted"),
            ("ticketing:client-acme", "revoked"),
        ])
    );
    assert_eq!(
        accounts(&p),
        map(&[
            ("chat", "active"),
            ("crm", "active"),
            ("directory", "active"),
            ("ticketing", "deleted"),
        ])
    );
    // Same totals as applying them one by one (see the lifecycle test).
    let stats = s.stats().await;
    let changes: Vec<i64> = ["directory", "chat", "crm", "ticketing"]
        .iter()
        .map(|k| stats[*k].changes)
        .collect();
    assert_eq!(changes, vec![6, 8, 3, 5], "{stats:?}");
}
