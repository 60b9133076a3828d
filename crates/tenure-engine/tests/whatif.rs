//! What-if and reload: a what-if over everyone under new rules lists, person by person, exactly
//! the steps their `reconcile` run carries out once the rules are reloaded.
//! `TENURE_TEST_DATABASE_URL=postgres://...` runs the same tests on PostgreSQL.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tenure_core::config::{Config, SourceFile};
use tenure_core::event::parse_event;
use tenure_core::planner::PlannedStep;
use tenure_engine::tenure_policy::PolicyEngine;
use tenure_engine::{Engine, EngineOptions, IngestOutcome, ManualClock, Rules, Submission};
use tenure_store::Store;

const CONFIG: &str = r#"
[[systems]]
id = "directory"
connector = "sandbox"
[[systems]]
id = "erp"
connector = "sandbox"

[[entitlements]]
id = "directory:staff"
system = "directory"
[[entitlements]]
id = "directory:eng"
system = "directory"
[[entitlements]]
id = "directory:admins"
system = "directory"
risk = "privileged"
owner = "it-ops"
[[entitlements]]
id = "erp:vendors"
system = "erp"
[[entitlements]]
id = "erp:payments"
system = "erp"
"#;

const DEPARTMENTS: [&str; 3] = ["Engineering", "Finance", "Procurement"];
const TITLES: [&str; 3] = ["Engineer", "Admin", "Clerk"];

fn src(p: &str, s: &str) -> SourceFile {
    SourceFile {
        path: p.into(),
        text: s.into(),
    }
}

