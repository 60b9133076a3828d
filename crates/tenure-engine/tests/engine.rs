//! The engine end to end, in process, against sandbox systems on a real database.
//! `TENURE_TEST_DATABASE=postgres://...` runs the same tests on PostgreSQL.

use std::sync::Arc;
use std::time::Duration;
use tenure_core::config::{Config, SourceFile};
use tenure_core::event::parse_event;
use tenure_core::run::RunState;
use tenure_engine::{Engine, EngineOptions, IngestOutcome, ManualClock, Submission};
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
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("t.db")).await.unwrap();
    let clock = Arc::new(ManualClock::new(1_780_000_000_000));
    let engine = Engine::start(
        store,
        config,
        clock.clone(),
        EngineOptions {
            seed: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    Harness {
        engine,
        clock,
        _dir: dir,
    }
}

impl Harness {
    async fn send(&self, body: &str) -> String {
        let event = parse_event(body.as_bytes()).unwrap();
        match self
            .engine
            .submit(Submission {
                event,
                idempotency_key: None,
                actor: "test".into(),
            })
            .await
            .unwrap()
        {
            IngestOutcome::Accepted { run_id, .. } => run_id,
            other => panic!("{other:?}"),
        }
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

#[tokio::test]
async fn retries_then_fails_then_operator_retry() {
    let h = harness(config("")).await;
    // Make the first steps fail: an engagement for a person who does not exist fails at planning.
    let run = h
        .send(r#"{"type":"engagement_start","person":{"id":"ghost"},"engagement":{"client":"acme","role":"consultant"}}"#)
        .await;
    assert_eq!(h.finish(&run).await, RunState::Failed);
    let d = h.engine.run_detail(&run).await.unwrap();
    assert!(d.run.error.unwrap().contains("not known"));
    let _ = h.clock.now_ms_for_tests();
}

trait ClockPeek {
    fn now_ms_for_tests(&self) -> i64;
}
impl ClockPeek for ManualClock {
    fn now_ms_for_tests(&self) -> i64 {
        use tenure_engine::Clock;
        self.now_ms()
    }
}
