//! Runs that do not simply succeed: cancelled mid-way and compensated, failing on a system that
//! is down (retry, circuit breaker), and what a failed run leaves behind.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn steps(run: &Value) -> &Vec<Value> {
    run["steps"].as_array().expect("steps")
}

const SLOW: &str = SLOW_200;
const SLOW_200: &str = r#"
[engine]
max_attempts = 3
backoff_base_ms = 10
backoff_max_ms = 50

[[systems]]
id = "slow"
connector = "sandbox"
max_concurrency = 1
[systems.settings]
latency_ms = 200
[[systems]]
id = "other"
connector = "sandbox"
retention = "keep"
[systems.settings]
latency_ms = 200

[[entitlements]]
id = "slow:a"
system = "slow"
[[entitlements]]
id = "slow:b"
system = "slow"
[[entitlements]]
id = "slow:c"
system = "slow"
[[entitlements]]
id = "other:x"
system = "other"
"#;

const ALL: &[(&str, &str)] = &[(
    "all",
    "entitlements = [\"slow:a\", \"slow:b\", \"slow:c\", \"other:x\"]\n",
)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_is_compensated() {
    let env = TestEnv::new(SLOW, ALL).await;
    let s = env.start().await;
    let run_id = s.accept(&hire("c1", "Engineering")).await;

    // Wait (polling, a few ms apart) until the accounts exist: a step has succeeded. The grants
    // then take 4 x 200 ms on `slow` (one call at a time), so the run is still going.
    let start = Instant::now();
    loop {
        let run = s.get(&format!("/api/v1/runs/{run_id}")).await;
        assert!(
            !is_terminal(&run),
            "the run ended before it could be cancelled: {run:#}"
        );
        if steps(&run).iter().any(|st| st["state"] == "succeeded") {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "no step succeeded: {run:#}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cancelled = s
        .post(&format!("/api/v1/runs/{run_id}/cancel"), &json!({}))
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["cancel_requested"], true);
    let twice = s
        .post(&format!("/api/v1/runs/{run_id}/cancel"), &json!({}))
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.body);

    let run = s.wait_run(&run_id).await;
    assert_eq!(run["state"], "compensated", "{run:#}");
    let all = steps(&run);
    let done: Vec<&Value> = all
        .iter()
        .filter(|st| st["compensation_of"].is_null() && st["state"] == "compensated")
        .collect();
    let undo: Vec<&Value> = all
        .iter()
        .filter(|st| !st["compensation_of"].is_null())
        .collect();
    assert!(
        done.iter().any(|st| st["action"] == "create_account"),
        "accounts were created, then undone: {run:#}"
    );
    assert_eq!(undo.len(), done.len(), "one undo per step done: {run:#}");
    assert!(undo.iter().all(|st| st["state"] == "succeeded"), "{run:#}");
    assert!(
        all.iter().all(|st| matches!(
            st["state"].as_str(),
            Some("compensated" | "cancelled" | "succeeded")
        )),
        "{run:#}"
    );
    for st in &undo {
        let of = st["compensation_of"].as_i64().unwrap();
        let original = all.iter().find(|o| o["idx"] == of).expect("undone step");
        let want = match original["action"].as_str().unwrap() {
            "create_account" => "delete_account",
            "grant" => "revoke",
            other => panic!("unexpected step done: {other}"),
        };
        assert_eq!(st["action"], want, "{st}");
    }

    // The person holds nothing: no account active, no grant held.
    let p = s.person("c1").await;
    let acc = accounts(&p);
    assert!(
        acc.values().all(|st| st == "deleted"),
        "accounts after compensation: {acc:?}"
    );
    let g = grants(&p);
    assert!(
        g.values().all(|st| st == "revoked"),
        "grants after compensation: {g:?}"
    );
    // Every change made was undone exactly once, and nothing else happened.
    let stats = s.stats().await;
    assert_eq!(
        total_changes(&stats),
        2 * done.len() as i64,
        "sandbox changes: {stats:?}"
    );
    assert_eq!(
        stats.values().map(|x| x.calls).sum::<i64>(),
        2 * done.len() as i64
    );

    let actions: Vec<String> = s
        .items("/api/v1/audit?person=c1")
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    for a in [
        "run.cancel_requested",
        "run.compensating",
        "run.compensated",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} not audited: {actions:?}"
        );
    }
    let late = s
        .post(&format!("/api/v1/runs/{run_id}/cancel"), &json!({}))
        .await;
    assert_eq!(
        late.status,
        StatusCode::CONFLICT,
        "an ended run cannot be cancelled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leave_supersedes_a_hire_in_flight() {
    // Account creation takes 600 ms here: the leave arrives while it is under way.
    let env = TestEnv::new(
        &SLOW_200.replace("latency_ms = 200", "latency_ms = 600"),
        ALL,
    )
    .await;
    let s = env.start().await;
    let hire_run = s.accept(&hire("c2", "Engineering")).await;
    let start = Instant::now();
    loop {
        let run = s.get(&format!("/api/v1/runs/{hire_run}")).await;
        assert!(!is_terminal(&run), "{run:#}");
        if steps(&run).iter().any(|st| st["state"] == "running") {
            assert!(
                steps(&run).iter().all(|st| st["state"] != "succeeded"),
                "too late: {run:#}"
            );
            break;
        }
        assert!(start.elapsed() < PATIENCE, "no step started: {run:#}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let leave_run = s
        .accept(&json!({"type": "leave", "person": {"id": "c2"}}))
        .await;
    let leave = s.wait_run(&leave_run).await;
    assert_eq!(leave["state"], "succeeded", "{leave:#}");
    let hire = s.wait_run(&hire_run).await;
    assert_eq!(
        hire["state"], "cancelled",
        "the hire was superseded: {hire:#}"
    );
    let grants_cancelled = steps(&hire)
        .iter()
        .filter(|st| st["action"] == "grant")
        .all(|st| st["state"] == "cancelled");
    assert!(
        grants_cancelled,
        "the hire's grants never started: {hire:#}"
    );

    let p = s.person("c2").await;
    assert_eq!(p["status"], "terminated");
    assert_eq!(
        accounts(&p),
        map(&[("other", "disabled"), ("slow", "deleted")]),
        "{p:#}"
    );
    assert!(grants(&p).is_empty(), "nothing was ever granted: {p:#}");
    // Two creates, two disables, one delete.
    let stats = s.stats().await;
    assert_eq!(total_changes(&stats), 5, "{stats:?}");

    let audit = s.items("/api/v1/audit?person=c2").await;
    let superseded: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "run.superseded")
        .map(|e| &e["details"])
        .collect();
    assert_eq!(
        superseded.len(),
        1,
        "the hire was superseded once, but the audit trail says so {} times: {superseded:?}",
        superseded.len()
    );
}

fn down_step(run: &Value) -> &Value {
    steps(run)
        .iter()
        .find(|st| st["system"] == "down" && st["action"] == "create_account")
        .expect("a create_account step on `down`")
}

async fn circuit(s: &Server, system: &str) -> Value {
    let systems = s.get("/api/v1/systems").await;
    systems["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == system)
        .expect("system listed")["circuit"]
        .clone()
}

// Seed 4 draws no "failure after the change" in its first calls: every call fails before
// reaching the sandbox store, so nothing here depends on how repeats are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_system_fails_the_run_retry_fails_again_and_the_circuit_opens() {
    let env = TestEnv::new(&down_config(4, 1.0), DOWN_TEMPLATES).await;
    let s = env.start().await;
    let run_id = s.accept(&hire("f1", "Engineering")).await;
    let run = s.wait_run(&run_id).await;
    assert_eq!(run["state"], "failed", "{run:#}");
    let step = down_step(&run);
    assert_eq!(step["state"], "failed", "{step}");
    assert_eq!(step["attempts"], 3, "{step}");
    let err = step["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("down") && err.contains("unavailable"),
        "last_error: {step}"
    );
    // Three consecutive failures: the circuit is open (for 1.5 s from the last one).
    let c = circuit(&s, "down").await;
    assert_eq!(c["state"], "open", "circuit of `down`: {c}");
    time_ms(&c["until"]);
    assert_eq!(circuit(&s, "directory").await["state"], "closed");
    // Each system advances on its own: the directory's grant was made anyway; the grant on
    // `down` waits behind its account, and the run says which system failed.
    let grant_on = |system: &str| {
        steps(&run)
            .iter()
            .find(|st| st["action"] == "grant" && st["system"] == system)
            .cloned()
            .expect("a grant step")
    };
    assert_eq!(grant_on("directory")["state"], "succeeded", "{run:#}");
    let held = grant_on("down");
    assert_eq!(
        (&held["state"], &held["ready"]),
        (&json!("pending"), &json!(false))
    );
    assert_eq!(grants(&s.person("f1").await)["directory:staff"], "granted");
    let systems = run["systems"].as_array().expect("systems");
    assert_eq!(systems.len(), 2, "{run:#}");
    assert_eq!(systems[0]["system"], "directory");
    assert_eq!(systems[0]["state"], "done");
    assert_eq!(systems[1]["system"], "down");
    assert_eq!(systems[1]["state"], "failed");
    assert_eq!(
        (&systems[1]["failed"], &systems[1]["held"]),
        (&json!(1), &json!(1))
    );
    assert!(
        systems[1]["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("unavailable"),
        "{run:#}"
    );
    let st = s.stats().await;
    assert_eq!(
        st["down"],
        Stats {
            calls: 3,
            changes: 0,
            failures: 3
        }
    );

    // Retry, with nothing fixed: back in flight with fresh attempts, and failing again.
    let retried = s
        .post(&format!("/api/v1/runs/{run_id}/retry"), &json!({}))
        .await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    assert!(
        matches!(retried.body["state"].as_str(), Some("running")),
        "{}",
        retried.body
    );
    let step = down_step(&retried.body);
    // Back in the queue with fresh attempts; the dispatcher, woken by the retry, may already
    // have claimed it by the time the answer is read.
    assert!(
        matches!(step["state"].as_str(), Some("pending" | "running")),
        "{step}"
    );
    assert_eq!(step["attempts"], 0, "{step}");
    let again = s
        .post(&format!("/api/v1/runs/{run_id}/retry"), &json!({}))
        .await;
    assert_eq!(
        again.status,
        StatusCode::CONFLICT,
        "only failed runs are retried"
    );

    let run = s.wait_run(&run_id).await;
    assert_eq!(run["state"], "failed", "{run:#}");
    let step = down_step(&run);
    assert_eq!(step["attempts"], 3, "{step}");
    assert!(
        step["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("unavailable")
    );
    assert_eq!(circuit(&s, "down").await["state"], "open");
    let st = s.stats().await;
    assert_eq!(
        st["down"],
        Stats {
            calls: 6,
            changes: 0,
            failures: 6
        }
    );
    let actions: Vec<String> = s
        .items("/api/v1/audit?person=f1")
        .await
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "run.failed").count(),
        2,
        "{actions:?}"
    );
    assert_eq!(actions.iter().filter(|a| *a == "run.retried").count(), 1);
    assert_eq!(actions.iter().filter(|a| *a == "step.failed").count(), 2);
    let nope = s
        .request(
            Method::POST,
            "/api/v1/runs/no-such-run/retry",
            Some(TOKEN),
            &[],
            None,
        )
        .await;
    assert_eq!(nope.status, StatusCode::NOT_FOUND);
}

// With failure_rate = 1.0 every call fails, repeats included. (Regression: a call drawn to fail
// "after the change" whose operation id was already applied used to be answered as success,
// so a system that was down "recovered" on the second such draw; seed 3 draws exactly that on
// its first two calls. Fixed in the sandbox in baca6fd.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_with_failure_rate_one_fails_every_call() {
    let env = TestEnv::new(&down_config(3, 1.0), DOWN_TEMPLATES).await;
    let s = env.start().await;
    let run = s.apply(&hire("f2", "Engineering")).await;
    let st = s.stats().await["down"];
    assert_eq!(
        st.calls,
        st.failures,
        "failure_rate = 1.0, yet {} of {} calls to `down` succeeded ({st:?})",
        st.calls - st.failures,
        st.calls
    );
    assert_eq!(run["state"], "failed", "{run:#}");
}

