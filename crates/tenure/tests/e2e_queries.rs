//! End to end over HTTP: strict query strings and the JSON error shape for every rejection,
//! the lists' filters (people, runs, audit, entitlements), events about people or clients tenure
//! does not know, and the canonical reads of clients and engagements.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CONFIG: &str = r#"
[engine]
max_attempts = 3
backoff_base_ms = 10
backoff_max_ms = 50

[[systems]]
id = "directory"
connector = "sandbox"
[[systems]]
id = "crm"
connector = "sandbox"
retention = "keep"

[[clients]]
id = "acme"
name = "Acme Corp"
max_access_days = 30
[[clients]]
id = "globex"
name = "Globex"

[[entitlements]]
id = "directory:all-staff"
system = "directory"
risk = "low"
owner = "it-desk"
[[entitlements]]
id = "directory:sales"
system = "directory"
risk = "medium"
owner = "sales-ops"
[[entitlements]]
id = "crm:client-acme"
system = "crm"
client = "acme"
risk = "medium"
owner = "sales-ops"
[[entitlements]]
id = "crm:client-globex"
system = "crm"
client = "globex"
risk = "high"
[[entitlements]]
id = "crm:client-initech"
system = "crm"
risk = "medium"

# Workday-shaped: one change per notice.
[hr.workday]
[hr.workday.fields]
type = { pointer = "/businessProcess/type", map = { Hire = "hire", Termination = "leave" } }
id = "/businessProcess/id"
"person.id" = "/worker/Employee_ID"
"person.name" = "/worker/Name"
"person.email" = "/worker/Email"
"person.worker_type" = { pointer = "/worker/Worker_Type", map = { Regular = "employee" }, default = "employee" }

# BambooHR-shaped: a list of employees with changed fields.
[hr.bamboohr]
each = "/employees"
[hr.bamboohr.fields]
type = { pointer = "/action", map = { Created = "hire", Updated = "transfer" } }
"person.id" = "/id"
"person.name" = "/name"
"person.email" = "/email"
"person.title" = "/title"
"person.worker_type" = { pointer = "/status", map = { Contractor = "contractor" }, default = "employee" }
"#;

const TEMPLATES: &[(&str, &str)] = &[
    ("all-staff", "entitlements = [\"directory:all-staff\"]\n"),
    (
        "sales",
        "entitlements = [\"directory:sales\"]\n[match]\ndepartment = [\"Sales\"]\n",
    ),
    (
        "consultant",
        "entitlements = [\"crm:client-{client}\"]\n[match]\nengagement_role = [\"consultant\"]\n",
    ),
];

/// A hire with the fields the people filters look at.
fn person(
    id: &str,
    name: &str,
    department: &str,
    worker_type: &str,
    manager: Option<&str>,
) -> Value {
    let email = format!("{}@example.com", name.to_lowercase().replace(' ', "."));
    let mut p = json!({
        "id": id, "name": name, "email": email, "worker_type": worker_type, "department": department,
    });
    if let Some(m) = manager {
        p["manager"] = json!(m);
    }
    json!({ "type": "hire", "person": p, "source": "e2e" })
}

fn engagement(kind: &str, person: &str, client: Value, role: &str) -> Value {
    json!({ "type": kind, "person": { "id": person }, "engagement": { "client": client, "role": role } })
}

