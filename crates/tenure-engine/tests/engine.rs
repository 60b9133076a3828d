//! The engine end to end, in process, against sandbox systems on a real database.
//! `TENURE_TEST_DATABASE=postgres://...` runs the same tests on PostgreSQL.

use std::sync::Arc;
use std::time::Duration;
use tenure_core::AccountState;
use tenure_core::breaker::CircuitState;
use tenure_core::config::{Config, SourceFile};
use tenure_core::event::parse_event;
use tenure_core::health::Health;
use tenure_core::run::RunState;
use tenure_engine::{
    Clock, Engine, EngineOptions, IngestOutcome, ManualClock, Planning, Submission,
};
use tenure_store::Store;

const CONFIG: &str = r#"
[engine]
max_attempts = 3
backoff_base_ms = 1000

[[systems]]
id = "directory"
connector = "sandbox"
[[systems]]
id = "crm"
connector = "sandbox"
retention = "keep"

[[clients]]
id = "acme"

[[entitlements]]
id = "directory:staff"
system = "directory"
[[entitlements]]
id = "directory:eng"
system = "directory"
[[entitlements]]
id = "crm:acme"
system = "crm"
client = "acme"
"#;

fn config(extra_system_settings: &str) -> Arc<Config> {
    let main = format!("{CONFIG}{extra_system_settings}");
    let t = |p: &str, s: &str| SourceFile {
        path: p.into(),
        text: s.into(),
    };
    Arc::new(
        Config::parse(
            &t("tenure.toml", &main),
            &[
                t("all.toml", "entitlements = [\"directory:staff\"]\n"),
                t("eng.toml", "entitlements = [\"directory:eng\"]\n[match]\ndepartment = [\"Engineering\"]\n"),
                t("consulting.toml", "entitlements = [\"crm:acme\"]\n[match]\ndepartment = [\"Consulting\"]\n"),
                t("consultant.toml", "entitlements = [\"crm:{client}\"]\n[match]\nengagement_role = [\"consultant\"]\n"),
            ],
        )
        .unwrap(),
    )
}

struct Harness {
    engine: Engine,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn harness(config: Arc<Config>) -> Harness {
    harness_with(
        config,
        EngineOptions {
            seed: Some(1),
            ..Default::default()
        },
    )
    .await
}

async fn harness_with(config: Arc<Config>, options: EngineOptions) -> Harness {
    harness_on(config, options, |store| store).await
}

/// A harness whose store `prepare` sets up before the engine starts.
async fn harness_on(
    config: Arc<Config>,
    options: EngineOptions,
    prepare: impl FnOnce(Store) -> Store,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = match std::env::var("TENURE_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let name = format!("tenure_engine_{}", uuid::Uuid::new_v4().simple());
            let url = tenure_store::create_scratch_database(&url, &name)
                .await
                .unwrap();
            Store::connect(&url).await.unwrap()
        }
        _ => Store::open_sqlite(&dir.path().join("t.db")).await.unwrap(),
    };
    let clock = Arc::new(ManualClock::new(1_780_000_000_000));
    let engine = Engine::start(prepare(store), config, clock.clone(), options)
        .await
        .unwrap();
    Harness {
        engine,
        clock,
        _dir: dir,
    }
}

/// An event of the test's, as submitted.
fn submission(body: &str) -> Submission {
    Submission {
        event: parse_event(body.as_bytes()).unwrap(),
        idempotency_key: None,
        actor: "test".into(),
        request_id: None,
        trace: None,
    }
}

/// Polls a submission once, so it is queued for its intake in the order this is called, and
/// hands it back to be awaited.
async fn queued<F: std::future::Future>(
    mut submit: std::pin::Pin<Box<F>>,
) -> std::pin::Pin<Box<F>> {
    let pending =
        std::future::poll_fn(|cx| std::task::Poll::Ready(submit.as_mut().poll(cx).is_pending()))
            .await;
    assert!(pending, "the event waits for its intake");
    submit
}

impl Harness {
    /// Waits for a leave to succeed: its person's hire was cancelled by it, or had ended.
    async fn leave_outlasts(&self, hire: &str, leave: &str) {
        assert_eq!(self.finish(leave).await, RunState::Succeeded);
        let hire_state = self.engine.run_detail(hire).await.unwrap().run.state;
        assert!(
            matches!(hire_state, RunState::Cancelled | RunState::Succeeded),
            "{hire_state}"
        );
    }

    async fn send(&self, body: &str) -> String {
        match self.engine.submit(submission(body)).await.unwrap() {
            IngestOutcome::Accepted { run_id, .. } => run_id,
            other => panic!("{other:?}"),
        }
    }

    /// Sends `person`'s leave, taking effect `ms` from the clock's now; returns its run.
    async fn leave_in(&self, person: &str, ms: i64) -> String {
        let at = chrono::DateTime::from_timestamp_millis(self.clock.now() + ms)
            .unwrap()
            .to_rfc3339();
        self.send(&format!(
            r#"{{"type":"leave","effective_at":"{at}","person":{{"id":"{person}"}}}}"#
        ))
        .await
    }

    async fn finish(&self, run_id: &str) -> RunState {
        let mut rx = self.engine.subscribe();
        let detail = self.engine.run_detail(run_id).await.unwrap();
        if detail.run.state.is_terminal() {
            return detail.run.state;
        }
        loop {
            let f = tokio::time::timeout(Duration::from_secs(20), rx.recv())
                .await
                .expect("run did not finish")
                .unwrap();
            if f.run_id == run_id {
                return f.state;
            }
        }
    }
}

const HIRE: &str = r#"{"type":"hire","person":{"id":"e1","name":"Ada","email":"ada@example.com","worker_type":"employee","department":"Engineering"}}"#;

