//! The `webhook` connector against a real HTTP receiver (axum, in the test) that verifies the
//! Standard Webhooks signature the way a receiver must, answers like a real API (created,
//! conflict, not found, throttled, failing, redirecting), and records what reached it.

mod support;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};
use support::*;
use tenure_connectors::settings::Secret;
use tenure_connectors::webhook::{SigningKey, WebhookConnector, WebhookSettings};
use tenure_connectors::{Connector, ConnectorError};
use tenure_store::{Store, TaskState};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    id: String,
    body: serde_json::Value,
    auth: Option<String>,
}

/// Path prefix, status, and a `Location` (or, with 429, `Retry-After`) header.
type Scripted = (String, u16, Option<String>);

#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Status the next requests get, by path prefix (first match), else 200/201.
    script: Arc<Mutex<Vec<Scripted>>>,
}

async fn receive(
    State(r): State<Receiver>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let key = SigningKey::parse(&Secret::new(SECRET)).unwrap();
    let ts: i64 = h("webhook-timestamp").parse().unwrap_or(0);
    let now = chrono::Utc::now().timestamp();
    if !key.verify(
        &h("webhook-id"),
        ts,
        &body,
        &h("webhook-signature"),
        now,
        300,
    ) {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let path = uri.path().to_string();
    r.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri.to_string(),
        id: h("webhook-id"),
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        auth: headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string()),
    });
    let scripted = r
        .script
        .lock()
        .unwrap()
        .iter()
        .find(|(p, _, _)| path.starts_with(p.as_str()))
        .cloned();
    match scripted {
        Some((_, code, location)) => {
            let mut res = (StatusCode::from_u16(code).unwrap(), "scripted").into_response();
            if let Some(l) = location {
                let name = if code == 429 {
                    "retry-after"
                } else {
                    "location"
                };
                res.headers_mut().insert(name, l.parse().unwrap());
            }
            res
        }
        None if method == Method::POST => (StatusCode::CREATED, "{}").into_response(),
        None => (StatusCode::OK, "{}").into_response(),
    }
}

async fn start_receiver() -> (Receiver, u16) {
    let r = Receiver::default();
    let app = Router::new().fallback(receive).with_state(r.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(l, app).await });
    (r, port)
}

async fn store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_sqlite(&dir.path().join("t.db")).await.unwrap();
    (s, dir)
}

