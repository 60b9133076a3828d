//! What the running server tells about itself: one request followed by its id through the log,
//! the event, the run and the audit trail; requests, circuits, health and the step queue in
//! `/metrics`; and a system that fails every call shown `down`, then `ok` once it answers again.

mod common;

use axum::extract::State;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const CONFIG: &str = r#"
[[systems]]
id = "directory"
connector = "sandbox"

[[entitlements]]
id = "directory:staff"
system = "directory"
"#;

const ALL: &[(&str, &str)] = &[("all", "entitlements = [\"directory:staff\"]\n")];

/// Info-level logs without colours, so lines can be searched.
const LOGGING: &[(&str, &str)] = &[("RUST_LOG", "info,sqlx=warn"), ("NO_COLOR", "1")];

/// The server's log without terminal colour codes.
fn plain_log(s: &Server) -> String {
    let text = s.log_text();
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-letter
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits until the log has a line holding every one of `parts`; returns it.
async fn log_line(s: &Server, parts: &[&str]) -> String {
    let start = Instant::now();
    loop {
        if let Some(line) = plain_log(s)
            .lines()
            .find(|l| parts.iter().all(|p| l.contains(p)))
        {
            return line.to_string();
        }
        assert!(
            start.elapsed() < PATIENCE,
            "no log line with {parts:?} after {:?}:\n{}",
            start.elapsed(),
            plain_log(s)
        );
        // Paced by a round trip to the server, which also writes its line meanwhile.
        s.request(Method::GET, "/healthz", None, &[], None).await;
    }
}

fn header<'a>(a: &'a Answer, name: &str) -> &'a str {
    a.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("visible ASCII")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_follows_an_event_into_its_run_audit_entries_and_log_line() {
    let env = TestEnv::new(CONFIG, ALL).await;
    let s = env.start_with_env(LOGGING).await;
    let trace = "change-4711.hire:ada";
    let a = s
        .request(
            Method::POST,
            "/api/v1/events",
            Some(TOKEN),
            &[
                ("content-type", "application/json"),
                ("x-request-id", trace),
            ],
            Some(hire("ada", "Engineering").to_string()),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    assert_eq!(header(&a, "x-request-id"), trace, "the id given comes back");
    let (event_id, run_id) = (
        a.body["event_id"].as_str().unwrap().to_string(),
        a.body["run_id"].as_str().unwrap().to_string(),
    );

    // The run says which request sent its event; its times, and its steps', are RFC 3339.
    let run = s.wait_run(&run_id).await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(run["request_id"], trace, "{run:#}");
    assert_eq!(run["event_id"], event_id.as_str());
    let created = time_ms(&run["created_at"]);
    assert!(time_ms(&run["effective_at"]) >= created);
    assert!(time_ms(&run["planned_at"]) >= created);
    assert!(time_ms(&run["finished_at"]) >= time_ms(&run["planned_at"]));
    for st in run["steps"].as_array().unwrap() {
        time_ms(&st["available_at"]);
        assert!(
            time_ms(&st["finished_at"]) >= time_ms(&st["started_at"]),
            "{st}"
        );
    }
    let listed = s.items("/api/v1/runs?person=ada").await;
    assert_eq!(listed[0]["id"], run_id.as_str());
    assert_eq!(listed[0]["request_id"], trace);

    let event = s.get(&format!("/api/v1/events/{event_id}")).await;
    assert_eq!(event["request_id"], trace, "{event:#}");
    assert_eq!(time_ms(&event["received_at"]), created);

    // The audit entry of its receipt carries the request id in its details (a JSON object),
    // and the run's own entries carry the run.
    let audit = s.items("/api/v1/audit?person=ada").await;
    let received = audit
        .iter()
        .find(|e| e["action"] == "event.received")
        .expect("event.received");
    assert_eq!(received["details"]["request_id"], trace, "{received:#}");
    assert_eq!(received["correlation_id"], event_id.as_str());
    assert_eq!(received["run_id"], run_id.as_str());
    assert_eq!(
        time_ms(&received["details"]["effective_at"]),
        time_ms(&run["effective_at"]),
        "a time inside details is RFC 3339 too: {received:#}"
    );
    time_ms(&received["at"]);
    let of_run: Vec<&str> = audit
        .iter()
        .filter(|e| e["run_id"] == run_id.as_str())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "event.received",
        "run.planned",
        "step.create_account",
        "step.grant",
    ] {
        assert!(of_run.contains(&action), "{action} in {of_run:?}");
    }

    // The server's log line of the request: method, route, status, time, the request id, and
    // the event and run it made.
    let line = log_line(&s, &[&format!("request_id={trace}"), "status=202"]).await;
    for part in [
        "route=/api/v1/events",
        "POST",
        "elapsed_ms=",
        &format!("event_id={event_id}"),
        &format!("run_id={run_id}"),
    ] {
        assert!(line.contains(part), "`{part}` missing from: {line}");
    }
    assert!(line.contains("INFO"), "{line}");

    // An id unfit to log is replaced by a fresh one, as is a missing one.
    let long = "x".repeat(MAX_ID + 1);
    for given in [Some("two words"), Some(long.as_str()), None] {
        let headers: Vec<(&str, &str)> = given.map(|g| ("x-request-id", g)).into_iter().collect();
        let a = s
            .request(
                Method::GET,
                "/api/v1/people/ada",
                Some(TOKEN),
                &headers,
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::OK);
        let id = header(&a, "x-request-id");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{given:?} gave {id}");
    }
    // Refusals carry one too.
    let a = s
        .request(
            Method::GET,
            "/api/v1/runs",
            None,
            &[("x-request-id", "no-token-1")],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(header(&a, "x-request-id"), "no-token-1");
    log_line(
        &s,
        &["request_id=no-token-1", "status=401", "route=/api/v1/runs"],
    )
    .await;
}

/// The longest request id the server keeps.
const MAX_ID: usize = 128;

/// The value of the series `name{labels}` in a Prometheus text page, if it is there.
fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(series, _)| {
            series.starts_with(&format!("{name}{{"))
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v.parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_template_and_show_circuits_health_and_the_queue() {
    let env = TestEnv::new(CONFIG, ALL).await;
    let s = env.start().await;
    let run = s.apply_ok(&hire("bo", "Sales")).await;
    let run_id = run["id"].as_str().unwrap();
    s.get(&format!("/api/v1/runs/{run_id}")).await;
    let missing = s
        .request(
            Method::GET,
            "/api/v1/runs/no-such-run",
            Some(TOKEN),
            &[],
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let nowhere = s
        .request(Method::GET, "/no/such/route", Some(TOKEN), &[], None)
        .await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);

    let page = s
        .request(Method::GET, "/metrics", Some(TOKEN), &[], None)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let page = page.body.as_str().expect("text").to_string();
    let runs = |status: &str| {
        sample(
            &page,
            "tenure_http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/api/v1/runs/{id}"),
                ("status", status),
            ],
        )
    };
    // wait_run polled the run at least once, and it was read once more.
    assert!(runs("200").unwrap_or(0.0) >= 2.0, "{page}");
    assert_eq!(runs("404"), Some(1.0), "{page}");
    assert_eq!(
        sample(
            &page,
            "tenure_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/api/v1/events"),
                ("status", "202")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &page,
            "tenure_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        Some(1.0)
    );
    assert!(
        sample(
            &page,
            "tenure_http_request_duration_seconds_count",
            &[("route", "/api/v1/runs/{id}"), ("status", "200")]
        )
        .unwrap_or(0.0)
            >= 2.0,
        "{page}"
    );
    assert!(
        page.contains("tenure_http_request_duration_seconds_bucket{"),
        "a histogram: {page}"
    );
    // Never a raw path: the run id and the unknown paths appear in no series.
    for raw in [run_id, "no-such-run", "/no/such/route"] {
        assert!(!page.contains(raw), "`{raw}` is a label value: {page}");
    }

    let circuit = |state: &str| {
        sample(
            &page,
            "tenure_circuit_state",
            &[("system", "directory"), ("state", state)],
        )
    };
    assert_eq!(
        (circuit("closed"), circuit("open"), circuit("half_open")),
        (Some(1.0), Some(0.0), Some(0.0))
    );
    let health = |h: &str| {
        sample(
            &page,
            "tenure_system_health",
            &[("system", "directory"), ("health", h)],
        )
    };
    assert_eq!(
        (health("ok"), health("degraded"), health("down")),
        (Some(1.0), Some(0.0), Some(0.0))
    );
    // Everything is done: both queues are empty, and nothing waits.
    for priority in ["0", "10"] {
        assert_eq!(
            sample(&page, "tenure_queue_depth", &[("priority", priority)]),
            Some(0.0),
            "{page}"
        );
        assert_eq!(
            sample(
                &page,
                "tenure_queue_oldest_age_seconds",
                &[("priority", priority)]
            ),
            Some(0.0)
        );
    }
}