/// The ids of a list's items, in order.
fn ids(page: &Value, key: &str) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {page}"))
        .iter()
        .map(|i| i[key].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A request that must be refused with `status` in the JSON error shape, with `field` when given.
async fn refused(
    s: &Server,
    method: Method,
    path: &str,
    status: StatusCode,
    field: Option<&str>,
) -> Value {
    let a = s
        .request(method.clone(), path, Some(TOKEN), &[], None)
        .await;
    assert_eq!(a.status, status, "{method} {path}: {}", a.body);
    assert!(
        a.body["error"]["code"].is_string() && a.body["error"]["message"].is_string(),
        "{method} {path} answered without the JSON error shape: {}",
        a.body
    );
    if let Some(f) = field {
        assert_eq!(a.body["error"]["field"], f, "{method} {path}: {}", a.body);
    }
    a.body
}

#[tokio::test]
async fn lists_refuse_unknown_parameters_and_bad_values_in_the_json_error_shape() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let s = &env.start().await;
    s.apply_ok(&person(
        "p1",
        "Ada Lovelace",
        "Engineering",
        "employee",
        None,
    ))
    .await;

    // Every list names the parameter it does not take, instead of answering with everything.
    for list in [
        "people",
        "runs",
        "audit",
        "entitlements",
        "systems",
        "tokens",
        "tasks",
        "requests",
        "approvals",
        "delegations",
        "clients",
        "engagements",
    ] {
        let body = refused(
            s,
            Method::GET,
            &format!("/api/v1/{list}?colour=blue"),
            StatusCode::BAD_REQUEST,
            Some("colour"),
        )
        .await;
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("unknown parameter `colour`"),
            "{list}: {body}"
        );
    }
    // Named among parameters the list does take; a misspelt filter is not ignored.
    refused(
        s,
        Method::GET,
        "/api/v1/people?limit=5&departement=Sales",
        StatusCode::BAD_REQUEST,
        Some("departement"),
    )
    .await;
    // A single run's long-poll too.
    let run = s.items("/api/v1/runs").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    refused(
        s,
        Method::GET,
        &format!("/api/v1/runs/{run}?wait=5"),
        StatusCode::BAD_REQUEST,
        Some("wait"),
    )
    .await;
    // Operations that take no parameters at all refuse them too, reads and writes alike,
    // and say so; nothing is stored by a refused write.
    let runs_before = s.items("/api/v1/runs").await.len();
    for (method, path) in [
        (Method::GET, "/api/v1/people/p1?expand=all"),
        (Method::GET, "/api/v1/clients/acme?colour=blue"),
        (Method::GET, "/api/v1/events/e?colour=blue"),
        (Method::GET, "/api/v1/requests/r?colour=blue"),
        (Method::GET, "/api/v1/approvals/a?colour=blue"),
        (Method::POST, &format!("/api/v1/runs/{run}/retry?force=1")),
        (Method::POST, "/api/v1/events?dry_run=1"),
    ] {
        let body = refused(s, method.clone(), path, StatusCode::BAD_REQUEST, None).await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("unknown parameter `")
                && message.ends_with("this endpoint takes no parameters"),
            "{method} {path}: {body}"
        );
    }
    assert_eq!(s.items("/api/v1/runs").await.len(), runs_before);
    // A path segment that does not decode is a 400 in the same shape, not plain text.
    refused(
        s,
        Method::GET,
        "/api/v1/people/%FF",
        StatusCode::BAD_REQUEST,
        Some("path"),
    )
    .await;

    // Values of the wrong type or outside a closed set.
    for (path, field) in [
        ("/api/v1/people?limit=abc", "limit"),
        ("/api/v1/people?status=gone", "status"),
        ("/api/v1/people?worker_type=robot", "worker_type"),
        ("/api/v1/runs?kind=fire", "kind"),
        ("/api/v1/runs?state=sleeping", "state"),
        ("/api/v1/runs?since=yesterday", "since"),
        // `+` in a query string is a space: the offset must be written %2B.
        ("/api/v1/runs?until=2026-01-01T00:00:00+01:00", "until"),
        ("/api/v1/audit?after=first", "after"),
        ("/api/v1/audit?order=sideways", "order"),
        ("/api/v1/audit?before=0", "before"),
        ("/api/v1/audit?since=2026-13-01T00:00:00Z", "since"),
        ("/api/v1/entitlements?risk=extreme", "risk"),
        ("/api/v1/engagements?active=maybe", "active"),
        ("/api/v1/clients?limit=0", "limit"),
    ] {
        refused(s, Method::GET, path, StatusCode::BAD_REQUEST, Some(field)).await;
    }
    assert_eq!(
        s.get("/api/v1/runs?since=2000-01-01T00:00:00%2B01:00")
            .await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A method a known path does not take: 405 in the same shape, with `Allow`.
    for (method, path, allow) in [
        (Method::DELETE, "/api/v1/people", "GET"),
        (Method::PUT, "/api/v1/events", "POST"),
        (Method::POST, "/api/v1/clients/acme", "GET"),
        (Method::GET, "/api/v1/runs/x/cancel", "POST"),
    ] {
        let a = s
            .request(method.clone(), path, Some(TOKEN), &[], None)
            .await;
        assert_eq!(
            a.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {}",
            a.body
        );
        assert_eq!(a.body["error"]["code"], "method_not_allowed", "{}", a.body);
        let got = a
            .headers
            .get("allow")
            .map(|v| v.to_str().unwrap().to_string());
        assert!(
            got.as_deref()
                .is_some_and(|g| g.split(',').any(|m| m.trim() == allow)),
            "{method} {path}: Allow {got:?}"
        );
    }
    // SCIM keeps its own error body.
    let a = s
        .request(Method::DELETE, "/scim/v2/Schemas", Some(TOKEN), &[], None)
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(a.body["schemas"].is_array(), "{}", a.body);
    // An unknown path stays a 404 in the JSON shape.
    refused(
        s,
        Method::GET,
        "/api/v1/nothing-here",
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
}

#[tokio::test]
async fn people_runs_audit_and_entitlements_filter_on_what_is_asked() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let s = &env.start().await;
    s.apply_ok(&person(
        "p1",
        "Ada Lovelace",
        "Engineering",
        "employee",
        None,
    ))
    .await;
    s.apply_ok(&person(
        "p2",
        "Grace Hopper",
        "Sales",
        "contractor",
        Some("p1"),
    ))
    .await;
    s.apply_ok(&person(
        "p3",
        "Alan Turing",
        "Sales",
        "employee",
        Some("p1"),
    ))
    .await;
    s.apply_ok(&engagement(
        "engagement_start",
        "p3",
        json!("acme"),
        "consultant",
    ))
    .await;
    s.apply_ok(&json!({ "type": "leave", "person": { "id": "p2" } }))
        .await;

    // People: each filter narrows; they combine.
    let people = |q: &str| {
        let path = format!("/api/v1/people?{q}");
        async move { ids(&s.get(&path).await, "id") }
    };
    assert_eq!(people("").await, ["p1", "p2", "p3"]);
    assert_eq!(people("department=Sales").await, ["p2", "p3"]);
    assert_eq!(people("department=Sales&status=active").await, ["p3"]);
    assert_eq!(people("status=terminated").await, ["p2"]);
    assert_eq!(people("worker_type=contractor").await, ["p2"]);
    assert_eq!(people("manager=p1").await, ["p2", "p3"]);
    assert_eq!(people("client=acme").await, ["p3"]);
    assert_eq!(people("client=globex").await, Vec::<String>::new());
    // Text search: words beginning words of the name or email, any case; `_` and `%` are
    // plain characters, not wildcards (and no word at all: they match no one).
    assert_eq!(people("q=LOVELACE").await, ["p1"]);
    assert_eq!(people("q=grace.hopper%40").await, ["p2"]);
    assert_eq!(people("q=example.com").await, ["p1", "p2", "p3"]);
    assert_eq!(people("q=_").await, Vec::<String>::new());
    assert_eq!(people("q=%25").await, Vec::<String>::new());
    // Paged as before, the filter kept.
    let first = s.get("/api/v1/people?department=Sales&limit=1").await;
    assert_eq!(ids(&first, "id"), ["p2"]);
    assert_eq!(first["next_after"], "p2");
    assert_eq!(people("department=Sales&limit=1&after=p2").await, ["p3"]);

    // Runs: kind, person, state, time range.
    let runs = |q: &str| {
        let path = format!("/api/v1/runs?{q}");
        async move { s.get(&path).await["items"].as_array().unwrap().clone() }
    };
    let leaves = runs("kind=leave").await;
    assert_eq!(leaves.len(), 1);
    assert_eq!(leaves[0]["person_id"], "p2");
    assert_eq!(runs("kind=hire&state=succeeded").await.len(), 3);
    assert_eq!(runs("person=p3&kind=engagement_start").await.len(), 1);
    assert_eq!(runs("person=p3&kind=leave").await.len(), 0);
    let all = runs("").await;
    assert_eq!(all.len(), 5);
    let created: Vec<i64> = all
        .iter()
        .map(|r| common::time_ms(&r["created_at"]))
        .collect();
    let (oldest, newest) = (
        *created.iter().min().unwrap(),
        *created.iter().max().unwrap(),
    );
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    assert_eq!(runs(&format!("since={}", at(oldest))).await.len(), 5);
    assert_eq!(runs(&format!("since={}", at(newest + 1))).await.len(), 0);
    assert_eq!(runs(&format!("until={}", at(oldest))).await.len(), 0);
    assert_eq!(
        runs(&format!("since={}&until={}", at(oldest), at(newest + 1)))
            .await
            .len(),
        5
    );

    // Audit: each filter agrees with filtering the whole trail by hand.
    let trail = s.items("/api/v1/audit").await;
    let actor = trail
        .iter()
        .find(|e| e["action"] == "event.received")
        .expect("an event.received entry")["actor"]
        .as_str()
        .unwrap()
        .to_string();
    for (param, key, value) in [
        ("actor", "actor", actor.as_str()),
        ("action", "action", "event.received"),
        ("action", "action", "step.grant"),
        ("system", "system", "crm"),
        ("entitlement", "entitlement", "crm:client-acme"),
        ("person", "person_id", "p2"),
    ] {
        let want: Vec<i64> = trail
            .iter()
            .filter(|e| e[key] == value)
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        assert!(!want.is_empty(), "nothing to find for {param}={value}");
        let got: Vec<i64> = s
            .items(&format!("/api/v1/audit?{param}={value}"))
            .await
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(got, want, "{param}={value}");
    }
    let two = s
        .items("/api/v1/audit?action=event.received&person=p2")
        .await;
    assert_eq!(two.len(), 2, "the hire and the leave of p2");
    // Newest first, paged backwards with `before`: the same entries, the other way round.
    let mine: Vec<i64> = trail
        .iter()
        .filter(|e| e["person_id"] == "p2")
        .map(|e| e["seq"].as_i64().unwrap())
        .rev()
        .collect();
    let first = s.get("/api/v1/audit?person=p2&order=newest&limit=2").await;
    let page: Vec<i64> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(page, mine[..2], "{first}");
    assert_eq!(first["next_after"], serde_json::Value::Null, "{first}");
    let before = first["next_before"].as_i64().expect("next_before");
    let rest: Vec<i64> = s
        .items(&format!(
            "/api/v1/audit?person=p2&order=newest&before={before}"
        ))
        .await
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(rest, mine[2..]);
    let stamps: Vec<i64> = trail.iter().map(|e| time_ms(&e["at"])).collect();
    let last = *stamps.iter().max().unwrap();
    assert!(
        s.items(&format!("/api/v1/audit?since={}", at(last + 1)))
            .await
            .is_empty()
    );
    assert_eq!(
        s.items(&format!("/api/v1/audit?until={}", at(last + 1)))
            .await
            .len(),
        trail.len()
    );

    // Entitlements: the catalog filtered in memory.
    let ents = |q: &str| {
        let path = format!("/api/v1/entitlements?{q}");
        async move { ids(&s.get(&path).await, "id") }
    };
    assert_eq!(
        ents("system=crm").await,
        ["crm:client-acme", "crm:client-globex", "crm:client-initech"]
    );
    assert_eq!(ents("risk=high").await, ["crm:client-globex"]);
    assert_eq!(ents("client=acme").await, ["crm:client-acme"]);
    assert_eq!(
        ents("owner=sales-ops&system=directory").await,
        ["directory:sales"]
    );
    assert_eq!(ents("owner=nobody").await, Vec::<String>::new());
}