fn settings(port: u16, extra: serde_json::Value) -> WebhookSettings {
    let mut v = serde_json::json!({
        "allowed_hosts": ["127.0.0.1"],
        "allow_private_networks": true,
        "secret_env": "UNUSED",
        "timeout_ms": 3000,
        "callback_recheck_ms": 30000,
        "operations": {
            "create_account": {
                "url": format!("http://127.0.0.1:{port}/users"),
                "body": { "login": "{{person.id}}", "mail": "{{person.email}}", "dept": "{{person.department}}", "manager": "{{person.manager}}" },
                "headers": { "X-Tenure-Action": "{{action}}" }
            },
            "grant": {
                "method": "PUT",
                "url": format!("http://127.0.0.1:{port}/users/{{{{person.id}}}}/groups/{{{{entitlement.name}}}}"),
            },
            "revoke": {
                "method": "DELETE",
                "url": format!("http://127.0.0.1:{port}/users/{{{{person.id}}}}/groups/{{{{entitlement.name}}}}"),
            },
            "delete_account": { "method": "DELETE", "url": format!("http://127.0.0.1:{port}/users/{{{{person.id}}}}") },
        }
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    WebhookSettings::from_map(v.as_object().unwrap()).unwrap()
}

fn now_fn() -> tenure_connectors::manual::NowFn {
    Arc::new(|| chrono::Utc::now().timestamp_millis())
}

fn connector(s: WebhookSettings, secret: &str, store: Store) -> WebhookConnector {
    WebhookConnector::new(
        "itsm",
        s,
        Secret::new(secret),
        Some(Secret::new("tok-123")),
        store,
        now_fn(),
    )
    .unwrap()
}

#[tokio::test]
async fn signed_requests_reach_a_verifying_receiver() {
    let (r, port) = start_receiver().await;
    let (st, _d) = store().await;
    let c = connector(settings(port, serde_json::json!({})), SECRET, st);
    let ada = person("ada/../admin?x=1");
    let grp = entitlement("itsm:g", "itsm", "vpn users");

    c.create_account(&op("op_create"), &ada).await.unwrap();
    c.grant(&op("op_grant"), &ada, &grp).await.unwrap();
    // Not configured: nothing to send, nothing sent.
    c.update_account(&op("op_update"), &ada).await.unwrap();
    let seen = r.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/users");
    assert_eq!(seen[0].id, "op_create");
    assert_eq!(
        seen[0].body,
        serde_json::json!({"login": "ada/../admin?x=1", "mail": "ada/../admin?x=1@example.com", "dept": "Engineering", "manager": null})
    );
    assert_eq!(seen[0].auth.as_deref(), Some("Bearer tok-123"));
    // Values are percent-encoded: the hostile id stays one path segment.
    assert_eq!(seen[1].method, "PUT");
    assert_eq!(
        seen[1].path,
        "/users/ada%2F..%2Fadmin%3Fx%3D1/groups/vpn%20users"
    );
}

#[tokio::test]
async fn responses_are_classified() {
    let (r, port) = start_receiver().await;
    let (st, _d) = store().await;
    let c = connector(settings(port, serde_json::json!({})), SECRET, st);
    let bob = person("bob");
    let g = entitlement("itsm:g", "itsm", "g");
    let script = |p: &str, code: u16, extra: Option<&str>| {
        r.script
            .lock()
            .unwrap()
            .insert(0, (p.to_string(), code, extra.map(String::from)));
    };
    // Conflict on create and not found on removal: already so.
    script("/users", 409, None);
    c.create_account(&op("a"), &bob).await.unwrap();
    r.script.lock().unwrap().clear();
    script("/users/bob/groups", 404, None);
    c.revoke(&op("b"), &bob, &g).await.unwrap();
    script("/users/bob", 404, None);
    c.delete_account(&op("c"), &bob).await.unwrap();
    r.script.lock().unwrap().clear();
    // Throttled: retryable with the receiver's Retry-After.
    script("/users", 429, Some("7"));
    match c.create_account(&op("d"), &bob).await.unwrap_err() {
        ConnectorError::Retryable { retry_after_ms, .. } => assert_eq!(retry_after_ms, Some(7000)),
        e => panic!("{e}"),
    }
    r.script.lock().unwrap().clear();
    script("/users", 503, None);
    assert!(
        c.create_account(&op("e"), &bob)
            .await
            .unwrap_err()
            .is_retryable()
    );
    r.script.lock().unwrap().clear();
    script("/users", 422, None);
    let e = c.create_account(&op("f"), &bob).await.unwrap_err();
    assert!(matches!(e, ConnectorError::Permanent(_)), "{e}");
    r.script.lock().unwrap().clear();
    // A wrong secret: the receiver refuses the signature, permanently.
    let wrong = connector(
        settings(port, serde_json::json!({})),
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        store().await.0,
    );
    let e = wrong.create_account(&op("g"), &bob).await.unwrap_err();
    assert!(
        matches!(e, ConnectorError::Permanent(ref m) if m.contains("401")),
        "{e}"
    );
    // The receiver is gone: retryable.
    let gone = connector(settings(1, serde_json::json!({})), SECRET, store().await.0);
    assert!(
        gone.create_account(&op("h"), &bob)
            .await
            .unwrap_err()
            .is_retryable()
    );
}

#[tokio::test]
async fn ssrf_attempts_are_refused() {
    let (r, port) = start_receiver().await;
    let (other, other_port) = start_receiver().await;
    let (st, _d) = store().await;
    let bob = person("bob");

    // 1. A literal private address is refused when the configuration loads.
    let map = serde_json::json!({
        "allowed_hosts": ["127.0.0.1"], "secret_env": "S",
        "operations": { "create_account": { "url": format!("http://127.0.0.1:{port}/users") } }
    });
    let e = WebhookSettings::from_map(map.as_object().unwrap()).unwrap_err();
    assert!(e.contains("private"), "{e}");

    // 2. An allowed name that resolves to a private address is refused at connect time.
    let map = serde_json::json!({
        "allowed_hosts": ["localhost"], "secret_env": "S",
        "operations": { "create_account": { "url": format!("http://localhost:{port}/users") } }
    });
    let s = WebhookSettings::from_map(map.as_object().unwrap()).unwrap();
    let c = connector(s, SECRET, st.clone());
    let e = c.create_account(&op("x"), &bob).await.unwrap_err();
    assert!(
        matches!(e, ConnectorError::Permanent(ref m) if m.contains("private")),
        "{e}"
    );
    assert!(r.seen.lock().unwrap().is_empty());

    // 3. A redirect to a host that is not allowed is not followed.
    r.script.lock().unwrap().push((
        "/users".into(),
        307,
        Some(format!("http://localhost:{other_port}/steal")),
    ));
    let c = connector(settings(port, serde_json::json!({})), SECRET, st.clone());
    let e = c.create_account(&op("y"), &bob).await.unwrap_err();
    assert!(
        matches!(e, ConnectorError::Permanent(ref m) if m.contains("redirect")),
        "{e}"
    );
    assert_eq!(r.seen.lock().unwrap().len(), 1);
    assert!(
        other.seen.lock().unwrap().is_empty(),
        "the redirect target must not be reached"
    );
}

#[tokio::test]
async fn async_completion_waits_for_the_callback() {
    let (r, port) = start_receiver().await;
    let (st, _d) = store().await;
    let mut s = settings(port, serde_json::json!({}));
    s.operations
        .get_mut("create_account")
        .unwrap()
        .await_callback = true;
    let c = connector(s, SECRET, st.clone());
    let ada = person("ada");
    // Accepted: the step waits; asking again sends nothing new.
    for _ in 0..2 {
        match c.create_account(&op("op_cb"), &ada).await.unwrap_err() {
            ConnectorError::Waiting {
                recheck_after_ms, ..
            } => assert_eq!(recheck_after_ms, 30_000),
            e => panic!("{e}"),
        }
    }
    assert_eq!(r.seen.lock().unwrap().len(), 1);
    // The receiver reports done: the step succeeds, still one request.
    let mut tx = st.begin().await.unwrap();
    let (_, changed) =
        tenure_store::finish_task(tx.conn(), "op_cb", TaskState::Done, None, "itsm", 1)
            .await
            .unwrap()
            .unwrap();
    assert!(changed);
    tx.commit().await.unwrap();
    c.create_account(&op("op_cb"), &ada).await.unwrap();
    assert_eq!(r.seen.lock().unwrap().len(), 1);
    // A failed report fails the step for good, with the receiver's reason.
    c.create_account(&op("op_cb2"), &person("bob"))
        .await
        .unwrap_err();
    let mut tx = st.begin().await.unwrap();
    tenure_store::finish_task(
        tx.conn(),
        "op_cb2",
        TaskState::Failed,
        Some("mailbox quota"),
        "itsm",
        2,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let e = c
        .create_account(&op("op_cb2"), &person("bob"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ConnectorError::Permanent(ref m) if m.contains("mailbox quota")),
        "{e}"
    );
}

/// A webhook or a manual system cannot list what it holds: reconciliation reports it as not
/// covered, without a call going out.
#[tokio::test]
async fn webhook_and_manual_systems_are_not_covered_by_inventory() {
    let (r, port) = start_receiver().await;
    let (st, _d) = store().await;
    let webhook = connector(settings(port, serde_json::json!({})), SECRET, st.clone());
    let manual = tenure_connectors::manual::ManualConnector::new(
        st,
        "hr-desk",
        tenure_connectors::manual::ManualSettings::from_map(
            serde_json::json!({ "team": "it" }).as_object().unwrap(),
        )
        .unwrap(),
        now_fn(),
    );
    for c in [&webhook as &dyn Connector, &manual] {
        match c.inventory(100).await.unwrap() {
            tenure_connectors::Inventory::NotCovered(why) => assert!(!why.is_empty()),
            tenure_connectors::Inventory::Pages(_) => panic!("it cannot list its accounts"),
        }
    }
    assert!(r.seen.lock().unwrap().is_empty());
}