/// A webhook receiver that answers 503 while `failing`, else 200, counting calls.
struct Receiver {
    failing: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
    port: u16,
}

async fn receive(State((failing, calls)): State<(Arc<AtomicBool>, Arc<AtomicU64>)>) -> StatusCode {
    calls.fetch_add(1, Ordering::SeqCst);
    if failing.load(Ordering::SeqCst) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn receiver() -> Receiver {
    let failing = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new()
        .fallback(receive)
        .with_state((failing.clone(), calls.clone()));
    let port = serve_loopback(app).await;
    Receiver {
        failing,
        calls,
        port,
    }
}

fn hook_config(port: u16) -> String {
    format!(
        r#"
[engine]
max_attempts = 100
backoff_base_ms = 10
backoff_max_ms = 50
breaker_failure_threshold = 2
breaker_open_ms = 300

[[systems]]
id = "hook"
connector = "webhook"
[systems.settings]
allowed_hosts = ["127.0.0.1"]
allow_private_networks = true
secret_env = "TENURE_TEST_HOOK_SECRET"
[systems.settings.operations.create_account]
url = "http://127.0.0.1:{port}/users"
body = {{ login = "{{{{person.id}}}}" }}
# Reconciled when the circuit closes again (a webhook cannot list: not covered).
[systems.reconcile]

[[entitlements]]
id = "hook:app"
system = "hook"
"#
    )
}

async fn system(s: &Server, id: &str) -> Value {
    s.get("/api/v1/systems").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id)
        .unwrap_or_else(|| panic!("system {id} listed"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_failing_every_call_is_down_then_ok_again_once_it_answers() {
    let hook = receiver().await;
    let env = TestEnv::new(
        &hook_config(hook.port),
        &[("all", "entitlements = [\"hook:app\"]\n")],
    )
    .await;
    let s = env
        .start_with_env(&[(
            "TENURE_TEST_HOOK_SECRET",
            "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM=",
        )])
        .await;
    let started = system(&s, "hook").await;
    assert_eq!(started["health"], "ok", "{started:#}");
    assert!(started["last_error"].is_null());
    let run_id = s.accept(&hire("cy", "Support")).await;

    // Every call answers 503: two in a row open the circuit, and the system is down.
    let start = Instant::now();
    let down = loop {
        let sys = system(&s, "hook").await;
        if sys["health"] == "down" {
            break sys;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "hook never shown down: {sys:#}\n{}",
            s.log_text()
        );
        let run = s.get(&format!("/api/v1/runs/{run_id}?wait_ms=100")).await;
        assert!(
            !is_terminal(&run),
            "the run ended while its system failed: {run:#}"
        );
    };
    assert!(
        matches!(
            down["circuit"]["state"].as_str(),
            Some("open" | "half_open")
        ),
        "{down:#}"
    );
    let down_since = time_ms(&down["since"]);
    assert!(down_since >= time_ms(&started["since"]));
    let err = &down["last_error"];
    assert!(
        err["message"].as_str().unwrap_or_default().contains("503"),
        "{down:#}"
    );
    assert!(time_ms(&err["at"]) >= down_since, "{down:#}");
    assert_eq!(
        down["recent"]["calls"], down["recent"]["failures"],
        "{down:#}"
    );
    let page = s
        .request(Method::GET, "/metrics", Some(TOKEN), &[], None)
        .await;
    let page = page.body.as_str().unwrap().to_string();
    assert_eq!(
        sample(
            &page,
            "tenure_system_health",
            &[("system", "hook"), ("health", "down")]
        ),
        Some(1.0),
        "{page}"
    );

    // It answers again: the next trial call closes the circuit, the run goes through, and the
    // system is ok again, since then; the last error stays for whoever looks.
    hook.failing.store(false, Ordering::SeqCst);
    let run = s.wait_run(&run_id).await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    let create = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["action"] == "create_account")
        .unwrap();
    assert!(create["attempts"].as_i64().unwrap() >= 3, "{create}");
    let back = system(&s, "hook").await;
    assert_eq!(back["health"], "ok", "{back:#}");
    assert_eq!(back["circuit"]["state"], "closed", "{back:#}");
    assert!(time_ms(&back["since"]) > down_since, "{back:#}");
    assert_eq!(back["last_error"]["message"], err["message"]);
    assert_eq!(back["recent"]["failures"], 0, "{back:#}");
    assert!(hook.calls.load(Ordering::SeqCst) >= 3);
    // The circuit closing started a reconciliation of the system.
    let start = Instant::now();
    let recon = loop {
        let page = s.get("/api/v1/reconciliations?system=hook").await;
        if let Some(r) = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["state"] != "running")
        {
            break r.clone();
        }
        assert!(
            start.elapsed() < PATIENCE,
            "no reconciliation after the circuit closed: {page:#}\n{}",
            s.log_text()
        );
        tokio::task::yield_now().await;
    };
    assert_eq!(recon["trigger"], "circuit_closed", "{recon:#}");
    assert_eq!(recon["requested_by"], "scheduler", "{recon:#}");
    assert_eq!(recon["state"], "not_covered", "{recon:#}");
    let page = s
        .request(Method::GET, "/metrics", Some(TOKEN), &[], None)
        .await;
    let page = page.body.as_str().unwrap().to_string();
    assert_eq!(
        sample(
            &page,
            "tenure_system_health",
            &[("system", "hook"), ("health", "ok")]
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(
            &page,
            "tenure_circuit_state",
            &[("system", "hook"), ("state", "closed")]
        ),
        Some(1.0)
    );
}

/// An OTLP/HTTP (JSON) trace receiver that is also a webhook target: it keeps every span
/// exported to it and the `traceparent` of every webhook call.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Value>>>,
    resources: Arc<Mutex<Vec<Value>>>,
    hook_traceparents: Arc<Mutex<Vec<String>>>,
}

async fn collect_traces(State(c): State<Collector>, body: String) -> StatusCode {
    let Ok(doc) = serde_json::from_str::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    for rs in doc["resourceSpans"].as_array().into_iter().flatten() {
        c.resources.lock().unwrap().push(rs["resource"].clone());
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for span in ss["spans"].as_array().into_iter().flatten() {
                c.spans.lock().unwrap().push(span.clone());
            }
        }
    }
    StatusCode::OK
}

