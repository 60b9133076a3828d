//! The web console on the real binary, over HTTP as a browser speaks it (forms, cookies,
//! redirects): signing in with a token, the session cookie and what ends it, the CSRF and
//! origin checks on every form, the same permissions as the API on every page, escaping, and
//! the request-approve-grant flow end to end. The browser-driven checks (accessibility,
//! rendering) are in `console_browser.rs`.

mod common;

use common::*;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Client, Method, StatusCode, redirect};
use serde_json::json;

const CONFIG: &str = APPROVALS_CONFIG;
const ALL: &[(&str, &str)] = APPROVALS_TEMPLATES;

/// A browser without JavaScript: it keeps the session cookie, sends forms as browsers do
/// (with `Origin`), and does not follow redirects, so each answer can be looked at.
struct Browser<'a> {
    server: &'a Server,
    http: Client,
    cookie: Option<String>,
    origin: String,
}

/// An answer as the browser got it.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The first table row that holds `text`.
    fn row(&self, text: &str) -> &str {
        self.body
            .split("<tr>")
            .find(|r| r.contains(text))
            .unwrap_or_else(|| panic!("no row with {text}: {}", self.body))
    }

    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no csrf field in:\n{}", self.body));
        self.body[at + 19..at + 19 + 64].to_string()
    }
}

impl<'a> Browser<'a> {
    fn new(server: &'a Server) -> Browser<'a> {
        Browser {
            server,
            http: Client::builder()
                .redirect(redirect::Policy::none())
                .build()
                .expect("http client"),
            cookie: None,
            origin: server.base.clone(),
        }
    }

    async fn send(&mut self, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.server.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        if let Some(f) = form {
            let encoded = reqwest::Url::parse_with_params("http://form/", f).expect("a form");
            req = req
                .header("origin", &self.origin)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(encoded.query().unwrap_or_default().to_string());
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let headers = res.headers().clone();
        if let Some(set) = headers.get(SET_COOKIE).and_then(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap_or_default().to_string();
            self.cookie = (!pair.ends_with('=')).then_some(pair);
        }
        Page {
            status,
            headers,
            body: res.text().await.expect("body"),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, path, Some(form)).await
    }

    /// Signs in with `token`; panics unless the console takes it.
    async fn sign_in(&mut self, token: &str) {
        let p = self
            .post(
                "/console/sign-in",
                &[("token", token), ("next", "/console")],
            )
            .await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        assert!(self.cookie.is_some(), "no session cookie");
    }

    /// Sends the decision form of the review page `path`: `decision` for `items`, with `why`.
    async fn review(
        &mut self,
        path: &str,
        csrf: &str,
        decision: &str,
        items: &[&str],
        why: &str,
    ) -> Page {
        let mut form = vec![
            ("csrf", csrf),
            ("decision", decision),
            ("justification", why),
        ];
        form.extend(items.iter().map(|i| ("item", *i)));
        self.post(&format!("{path}/decide"), &form).await
    }

    /// Asserts that each of `paths` is refused as the API refuses a token without `read` (its
    /// `403`, shown as a page), and that the menu links none of them.
    async fn refused_without_read(&mut self, paths: &[&str]) {
        let home = self.page("/console").await;
        for path in paths {
            let link = format!("href=\"{path}\"");
            assert!(!home.body.contains(&link), "{link}: {}", home.body);
            let p = self.get(path).await;
            assert_eq!(p.status, StatusCode::FORBIDDEN, "{path}: {}", p.body);
            assert!(
                p.body.contains("lacks the `read` scope"),
                "{path}: {}",
                p.body
            );
        }
    }

    /// A signed-in page that must answer 200 and say each of `parts`.
    async fn page_saying(&mut self, path: &str, parts: &[&str]) -> Page {
        let p = self.page(path).await;
        for part in parts {
            assert!(p.body.contains(part), "GET {path}: no {part} in {}", p.body);
        }
        p
    }

    /// A signed-in page that must answer 200.
    async fn page(&mut self, path: &str) -> Page {
        let p = self.get(path).await;
        assert_eq!(p.status, StatusCode::OK, "GET {path}: {}", p.body);
        p
    }
}

fn hire(id: &str, name: &str, manager: Option<&str>) -> serde_json::Value {
    let mut p = json!({
        "id": id, "name": name, "email": format!("{id}@example.com"), "worker_type": "employee",
    });
    if let Some(m) = manager {
        p["manager"] = m.into();
    }
    json!({ "type": "hire", "person": p })
}

#[tokio::test]
async fn signing_in_opens_a_safe_session_that_sign_out_revocation_and_a_leave_end() {
    let env = TestEnv::new(CONFIG, ALL).await;
    let s = env.start().await;
    s.apply_ok(&hire("ann", "Ann", None)).await;
    let ann = token(&env, "ann", &["request", "read"], Some("ann"));
    let mut b = Browser::new(&s);

    // Not signed in: every page sends to the sign-in form, remembering where it was.
    let p = b.get("/console/people?status=active").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(
        p.location(),
        "/console/sign-in?next=%2Fconsole%2Fpeople%3Fstatus%3Dactive"
    );
    assert_eq!(b.get("/").await.location(), "/console");
    let form = b.page("/console/sign-in").await;
    assert!(form.body.contains("<label for=\"token\">"), "{}", form.body);
    for (h, want) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(form.headers[h], want, "{h}");
    }
    let csp = form.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );

    // A wrong token: the form again, with the reason, and no cookie.
    let p = b
        .post(
            "/console/sign-in",
            &[("token", "tnr_nope"), ("next", "/console")],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(p.body.contains("unknown or revoked"), "{}", p.body);
    assert!(b.cookie.is_none());

    // The right one: a cookie the page's scripts cannot read, sent to the console only, and
    // back to the page asked for (never to another site).
    let p = b
        .post(
            "/console/sign-in",
            &[("token", &ann), ("next", "/console/people?status=active")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location(), "/console/people?status=active");
    let set = p.headers[SET_COOKIE].to_str().unwrap().to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set.contains(part), "{set}");
    }
    let cookie = b.cookie.clone().unwrap();
    let people = b.page("/console/people").await;
    assert!(people.body.contains("Ann"), "{}", people.body);
    let mut other = Browser::new(&s);
    let p = other
        .post(
            "/console/sign-in",
            &[("token", &ann), ("next", "https://evil.example/")],
        )
        .await;
    assert_eq!(p.location(), "/console");

    // The cookie is not stored: only its hash is.
    let store = env.open_store().await;
    let mut c = store.reader().await.unwrap();
    let secret = cookie.split_once('=').unwrap().1;
    assert!(
        tenure_store::session_by_hash(&mut c, secret, 0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        tenure_store::session_by_hash(&mut c, &tenure_api::hash_token(secret), 0)
            .await
            .unwrap()
            .is_some()
    );
    drop(c);
    store.close().await;

    // Sign-out ends the session at once: the old cookie sends to the sign-in form again.
    let home = b.page("/console").await;
    let out = b.post("/console/sign-out", &[("csrf", &home.csrf())]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(b.cookie.is_none());
    b.cookie = Some(cookie);
    assert_eq!(b.get("/console").await.status, StatusCode::SEE_OTHER);

    // Revoking the token ends its sessions.
    let admin = json!({"name": "carl", "scopes": ["read"]});
    let made = s.post("/api/v1/tokens", &admin).await;
    let (carl_id, carl) = (
        made.body["id"].as_str().unwrap().to_string(),
        made.body["token"].as_str().unwrap().to_string(),
    );
    let mut c2 = Browser::new(&s);
    c2.sign_in(&carl).await;
    c2.page("/console/runs").await;
    assert_eq!(
        s.delete(&format!("/api/v1/tokens/{carl_id}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(c2.get("/console/runs").await.status, StatusCode::SEE_OTHER);

    // A leave stops the session of a token acting as the leaver, with the API's reason.
    other.sign_in(&ann).await;
    other.page("/console").await;
    s.apply_ok(&json!({"type": "leave", "person": {"id": "ann"}}))
        .await;
    // (The leave revokes the token, so the session is gone: back to signing in.)
    let p = other.get("/console").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let p = other.post("/console/sign-in", &[("token", &ann)]).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{}", p.body);
}

#[tokio::test]
async fn every_form_needs_the_session_secret_and_the_console_origin_and_refusals_change_nothing() {
    let env = TestEnv::new(CONFIG, ALL).await;
    let s = env.start().await;
    s.apply_ok(&hire("mia", "Mia", None)).await;
    s.apply_ok(&hire("eve", "Eve", Some("mia"))).await;
    s.apply_ok(&hire("olga", "Olga", None)).await;
    let eve = token(&env, "eve", &["request", "read"], Some("eve"));
    let mia = token(&env, "mia", &["approve", "read"], Some("mia"));

    let mut e = Browser::new(&s);
    e.sign_in(&eve).await;
    let form = e
        .page("/console/request?entitlement=directory%3Areports")
        .await;
    assert!(
        form.body.contains("Ask for directory:reports"),
        "{}",
        form.body
    );
    let csrf = form.csrf();
    fn ask(csrf: &str) -> [(&str, &str); 4] {
        [
            ("csrf", csrf),
            ("entitlement", "directory:reports"),
            ("justification", "monthly reports"),
            ("duration", "604800"),
        ]
    }
    // Without the secret, with another session's, from another site: refused, nothing asked.
    let p = e.post("/console/requests", &ask("")).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    let wrong = "0".repeat(64);
    assert_eq!(
        e.post("/console/requests", &ask(&wrong)).await.status,
        StatusCode::FORBIDDEN
    );
    let real = csrf.as_str();
    e.origin = "https://evil.example".into();
    assert_eq!(
        e.post("/console/requests", &ask(real)).await.status,
        StatusCode::FORBIDDEN
    );
    let requests = s.get("/api/v1/requests?all=true").await;
    assert_eq!(
        requests["items"],
        json!([]),
        "a refused form asked for access"
    );

    // From the console itself: asked, and the request's page says where it stands.
    e.origin = s.base.clone();
    let p = e.post("/console/requests", &ask(real)).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert!(
        p.location().ends_with("?notice=requested"),
        "{}",
        p.location()
    );
    let page = e.page(p.location()).await;
    assert!(page.body.contains("Your request was sent"), "{}", page.body);
    assert!(page.body.contains("monthly reports"), "{}", page.body);

    // The same rules as the API: asking again while pending is the API's 409, shown as such.
    let again = e.post("/console/requests", &ask(real)).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    // And the time bound: privileged access for longer than its window is the API's 422,
    // and nothing is asked.
    let long = e
        .post(
            "/console/requests",
            &[
                ("csrf", real),
                ("entitlement", "db:prod-admin"),
                ("justification", "a month of admin"),
                ("duration", "2592000"),
            ],
        )
        .await;
    assert_eq!(
        long.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        long.body
    );
    let asked = s
        .get("/api/v1/requests?all=true&entitlement=db:prod-admin")
        .await;
    assert_eq!(asked["items"], json!([]), "{asked}");

    // The manager's forms need their own session's secret, not eve's.
    let requests = s.get("/api/v1/requests?all=true").await;
    s.awaiting_approval(requests["items"][0]["run_id"].as_str().unwrap())
        .await;
    let mut m = Browser::new(&s);
    m.sign_in(&mia).await;
    let inbox = m.page("/console/approvals").await;
    assert!(inbox.body.contains("directory:reports"), "{}", inbox.body);
    let id = {
        let at = inbox
            .body
            .find("name=\"id\" value=\"")
            .expect("a pending approval");
        inbox.body[at + 17..].split('"').next().unwrap().to_string()
    };
    let p = m
        .post(
            &format!("/console/approvals/{id}"),
            &[("csrf", real), ("decision", "approve"), ("comment", "ok")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let a = s.get(&format!("/api/v1/approvals/{id}")).await;
    assert_eq!(a["state"], "pending");
    assert_eq!(a["decisions"], json!([]));
}

#[tokio::test]
async fn pages_enforce_the_api_scopes_and_escape_what_they_show() {
    let env = TestEnv::new(CONFIG, ALL).await;
    let s = env.start().await;
    s.apply_ok(&hire("mia", "Mia", None)).await;
    s.apply_ok(&hire(
        "x1",
        "<script>alert(1)</script> & \"co\"",
        Some("mia"),
    ))
    .await;
    let approver = token(&env, "mia", &["approve"], Some("mia"));
    let reader = token(&env, "reader", &["read"], None);

    // `approve` alone: the inbox, not the people, runs or audit pages (the API's 403).
    let mut m = Browser::new(&s);
    m.sign_in(&approver).await;
    m.page("/console/approvals").await;
    m.refused_without_read(&[
        "/console/people",
        "/console/runs",
        "/console/audit",
        "/console/dashboard",
        "/console/people/x1",
    ])
    .await;

    // `read` without `admin`: a run's page without cancel and retry, and the API's refusal
    // when the form is sent anyway.
    let mut r = Browser::new(&s);
    r.sign_in(&reader).await;
    let runs = s.get("/api/v1/runs?person=x1").await;
    let run = runs["items"][0]["id"].as_str().unwrap().to_string();
    let page = r.page(&format!("/console/runs/{run}")).await;
    assert!(!page.body.contains("/retry"), "{}", page.body);
    let csrf = page.csrf();
    let p = r
        .post(&format!("/console/runs/{run}/retry"), &[("csrf", &csrf)])
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);

    // The dashboard: the hire runs of the period, day by day, and nobody left half revoked.
    let dash = r.page("/console/dashboard").await;
    for part in [
        "Time to provision",
        "Day by day",
        "None: every leave has ended.",
    ] {
        assert!(dash.body.contains(part), "{part}: {}", dash.body);
    }
    // The default view's figures are a snapshot, and say so; a period asked for is live.
    assert!(dash.body.contains("Figures as of"), "{}", dash.body);
    let since = (chrono::Utc::now() - chrono::Duration::days(2)).to_rfc3339();
    let asked = r
        .page(&format!(
            "/console/dashboard?since={}",
            url::form_urlencoded::byte_serialize(since.as_bytes()).collect::<String>()
        ))
        .await;
    assert!(asked.body.contains("Time to provision"), "{}", asked.body);
    assert!(!asked.body.contains("Figures as of"), "{}", asked.body);
    let p = r.get("/console/dashboard?since=yesterday").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);

    // Whatever a person's record holds is shown as text, never as markup.
    for path in ["/console/people", "/console/people/x1"] {
        let page = r.page(path).await;
        assert!(
            !page.body.contains("<script>alert"),
            "{path}: {}",
            page.body
        );
        assert!(
            page.body
                .contains("&#60;script&#62;alert(1)&#60;/script&#62;")
                || page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}: {}",
            page.body
        );
    }
    // A filter the API refuses is the API's 400 with the field, in the console's frame.
    let p = r.get("/console/people?status=retired").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.body.contains("<code>status</code>"), "{}", p.body);
    // An unknown page is a 404 page, not the API's JSON.
    let p = r.get("/console/nowhere").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(p.body.starts_with("<!doctype html>"), "{}", p.body);
}

#[tokio::test]
async fn a_request_is_approved_in_bulk_by_the_manager_and_by_the_owner_and_granted() {
    let env = TestEnv::new(CONFIG, ALL).await;
    let s = env.start().await;
    s.apply_ok(&hire("mia", "Mia", None)).await;
    s.apply_ok(&hire("olga", "Olga", None)).await;
    s.apply_ok(&hire("eve", "Eve", Some("mia"))).await;
    let eve = token(&env, "eve", &["request", "read"], Some("eve"));
    let mia = token(&env, "mia", &["approve", "read"], Some("mia"));
    let olga = token(&env, "olga", &["approve", "read"], Some("olga"));

    let mut e = Browser::new(&s);
    e.sign_in(&eve).await;
    let csrf = e
        .page("/console/request?entitlement=directory%3Areports")
        .await
        .csrf();
    let p = e
        .post(
            "/console/requests",
            &[
                ("csrf", &csrf),
                ("entitlement", "directory:reports"),
                ("justification", "quarterly close"),
                ("duration", "86400"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let request = p
        .location()
        .trim_start_matches("/console/requests/")
        .split('?')
        .next()
        .unwrap()
        .to_string();

    // The manager ticks it in the inbox and approves with one comment; the owner approves it
    // on its own page.
    let detail = s.get(&format!("/api/v1/requests/{request}")).await;
    let run = detail["request"]["run_id"].as_str().unwrap().to_string();
    s.awaiting_approval(&run).await;
    for (tok, bulk) in [(&mia, true), (&olga, false)] {
        let mut b = Browser::new(&s);
        b.sign_in(tok).await;
        let inbox = b.page("/console/approvals").await;
        let at = inbox
            .body
            .find("name=\"id\" value=\"")
            .unwrap_or_else(|| panic!("nothing to decide: {}", inbox.body));
        let id = inbox.body[at + 17..].split('"').next().unwrap().to_string();
        let home = b.page("/console").await;
        assert!(
            home.body.contains("directory:reports for eve"),
            "{}",
            home.body
        );
        let csrf = home.csrf();
        let p = if bulk {
            b.post(
                "/console/approvals/decide",
                &[
                    ("csrf", &csrf),
                    ("id", &id),
                    ("decision", "approve"),
                    ("comment", "fine for the close"),
                ],
            )
            .await
        } else {
            b.post(
                &format!("/console/approvals/{id}"),
                &[
                    ("csrf", &csrf),
                    ("decision", "approve"),
                    ("comment", "one day"),
                ],
            )
            .await
        };
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
        let page = b.page(&format!("/console/approvals/{id}")).await;
        assert!(page.body.contains("approve</strong> by"), "{}", page.body);
    }

    // Granted once the run is done, with its end date on the person's page.
    assert_eq!(s.wait_run(&run).await["state"], "succeeded");
    let page = e.page("/console/people/eve").await;
    let row = page.row("directory:reports");
    assert!(row.contains("granted") && row.contains("request"), "{row}");
    assert!(
        !row.contains("until revoked"),
        "a one-day grant shows its end: {row}"
    );
    let audit = e
        .page("/console/audit?person=eve&action=approval.approve")
        .await;
    assert!(audit.body.contains("approval.approve"), "{}", audit.body);
}

#[tokio::test]
async fn an_approver_delegates_and_withdraws_and_a_team_finishes_its_manual_task() {
    const MANUAL: &str = r#"
[[systems]]
id = "vpn"
connector = "manual"
[systems.settings]
team = "it-desk"

[[entitlements]]
id = "vpn:acme"
system = "vpn"

[approvals]
request_stages = ["manager"]
[approvals.teams]
it-desk = ["mia"]
"#;
    let vpn = "entitlements = [\"vpn:acme\"]\n[match]\ndepartment = [\"Field\"]\n";
    let env = TestEnv::new(MANUAL, &[("field", vpn)]).await;
    let s = env.start().await;
    s.apply_ok(&hire("mia", "Mia", None)).await;
    let mut eve = hire("eve", "Eve", Some("mia"));
    eve["person"]["department"] = "Field".into();
    let run = s.accept(&eve).await;
    let mia = token(&env, "mia", &["approve", "read"], Some("mia"));
    let desk = token(&env, "desk", &["read", "tasks:write"], None);
    let reader = token(&env, "reader", &["read"], None);

    // Delegating: a UTC day range, recorded as the API records it, then withdrawn.
    let mut m = Browser::new(&s);
    m.sign_in(&mia).await;
    let page = m.page("/console/delegations").await;
    assert!(page.body.contains("None. A delegation"), "{}", page.body);
    let today = chrono::Utc::now().date_naive().to_string();
    let csrf = page.csrf();
    let bad = m
        .post(
            "/console/delegations",
            &[
                ("csrf", &csrf),
                ("delegate", "mia"),
                ("starts", &today),
                ("ends", &today),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let p = m
        .post(
            "/console/delegations",
            &[
                ("csrf", &csrf),
                ("delegate", "eve"),
                ("starts", &today),
                ("ends", &today),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let listed = s.get("/api/v1/delegations?all=true").await;
    let d = &listed["items"][0];
    assert_eq!(
        (d["delegator"].as_str(), d["delegate"].as_str()),
        (Some("mia"), Some("eve"))
    );
    assert_eq!(d["starts_at"], format!("{today}T00:00:00.000Z"));
    let id = d["id"].as_str().unwrap().to_string();
    let page = m.page("/console/delegations?notice=delegated").await;
    assert!(
        page.body.contains("Withdraw the delegation to eve"),
        "{}",
        page.body
    );
    let p = m
        .post(
            &format!("/console/delegations/{id}/withdraw"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let d = s
        .get("/api/v1/delegations?all=true&include_ended=true")
        .await;
    assert!(d["items"][0]["revoked_at"].is_string(), "{d}");

    // The manual task: a reader sees it without the forms, and is refused if they post anyway;
    // the desk says it is done, and the run moves on.
    // Eve's account first, then her grant: a task each, one after the other.
    async fn next_task(s: &Server) -> String {
        let start = std::time::Instant::now();
        loop {
            let tasks = s.get("/api/v1/tasks").await;
            if let Some(t) = tasks["tasks"].as_array().and_then(|t| t.first()) {
                return t["id"].as_str().unwrap().to_string();
            }
            assert!(start.elapsed() < PATIENCE, "no task came: {tasks}");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    let task = next_task(&s).await;
    // Mia is in it-desk: her home lists the team's open task; a reader in no team sees none.
    let home = m.page("/console").await;
    assert!(home.body.contains("Open tasks of it-desk"), "{}", home.body);
    assert!(home.body.contains("on vpn for"), "{}", home.body);
    assert!(
        home.body.contains("/console/tasks?team=it-desk"),
        "{}",
        home.body
    );
    let mut r = Browser::new(&s);
    r.sign_in(&reader).await;
    assert!(!r.page("/console").await.body.contains("Open tasks of"));
    let page = r.page("/console/tasks").await;
    assert!(
        page.body.contains("vpn") && !page.body.contains("outcome"),
        "{}",
        page.body
    );
    let p = r
        .post(
            &format!("/console/tasks/{task}"),
            &[("csrf", &page.csrf()), ("outcome", "done")],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    let mut d = Browser::new(&s);
    d.sign_in(&desk).await;
    let page = d.page("/console/tasks?team=it-desk").await;
    let csrf = page.csrf();
    let p = d
        .post(
            &format!("/console/tasks/{task}"),
            &[("csrf", &csrf), ("outcome", "failed")],
        )
        .await;
    assert_eq!(
        p.status,
        StatusCode::BAD_REQUEST,
        "a failure needs its reason: {}",
        p.body
    );
    let p = d
        .post(
            &format!("/console/tasks/{task}"),
            &[
                ("csrf", &csrf),
                ("outcome", "done"),
                ("message", "profile issued"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    let grant = next_task(&s).await;
    assert_ne!(grant, task);
    let p = d
        .post(
            &format!("/console/tasks/{grant}"),
            &[("csrf", &csrf), ("outcome", "done")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(s.wait_run(&run).await["state"], "succeeded");
    let done = d.page("/console/tasks?state=done").await;
    assert!(done.body.contains("profile issued"), "{}", done.body);
}

#[tokio::test]
async fn findings_show_what_a_reconciliation_found_to_tokens_that_may_read() {
    let env = TestEnv::new(CONFIG, ALL).await;
    let s = env.start().await;
    s.apply_ok(&hire("ann", "Ann", None)).await;
    let reader = token(&env, "reader", &["read"], None);
    let asker = token(&env, "ann", &["request"], Some("ann"));

    // Before any reconciliation: the empty list says how to start one.
    let mut r = Browser::new(&s);
    r.sign_in(&reader).await;
    r.page_saying(
        "/console/findings",
        &[
            "tenure reconcile SYSTEM",
            "href=\"/console/findings\" aria-current=\"page\"",
        ],
    )
    .await;

    // An account nobody holds, made on the system behind tenure's back: an orphan.
    orphan_account(&env, "directory", "ghost").await;
    let recon = reconciled(&s, "directory", true).await;
    assert_eq!(recon["state"], "completed", "{recon:#}");
    let id = recon["id"].as_str().unwrap();
    let page = r.page("/console/findings?situation=orphan").await;
    let row = page.row("ghost");
    assert!(row.contains("orphan"), "{row}");
    assert!(
        row.contains(&format!("href=\"/console/reconciliations/{id}\"")),
        "{row}"
    );
    // The other filters are the API's too: nothing stale, and a bad situation is its 400.
    let page = r.page("/console/findings?situation=stale&status=all").await;
    assert!(!page.body.contains("ghost"), "{}", page.body);
    let p = r.get("/console/findings?situation=lost").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("<code>situation</code>"), "{}", p.body);

    // The reconciliation's own page: its state, its counts, the findings it saw.
    r.page_saying(
        &format!("/console/reconciliations/{id}"),
        &["completed", "dry run", "<td>orphan</td><td>1</td>", "ghost"],
    )
    .await;
    let p = r.get("/console/reconciliations/nope").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "{}", p.body);

    // Without `read`: the API's 403, as a page, and no link in the menu.
    let mut a = Browser::new(&s);
    a.sign_in(&asker).await;
    a.refused_without_read(&[
        "/console/findings",
        &format!("/console/reconciliations/{id}"),
    ])
    .await;
}

/// The first link of `html` that starts with `prefix`, as the browser reads it (entities
/// decoded).
fn link(html: &str, prefix: &str) -> String {
    let at = html
        .find(&format!("href=\"{prefix}"))
        .unwrap_or_else(|| panic!("no link to {prefix}: {html}"));
    let href = html[at + 6..].split('"').next().unwrap_or_default();
    href.replace("&#38;", "&").replace("&amp;", "&")
}

#[tokio::test]
async fn a_person_page_shows_their_events_runs_and_audit_entries_newest_first() {
    let env = TestEnv::new(CONFIG, ALL).await;
    let s = env.start().await;
    let hired = s.apply_ok(&hire("ann", "Ann", None)).await;
    let left = s
        .apply_ok(&json!({"type": "leave", "person": {"id": "ann"}}))
        .await;
    let reader = token(&env, "reader", &["read"], None);
    let mut r = Browser::new(&s);
    r.sign_in(&reader).await;

    let page = r.page("/console/people/ann").await;
    let (_, timeline) = page
        .body
        .split_once("<h2>Timeline</h2>")
        .unwrap_or_else(|| panic!("no timeline: {}", page.body));
    let at = |text: &str| {
        timeline
            .find(text)
            .unwrap_or_else(|| panic!("{text} not in the timeline: {timeline}"))
    };
    // Newest first: the leave's run, the steps that revoked, its event; then the hire's.
    let order = [
        "leave run succeeded",
        "step.disable_account",
        "leave event from api",
        "hire run succeeded",
        "step.create_account",
        "hire event from api",
    ];
    for pair in order.windows(2) {
        assert!(at(pair[0]) < at(pair[1]), "{pair:?}: {timeline}");
    }
    // Runs and events link their run; an audit entry, the audit search narrowed to it.
    for run in [&hired, &left] {
        let href = format!("href=\"/console/runs/{}\"", run["id"].as_str().unwrap());
        assert!(timeline.contains(&href), "{href}: {timeline}");
    }
    let entry = r
        .page(&link(timeline, "/console/audit?person=ann&#38;after="))
        .await;
    assert_eq!(entry.body.matches("<tr><td>").count(), 1, "{}", entry.body);
    assert!(entry.body.contains("ann"), "{}", entry.body);
    // "Older" goes on in the audit search, newest first, from before the oldest entry shown.
    let older = link(timeline, "/console/audit?person=ann&#38;order=newest");
    assert!(older.contains("&before="), "{older}");
    r.page_saying(&older, &["<option value=\"newest\" selected>"])
        .await;
    // The audit API's new order is checked as its other parameters are.
    let p = r.get("/console/audit?order=sideways").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("<code>order</code>"), "{}", p.body);
}

#[tokio::test]
async fn the_audit_page_shows_the_chain_intact_then_the_break_an_edited_entry_makes() {
    let env = TestEnv::new(CONFIG, ALL).await;
    let s = env.start().await;
    // The server checks the chain on its own from the start.
    let start = std::time::Instant::now();
    loop {
        let v = s.get("/api/v1/audit/verification").await;
        if v["checked_at"].is_string() {
            assert_eq!(v["state"], "intact", "{v}");
            break;
        }
        assert!(start.elapsed() < PATIENCE, "never checked: {v}");
        tokio::task::yield_now().await;
    }
    s.apply_ok(&hire("ann", "Ann", None)).await;
    let reader = token(&env, "reader", &["read"], None);

    // A fresh server: intact through its head. The admin's `refresh` runs a step now rather
    // than the test waiting for the background round.
    let v = s.get("/api/v1/audit/verification?refresh=true").await;
    assert_eq!(v["state"], "intact", "{v}");
    assert!(v["head"].as_i64().unwrap() > 3, "{v}");
    assert_eq!(v["verified_through"], v["head"], "{v}");
    assert!(v["checked_at"].is_string(), "{v}");
    assert_eq!(v["problem"], serde_json::Value::Null, "{v}");
    // Reading it needs `read`; asking for a step, `admin`.
    let as_reader = |path: &'static str| {
        let (s, reader) = (&s, &reader);
        async move { s.request(Method::GET, path, Some(reader), &[], None).await }
    };
    let a = as_reader("/api/v1/audit/verification").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = as_reader("/api/v1/audit/verification?refresh=true").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    let mut r = Browser::new(&s);
    r.sign_in(&reader).await;
    r.page_saying("/console/audit", &["Chain intact through entry"])
        .await;
    let metrics = as_reader("/metrics").await.body;
    let gauge = r#"tenure_audit_chain_state{state="intact"} 1"#;
    assert!(
        metrics.as_str().unwrap_or_default().contains(gauge),
        "{metrics}"
    );

    // An entry edited behind tenure's back, one the watch had already verified: the pass that
    // goes over the chain again from its start finds it.
    tamper(
        &env.database_url(),
        "UPDATE audit_log SET reason = 'nothing happened' WHERE seq = 3",
        &[],
    )
    .await;
    let v = s.get("/api/v1/audit/verification?refresh=true").await;
    assert_eq!(v["state"], "broken", "{v}");
    assert_eq!(
        v["problem"], "audit entry 3 was altered: its contents do not match its hash",
        "{v}"
    );
    r.page_saying(
        "/console/audit",
        &[
            "role=\"alert\"",
            "The audit chain is broken.",
            "audit entry 3 was altered",
        ],
    )
    .await;
    let metrics = as_reader("/metrics").await.body;
    let gauge = r#"tenure_audit_chain_state{state="broken"} 1"#;
    assert!(
        metrics.as_str().unwrap_or_default().contains(gauge),
        "{metrics}"
    );
}

#[tokio::test]
async fn sign_in_through_a_provider_is_offered_only_when_set_up_and_fails_plainly() {
    // Without `[console.oidc]`: no button, and its routes say how to sign in instead.
    let env = TestEnv::new(CONFIG, ALL).await;
    let s = env.start().await;
    let mut b = Browser::new(&s);
    let form = b.get("/console/sign-in").await;
    assert!(!form.body.contains("Sign in with"), "{}", form.body);
    let p = b.get("/console/sign-in/oidc").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "{}", p.body);
    assert!(p.body.contains("sign in with an API token"), "{}", p.body);
    drop(s);

    // With a provider that cannot be reached: tenure starts, offers it, and says it failed.
    let config = format!(
        "{CONFIG}\n[console.oidc]\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"tenure\"\nlabel = \"Okta\"\n"
    );
    let env = TestEnv::new(&config, ALL).await;
    let s = env.start().await;
    let mut b = Browser::new(&s);
    let form = b.get("/console/sign-in?next=%2Fconsole%2Fruns").await;
    assert!(
        form.body
            .contains("href=\"/console/sign-in/oidc?next=%2Fconsole%2Fruns\""),
        "{}",
        form.body
    );
    assert!(form.body.contains("Sign in with Okta"), "{}", form.body);
    let p = b.get("/console/sign-in/oidc?next=%2Fconsole").await;
    assert_eq!(p.status, StatusCode::BAD_GATEWAY, "{}", p.body);
    assert!(p.body.contains("signing in with Okta failed"), "{}", p.body);
    assert!(b.cookie.is_none(), "nothing is opened");

    // An answer from the provider that no sign-in of this browser's started: refused, nothing
    // opened, whatever it claims.
    for path in [
        "/console/sign-in/oidc/callback?code=c&state=s",
        "/console/sign-in/oidc/callback?error=access_denied",
    ] {
        let p = b.get(path).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{path}: {}", p.body);
        assert!(p.body.contains("sign in again"), "{}", p.body);
        assert!(b.cookie.is_none());
    }
    b.cookie = Some(format!("tenure_oidc={}", "ab".repeat(32)));
    let p = b.get("/console/sign-in/oidc/callback?code=c&state=s").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    let opened = s.get("/api/v1/audit?action=console.signed_in").await;
    assert_eq!(
        opened["items"].as_array().map(Vec::len),
        Some(0),
        "{opened}"
    );
}

/// The items a review page offers to tick: what each box's label names ("ENTITLEMENT of
/// PERSON") and the item's number.
fn review_picks(html: &str) -> Vec<(String, String)> {
    html.split("name=\"item\" value=\"")
        .skip(1)
        .map(|rest| {
            let seq = rest.split('"').next().unwrap_or_default().to_string();
            let label = rest
                .split("aria-label=\"Select ")
                .nth(1)
                .and_then(|l| l.split('"').next())
                .unwrap_or_default()
                .to_string();
            (label, seq)
        })
        .collect()
}

/// `who` approves every approval waiting for them, over the API.
async fn approve_waiting(s: &Server, who: &str) {
    let list = s
        .request(Method::GET, "/api/v1/approvals", Some(who), &[], None)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let items = list.body["items"].as_array().cloned().unwrap_or_default();
    assert!(!items.is_empty(), "nothing to approve: {}", list.body);
    for a in items {
        let d = s
            .request(
                Method::POST,
                &format!("/api/v1/approvals/{}/decision", a["id"].as_str().unwrap()),
                Some(who),
                &[("content-type", "application/json")],
                Some(json!({"decision": "approve", "comment": "ok"}).to_string()),
            )
            .await;
        assert_eq!(d.status, StatusCode::OK, "{}", d.body);
    }
}

#[tokio::test]
async fn a_reviewer_decides_access_review_items_in_bulk_under_the_api_rules() {
    // Managers review their reports; the `sec` team reviews those without a manager.
    let config = format!("{CONFIG}[approvals.teams]\nsec = [\"mia\", \"olga\"]\n");
    let env = TestEnv::new(&config, ALL).await;
    let s = env.start().await;
    for (id, name, manager) in [
        ("mia", "Mia", None),
        ("olga", "Olga", None),
        ("ann", "Ann", Some("mia")),
        ("bob", "Bob", Some("mia")),
    ] {
        s.apply_ok(&hire(id, name, manager)).await;
    }
    let ann = token(&env, "ann", &["request", "approve"], Some("ann"));
    let mia = token(&env, "mia", &["approve", "read"], Some("mia"));
    let olga = token(&env, "olga", &["approve"], Some("olga"));
    let asker = token(&env, "asker", &["request"], Some("olga"));
    let reader = token(&env, "reader", &["read"], None);

    // Ann holds privileged access for an hour; bob's leave is announced for next month.
    let asked = s
        .request(
            Method::POST,
            "/api/v1/requests",
            Some(&ann),
            &[("content-type", "application/json")],
            Some(
                json!({"entitlement": "db:prod-admin", "justification": "on call", "duration_secs": 3600})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.body);
    let run = asked.body["run_id"].as_str().unwrap().to_string();
    s.awaiting_approval(&run).await;
    approve_waiting(&s, &mia).await;
    approve_waiting(&s, &olga).await;
    assert_eq!(s.wait_run(&run).await["state"], "succeeded");
    let leaves_at = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    s.accept(&json!({"type": "leave", "person": {"id": "bob"}, "effective_at": leaves_at}))
        .await;

    // The campaign, opened over the API by an admin.
    let opened = s
        .post(
            "/api/v1/reviews",
            &json!({
                "name": "Quarterly access",
                "reviewer": "manager",
                "fallback": "sec",
                "scope": {"entitlements": ["directory:staff", "db:prod-admin"]},
            }),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    let id = opened.body["id"].as_str().unwrap().to_string();
    assert_eq!(opened.body["items"], 5, "{}", opened.body);
    let path = format!("/console/reviews/{id}");
    // Mia's own item goes to her team, of which she is a member: still never hers.
    let everyone = s
        .get(&format!("/api/v1/reviews/{id}/items?reviewer=all"))
        .await;
    let own = everyone["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["person_id"] == "mia")
        .unwrap_or_else(|| panic!("{everyone}"))
        .clone();
    assert_eq!(own["reviewer"], "team:sec", "{own}");

    // The reviewer: the menu, home and the campaigns list lead to it.
    let mut m = Browser::new(&s);
    m.sign_in(&mia).await;
    m.page_saying(
        "/console",
        &[
            "href=\"/console/reviews\"",
            "4 access review items wait for you",
            &format!("href=\"{path}\""),
        ],
    )
    .await;
    let list = m.page("/console/reviews").await;
    let row = list.row("Quarterly access");
    assert!(row.contains("0 of 5") && row.contains("open"), "{row}");
    assert!(!row.contains("overdue"), "{row}");

    // Her items: her reports' and olga's (for the team), each with its recommendation and
    // why; never her own.
    let page = m
        .page_saying(
            &path,
            &[
                "Items for you to review",
                "the person is leaving",
                "90&#160;%",
                "Required to keep high or privileged access",
                "Export as CSV",
            ],
        )
        .await;
    assert!(!page.body.contains("Close now"), "{}", page.body);
    let picks = review_picks(&page.body);
    let mut labels: Vec<&str> = picks.iter().map(|(l, _)| l.as_str()).collect();
    labels.sort_unstable();
    assert_eq!(
        labels,
        [
            "db:prod-admin of ann",
            "directory:staff of ann",
            "directory:staff of bob",
            "directory:staff of olga"
        ],
        "{}",
        page.body
    );
    let seq = |label: &str| {
        picks
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, s)| s.clone())
            .unwrap()
    };
    let (admin_item, staff_item, bob_item) = (
        seq("db:prod-admin of ann"),
        seq("directory:staff of ann"),
        seq("directory:staff of bob"),
    );
    let csrf = page.csrf();
    let decided = || {
        let (s, id) = (&s, &id);
        async move { s.get(&format!("/api/v1/reviews/{id}")).await["decided"].clone() }
    };

    // Without the session's secret, or from another site: refused, nothing decided.
    let wrong = "0".repeat(64);
    let p = m.review(&path, &wrong, "revoke", &[&bob_item], "").await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    m.origin = "https://evil.example".into();
    let p = m.review(&path, &csrf, "revoke", &[&bob_item], "").await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    m.origin = s.base.clone();
    assert_eq!(decided().await, 0);

    // Keeping privileged access without a reason: the API's refusal, and nothing recorded,
    // not even the item that needed none.
    let p = m
        .review(&path, &csrf, "keep", &[&staff_item, &admin_item], "")
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", p.body);
    let needs = format!("item {admin_item}: keeping privileged access needs a justification");
    assert!(p.body.contains(&needs), "{}", p.body);
    assert_eq!(decided().await, 0);
    let p = m.review(&path, &csrf, "keep", &[], "").await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST, "{}", p.body);
    assert!(p.body.contains("tick at least one item"), "{}", p.body);

    // Both of ann's kept with one justification: recorded, and gone from what waits.
    let p = m
        .review(
            &path,
            &csrf,
            "keep",
            &[&staff_item, &admin_item],
            "on the on-call rota",
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(p.location(), format!("{path}?notice=reviewed"));
    let after = m
        .page_saying(p.location(), &["Your decisions were recorded."])
        .await;
    let left: Vec<String> = review_picks(&after.body)
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    assert_eq!(
        left,
        ["directory:staff of bob", "directory:staff of olga"],
        "{}",
        after.body
    );
    assert_eq!(decided().await, 2);
    let done = m.page(&format!("{path}?state=decided")).await;
    let row = done.row("db:prod-admin <span");
    assert!(
        row.contains("keep") && row.contains("by mia") && row.contains("on the on-call rota"),
        "{row}"
    );
    assert!(!done.body.contains("name=\"item\""), "{}", done.body);
    m.page_saying("/console", &["2 access review items wait for you"])
        .await;
    let p = m.review(&path, &csrf, "revoke", &[&staff_item], "").await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);

    // Ann may decide nothing here: neither her colleague's access nor her own.
    let mut a = Browser::new(&s);
    a.sign_in(&ann).await;
    let home = a.page("/console").await;
    assert!(!home.body.contains("access review item"), "{}", home.body);
    let hers = a
        .page_saying(&path, &["Items about your own access are never yours"])
        .await;
    assert!(review_picks(&hers.body).is_empty(), "{}", hers.body);
    let csrf_a = hers.csrf();
    let p = a.review(&path, &csrf_a, "revoke", &[&bob_item], "").await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    assert!(p.body.contains("is not the reviewer"), "{}", p.body);
    let p = a
        .review(&path, &csrf_a, "keep", &[&staff_item], "mine")
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    assert!(
        p.body.contains("`ann` may not review their own access"),
        "{}",
        p.body
    );
    assert_eq!(decided().await, 2);

    // Without `approve` or `read`: the API's 403, and no link in the menu.
    let mut o = Browser::new(&s);
    o.sign_in(&asker).await;
    let home = o.page("/console").await;
    assert!(!home.body.contains("/console/reviews"), "{}", home.body);
    for p in ["/console/reviews", path.as_str()] {
        let page = o.get(p).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{p}: {}", page.body);
    }

    // A reader sees every reviewer's items, with nothing to tick and no close.
    let mut r = Browser::new(&s);
    r.sign_in(&reader).await;
    let all = r
        .page_saying(&path, &["Every reviewer's items", "team:sec"])
        .await;
    assert!(review_picks(&all.body).is_empty(), "{}", all.body);
    assert!(!all.body.contains("Close now"), "{}", all.body);
    let p = r
        .post(&format!("{path}/close"), &[("csrf", &all.csrf())])
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);

    // The admin exports the evidence and closes the campaign from its page.
    let mut root = Browser::new(&s);
    root.sign_in(TOKEN).await;
    let page = root
        .page_saying(&path, &["Close now and apply results"])
        .await;
    let csv = root.page(&format!("{path}/export.csv")).await;
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"),
        "{:?}",
        csv.headers
    );
    assert!(
        csv.body.starts_with("item,person_id,entitlement"),
        "{}",
        csv.body
    );
    assert!(csv.body.contains("on the on-call rota"), "{}", csv.body);
    assert_eq!(csv.body.lines().count(), 6, "{}", csv.body);
    let exported = root.page(&format!("{path}/export.json")).await;
    let v: serde_json::Value = serde_json::from_str(&exported.body).unwrap();
    assert_eq!(v["campaign"]["id"], id.as_str(), "{v}");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(5), "{v}");
    let p = root.post(&format!("{path}/close"), &[("csrf", "")]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
    let p = root
        .post(&format!("{path}/close"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    root.page_saying(p.location(), &["The campaign is closed", "kept"])
        .await;
    assert_eq!(
        s.get(&format!("/api/v1/reviews/{id}")).await["state"],
        "closed"
    );
    let p = m.review(&path, &csrf, "revoke", &[&bob_item], "").await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    assert!(p.body.contains("the campaign is closed"), "{}", p.body);
}