// BUG: a failed run leaves the grants it planned but never started marked `pending`, and the
// planner counts `pending` as held: a later event for the person (after the system is fixed)
// never grants them, and they stay `pending` forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_event_grants_what_a_failed_run_left_pending() {
    let env = TestEnv::new(&down_config(4, 1.0), DOWN_TEMPLATES).await;
    let mut s = env.start().await;
    let run = s.apply(&hire("f3", "Engineering")).await;
    assert_eq!(run["state"], "failed", "{run:#}");
    s.stop();

    // The system is fixed; the person moves team.
    env.write_config(&down_config(4, 0.0));
    let s = env.start().await;
    s.apply_ok(&json!({"type": "transfer", "person": {"id": "f3", "department": "Sales"}}))
        .await;
    let p = s.person("f3").await;
    assert_eq!(
        accounts(&p),
        map(&[("directory", "active"), ("down", "active")])
    );
    assert_eq!(
        grants(&p),
        map(&[("directory:staff", "granted"), ("down:app", "granted")]),
        "{p:#}"
    );
}

// BUG: a hire and a leave due at the same moment (sent in that order) must leave the person
// without access. The leave is planned first (urgent runs sort first), cancels the pending
// hire as "superseded" and fails on an unknown person; the dispatcher then plans the hire
// anyway from the list it read before, and the person ends hired with full access.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hire_and_a_leave_due_together_leave_no_access() {
    let env = TestEnv::new(&down_config(4, 0.0), DOWN_TEMPLATES).await;
    let s = env.start().await;
    let at = (chrono::Utc::now() + chrono::Duration::milliseconds(1000)).to_rfc3339();
    let mut h = hire("l1", "Engineering");
    h["effective_at"] = json!(at);
    let hire_run = s.accept(&h).await;
    let leave_run = s
        .accept(&json!({"type": "leave", "person": {"id": "l1"}, "effective_at": at}))
        .await;
    let hire = s.wait_run(&hire_run).await;
    let leave = s.wait_run(&leave_run).await;
    let summary = format!(
        "hire: {} (error {}), leave: {} (error {})",
        hire["state"], hire["error"], leave["state"], leave["error"]
    );
    let mut wrong = Vec::new();
    let person = s
        .request(Method::GET, "/api/v1/people/l1", Some(TOKEN), &[], None)
        .await;
    if person.status == StatusCode::OK {
        let p = &person.body;
        let active: Vec<_> = accounts(p)
            .into_iter()
            .filter(|(_, st)| st == "active")
            .collect();
        let held: Vec<_> = grants(p)
            .into_iter()
            .filter(|(_, st)| st == "granted")
            .collect();
        if !active.is_empty() || !held.is_empty() || p["status"] == "active" {
            wrong.push(format!(
                "the leaver is {} with accounts {active:?} and grants {held:?}",
                p["status"]
            ));
        }
    }
    if hire["state"] == "succeeded" && !hire["error"].is_null() {
        wrong.push("the hire run both succeeded and was superseded".to_string());
    }
    assert!(wrong.is_empty(), "{}; {summary}", wrong.join("; "));
}