async fn hook_call(State(c): State<Collector>, headers: axum::http::HeaderMap) -> StatusCode {
    if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        c.hook_traceparents.lock().unwrap().push(tp.to_string());
    }
    StatusCode::OK
}

async fn collector() -> (Collector, u16) {
    let c = Collector::default();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(collect_traces))
        .fallback(hook_call)
        .with_state(c.clone());
    (c.clone(), serve_loopback(app).await)
}

/// Serves `app` on a loopback port for the rest of the test; returns the port.
async fn serve_loopback(app: axum::Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("the test server serves")
    });
    port
}

/// A span attribute's value as text (OTLP JSON: `{"key": .., "value": {"stringValue": ..}}`).
fn attribute(span: &Value, key: &str) -> Option<String> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .and_then(|a| {
            let v = &a["value"];
            v["stringValue"]
                .as_str()
                .map(str::to_string)
                .or_else(|| v["intValue"].as_str().map(str::to_string))
                .or_else(|| v["intValue"].as_i64().map(|i| i.to_string()))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hire_is_one_trace_from_the_callers_traceparent_to_every_step_and_connector_call() {
    let (c, port) = collector().await;
    let config = format!(
        "{CONFIG}{}",
        hook_config(port)
            .split("[[systems]]")
            .nth(1)
            .map(|s| format!("[[systems]]{s}"))
            .unwrap()
    );
    let env = TestEnv::new(
        &config,
        &[(
            "all",
            "entitlements = [\"directory:staff\", \"hook:app\"]\n",
        )],
    )
    .await;
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut s = env
        .start_with_args_env(
            &["--log-json"],
            &[
                ("RUST_LOG", "info,sqlx=warn"),
                (
                    "TENURE_TEST_HOOK_SECRET",
                    "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM=",
                ),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ],
        )
        .await;
    // The caller's trace: an HR system's span that sent the event.
    let (trace_id, caller_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let a = s
        .request(
            Method::POST,
            "/api/v1/events",
            Some(TOKEN),
            &[
                ("content-type", "application/json"),
                ("traceparent", &format!("00-{trace_id}-{caller_span}-01")),
            ],
            Some(hire("ada", "Engineering").to_string()),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let run_id = a.body["run_id"].as_str().unwrap().to_string();
    let run = s.wait_run(&run_id).await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(run["trace_id"], trace_id, "{run:#}");
    let steps: Vec<(String, String)> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| {
            (
                st["id"].as_str().unwrap().to_string(),
                st["system"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(steps.iter().any(|(_, sys)| sys == "hook"), "{run:#}");

    // Every audit entry about the run names the trace.
    let audit = s.items("/api/v1/audit?person=ada").await;
    let of_run: Vec<&Value> = audit
        .iter()
        .filter(|e| e["run_id"] == run_id.as_str())
        .collect();
    assert!(of_run.len() >= steps.len(), "{audit:#?}");
    for e in &of_run {
        assert_eq!(e["trace_id"], trace_id, "{e:#}");
    }
    // The request's JSON log line names it too.
    let line = log_line(&s, &["request served", "/api/v1/events", trace_id]).await;
    let logged: Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(logged["span"]["trace_id"], trace_id, "{logged:#}");

    // A malformed traceparent is ignored, as W3C Trace Context says: the event is taken and
    // its run starts a trace of its own.
    let bad = s
        .request(
            Method::POST,
            "/api/v1/events",
            Some(TOKEN),
            &[
                ("content-type", "application/json"),
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                ),
            ],
            Some(hire("bo", "Engineering").to_string()),
        )
        .await;
    assert_eq!(bad.status, StatusCode::ACCEPTED, "{}", bad.body);
    let other = s.wait_run(bad.body["run_id"].as_str().unwrap()).await;
    let other_trace = other["trace_id"].as_str().expect("a trace of its own");
    assert_eq!(other_trace.len(), 32, "{other:#}");
    assert_ne!(other_trace, trace_id);
    assert!(!other_trace.starts_with("04bf92f3577b34da6a3ce929d0e0e473"));

    // A clean stop sends the spans still queued.
    s.stop();
    let spans: Vec<Value> = c.spans.lock().unwrap().clone();
    let in_trace: Vec<&Value> = spans
        .iter()
        .filter(|sp| sp["traceId"] == trace_id)
        .collect();
    let named = |name: &str| -> Vec<&Value> {
        in_trace
            .iter()
            .copied()
            .filter(|sp| sp["name"] == name)
            .collect()
    };
    let request = named("request");
    assert_eq!(request.len(), 1, "{in_trace:#?}");
    assert_eq!(request[0]["parentSpanId"], caller_span, "{:#}", request[0]);
    let run_spans = named("run");
    assert_eq!(run_spans.len(), 1, "{in_trace:#?}");
    assert_eq!(
        attribute(run_spans[0], "run_id").as_deref(),
        Some(run_id.as_str())
    );
    assert_eq!(run_spans[0]["parentSpanId"], request[0]["spanId"]);
    assert!(
        named("plan")
            .iter()
            .all(|p| p["parentSpanId"] == run_spans[0]["spanId"]),
        "{in_trace:#?}"
    );
    // One span per step (a retried step has one per attempt), each a child of the run's.
    let step_spans = named("step");
    for (id, _) in &steps {
        assert!(
            step_spans
                .iter()
                .any(|sp| attribute(sp, "step_id").as_deref() == Some(id.as_str())),
            "no span for step {id}: {in_trace:#?}"
        );
    }
    for sp in &step_spans {
        assert_eq!(sp["parentSpanId"], run_spans[0]["spanId"], "{sp:#}");
    }
    // Nothing of the run is in another trace.
    for sp in &spans {
        if attribute(sp, "run_id").as_deref() == Some(run_id.as_str()) {
            assert_eq!(sp["traceId"], trace_id, "{sp:#}");
        }
    }
    // The webhook call carried the hook step's span as its parent.
    let hook_step = step_spans
        .iter()
        .find(|sp| attribute(sp, "system").as_deref() == Some("hook"))
        .expect("the hook step's span");
    let sent = c.hook_traceparents.lock().unwrap().clone();
    let expected = format!("00-{trace_id}-{}-01", hook_step["spanId"].as_str().unwrap());
    assert!(sent.contains(&expected), "{sent:?}, expected {expected}");
    let resources = c.resources.lock().unwrap().clone();
    assert!(
        resources.iter().all(|r| r["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["key"] == "service.name" && a["value"]["stringValue"] == "tenure")),
        "{resources:#?}"
    );
}