#[tokio::test]
async fn hire_then_leave() {
    let h = harness(config("")).await;
    let run = h.send(HIRE).await;
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    let d = h.engine.run_detail(&run).await.unwrap();
    assert_eq!(d.steps.len(), 3, "{:#?}", d.steps);
    let dir = h.engine.connector("directory").unwrap();
    assert_eq!(
        dir.list_memberships("e1").await.unwrap(),
        vec!["directory:eng", "directory:staff"]
    );

    let run = h.send(r#"{"type":"leave","person":{"id":"e1"}}"#).await;
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    assert!(dir.list_accounts().await.unwrap().is_empty());
}

/// As `tenure serve` runs it: the urgent lane on a thread of its own, the rest on two worker
/// threads. A leave sent among hires revokes everything of its person, the hires all finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leave_on_the_urgent_thread_revokes_everything_among_hires() {
    let h = harness_on(
        config(""),
        EngineOptions {
            seed: Some(1),
            ..Default::default()
        },
        |store| store.with_urgent_thread().unwrap(),
    )
    .await;
    assert!(h.engine.store().has_urgent_thread());
    let first = h.send(HIRE).await;
    assert_eq!(h.finish(&first).await, RunState::Succeeded);
    let hire = |n: usize| {
        format!(
            r#"{{"type":"hire","person":{{"id":"h{n}","name":"H {n}","email":"h{n}@example.com","worker_type":"employee","department":"Consulting"}}}}"#
        )
    };
    let mut hires = Vec::new();
    for n in 0..20 {
        hires.push(h.send(&hire(n)).await);
    }
    let leave = h.send(r#"{"type":"leave","person":{"id":"e1"}}"#).await;
    for n in 20..40 {
        hires.push(h.send(&hire(n)).await);
    }
    assert_eq!(h.finish(&leave).await, RunState::Succeeded);
    let dir = h.engine.connector("directory").unwrap();
    let accounts = dir.list_accounts().await.unwrap();
    assert!(
        accounts.iter().all(|a| a.person_id != "e1"),
        "the leaver's account is gone: {accounts:?}"
    );
    for run in &hires {
        assert_eq!(h.finish(run).await, RunState::Succeeded, "{run}");
    }
    assert!(dir.list_memberships("e1").await.unwrap().is_empty());
    let crm = h.engine.connector("crm").unwrap();
    assert_eq!(crm.list_memberships("h39").await.unwrap(), vec!["crm:acme"]);
    h.engine.shutdown().await;
}

impl Harness {
    /// Submits an event and returns its outcome, whatever it is.
    async fn outcome(&self, body: &str) -> IngestOutcome {
        self.engine.submit(submission(body)).await.unwrap()
    }
}

/// The field of a refusal, or a panic.
fn refused(o: IngestOutcome) -> String {
    match o {
        IngestOutcome::Refused { field, message } => format!("{field}: {message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn an_event_about_a_stranger_is_refused_and_nothing_is_stored() {
    let h = harness(config("")).await;
    let ghost = r#"{"type":"engagement_start","person":{"id":"ghost"},"engagement":{"client":"acme","role":"consultant"}}"#;
    let why = refused(h.outcome(ghost).await);
    assert!(
        why.starts_with("person.id: person `ghost` is not known"),
        "{why}"
    );
    for kind in ["leave", "transfer", "contract_change"] {
        let why = refused(
            h.outcome(&format!(r#"{{"type":"{kind}","person":{{"id":"ghost"}}}}"#))
                .await,
        );
        assert!(why.starts_with("person.id:"), "{kind}: {why}");
    }
    // A client named by id alone must be configured, stored or engaged.
    assert_eq!(h.finish(&h.send(HIRE).await).await, RunState::Succeeded);
    let why = refused(
        h.outcome(r#"{"type":"engagement_start","person":{"id":"e1"},"engagement":{"client":"nope","role":"consultant"}}"#)
            .await,
    );
    assert!(
        why.starts_with("engagement.client: client `nope` is not known"),
        "{why}"
    );
    let mut c = h.engine.store().reader().await.unwrap();
    let ghost_runs = tenure_store::list_runs(&mut c, None, Some("ghost"), None, 10)
        .await
        .unwrap();
    assert!(ghost_runs.is_empty(), "{ghost_runs:?}");
    assert!(
        tenure_store::engagements_of(&mut c, "e1")
            .await
            .unwrap()
            .is_empty()
    );
    // Carried in full, the client is introduced; then its id alone will do.
    let full = r#"{"type":"engagement_start","person":{"id":"e1"},"engagement":{"client":{"id":"nope","name":"Nope Ltd"},"role":"consultant"}}"#;
    assert_eq!(h.finish(&h.send(full).await).await, RunState::Succeeded);
    let end = r#"{"type":"engagement_end","person":{"id":"e1"},"engagement":{"client":"nope","role":"consultant"}}"#;
    assert_eq!(h.finish(&h.send(end).await).await, RunState::Succeeded);
}

#[tokio::test]
async fn a_hire_not_yet_in_effect_or_in_the_same_batch_vouches_for_its_person() {
    let h = harness(config("")).await;
    let at = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(h.clock.now() + ms)
            .unwrap()
            .to_rfc3339()
    };
    // A future-dated hire is stored but not applied: the person's leave may follow it.
    let hire = h
        .send(&format!(
            r#"{{"type":"hire","effective_at":"{}","person":{{"id":"f1","name":"Fi","email":"fi@example.com","worker_type":"employee"}}}}"#,
            at(3_600_000)
        ))
        .await;
    let leave = h
        .send(&format!(
            r#"{{"type":"leave","effective_at":"{}","person":{{"id":"f1"}}}}"#,
            at(7_200_000)
        ))
        .await;
    assert_ne!(hire, leave);
    // Cancelled before it took effect, the hire vouches no more.
    h.engine.cancel_run(&hire, "test").await.unwrap();
    let why = refused(
        h.outcome(r#"{"type":"transfer","person":{"id":"f1","title":"CTO"}}"#)
            .await,
    );
    assert!(why.starts_with("person.id:"), "{why}");

    // Stored together, a hire vouches for the leave written before it.
    let leave = parse_event(
        br#"{"type":"leave","effective_at":"2030-01-01T00:00:00Z","person":{"id":"b1"}}"#,
    )
    .unwrap();
    let hire = parse_event(br#"{"type":"hire","person":{"id":"b1","name":"Bea","email":"bea@example.com","worker_type":"employee"}}"#).unwrap();
    let submissions: Vec<Submission> = [leave, hire]
        .into_iter()
        .map(|event| Submission {
            event,
            idempotency_key: None,
            actor: "test".into(),
            request_id: None,
            trace: None,
        })
        .collect();
    let mut tx = h.engine.store().begin().await.unwrap();
    let outcomes = h
        .engine
        .submit_in(&mut tx, &submissions, Planning::InTransaction)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, IngestOutcome::Accepted { .. })),
        "{outcomes:?}"
    );
}

/// Stored to be planned after the commit, a run is pending without steps inside the
/// transaction; the dispatcher plans it once the transaction commits, and it ends as a run
/// planned in the transaction does. Stored so and not yet planned when the process stops, it
/// is planned by the next one.
#[tokio::test]
async fn runs_stored_for_planning_after_commit_are_planned_by_the_dispatcher() {
    let h = harness(config("")).await;
    let submit = async |body: &str| {
        let mut tx = h.engine.store().begin().await.unwrap();
        let outcomes = h
            .engine
            .submit_in(&mut tx, &[submission(body)], Planning::AfterCommit)
            .await
            .unwrap();
        let IngestOutcome::Accepted { run_id, .. } = &outcomes[0] else {
            panic!("{outcomes:?}")
        };
        let run = tenure_store::get_run(tx.conn(), run_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(run.state, RunState::Pending);
        assert!(
            tenure_store::steps_of_run(tx.conn(), run_id)
                .await
                .unwrap()
                .is_empty()
        );
        tx.commit().await.unwrap();
        run_id.clone()
    };
    let run = submit(HIRE).await;
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    let d = h.engine.run_detail(&run).await.unwrap();
    assert_eq!(d.steps.len(), 3, "{:#?}", d.steps);

    // The process stops before the dispatcher plans a run stored so: the next one plans it.
    h.engine.shutdown().await;
    let run = submit(&HIRE.replace("e1", "e2").replace("ada@", "ada2@")).await;
    let next = Engine::start(
        h.engine.store().clone(),
        config(""),
        h.clock.clone(),
        EngineOptions {
            seed: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let next = Harness {
        engine: next,
        clock: h.clock.clone(),
        _dir: tempfile::tempdir().unwrap(),
    };
    assert_eq!(next.finish(&run).await, RunState::Succeeded);
    assert_eq!(next.engine.run_detail(&run).await.unwrap().steps.len(), 3);
}

#[tokio::test]
async fn future_dated_events_wait_for_their_time() {
    let h = harness(config("")).await;
    let now = h.clock.now();
    let at = chrono::DateTime::from_timestamp_millis(now + 3_600_000)
        .unwrap()
        .to_rfc3339();
    let run = h
        .send(&format!(
            r#"{{"type":"hire","effective_at":"{at}","person":{{"id":"e9","name":"Bo","email":"bo@example.com","worker_type":"contractor"}}}}"#
        ))
        .await;
    h.engine.wake();
    assert_eq!(
        h.engine.run_detail(&run).await.unwrap().run.state,
        RunState::Pending
    );
    h.clock.advance(3_600_000);
    h.engine.wake();
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
}

#[tokio::test]
async fn a_future_leave_marks_the_person_leaving_and_revokes_on_time() {
    let h = harness(config("")).await;
    assert_eq!(h.finish(&h.send(HIRE).await).await, RunState::Succeeded);
    let leave = h.leave_in("e1", 86_400_000).await;
    let mut c = h.engine.store().reader().await.unwrap();
    let p = tenure_store::get_person(&mut c, "e1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.status, tenure_core::PersonStatus::Leaving);
    let dir = h.engine.connector("directory").unwrap();
    assert_eq!(
        dir.list_accounts().await.unwrap().len(),
        1,
        "access stays until the leave takes effect"
    );
    h.clock.advance(86_400_000);
    h.engine.wake();
    assert_eq!(h.finish(&leave).await, RunState::Succeeded);
    assert!(dir.list_accounts().await.unwrap().is_empty());
    let p = tenure_store::get_person(&mut c, "e1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.status, tenure_core::PersonStatus::Terminated);
}

#[tokio::test]
async fn a_failing_system_is_retried_with_backoff_then_fails_the_run() {
    // Every call to crm fails (retryably); directory works.
    let cfg = config("").as_ref().clone();
    let mut cfg = cfg;
    cfg.systems.get_mut("crm").unwrap().settings =
        serde_json::json!({"failure_rate": 1.0, "seed": 3})
            .as_object()
            .unwrap()
            .clone();
    // `drive_until_done` moves the clock a minute at a time: a lease far longer than that keeps
    // a call still being recorded from being taken back and made again.
    let h = harness_with(Arc::new(cfg), long_leases()).await;
    h.send(HIRE).await;
    let run = h
        .send(r#"{"type":"engagement_start","person":{"id":"e1"},"engagement":{"client":"acme","role":"consultant"}}"#)
        .await;
    // The injected clock moves only when told: step it past each backoff and wake the engine.
    assert_eq!(drive_until_done(&h, &run).await, RunState::Failed);
    let d = h.engine.run_detail(&run).await.unwrap();
    let crm = d
        .steps
        .iter()
        .find(|s| s.system == "crm" && s.action.as_str() == "create_account")
        .unwrap();
    assert_eq!(crm.attempts, 3, "max_attempts from the config");
    let last = crm.last_error.as_deref().unwrap();
    assert!(
        last.contains("retryable") || last.contains("outcome unknown"),
        "{last}"
    );
    // Grants on crm were never attempted: their phase never started.
    assert!(
        d.steps
            .iter()
            .filter(|s| s.phase == 1)
            .all(|s| s.attempts == 0)
    );
    let systems = h.engine.systems().await;
    let crm = systems.iter().find(|s| s.id == "crm").unwrap();
    let stats = crm.stats.as_ref().unwrap();
    // Three calls, all answered with an error; some may have made the change before the answer
    // was lost (a timeout after the fact), which is what the operation id is for.
    assert_eq!(
        (stats["calls"].as_i64(), stats["failures"].as_i64()),
        (Some(3), Some(3))
    );
    assert!(stats["changes"].as_i64().unwrap() <= 1);
    // Every recent call failed, too few in a row to open the circuit: degraded, with the
    // error, since the third failure.
    assert!(matches!(crm.circuit, CircuitState::Closed { failures: 3 }));
    assert_eq!(crm.health.health, Health::Degraded, "{:?}", crm.health);
    assert_eq!(
        (crm.health.recent_calls, crm.health.recent_failures),
        (3, 3)
    );
    let last = crm.health.last_error.as_ref().expect("a last error");
    assert!(
        last.message.contains("retryable") || last.message.contains("outcome unknown"),
        "{last:?}"
    );
    assert_eq!(crm.health.since_ms, last.at_ms);
    let directory = systems.iter().find(|s| s.id == "directory").unwrap();
    assert_eq!(directory.health.health, Health::Ok);
    assert_eq!(directory.health.last_error, None);
}

#[tokio::test]
async fn a_leave_supersedes_the_unfinished_hire_and_removes_everything() {
    let cfg = config("");
    let mut slow = cfg.as_ref().clone();
    slow.systems.get_mut("directory").unwrap().settings = serde_json::json!({"latency_ms": 50})
        .as_object()
        .unwrap()
        .clone();
    let h = harness(Arc::new(slow)).await;
    let hire = h.send(HIRE).await;
    let leave = h.send(r#"{"type":"leave","person":{"id":"e1"}}"#).await;
    h.leave_outlasts(&hire, &leave).await;
    let dir = h.engine.connector("directory").unwrap();
    assert!(dir.list_accounts().await.unwrap().is_empty());
    assert!(dir.list_memberships("e1").await.unwrap().is_empty());
}

/// Steps the injected clock past every backoff until `run` ends.
/// Options whose lease outlasts any clock movement of [`drive_until_done`] while a call is
/// recorded.
fn long_leases() -> EngineOptions {
    EngineOptions {
        seed: Some(1),
        lease_ms: 24 * 3_600_000,
        ..Default::default()
    }
}

async fn drive_until_done(h: &Harness, run: &str) -> RunState {
    let mut rx = h.engine.subscribe();
    if let Ok(d) = h.engine.run_detail(run).await
        && d.run.state.is_terminal()
    {
        return d.run.state;
    }
    for _ in 0..200 {
        h.clock.advance(60_000);
        h.engine.wake();
        if let Ok(Ok(f)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await
            && f.run_id == run
        {
            return f.state;
        }
    }
    panic!("run {run} did not finish");
}

#[tokio::test]
async fn cancelling_a_failed_run_undoes_what_it_did() {
    let mut cfg = config("").as_ref().clone();
    cfg.systems.get_mut("crm").unwrap().settings =
        serde_json::json!({"failure_rate": 1.0, "seed": 9})
            .as_object()
            .unwrap()
            .clone();
    let h = harness_with(Arc::new(cfg), long_leases()).await;
    // A consultant needs accounts on directory (works) and crm (always fails).
    let run = h
        .send(r#"{"type":"hire","person":{"id":"c1","name":"Cy","email":"cy@example.com","worker_type":"employee","department":"Consulting"}}"#)
        .await;
    assert_eq!(drive_until_done(&h, &run).await, RunState::Failed);
    let dir = h.engine.connector("directory").unwrap();
    assert_eq!(
        dir.list_accounts().await.unwrap().len(),
        1,
        "the directory account was created"
    );

    let d = h.engine.cancel_run(&run, "ops").await.unwrap();
    assert!(d.run.cancel_requested);
    assert_eq!(h.finish(&run).await, RunState::Compensated);
    assert!(
        dir.list_accounts().await.unwrap().is_empty(),
        "compensation deleted it"
    );
    let d = h.engine.run_detail(&run).await.unwrap();
    let undone = d
        .steps
        .iter()
        .find(|s| s.system == "directory" && s.action.as_str() == "create_account")
        .unwrap();
    assert_eq!(undone.state.as_str(), "compensated");
    // A run that has ended cannot be cancelled again.
    assert!(h.engine.cancel_run(&run, "ops").await.is_err());
}

#[tokio::test]
async fn the_same_key_replays_and_a_different_body_is_refused() {
    let h = harness(config("")).await;
    let event = parse_event(HIRE.as_bytes()).unwrap();
    let sub = |e: tenure_core::event::EventInput| Submission {
        event: e,
        idempotency_key: Some("k1".into()),
        actor: "t".into(),
        request_id: None,
        trace: None,
    };
    let first = h.engine.submit(sub(event.clone())).await.unwrap();
    let again = h.engine.submit(sub(event.clone())).await.unwrap();
    match (&first, &again) {
        (
            IngestOutcome::Accepted {
                run_id: a,
                replay: false,
                ..
            },
            IngestOutcome::Accepted {
                run_id: b,
                replay: true,
                ..
            },
        ) => assert_eq!(a, b),
        other => panic!("{other:?}"),
    }
    // The event's own id is a key too: sent again without the header, it is the same event.
    let mut with_id = event.clone();
    with_id.id = Some("hr-42".into());
    let keyed = |e: tenure_core::event::EventInput, k: Option<&str>| Submission {
        event: e,
        idempotency_key: k.map(str::to_string),
        actor: "t".into(),
        request_id: None,
        trace: None,
    };
    let a = h
        .engine
        .submit(keyed(with_id.clone(), Some("k2")))
        .await
        .unwrap();
    let b = h.engine.submit(keyed(with_id, None)).await.unwrap();
    match (&a, &b) {
        (
            IngestOutcome::Accepted { run_id: x, .. },
            IngestOutcome::Accepted {
                run_id: y,
                replay: true,
                ..
            },
        ) => {
            assert_eq!(x, y)
        }
        other => panic!("{other:?}"),
    }
    let mut other = event;
    other.person.title = Some("CTO".into());
    assert!(matches!(
        h.engine.submit(sub(other)).await.unwrap(),
        IngestOutcome::KeyReused { .. }
    ));
}

trait Now {
    fn now(&self) -> i64;
}
impl Now for ManualClock {
    fn now(&self) -> i64 {
        use tenure_engine::Clock;
        self.now_ms()
    }
}

/// A stop requested right after start, before the engine's tasks first ran (on this
/// single-threaded test runtime they have not), still stops every one of them.
#[tokio::test]
async fn an_engine_stopped_at_once_stops() {
    let h = harness(config("")).await;
    tokio::time::timeout(Duration::from_secs(10), h.engine.shutdown())
        .await
        .expect("the engine did not stop");
}

/// Events stored together (one transaction, one read of their people for planning) end as the
/// same events stored one at a time: the same outcomes, runs, steps, people and grants. The
/// batch mixes new people, people already stored (a transfer, a leave), a person with two events
/// in it (read run by run, not from the batch's read), a repeat of a key inside the batch and a
/// key reused for another event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_events_ends_as_the_same_events_one_at_a_time() {
    let hire = |id: &str, dept: &str| {
        format!(
            r#"{{"type":"hire","person":{{"id":"{id}","name":"N {id}","email":"{id}@example.com","worker_type":"employee","department":"{dept}"}}}}"#
        )
    };
    let before = [hire("old1", "Engineering"), hire("old2", "Consulting")];
    let batch: Vec<(String, Option<&str>)> = vec![
        (hire("b1", "Engineering"), Some("k-b1")),
        (hire("b2", "Consulting"), None),
        (hire("b3", "Sales"), None),
        (
            r#"{"type":"transfer","person":{"id":"old1","department":"Consulting"}}"#.into(),
            None,
        ),
        (r#"{"type":"leave","person":{"id":"old2"}}"#.into(), None),
        (hire("twice", "Sales"), None),
        (
            r#"{"type":"transfer","person":{"id":"twice","department":"Engineering"}}"#.into(),
            None,
        ),
        // The same key again, same event: a replay of the first.
        (hire("b1", "Engineering"), Some("k-b1")),
        // The same key for another event: refused.
        (hire("b4", "Sales"), Some("k-b1")),
    ];
    let submissions: Vec<Submission> = batch
        .iter()
        .map(|(body, key)| Submission {
            event: parse_event(body.as_bytes()).unwrap(),
            idempotency_key: key.map(str::to_string),
            actor: "test".into(),
            request_id: None,
            trace: None,
        })
        .collect();

    let one_by_one = harness(config("")).await;
    let together = harness(config("")).await;
    for h in [&one_by_one, &together] {
        for body in &before {
            let run = h.send(body).await;
            assert_eq!(h.finish(&run).await, RunState::Succeeded);
        }
    }
    let mut alone = Vec::new();
    for s in &submissions {
        alone.push(one_by_one.engine.submit(s.clone()).await.unwrap());
    }
    let mut tx = together.engine.store().begin().await.unwrap();
    let batched = together
        .engine
        .submit_in(&mut tx, &submissions, Planning::InTransaction)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let shape = |o: &IngestOutcome| match o {
        IngestOutcome::Accepted { replay, .. } => format!("accepted replay={replay}"),
        IngestOutcome::KeyReused { key, .. } => format!("key reused {key}"),
        IngestOutcome::Refused { field, .. } => format!("refused {field}"),
    };
    assert_eq!(
        alone.iter().map(shape).collect::<Vec<_>>(),
        batched.iter().map(shape).collect::<Vec<_>>()
    );
    let mut summaries = Vec::new();
    for (h, outcomes) in [(&one_by_one, &alone), (&together, &batched)] {
        let mut runs = Vec::new();
        for o in outcomes {
            let IngestOutcome::Accepted { run_id, .. } = o else {
                continue;
            };
            let state = h.finish(run_id).await;
            let d = h.engine.run_detail(run_id).await.unwrap();
            let steps: Vec<String> = d
                .steps
                .iter()
                .map(|s| {
                    format!(
                        "{} {} {} {:?} {}",
                        s.phase, s.action, s.system, s.entitlement, s.state
                    )
                })
                .collect();
            runs.push((d.run.person_id, d.run.kind, state, steps));
        }
        let mut c = h.engine.store().reader().await.unwrap();
        let mut people = Vec::new();
        for id in ["old1", "old2", "b1", "b2", "b3", "b4", "twice"] {
            let person = tenure_store::get_person(&mut c, id)
                .await
                .unwrap()
                .map(|p| serde_json::to_value(p).unwrap());
            let grants: Vec<String> = tenure_store::grants_of(&mut c, id)
                .await
                .unwrap()
                .into_iter()
                .map(|(g, system)| format!("{} {system} {}", g.entitlement, g.state))
                .collect();
            people.push((id, person, grants));
        }
        summaries.push((runs, people));
    }
    assert_eq!(summaries[0], summaries[1]);
    // The batch did plan people from its shared read: new people got their access.
    let b2 = &summaries[1].1[3];
    assert!(
        b2.2.iter().any(|g| g.starts_with("crm:acme crm granted")),
        "{b2:?}"
    );
}

/// A target system on loopback that holds each request until the test lets it go, so a call
/// can be kept in flight while the test moves the clock.
struct HeldSystem {
    /// The operation id of each request, as it arrives.
    arrived: tokio::sync::mpsc::Receiver<String>,
    /// Lets one held request answer.
    release: tokio::sync::mpsc::Sender<()>,
    url: String,
    /// Calls to `/off` (answered at once), the disable of [`held_harness_with`]'s leaves.
    off: Arc<std::sync::atomic::AtomicUsize>,
}

async fn held_system() -> HeldSystem {
    let (arrived_tx, arrived) = tokio::sync::mpsc::channel(16);
    let (release, release_rx) = tokio::sync::mpsc::channel::<()>(16);
    let release_rx = Arc::new(tokio::sync::Mutex::new(release_rx));
    let off = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = off.clone();
    let app = axum::Router::new()
        .route(
            "/off",
            axum::routing::post(move || {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { axum::http::StatusCode::OK }
            }),
        )
        .route(
            "/users",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let (arrived, release) = (arrived_tx.clone(), release_rx.clone());
                async move {
                    let op = headers["idempotency-key"].to_str().unwrap().to_string();
                    arrived.send(op).await.unwrap();
                    release.lock().await.recv().await;
                    axum::http::StatusCode::CREATED
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/users", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    HeldSystem {
        arrived,
        release,
        url,
        off,
    }
}

/// A configuration whose one system is the held webhook receiver, run as one of several
/// instances (`sole_instance = false`): leases are all that guard a step. The lease is the
/// default minute; the engine's own renewal tick (every 20 s of real time) does not come
/// during a test, which renews by hand at the clock times it sets.
async fn held_harness() -> (Harness, HeldSystem) {
    held_harness_with("").await
}

/// [`held_harness`] with more of the webhook system's settings (`extra`, TOML under
/// `[systems.settings]`, its operations; `{off}` stands for the `/off` URL, `{held}` for the
/// one that holds each call).
async fn held_harness_with(extra: &str) -> (Harness, HeldSystem) {
    held_harness_tuned(extra, 3, 60_000).await
}

/// [`held_harness_with`] with the engine's `max_attempts` and the system's `timeout_ms`.
async fn held_harness_tuned(
    extra: &str,
    max_attempts: u32,
    timeout_ms: u64,
) -> (Harness, HeldSystem) {
    held_harness_system(extra, max_attempts, timeout_ms, "").await
}

/// [`held_harness_tuned`] with more of the system's own settings (`system`, TOML under
/// `[[systems]]`).
async fn held_harness_system(
    extra: &str,
    max_attempts: u32,
    timeout_ms: u64,
    system: &str,
) -> (Harness, HeldSystem) {
    let held = held_system().await;
    // SAFETY: set before the engine starts, always to the same value; nothing reads it concurrently.
    unsafe {
        std::env::set_var(
            "TENURE_TEST_LEASE_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
    };
    let main = format!(
        r#"
[engine]
max_attempts = {max_attempts}

[[systems]]
id = "ticketing"
connector = "webhook"
{system}
[systems.settings]
allowed_hosts = ["127.0.0.1"]
allow_private_networks = true
secret_env = "TENURE_TEST_LEASE_SECRET"
timeout_ms = {timeout_ms}
[systems.settings.operations.create_account]
url = "{url}"
{extra}

[[entitlements]]
id = "ticketing:agent"
system = "ticketing"
"#,
        url = held.url,
        extra = extra
            .replace("{off}", &held.url.replace("/users", "/off"))
            .replace("{held}", &held.url)
    );
    let t = |p: &str, s: &str| SourceFile {
        path: p.into(),
        text: s.into(),
    };
    let config = Config::parse(
        &t("tenure.toml", &main),
        &[t("all.toml", "entitlements = [\"ticketing:agent\"]\n")],
    )
    .unwrap();
    let h = harness_with(
        Arc::new(config),
        EngineOptions {
            seed: Some(1),
            sole_instance: false,
            ..Default::default()
        },
    )
    .await;
    (h, held)
}

impl Harness {
    /// Takes back running steps whose lease ended before now, as another instance would.
    async fn requeue_as_another_instance(&self) -> u64 {
        let now = self.clock.now_ms();
        let mut tx = self.engine.store().begin().await.unwrap();
        let n = tenure_store::requeue_expired(tx.conn(), now, now)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        n
    }

    /// A person's accounts as tenure records them: (system, state).
    async fn accounts(&self, person: &str) -> Vec<(String, AccountState)> {
        let mut c = self.engine.store().reader().await.unwrap();
        let accounts = tenure_store::accounts_of(&mut c, person).await.unwrap();
        accounts.into_iter().map(|a| (a.system, a.state)).collect()
    }

    async fn audited(&self, action: &str) -> usize {
        let mut c = self.engine.store().reader().await.unwrap();
        let f = tenure_store::AuditFilter {
            action: Some(action),
            limit: 1_000,
            ..Default::default()
        };
        tenure_store::audit_matching(&mut c, &f)
            .await
            .unwrap()
            .len()
    }
}

#[tokio::test]
async fn a_call_that_outlives_its_lease_keeps_its_step_by_renewing_it() {
    let (h, mut held) = held_harness().await;
    let run = h.send(HIRE).await;
    let op = held.arrived.recv().await.unwrap();

    // Three quarters of the lease pass during the call: the engine renews it.
    h.clock.advance(45_000);
    assert_eq!(h.engine.renew_leases().await.unwrap(), 1);
    // Past the first lease's end, another instance finds nothing to take back.
    h.clock.advance(18_000);
    assert_eq!(h.requeue_as_another_instance().await, 0);
    // A lease not yet a third used is left alone.
    assert_eq!(h.engine.renew_leases().await.unwrap(), 0);

    held.release.send(()).await.unwrap();
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    assert!(
        held.arrived.try_recv().is_err(),
        "the system was called again"
    );
    assert_eq!(h.audited("step.create_account").await, 1, "operation {op}");
}

/// A leaver's steps are recorded by a completer of their own, which renews their leases: a
/// leaver's call slower than its lease keeps its step too.
#[tokio::test]
async fn a_leavers_call_that_outlives_its_lease_keeps_its_step_by_renewing_it() {
    let (h, mut held) =
        held_harness_with("[systems.settings.operations.disable_account]\nurl = \"{held}\"\n")
            .await;
    let hire = h.send(HIRE).await;
    held.arrived.recv().await.unwrap();
    held.release.send(()).await.unwrap();
    assert_eq!(h.finish(&hire).await, RunState::Succeeded);

    let leave = h.send(r#"{"type":"leave","person":{"id":"e1"}}"#).await;
    let op = held.arrived.recv().await.unwrap();
    h.clock.advance(45_000);
    assert_eq!(h.engine.renew_leases().await.unwrap(), 1);
    h.clock.advance(18_000);
    assert_eq!(h.requeue_as_another_instance().await, 0);

    held.release.send(()).await.unwrap();
    assert_eq!(h.finish(&leave).await, RunState::Succeeded);
    assert!(
        held.arrived.try_recv().is_err(),
        "the system was called again"
    );
    assert_eq!(h.audited("step.disable_account").await, 1, "operation {op}");
}

#[tokio::test]
async fn a_lease_taken_back_is_not_renewed_and_the_late_outcome_is_dropped() {
    let (h, mut held) = held_harness().await;
    let run = h.send(HIRE).await;
    let first = held.arrived.recv().await.unwrap();

    // The lease runs out before anyone renews it, and the step is taken back (by another
    // instance here, or by this one's dispatcher if it looks first): no renewal brings it back.
    h.clock.advance(61_000);
    h.requeue_as_another_instance().await;
    assert_eq!(h.engine.renew_leases().await.unwrap(), 0);

    // The first call answers late: its outcome is not recorded. The step is made again with
    // the same operation id, and recorded once.
    held.release.send(()).await.unwrap();
    h.engine.wake();
    let second = held.arrived.recv().await.unwrap();
    assert_eq!(first, second);
    held.release.send(()).await.unwrap();
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    assert_eq!(h.audited("step.create_account").await, 1);
}

// ---------------------------------------------------------------- random interleavings

/// One thing that happens to the engine, in a random sequence.
#[derive(Debug, Clone)]
enum Op {
    /// A hire, in a department the templates match; with a contract end `days` ahead, whose
    /// timer raises the leave itself.
    Hire {
        who: usize,
        consulting: bool,
        end_in_days: Option<u8>,
    },
    /// A transfer to the other department.
    Transfer { who: usize, consulting: bool },
    /// A leave.
    Leave { who: usize },
    /// A cancel of the person's latest run (refused when it has ended).
    Cancel { who: usize },
    /// Time passes: retries come due, timers fire.
    Advance { minutes: u16 },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        3 => (0..3usize, any::<bool>(), proptest::option::of(1..3u8))
            .prop_map(|(who, consulting, end_in_days)| Op::Hire { who, consulting, end_in_days }),
        2 => (0..3usize, any::<bool>()).prop_map(|(who, consulting)| Op::Transfer { who, consulting }),
        2 => (0..3usize).prop_map(|who| Op::Leave { who }),
        1 => (0..3usize).prop_map(|who| Op::Cancel { who }),
        2 => (1..3000u16).prop_map(|minutes| Op::Advance { minutes }),
    ]
}

/// The people's ids.
const WHO: [&str; 3] = ["r0", "r1", "r2"];

impl Harness {
    /// Every run's id and state.
    async fn runs(&self) -> Vec<(String, String, String)> {
        let mut c = self.engine.store().reader().await.unwrap();
        tenure_store::db::query("SELECT id, person_id, state FROM runs ORDER BY created_at, id")
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    /// Moves the clock on and fires what is due until every run has ended.
    async fn quiesce(&self) {
        for _ in 0..400 {
            let runs = self.runs().await;
            let open = runs
                .iter()
                .filter(|(_, _, s)| !s.parse::<RunState>().unwrap().is_terminal())
                .count();
            if open == 0 {
                return;
            }
            self.clock.advance(60_000);
            self.engine.fire_due_timers().await.unwrap();
            self.engine.wake();
            let mut rx = self.engine.subscribe();
            let _ = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await;
        }
        panic!("runs did not end: {:?}", self.runs().await);
    }
}

/// Random sequences of hires (some with a contract end whose timer raises the leave),
/// transfers, leaves, cancels and time passing: once time has let everything settle, no run
/// is left unfinished; every grant the store holds as granted is a membership on its system
/// and every one it holds as revoked is not; and whoever left with a run that succeeded holds
/// nothing anywhere.
///
/// Leases outlast every jump of the clock: a call that outlives its lease is
/// `a_leave_disables_what_a_step_taken_back_mid_call_may_have_made`'s case (which this test
/// found), and one that lands after the leave's disable is beyond what the engine can see.
#[test]
fn random_interleavings_settle_with_the_store_and_the_systems_agreeing() {
    interleavings(0.0);
}

/// The same with `crm` failing 30 % of its calls, half of them after the change was made (a
/// timeout: outcome unknown). It found three leaver bugs, each now fixed:
/// - a hire's `create_account` timed out after the account was made and, out of attempts,
///   failed; the account was forgotten as never created, and the later leave planned nothing
///   there. Such an account is now `uncertain`, and the leave disables it
///   (`a_leave_disables_an_account_whose_create_timed_out_and_failed`);
/// - a run that planned such an uncertain account (or grant) again marked it `pending`, and a
///   leave that cancelled that run before it ran forgot it as never made. Planning or failing
///   again now leaves it `uncertain` (`a_leave_takes_back_uncertain_access_a_cancelled_run_had_planned_again`);
/// - on PostgreSQL, a leave cancelled an earlier run's waiting steps and then looked for calls
///   in flight, in two statements: a step put back in the queue for a retry in between was
///   neither cancelled nor waited for, and ran after the leave. The leave now looks for both
///   in one statement and cancels again what it finds waiting;
/// - an operator cancelled a hire while its `crm` account call was in flight; the call timed
///   out and put the step back in the queue to be retried, and the run, finding nothing in
///   flight, ended with the step left queued and the account neither undone nor `uncertain`.
///   A cancelled run now cancels steps queued again after its cancel, as it did those queued
///   then (`a_call_in_flight_at_a_cancel_that_comes_back_to_be_retried_is_cancelled_too`).
#[test]
fn random_interleavings_with_failing_calls_settle_the_same() {
    interleavings(0.3);
}

/// The runtime the interleaving tests run on: two workers, so the engine's loops really run
/// beside each other.
fn interleaving_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn interleavings(failure_rate: f64) {
    use proptest::prelude::*;
    let rt = interleaving_runtime();
    // PROPTEST_CASES, proptest's own setting, runs more for a soak.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(
            if std::env::var("TENURE_TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
                8
            } else {
                16
            },
        );
    proptest!(ProptestConfig { cases, ..ProptestConfig::default() }, |(ops in proptest::collection::vec(op(), 1..12), seed in 0..1000u64)| {
        rt.block_on(interleave(ops, seed, failure_rate));
    });
}

/// The operations with which the failing-calls test first found an uncertain account
/// forgotten: r1's transfer leaves its `crm` account uncertain, the rehire that plans it again
/// is cancelled by the leave its contract end raises, and the leave must still disable it.
/// `crm`'s failures with seed 84 give that order.
#[test]
fn a_leave_takes_back_uncertain_access_a_cancelled_run_had_planned_again() {
    let rt = interleaving_runtime();
    let ops = vec![
        Op::Hire {
            who: 0,
            consulting: true,
            end_in_days: None,
        },
        Op::Hire {
            who: 1,
            consulting: false,
            end_in_days: Some(1),
        },
        Op::Transfer {
            who: 1,
            consulting: true,
        },
        Op::Hire {
            who: 1,
            consulting: true,
            end_in_days: None,
        },
        Op::Transfer {
            who: 0,
            consulting: true,
        },
        Op::Advance { minutes: 1648 },
    ];
    rt.block_on(interleave(ops, 84, 0.3));
}

/// The operations with which the failing-calls test found a cancelled hire's account left
/// behind: r2's hire is cancelled while its `crm` account call is in flight, the call times
/// out after making the account, and the leaves that follow must still disable it. `crm`'s
/// failures with seed 71 give that order.
#[test]
fn a_call_in_flight_at_a_cancel_that_comes_back_to_be_retried_is_cancelled_too() {
    let rt = interleaving_runtime();
    let ops = vec![
        Op::Hire {
            who: 2,
            consulting: true,
            end_in_days: Some(1),
        },
        Op::Cancel { who: 1 },
        Op::Leave { who: 0 },
        Op::Cancel { who: 2 },
        Op::Transfer {
            who: 2,
            consulting: false,
        },
        Op::Leave { who: 2 },
        Op::Leave { who: 2 },
        Op::Leave { who: 1 },
    ];
    rt.block_on(interleave(ops, 71, 0.3));
}

async fn interleave(ops: Vec<Op>, seed: u64, failure_rate: f64) {
    let mut cfg = config("").as_ref().clone();
    cfg.systems.get_mut("crm").unwrap().settings =
        serde_json::json!({"failure_rate": failure_rate, "seed": seed})
            .as_object()
            .unwrap()
            .clone();
    let options = EngineOptions {
        lease_ms: 90 * 24 * 3_600_000,
        ..long_leases()
    };
    let h = harness_with(Arc::new(cfg), options).await;
    let mut latest: [Option<String>; 3] = Default::default();
    let mut hired = [false; 3];
    let today = |h: &Harness| {
        chrono::DateTime::from_timestamp_millis(h.clock.now_ms())
            .unwrap()
            .date_naive()
    };
    for op in &ops {
        let dept = |consulting: bool| {
            if consulting {
                "Consulting"
            } else {
                "Engineering"
            }
        };
        let body = match op {
            Op::Hire {
                who,
                consulting,
                end_in_days,
            } => {
                let end = end_in_days
                    .map(|d| {
                        format!(
                            r#","end_date":"{}""#,
                            today(&h) + chrono::Days::new(u64::from(d))
                        )
                    })
                    .unwrap_or_default();
                Some((
                    *who,
                    format!(
                        r#"{{"type":"{}","person":{{"id":"{}","name":"R","email":"r@example.com","worker_type":"employee","department":"{}"{end}}}}}"#,
                        if hired[*who] { "rehire" } else { "hire" },
                        WHO[*who],
                        dept(*consulting)
                    ),
                ))
            }
            Op::Transfer { who, consulting } if hired[*who] => Some((
                *who,
                format!(
                    r#"{{"type":"transfer","person":{{"id":"{}","department":"{}"}}}}"#,
                    WHO[*who],
                    dept(*consulting)
                ),
            )),
            Op::Leave { who } if hired[*who] => Some((
                *who,
                format!(r#"{{"type":"leave","person":{{"id":"{}"}}}}"#, WHO[*who]),
            )),
            Op::Cancel { who } => {
                if let Some(run) = &latest[*who] {
                    // Refused once the run has ended: either answer is fine.
                    let _ = h.engine.cancel_run(run, "test").await;
                }
                None
            }
            Op::Advance { minutes } => {
                h.clock.advance(i64::from(*minutes) * 60_000);
                h.engine.fire_due_timers().await.unwrap();
                h.engine.wake();
                None
            }
            _ => None,
        };
        if let Some((who, body)) = body {
            match h.engine.submit(submission(&body)).await.unwrap() {
                IngestOutcome::Accepted { run_id, .. } => {
                    latest[who] = Some(run_id);
                    hired[who] = true;
                }
                // A rehire of someone still working, a hire of someone already known: refused,
                // nothing stored.
                IngestOutcome::Refused { .. } => {}
                other => panic!("{other:?}"),
            }
        }
    }
    h.quiesce().await;

    let runs = h.runs().await;
    for who in WHO {
        let mut c = h.engine.store().reader().await.unwrap();
        let grants = tenure_store::grants_of(&mut c, who).await.unwrap();
        drop(c);
        for (g, system) in &grants {
            let held = h
                .engine
                .connector(system)
                .unwrap()
                .list_memberships(who)
                .await
                .unwrap()
                .contains(&g.entitlement);
            match g.state {
                tenure_core::GrantState::Granted => {
                    assert!(
                        held,
                        "{who}: {} stored granted, not held on {system}; ops {ops:?}",
                        g.entitlement
                    )
                }
                tenure_core::GrantState::Revoked => {
                    assert!(
                        !held,
                        "{who}: {} stored revoked, still held on {system}; ops {ops:?}",
                        g.entitlement
                    )
                }
                _ => {}
            }
        }
        let person_runs: Vec<&(String, String, String)> =
            runs.iter().filter(|(_, p, _)| p == who).collect();
        let mut c = h.engine.store().reader().await.unwrap();
        let person = tenure_store::get_person(&mut c, who).await.unwrap();
        drop(c);
        if let Some(p) = person
            && p.status == tenure_core::PersonStatus::Terminated
            && person_runs.last().is_some_and(|(_, _, s)| s == "succeeded")
        {
            for system in ["directory", "crm"] {
                let conn = h.engine.connector(system).unwrap();
                assert!(
                    conn.list_memberships(who).await.unwrap().is_empty(),
                    "{who} left and still holds access on {system}; ops {ops:?}"
                );
                assert!(
                    !conn
                        .list_accounts()
                        .await
                        .unwrap()
                        .iter()
                        .any(|a| a.person_id == who && a.enabled),
                    "{who} left and still has an enabled account on {system}; ops {ops:?}"
                );
            }
        }
    }
    h.engine.shutdown().await;
}

/// Sends [`HIRE`] and holds its `create_account` call past the step's lease; the step is taken
/// back and not due again for an hour. The call then lands after all: the account exists on
/// the system while tenure waits to call again. Returns the hire's run.
///
/// Another instance takes the step back, its clock a minute past the lease's end. This
/// engine's clock stays put, so its own dispatcher cannot take the step back first and call
/// again at once.
async fn hire_taken_back_mid_call(h: &Harness, held: &mut HeldSystem) -> String {
    let hire = h.send(HIRE).await;
    held.arrived.recv().await.unwrap();
    let later = h.clock.now_ms() + 61_000;
    let mut tx = h.engine.store().begin().await.unwrap();
    assert_eq!(
        tenure_store::requeue_expired(tx.conn(), later, later + 3_600_000)
            .await
            .unwrap(),
        1
    );
    tx.commit().await.unwrap();
    held.release.send(()).await.unwrap();
    hire
}

/// The same step cancelled by an operator instead: the account it may have made is recorded
/// `uncertain`, not forgotten as never created, so the next run (here a leave) disables it.
#[tokio::test]
async fn an_operator_cancel_keeps_what_a_step_taken_back_mid_call_may_have_made() {
    let (h, mut held) =
        held_harness_with("[systems.settings.operations.disable_account]\nurl = \"{off}\"\n").await;
    let hire = hire_taken_back_mid_call(&h, &mut held).await;
    h.engine.cancel_run(&hire, "test").await.unwrap();
    assert_eq!(h.finish(&hire).await, RunState::Cancelled);
    assert_eq!(
        h.accounts("e1").await,
        [("ticketing".to_string(), AccountState::Uncertain)]
    );
    let leave = h.send(r#"{"type":"leave","person":{"id":"e1"}}"#).await;
    assert_eq!(h.finish(&leave).await, RunState::Succeeded);
    assert_eq!(held.off.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A system at its `max_concurrency` hands its next free slot to a leaver's call, not to the
/// hires that were waiting before it.
#[tokio::test]
async fn a_leavers_call_takes_the_next_free_slot_ahead_of_hires_waiting() {
    let (h, mut held) = held_harness_system(
        "[systems.settings.operations.disable_account]\nurl = \"{off}\"\n",
        3,
        60_000,
        "max_concurrency = 1",
    )
    .await;
    let off = || held.off.load(std::sync::atomic::Ordering::SeqCst);
    let leaver = h.send(&hire("d1", "Sales")).await;
    held.arrived.recv().await.unwrap();
    held.release.send(()).await.unwrap();
    assert_eq!(h.finish(&leaver).await, RunState::Succeeded);

    // One hire's call holds the system's one slot; the next hire's waits for it.
    let first = h.send(&hire("a1", "Sales")).await;
    held.arrived.recv().await.unwrap();
    let second = h.send(&hire("b1", "Sales")).await;
    h.until_queued("ticketing", 1).await;
    // Then d1 leaves: the disable waits behind the second hire's call.
    let leave = h.send(r#"{"type":"leave","person":{"id":"d1"}}"#).await;
    h.until_queued("ticketing", 2).await;
    assert_eq!(off(), 0);

    held.release.send(()).await.unwrap();
    // The slot went to the disable first: it was made before the second hire's call came.
    held.arrived.recv().await.unwrap();
    assert_eq!(off(), 1, "the leaver's disable went first");
    held.release.send(()).await.unwrap();
    for run in [first, second, leave] {
        assert_eq!(h.finish(&run).await, RunState::Succeeded);
    }
}

impl Harness {
    /// Waits until `n` calls wait for a slot of `system`.
    async fn until_queued(&self, system: &str, n: usize) {
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let queued = self
                    .engine
                    .systems()
                    .await
                    .into_iter()
                    .find(|s| s.id == system)
                    .unwrap()
                    .queued;
                if queued == n {
                    return;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{n} calls never waited for `{system}`"));
    }
}

/// A hire's `create_account` call outlives its lease (the process paused, say); the step is
/// taken back, and before it is called again the person leaves. The call had made the
/// account: the leave counts it as made and disables it, rather than forgetting it as never
/// created.
#[tokio::test]
async fn a_leave_disables_what_a_step_taken_back_mid_call_may_have_made() {
    let (h, mut held) =
        held_harness_with("[systems.settings.operations.disable_account]\nurl = \"{off}\"\n").await;
    let hire = hire_taken_back_mid_call(&h, &mut held).await;

    let leave = h.send(r#"{"type":"leave","person":{"id":"e1"}}"#).await;
    assert_eq!(h.finish(&leave).await, RunState::Succeeded);
    let d = h.engine.run_detail(&leave).await.unwrap();
    let actions: Vec<&str> = d.steps.iter().map(|s| s.action.as_str()).collect();
    assert!(actions.contains(&"disable_account"), "{actions:?}");
    assert_eq!(held.off.load(std::sync::atomic::Ordering::SeqCst), 1);
    let hire = h.engine.run_detail(&hire).await.unwrap();
    assert_ne!(hire.run.state, RunState::Succeeded);
}

/// A hire's `create_account` goes out and gets no answer within the system's timeout, and the
/// step, out of attempts, fails. The system made the account all the same: tenure records it
/// `uncertain` rather than forgetting it, and the leave disables it.
#[tokio::test]
async fn a_leave_disables_an_account_whose_create_timed_out_and_failed() {
    let (h, mut held) = held_harness_tuned(
        "[systems.settings.operations.disable_account]\nurl = \"{off}\"\n",
        1,
        200,
    )
    .await;
    let hire = h.send(HIRE).await;
    held.arrived.recv().await.unwrap();
    assert_eq!(h.finish(&hire).await, RunState::Failed);
    // The call lands after all: the account exists on the system.
    held.release.send(()).await.unwrap();
    assert_eq!(
        h.accounts("e1").await,
        [("ticketing".to_string(), AccountState::Uncertain)]
    );
    let d = h.engine.run_detail(&hire).await.unwrap();
    assert!(d.steps[0].maybe_applied, "{:?}", d.steps[0]);

    let leave = h.send(r#"{"type":"leave","person":{"id":"e1"}}"#).await;
    assert_eq!(h.finish(&leave).await, RunState::Succeeded);
    assert_eq!(held.off.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A run that ends past its `[sla]` target is counted as it ends
/// (`tenure_sla_breaches_total{direction}`); one within it is not. The leave takes effect an
/// hour ahead and the clock then jumps five seconds past that, against a one-second target;
/// the hire ends at once against its target of an hour.
#[tokio::test]
async fn runs_that_end_past_their_target_are_counted_as_breaches() {
    // The only test of this binary that reads metrics: a global recorder sees them all.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let h = harness(config("\n[sla]\nrevoke = \"1s\"\nprovision = \"1h\"\n")).await;
    assert_eq!(h.finish(&h.send(HIRE).await).await, RunState::Succeeded);
    let leave = h.leave_in("e1", 3_600_000).await;
    h.clock.advance(3_605_000);
    h.engine.wake();
    assert_eq!(h.finish(&leave).await, RunState::Succeeded);
    let text = metrics.render();
    assert!(
        text.contains("tenure_sla_breaches_total{direction=\"revoke\"} 1"),
        "{text}"
    );
    assert!(
        !text.contains("tenure_sla_breaches_total{direction=\"provision\"}"),
        "{text}"
    );
}

// Reconciliation: what the systems really hold, against tenure's records.

/// The test configuration with `[systems.reconcile]` for directory and crm.
fn reconcile_config(directory: &str, crm: &str) -> Arc<Config> {
    let main = CONFIG
        .replacen(
            "[[systems]]\nid = \"crm\"",
            &format!("[systems.reconcile]\n{directory}\n[[systems]]\nid = \"crm\""),
            1,
        )
        .replacen(
            "retention = \"keep\"\n",
            &format!("retention = \"keep\"\n[systems.reconcile]\n{crm}\n"),
            1,
        );
    let t = |p: &str, s: &str| SourceFile {
        path: p.into(),
        text: s.into(),
    };
    Arc::new(
        Config::parse(
            &t("tenure.toml", &main),
            &[
                t("all.toml", "entitlements = [\"directory:staff\"]\n"),
                t(
                    "eng.toml",
                    "entitlements = [\"directory:eng\"]\n[match]\ndepartment = [\"Engineering\"]\n",
                ),
            ],
        )
        .unwrap(),
    )
}

const REMEDIATE: &str = r#"
correlate = [{ account = "email", person = "email" }]
actions = { stale = "disable", unlinked = "link", excess = "revoke", missing = "grant" }
max_disable_percent = 50
"#;

impl Harness {
    /// Changes a sandbox system behind tenure's back, as an administrator would by hand.
    async fn behind_the_back(&self, statements: &[&str]) {
        let mut tx = self.engine.store().begin().await.unwrap();
        for s in statements {
            tenure_store::db::query(tenure_store::db::AssertSqlSafe(s.to_string()))
                .execute(tx.conn())
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }

    async fn reconcile(
        &self,
        system: &str,
        dry_run: bool,
        confirm: bool,
    ) -> tenure_store::ReconRow {
        self.engine
            .reconcile(tenure_engine::ReconcileRequest {
                system: system.into(),
                dry_run,
                confirm,
                trigger: tenure_store::ReconTrigger::Request,
                actor: "test".into(),
            })
            .await
            .unwrap()
    }

    /// Waits for every `remediate` run to end; returns them.
    async fn remediated(&self) -> Vec<(String, RunState)> {
        let runs = {
            let mut r = self.engine.store().reader().await.unwrap();
            tenure_store::runs_matching(
                &mut r,
                &tenure_store::RunFilter {
                    kind: Some(tenure_core::run::RunKind::Remediate),
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
        };
        let mut out = Vec::new();
        for run in runs {
            out.push((run.person_id.clone(), self.finish(&run.id).await));
        }
        out.sort();
        out
    }

    async fn open_findings(&self, system: &str) -> Vec<(String, String, Option<String>, String)> {
        let mut r = self.engine.store().reader().await.unwrap();
        let mut f: Vec<_> = tenure_store::list_findings(
            &mut r,
            tenure_store::FindingFilter {
                system: Some(system),
                open: true,
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|f| {
            (
                f.situation.as_str().to_string(),
                f.account_key,
                f.entitlement,
                f.remedy.as_str().to_string(),
            )
        })
        .collect();
        f.sort();
        f
    }
}

fn counts(r: &tenure_store::ReconRow) -> Vec<(&'static str, i64)> {
    r.counts.iter().map(|(s, n)| (s.as_str(), *n)).collect()
}

fn hire(id: &str, department: &str) -> String {
    format!(
        r#"{{"type":"hire","person":{{"id":"{id}","name":"P {id}","email":"{id}@example.com","worker_type":"employee","department":"{department}"}}}}"#
    )
}

#[tokio::test]
async fn reconciliation_finds_each_situation_and_remediates_through_runs() {
    let h = harness(reconcile_config(
        REMEDIATE,
        "actions = { unlinked = \"link\" }",
    ))
    .await;
    for (id, dept) in [
        ("e1", "Engineering"),
        ("e2", "Engineering"),
        ("e3", "Sales"),
        ("e4", "Sales"),
    ] {
        let run = h.send(&hire(id, dept)).await;
        assert_eq!(h.finish(&run).await, RunState::Succeeded);
    }
    let run = h.send(r#"{"type":"leave","person":{"id":"e2"}}"#).await;
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    h.behind_the_back(&[
        // A leaver's account made again and enabled: stale.
        "INSERT INTO sandbox_accounts (system, person_id, enabled, attrs) VALUES ('directory', 'e2', 1, '{}')",
        // Nobody's: orphan.
        "INSERT INTO sandbox_accounts (system, person_id, enabled, attrs) VALUES ('directory', 'ghost', 1, '{}')",
        // A second account of e1's, matched by email only: unlinked, reported.
        r#"INSERT INTO sandbox_accounts (system, person_id, enabled, attrs) VALUES ('directory', 'e1-admin', 1, '{"email":"E1@Example.com"}')"#,
        // Memberships tenure did not grant: excess (one of a group no entitlement names).
        "INSERT INTO sandbox_memberships (system, person_id, entitlement) VALUES ('directory', 'e3', 'directory:eng')",
        "INSERT INTO sandbox_memberships (system, person_id, entitlement) VALUES ('directory', 'e1', 'printers')",
        // A grant the system lost: missing.
        "DELETE FROM sandbox_memberships WHERE system = 'directory' AND person_id = 'e1' AND entitlement = 'directory:staff'",
        // An account gone with its membership: missing.
        "DELETE FROM sandbox_accounts WHERE system = 'directory' AND person_id = 'e4'",
        "DELETE FROM sandbox_memberships WHERE system = 'directory' AND person_id = 'e4'",
        // An account on crm of e1's that tenure never made: unlinked, linked.
        "INSERT INTO sandbox_accounts (system, person_id, enabled, attrs) VALUES ('crm', 'e1', 1, '{}')",
    ])
    .await;

    // A dry run finds everything and changes nothing.
    let dry = h.reconcile("directory", true, false).await;
    assert_eq!(dry.state, tenure_store::ReconState::Completed, "{dry:?}");
    assert_eq!(dry.accounts, 5);
    assert_eq!(
        counts(&dry),
        [
            ("orphan", 1),
            ("stale", 1),
            ("unlinked", 1),
            ("excess", 2),
            ("missing", 2),
            ("expected", 2)
        ]
    );
    assert_eq!((dry.corrected, dry.runs), (0, 0));
    let open = h.open_findings("directory").await;
    let f = |s: &str, k: &str, e: Option<&str>, r: &str| {
        (
            s.to_string(),
            k.to_string(),
            e.map(str::to_string),
            r.to_string(),
        )
    };
    assert_eq!(
        open,
        [
            f("excess", "e1", Some("printers"), "report"),
            f("excess", "e3", Some("directory:eng"), "revoke"),
            f("missing", "e1", Some("directory:staff"), "grant"),
            f("missing", "e4", None, "grant"),
            f("orphan", "ghost", None, "report"),
            f("stale", "e2", None, "disable"),
            f("unlinked", "e1-admin", None, "report"),
        ]
    );
    assert!(h.remediated().await.is_empty());

    // For real: the corrections become runs, the leaver's first and urgent.
    let real = h.reconcile("directory", false, false).await;
    assert_eq!(real.state, tenure_store::ReconState::Completed, "{real:?}");
    assert_eq!((real.corrected, real.runs), (4, 4));
    assert_eq!(
        h.remediated().await,
        [
            ("e1".to_string(), RunState::Succeeded),
            ("e2".to_string(), RunState::Succeeded),
            ("e3".to_string(), RunState::Succeeded),
            ("e4".to_string(), RunState::Succeeded)
        ]
    );
    let dir = h.engine.connector("directory").unwrap();
    // The account gone is made again, with what it held.
    assert_eq!(
        dir.list_memberships("e4").await.unwrap(),
        ["directory:staff"]
    );
    let accounts = dir.list_accounts().await.unwrap();
    let e2 = accounts.iter().find(|a| a.person_id == "e2").unwrap();
    // Disabled, not deleted: tenure did not make this account.
    assert!(!e2.enabled);
    assert_eq!(
        dir.list_memberships("e3").await.unwrap(),
        ["directory:staff"]
    );
    assert_eq!(
        dir.list_memberships("e1").await.unwrap(),
        ["directory:eng", "directory:staff", "printers"]
    );

    // The next pass resolves what was corrected and keeps what was only reported.
    let next = h.reconcile("directory", false, false).await;
    assert_eq!(
        counts(&next),
        [
            ("orphan", 1),
            ("unlinked", 1),
            ("excess", 1),
            ("expected", 4)
        ]
    );
    assert_eq!(
        h.open_findings("directory").await,
        [
            f("excess", "e1", Some("printers"), "report"),
            f("orphan", "ghost", None, "report"),
            f("unlinked", "e1-admin", None, "report"),
        ]
    );
    let mut r = h.engine.store().reader().await.unwrap();
    let resolved = tenure_store::list_findings(
        &mut r,
        tenure_store::FindingFilter {
            system: Some("directory"),
            situation: Some(tenure_core::drift::Situation::Stale),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].resolved_by.as_deref(), Some(next.id.as_str()));
    assert_eq!(resolved[0].first_run, dry.id);
    drop(r);

    // crm: the account tenure never made is linked, then disabled (e1 does not need crm) and
    // kept (crm keeps accounts).
    let crm = h.reconcile("crm", false, false).await;
    assert_eq!(counts(&crm), [("unlinked", 1)]);
    assert_eq!((crm.corrected, crm.runs), (1, 1));
    for (_, state) in h.remediated().await {
        assert_eq!(state, RunState::Succeeded);
    }
    let crm_accounts = h
        .engine
        .connector("crm")
        .unwrap()
        .list_accounts()
        .await
        .unwrap();
    assert_eq!(crm_accounts.len(), 1);
    assert!(!crm_accounts[0].enabled);
    let again = h.reconcile("crm", false, false).await;
    assert_eq!(counts(&again), [("expected", 1)]);
}

#[tokio::test]
async fn orphans_are_disabled_by_runs_of_their_own_and_rules_correlate_through_patterns() {
    let h = harness(reconcile_config(
        r#"
correlate = [
  { account = "email", person = "email" },
  { account = "email", person = "id", account_pattern = "{}@legacy.example.com" },
]
on_several = "next_rule"
actions = { orphan = "disable" }
max_disable_percent = 100
"#,
        "",
    ))
    .await;
    let run = h.send(&hire("e1", "Sales")).await;
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    // Two people sharing one mailbox.
    for id in ["e5", "e6"] {
        let run = h
            .send(&format!(
                r#"{{"type":"hire","person":{{"id":"{id}","name":"P {id}","email":"team@example.com","worker_type":"employee","department":"Sales"}}}}"#
            ))
            .await;
        assert_eq!(h.finish(&run).await, RunState::Succeeded);
    }
    h.behind_the_back(&[
        // Nobody's, and able to sign in: disabled by a run of its own.
        "INSERT INTO sandbox_accounts (system, person_id, enabled, attrs) VALUES ('directory', 'ghost', 1, '{}')",
        // Nobody's, disabled already: only reported.
        "INSERT INTO sandbox_accounts (system, person_id, enabled, attrs) VALUES ('directory', 'old-ghost', 0, '{}')",
        // e1's by the pattern rule: a second account, reported.
        r#"INSERT INTO sandbox_accounts (system, person_id, enabled, attrs) VALUES ('directory', 'e1-legacy', 1, '{"email":"e1@legacy.example.com"}')"#,
        // The shared mailbox cannot tell e5 from e6, nor can the next rule.
        r#"INSERT INTO sandbox_accounts (system, person_id, enabled, attrs) VALUES ('directory', 'team', 1, '{"email":"team@example.com"}')"#,
    ])
    .await;
    let r = h.reconcile("directory", false, false).await;
    assert_eq!(r.state, tenure_store::ReconState::Completed, "{r:?}");
    assert_eq!(
        counts(&r),
        [
            ("orphan", 2),
            ("unlinked", 1),
            ("ambiguous", 1),
            ("expected", 3)
        ]
    );
    assert_eq!((r.corrected, r.runs), (1, 1));
    assert_eq!(
        h.remediated().await,
        [("ghost".to_string(), RunState::Succeeded)]
    );
    let accounts = h
        .engine
        .connector("directory")
        .unwrap()
        .list_accounts()
        .await
        .unwrap();
    let ghost = accounts.iter().find(|a| a.person_id == "ghost").unwrap();
    assert!(!ghost.enabled, "disabled, not deleted");
    // No person's record was made or changed for it.
    let mut c = h.engine.store().reader().await.unwrap();
    assert!(
        tenure_store::get_person(&mut c, "ghost")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        tenure_store::accounts_of(&mut c, "ghost")
            .await
            .unwrap()
            .is_empty()
    );
    drop(c);
    let next = h.reconcile("directory", false, false).await;
    assert_eq!((next.corrected, next.runs), (0, 0));
    let orphans: Vec<_> = h
        .open_findings("directory")
        .await
        .into_iter()
        .filter(|f| f.0 == "orphan")
        .collect();
    assert_eq!(orphans.len(), 2);
    assert!(orphans.iter().all(|f| f.3 == "report"), "{orphans:?}");
}

#[tokio::test]
async fn an_orphan_whose_disable_keeps_failing_gets_no_second_run() {
    let mut cfg = reconcile_config(
        "",
        "actions = { orphan = \"disable\" }\nmax_disable_percent = 100",
    )
    .as_ref()
    .clone();
    // Every call to crm fails before acting; the clock stands still, so its retries wait.
    cfg.systems.get_mut("crm").unwrap().settings =
        serde_json::json!({"failure_rate": 1.0, "timeout_share": 0.0, "seed": 5})
            .as_object()
            .unwrap()
            .clone();
    let h = harness(Arc::new(cfg)).await;
    h.behind_the_back(&[
        "INSERT INTO sandbox_accounts (system, person_id, enabled, attrs) VALUES ('crm', 'ghost', 1, '{}')",
    ])
    .await;
    let remediate_runs = || async {
        let mut r = h.engine.store().reader().await.unwrap();
        tenure_store::runs_matching(
            &mut r,
            &tenure_store::RunFilter {
                kind: Some(tenure_core::run::RunKind::Remediate),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap()
    };
    let first = h.reconcile("crm", false, false).await;
    assert_eq!((first.corrected, first.runs), (1, 1), "{first:?}");
    let again = h.reconcile("crm", false, false).await;
    assert_eq!((again.corrected, again.runs), (1, 0), "{again:?}");
    let runs = remediate_runs().await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(!runs[0].state.is_terminal(), "{runs:?}");
    assert_eq!(runs[0].person_id, "ghost");
}

#[tokio::test]
async fn a_reconciliation_that_would_disable_too_much_holds_until_confirmed() {
    let h = harness(reconcile_config(
        "actions = { stale = \"disable\" }\nmax_disable_percent = 40",
        "",
    ))
    .await;
    for id in ["e1", "e2", "e3"] {
        let run = h.send(&hire(id, "Sales")).await;
        assert_eq!(h.finish(&run).await, RunState::Succeeded);
    }
    for id in ["e2", "e3"] {
        let run = h
            .send(&format!(r#"{{"type":"leave","person":{{"id":"{id}"}}}}"#))
            .await;
        assert_eq!(h.finish(&run).await, RunState::Succeeded);
    }
    h.behind_the_back(&[
        "INSERT INTO sandbox_accounts (system, person_id, enabled, attrs) VALUES ('directory', 'e2', 1, '{}')",
        "INSERT INTO sandbox_accounts (system, person_id, enabled, attrs) VALUES ('directory', 'e3', 1, '{}')",
    ])
    .await;
    // Two of three accounts to disable: over 40 %.
    let held = h.reconcile("directory", false, false).await;
    assert_eq!(held.state, tenure_store::ReconState::Held, "{held:?}");
    assert_eq!((held.corrected, held.runs), (0, 0));
    assert!(
        held.message.as_deref().unwrap().contains("disable 2 of 3"),
        "{held:?}"
    );
    assert!(h.remediated().await.is_empty());
    // Stale findings are recorded (and audited) all the same.
    assert_eq!(h.open_findings("directory").await.len(), 2);
    let confirmed = h.reconcile("directory", false, true).await;
    assert_eq!(confirmed.state, tenure_store::ReconState::Completed);
    assert_eq!(confirmed.runs, 2);
    assert_eq!(h.remediated().await.len(), 2);
    let accounts = h
        .engine
        .connector("directory")
        .unwrap()
        .list_accounts()
        .await
        .unwrap();
    assert!(
        accounts
            .iter()
            .filter(|a| a.person_id != "e1")
            .all(|a| !a.enabled)
    );
}

#[tokio::test]
async fn a_reconciliation_started_in_the_background_ends_and_an_unknown_system_is_refused() {
    let h = harness(config("")).await;
    let request = |system: &str| tenure_engine::ReconcileRequest {
        system: system.into(),
        dry_run: true,
        confirm: false,
        trigger: tenure_store::ReconTrigger::Request,
        actor: "test".into(),
    };
    let started = h
        .engine
        .start_reconcile(request("directory"))
        .await
        .unwrap();
    assert_eq!(started.state, tenure_store::ReconState::Running);
    let ended = loop {
        let mut r = h.engine.store().reader().await.unwrap();
        let row = tenure_store::get_reconciliation(&mut r, &started.id)
            .await
            .unwrap()
            .unwrap();
        if row.state != tenure_store::ReconState::Running {
            break row;
        }
        drop(r);
        tokio::task::yield_now().await;
    };
    assert_eq!(ended.state, tenure_store::ReconState::Completed);
    assert_eq!(ended.accounts, 0);
    let err = h.engine.reconcile(request("nowhere")).await.unwrap_err();
    assert!(
        matches!(err, tenure_engine::EngineError::NotFound(_)),
        "{err}"
    );
}

#[tokio::test]
async fn a_system_is_reconciled_when_its_time_comes() {
    let h = harness(reconcile_config("every = \"1h\"", "")).await;
    let first = h.engine.reconcile_due().await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].trigger, tenure_store::ReconTrigger::Schedule);
    assert_eq!(first[0].system, "directory");
    assert!(h.engine.reconcile_due().await.unwrap().is_empty());
    h.clock.advance(3_600_000);
    assert_eq!(h.engine.reconcile_due().await.unwrap().len(), 1);
}

/// Hires are stored a few at a time (so a leaver's transaction can go between two parts); a
/// batch split so still recognises its repeats and keeps each person's order across parts.
#[tokio::test]
async fn a_batch_stored_in_parts_keeps_its_repeats_and_its_order() {
    let h = harness(config("")).await;
    let keyed = |body: String, key: &str| Submission {
        idempotency_key: Some(key.into()),
        ..submission(&body)
    };
    let mut sent: Vec<Submission> = (0..9)
        .map(|i| keyed(hire(&format!("b{i}"), "Engineering"), &format!("k{i}")))
        .collect();
    // The leave of the first hire's person, a part later.
    sent[5] = keyed(
        r#"{"type":"leave","person":{"id":"b0"}}"#.to_string(),
        "leave-b0",
    );
    // Two parts after their first sending: the same event again, and another under a key
    // already used.
    sent.push(keyed(hire("b1", "Engineering"), "k1"));
    sent.push(keyed(hire("b2", "Sales"), "k2"));
    // The writer is held while all of them queue, so they reach the intake as one batch.
    let held = h.engine.store().begin().await.unwrap();
    let mut waiting = Vec::new();
    for sub in sent {
        let engine = h.engine.clone();
        waiting.push(queued(Box::pin(async move { engine.submit(sub).await })).await);
    }
    let answers = tokio::spawn(futures_util::future::join_all(waiting));
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    drop(held);
    let answers: Vec<IngestOutcome> = answers
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let run = |o: &IngestOutcome| match o {
        IngestOutcome::Accepted {
            run_id,
            replay: false,
            ..
        } => run_id.clone(),
        other => panic!("{other:?}"),
    };
    match &answers[9] {
        IngestOutcome::Accepted {
            run_id,
            replay: true,
            ..
        } => assert_eq!(run_id, &run(&answers[1])),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&answers[10], IngestOutcome::KeyReused { key, .. } if key == "k2"),
        "{:?}",
        answers[10]
    );
    h.leave_outlasts(&run(&answers[0]), &run(&answers[5])).await;
    for i in [1, 2, 3, 4, 6, 7, 8] {
        assert_eq!(h.finish(&run(&answers[i])).await, RunState::Succeeded);
    }
    let dir = h.engine.connector("directory").unwrap();
    let mut holders: Vec<String> = dir
        .list_accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.person_id)
        .collect();
    holders.sort();
    assert_eq!(holders, ["b1", "b2", "b3", "b4", "b6", "b7", "b8"]);
}

/// Leaves have an intake of their own, ahead of hires, yet one person's events are still
/// stored in the order they came: a leave sent while its person's hire waits to be stored
/// follows the hire, and is neither refused as naming nobody nor run before it.
#[tokio::test]
async fn a_leave_sent_while_its_persons_hire_waits_to_be_stored_comes_after_it() {
    let h = harness(config("")).await;
    // On SQLite, the writer is held meanwhile: when it is let go, the intakes' transactions
    // take it urgent first, as they would under a backlog of hires.
    let held = h.engine.store().begin().await.unwrap();
    let mut pairs = Vec::new();
    for i in 0..40 {
        let (engine, body) = (h.engine.clone(), hire(&format!("q{i}"), "Engineering"));
        // Queued in turn: the hire for its intake, then the leave.
        let hire = queued(Box::pin(
            async move { engine.submit(submission(&body)).await },
        ))
        .await;
        let engine = h.engine.clone();
        let body = format!(r#"{{"type":"leave","person":{{"id":"q{i}"}}}}"#);
        let leave = queued(Box::pin(
            async move { engine.submit(submission(&body)).await },
        ))
        .await;
        pairs.push(async move { (hire.await, leave.await) });
    }
    let pairs = tokio::spawn(futures_util::future::join_all(pairs));
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    drop(held);
    for (hire, leave) in pairs.await.unwrap() {
        let run = |o: IngestOutcome| match o {
            IngestOutcome::Accepted { run_id, .. } => run_id,
            other => panic!("{other:?}"),
        };
        let (hire, leave) = (run(hire.unwrap()), run(leave.unwrap()));
        h.leave_outlasts(&hire, &leave).await;
    }
    let dir = h.engine.connector("directory").unwrap();
    assert!(dir.list_accounts().await.unwrap().is_empty());
}