#[tokio::test]
async fn events_about_strangers_are_refused_at_once_and_nothing_is_stored() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let s = &env.start().await;

    // Someone tenure has never seen: refused, whatever the event.
    for event in [
        json!({ "type": "leave", "person": { "id": "ghost" } }),
        json!({ "type": "transfer", "person": { "id": "ghost", "title": "CTO" } }),
        json!({ "type": "contract_change", "person": { "id": "ghost", "end_date": "2030-01-01" } }),
        engagement("engagement_start", "ghost", json!("acme"), "consultant"),
        engagement("engagement_end", "ghost", json!("acme"), "consultant"),
    ] {
        let a = s.send_event(&event, None).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{event}: {}", a.body);
        assert_eq!(a.body["error"]["field"], "person.id", "{}", a.body);
        assert!(
            a.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`ghost` is not known"),
            "{}",
            a.body
        );
    }
    assert!(s.items("/api/v1/runs?person=ghost").await.is_empty());
    assert!(s.items("/api/v1/audit?person=ghost").await.is_empty());

    // A client tenure does not know, named by id: refused; no engagement appears.
    s.apply_ok(&person(
        "p1",
        "Ada Lovelace",
        "Engineering",
        "employee",
        None,
    ))
    .await;
    let a = s
        .send_event(
            &engagement("engagement_start", "p1", json!("nope"), "consultant"),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.body["error"]["field"], "engagement.client");
    assert!(
        s.person("p1").await["engagements"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    refused(
        s,
        Method::GET,
        "/api/v1/clients/nope",
        StatusCode::NOT_FOUND,
        None,
    )
    .await;
    // Carried in full, the client is introduced, and its id alone then does.
    s.apply_ok(&engagement(
        "engagement_start",
        "p1",
        json!({ "id": "nope", "name": "Nope Ltd" }),
        "consultant",
    ))
    .await;
    s.apply_ok(&engagement(
        "engagement_end",
        "p1",
        json!("nope"),
        "consultant",
    ))
    .await;

    // A hire that has not taken effect yet vouches for its person.
    let later = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let mut hire = person("f1", "Future Hire", "Sales", "employee", None);
    hire["effective_at"] = json!(later);
    s.accept(&hire).await;
    let leave = json!({ "type": "leave", "person": { "id": "f1" }, "effective_at": later });
    s.accept(&leave).await;

    // The HR webhook: the same check, the payload's changes taken in order, all or nothing.
    let termination = json!({
        "businessProcess": { "type": "Termination", "id": "BP-9" },
        "worker": { "Employee_ID": "W-404" }
    });
    let a = s.post("/api/v1/hr/workday", &termination).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert_eq!(a.body["error"]["field"], "person.id", "{}", a.body);
    let created = json!({ "id": "B-1", "action": "Created", "name": "Bea Bamboo", "email": "bea@example.com" });
    let updated = json!({ "id": "B-1", "action": "Updated", "title": "Lead" });
    let wrong_order = json!({ "employees": [updated, created] });
    let a = s.post("/api/v1/hr/bamboohr", &wrong_order).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("change 0:"),
        "{}",
        a.body
    );
    assert!(s.items("/api/v1/runs?person=B-1").await.is_empty());
    let in_order = json!({ "employees": [created, updated] });
    let a = s.post("/api/v1/hr/bamboohr", &in_order).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    for e in a.body["events"].as_array().unwrap() {
        let run = s.wait_run(e["run_id"].as_str().unwrap()).await;
        assert_eq!(run["state"], "succeeded", "{run:#}");
    }
    assert_eq!(s.person("B-1").await["title"], "Lead");
}