/// The rules before (`variant` 0) and after a change (1: templates, 2: policy, 3: separation
/// of duties, 4: a policy forbidding access already held).
fn rules(variant: u8) -> (Config, PolicyEngine) {
    let mut main = CONFIG.to_string();
    let mut templates = vec![
        src("all.toml", "entitlements = [\"directory:staff\"]\n"),
        src(
            "eng.toml",
            "entitlements = [\"directory:eng\"]\n[match]\ndepartment = [\"Engineering\"]\n",
        ),
        src(
            "buyers.toml",
            "entitlements = [\"erp:vendors\"]\n[match]\ndepartment = [\"Procurement\"]\n",
        ),
    ];
    let mut policies = Vec::new();
    match variant {
        1 => {
            // Admins get the admin group; engineering loses its group; clerks pay.
            templates[1] = src(
                "eng.toml",
                "entitlements = [\"directory:admins\"]\n[match]\ntitle = [\"Admin\"]\n",
            );
            templates.push(src(
                "clerks.toml",
                "entitlements = [\"erp:payments\"]\n[match]\ntitle = [\"Clerk\"]\n",
            ));
        }
        2 => {
            templates.push(src(
                "admins.toml",
                "entitlements = [\"directory:admins\"]\n[match]\ntitle = [\"Admin\"]\n",
            ));
            policies.push(src("policies/base.cedar", r#"@id("base") permit (principal is Person, action == Action::"grant", resource is Entitlement);"#));
            policies.push(src(
                "policies/finance.cedar",
                r#"@id("no-admins-in-finance") forbid (principal is Person, action == Action::"grant", resource is Entitlement) when { principal has department && principal.department == "Finance" && resource.risk == "privileged" };"#,
            ));
            policies.push(src(
                "policies/approvals.cedar",
                r#"@id("privileged-needs-owner") @approval("owner") permit (principal is Person, action == Action::"grant", resource is Entitlement) when { resource.risk == "privileged" };"#,
            ));
        }
        4 => {
            policies.push(src("policies/base.cedar", r#"@id("base") permit (principal is Person, action == Action::"grant", resource is Entitlement);"#));
            policies.push(src(
                "policies/eng.cedar",
                r#"@id("no-eng-group-for-admins") forbid (principal is Person, action == Action::"grant", resource == Entitlement::"directory:eng") when { principal has title && principal.title == "Admin" };"#,
            ));
        }
        3 => {
            templates.push(src(
                "clerks.toml",
                "entitlements = [\"erp:payments\"]\n[match]\ntitle = [\"Clerk\"]\n",
            ));
            main.push_str(
                "\n[[separation_of_duties]]\nid = \"vendors-payments\"\nentitlements = [\"erp:vendors\", \"erp:payments\"]\n",
            );
        }
        _ => {}
    }
    let config = Config::parse(&src("tenure.toml", &main), &templates).unwrap();
    let policy = PolicyEngine::load(&config, None, &policies)
        .unwrap_or_else(|e| panic!("{e}"))
        .engine;
    (config, policy)
}

async fn start() -> (Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = match std::env::var("TENURE_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let name = format!("tenure_whatif_{}", uuid::Uuid::new_v4().simple());
            let url = tenure_store::create_scratch_database(&url, &name)
                .await
                .unwrap();
            Store::connect(&url).await.unwrap()
        }
        _ => Store::open_sqlite(&dir.path().join("t.db")).await.unwrap(),
    };
    let (config, policy) = rules(0);
    let engine = Engine::start_with_policy(
        store,
        Arc::new(config),
        Arc::new(policy),
        Arc::new(ManualClock::new(1_780_000_000_000)),
        EngineOptions {
            seed: Some(7),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    (engine, dir)
}

async fn submit(engine: &Engine, body: &str) -> String {
    let event = parse_event(body.as_bytes()).unwrap();
    match engine
        .submit(Submission {
            event,
            idempotency_key: None,
            actor: "test".into(),
            request_id: None,
            trace: None,
        })
        .await
        .unwrap()
    {
        IngestOutcome::Accepted { run_id, .. } => run_id,
        other => panic!("{other:?}"),
    }
}

/// Waits until no run is pending or running (every run ended or waits for approval).
async fn settle(engine: &Engine) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = engine.store().reader().await.unwrap();
        let open: i64 = tenure_store::db::query(
            "SELECT COUNT(*) FROM runs WHERE state IN ('pending', 'running')",
        )
        .fetch_one(&mut c)
        .await
        .unwrap()
        .get(0);
        drop(c);
        if open == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{open} runs still open"
        );
        // Hand the engine's tasks the (single-threaded) runtime until they have moved.
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The steps of every `reconcile` run, by person, in the order they were planned.
async fn reconcile_steps(engine: &Engine) -> BTreeMap<String, Vec<PlannedStep>> {
    let mut c = engine.store().reader().await.unwrap();
    let rows = tenure_store::db::query("SELECT id, person_id FROM runs WHERE kind = 'reconcile'")
        .fetch_all(&mut c)
        .await
        .unwrap();
    drop(c);
    let mut out = BTreeMap::new();
    for r in rows {
        let id: String = r.try_get(0).unwrap();
        let person: String = r.try_get(1).unwrap();
        let d = engine.run_detail(&id).await.unwrap();
        let steps = d
            .steps
            .iter()
            .map(|s| PlannedStep {
                phase: s.phase as u32,
                system: s.system.clone(),
                action: s.action,
                entitlement: s.entitlement.clone(),
                source: s.source,
                source_ref: s.source_ref.clone(),
            })
            .collect();
        out.insert(person, steps);
    }
    out
}

async fn what_if_equals_apply(people: Vec<(usize, usize)>, variant: u8) {
    let (engine, _dir) = start().await;
    for (i, (d, t)) in people.iter().enumerate() {
        submit(
            &engine,
            &format!(
                r#"{{"type":"hire","person":{{"id":"p{i:03}","name":"P {i}","email":"p{i}@example.com","worker_type":"employee","department":"{}","title":"{}"}}}}"#,
                DEPARTMENTS[*d], TITLES[*t]
            ),
        )
        .await;
    }
    settle(&engine).await;

    let (config, policy) = rules(variant);
    let candidate = Rules {
        config: Arc::new(config.clone()),
        policy: Arc::new(rules(variant).1),
        label: "candidate".into(),
    };
    let what_if = engine.what_if(&candidate, 10_000).await.unwrap();
    assert_eq!(what_if.people, people.len());
    // A what-if stores nothing.
    assert!(reconcile_steps(&engine).await.is_empty());

    let reloaded = engine.reload(config, policy, "test").await.unwrap();
    let expected: BTreeMap<String, Vec<PlannedStep>> = what_if
        .plans
        .iter()
        .filter(|p| !p.steps.is_empty())
        .map(|p| (p.person_id.clone(), p.steps.clone()))
        .collect();
    assert_eq!(reloaded.runs, expected.len());
    settle(&engine).await;
    assert_eq!(reconcile_steps(&engine).await, expected);
    // Once applied, the same rules change nothing more.
    let again = engine.what_if(&candidate, 10_000).await.unwrap();
    assert!(
        again.plans.iter().all(|p| p
            .steps
            .iter()
            .all(|s| s.action == tenure_core::planner::Action::Grant)),
        "only grants awaiting approval may remain: {:?}",
        again.plans
    );
    engine.shutdown().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// For any population and any kind of rule change, the what-if lists exactly the steps
    /// that applying the change then runs.
    #[test]
    fn what_if_lists_exactly_what_reload_then_runs(
        people in proptest::collection::vec((0..3usize, 0..3usize), 1..10),
        variant in 1..=4u8,
    ) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(what_if_equals_apply(people, variant));
    }
}

#[tokio::test]
async fn a_reload_that_changes_systems_is_refused_and_the_old_rules_stay() {
    let (engine, _dir) = start().await;
    let main = CONFIG
        .replace("id = \"erp\"\nconnector", "id = \"ledger\"\nconnector")
        .replace("system = \"erp\"", "system = \"ledger\"");
    let config = Config::parse(&src("tenure.toml", &main), &[]).unwrap();
    let err = engine
        .reload(config, PolicyEngine::allow_all(), "test")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("restart"), "{err}");
    assert_eq!(engine.rules().label, "as started");
    assert_eq!(engine.config().templates.len(), 3);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_what_if_for_one_event_stores_nothing() {
    let (engine, _dir) = start().await;
    let body = r#"{"type":"hire","person":{"id":"w1","name":"W","email":"w@example.com","worker_type":"employee","department":"Procurement"}}"#;
    let event = parse_event(body.as_bytes()).unwrap();
    let w = engine.what_if_event(&event).await.unwrap();
    assert_eq!(w.people_changed, 1);
    let grants: Vec<_> = w.plans[0]
        .steps
        .iter()
        .filter_map(|s| s.entitlement.clone())
        .collect();
    assert_eq!(grants, vec!["directory:staff", "erp:vendors"]);
    let mut c = engine.store().reader().await.unwrap();
    assert_eq!(tenure_store::count_people(&mut c).await.unwrap(), 0);
    drop(c);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_policy_change_shows_and_then_revokes_access_it_now_forbids() {
    let (engine, _dir) = start().await;
    for (id, title) in [("a1", "Admin"), ("e1", "Engineer")] {
        submit(
            &engine,
            &format!(
                r#"{{"type":"hire","person":{{"id":"{id}","name":"N","email":"{id}@example.com","worker_type":"employee","department":"Engineering","title":"{title}"}}}}"#
            ),
        )
        .await;
    }
    settle(&engine).await;
    let (config, policy) = rules(4);
    let candidate = Rules {
        config: Arc::new(config.clone()),
        policy: Arc::new(rules(4).1),
        label: "candidate".into(),
    };
    let w = engine.what_if(&candidate, 10).await.unwrap();
    assert_eq!((w.people_changed, w.revokes, w.grants), (1, 1, 0), "{w:#?}");
    let plan = &w.plans[0];
    assert_eq!(plan.person_id, "a1");
    assert_eq!(
        plan.denied[0]["policies"],
        serde_json::json!(["no-eng-group-for-admins"])
    );
    assert_eq!(plan.denied[0]["revoked"], true);

    engine.reload(config, policy, "test").await.unwrap();
    settle(&engine).await;
    let steps = reconcile_steps(&engine).await;
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(steps["a1"][0].entitlement.as_deref(), Some("directory:eng"));
    // Applied, the same rules change nothing more: the template still asks and policy still
    // says no, but that denial stands under the rules in force, so nobody counts as changed.
    let again = engine.what_if(&candidate, 10).await.unwrap();
    assert_eq!(
        (
            again.people_changed,
            again.grants,
            again.revokes,
            again.denied
        ),
        (0, 0, 0, 0),
        "{again:#?}"
    );
    assert!(again.plans.is_empty(), "{again:#?}");
    let now = engine.clock().now_ms();
    let offline = tenure_engine::what_if(engine.store(), &candidate, None, now, 10)
        .await
        .unwrap();
    assert_eq!(
        (offline.people_changed, offline.denied),
        (1, 1),
        "without the rules in force every denial is shown: {offline:#?}"
    );
    engine.shutdown().await;
}