#[tokio::test]
async fn clients_and_engagements_show_terms_and_who_is_engaged() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let s = &env.start().await;
    for (id, name) in [
        ("p1", "Ada Lovelace"),
        ("p2", "Grace Hopper"),
        ("p3", "Alan Turing"),
    ] {
        s.apply_ok(&person(id, name, "Engineering", "employee", None))
            .await;
    }
    s.apply_ok(&engagement(
        "engagement_start",
        "p1",
        json!("acme"),
        "consultant",
    ))
    .await;
    // Terms carried by an event win over the configured ones.
    s.apply_ok(&engagement(
        "engagement_start",
        "p2",
        json!({ "id": "acme", "name": "ACME Inc", "max_access_days": 10 }),
        "consultant",
    ))
    .await;
    s.apply_ok(&engagement(
        "engagement_start",
        "p2",
        json!("globex"),
        "consultant",
    ))
    .await;
    s.apply_ok(&engagement(
        "engagement_end",
        "p2",
        json!("globex"),
        "consultant",
    ))
    .await;
    s.apply_ok(&engagement(
        "engagement_start",
        "p3",
        json!({ "id": "initech", "name": "Initech" }),
        "consultant",
    ))
    .await;

    let page = s.get("/api/v1/clients").await;
    assert_eq!(ids(&page, "id"), ["acme", "globex", "initech"]);
    assert!(page["next_after"].is_null());
    let acme = &page["items"][0];
    assert_eq!(acme["name"], "ACME Inc");
    assert_eq!(acme["configured"]["name"], "Acme Corp");
    assert_eq!(acme["configured"]["max_access_days"], 30);
    assert_eq!(acme["from_events"]["max_access_days"], 10);
    assert_eq!(acme["effective"]["max_access_days"], 10);
    assert_eq!(acme["engagements"], json!({ "active": 2, "ended": 0 }));
    let globex = &page["items"][1];
    assert!(globex["from_events"].is_null(), "{globex}");
    assert_eq!(globex["effective"]["name"], "Globex");
    assert_eq!(globex["engagements"], json!({ "active": 0, "ended": 1 }));
    let initech = &page["items"][2];
    assert!(initech["configured"].is_null(), "{initech}");
    assert_eq!(initech["name"], "Initech");

    let first = s.get("/api/v1/clients?limit=2").await;
    assert_eq!(ids(&first, "id"), ["acme", "globex"]);
    assert_eq!(first["next_after"], "globex");
    assert_eq!(
        ids(&s.get("/api/v1/clients?after=globex").await, "id"),
        ["initech"]
    );

    let one = s.get("/api/v1/clients/acme").await;
    assert_eq!(one["name"], "ACME Inc");
    let engaged: Vec<&str> = one["engaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["person_id"].as_str().unwrap())
        .collect();
    assert_eq!(engaged, ["p1", "p2"]);
    assert!(one["engaged_next_after"].is_null());
    refused(
        s,
        Method::GET,
        "/api/v1/clients/umbrella",
        StatusCode::NOT_FOUND,
        None,
    )
    .await;

    let eng = |q: &str| {
        let path = format!("/api/v1/engagements?{q}");
        async move { s.get(&path).await }
    };
    let globex = eng("client=globex").await;
    assert_eq!(globex["items"].as_array().unwrap().len(), 1);
    assert_eq!(globex["items"][0]["active"], false);
    assert_eq!(globex["items"][0]["person_id"], "p2");
    assert!(
        eng("client=globex&active=true").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(eng("person=p2").await["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        eng("active=false").await["items"].as_array().unwrap().len(),
        1
    );
    assert_eq!(
        eng("active=true").await["items"].as_array().unwrap().len(),
        3
    );
    let paged = eng("limit=2").await;
    assert_eq!(paged["items"].as_array().unwrap().len(), 2);
    let next = paged["next_after"]
        .as_str()
        .expect("a next page")
        .to_string();
    assert_eq!(
        eng(&format!("after={next}")).await["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
