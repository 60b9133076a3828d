//! Policy in the engine: every grant a plan would make is authorized first. A forbidden grant
//! becomes no step (and no account only it needed), with the deciding policy recorded in the
//! run's note and audit entry; a grant that needs approval waits in `awaiting_approval`.
//! `TENURE_TEST_DATABASE_URL=postgres://...` runs the same tests on PostgreSQL.

use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tenure_core::approval::RequestState;
use tenure_core::config::{Config, SourceFile};
use tenure_core::event::parse_event;
use tenure_core::run::{RunKind, RunState, StepState};
use tenure_core::{GrantState, planner::Action};
use tenure_engine::tenure_policy::PolicyEngine;
use tenure_engine::{Engine, EngineOptions, IngestOutcome, ManualClock, Submission};
use tenure_store::Store;

const CONFIG: &str = r#"
[[systems]]
id = "directory"
connector = "sandbox"
[[systems]]
id = "crm"
connector = "sandbox"

[[clients]]
id = "acme"
[clients.attributes]
data_region = "eu"

[[entitlements]]
id = "directory:staff"
system = "directory"
[[entitlements]]
id = "directory:admins"
system = "directory"
risk = "privileged"
owner = "it-ops"
[[entitlements]]
id = "crm:acme"
system = "crm"
client = "acme"

[[clients]]
id = "globex"
[clients.attributes]
nda_required = true
required_trainings = ["secure-coding"]
[[entitlements]]
id = "crm:globex"
system = "crm"
client = "globex"

[person_attributes]
nda_signed = "bool"
trainings = "set"

[[systems]]
id = "erp"
connector = "sandbox"
[[entitlements]]
id = "erp:vendors"
system = "erp"
[[entitlements]]
id = "erp:payments"
system = "erp"
[[entitlements]]
id = "erp:refunds"
system = "erp"

# Nobody both creates vendors and pays them.
[[separation_of_duties]]
id = "vendors-payments"
entitlements = ["erp:vendors", "erp:payments"]

# Creating vendors and issuing refunds together needs the manager's exception approval.
[[separation_of_duties]]
id = "vendors-refunds"
entitlements = ["erp:vendors", "erp:refunds"]
effect = "approval"
approver = "manager"
"#;

const POLICIES: &[(&str, &str)] = &[
    (
        "policies/base.cedar",
        r#"@id("base") permit (principal is Person, action == Action::"grant", resource is Entitlement);"#,
    ),
    (
        "policies/contractors.cedar",
        r#"@id("contractors-never-privileged")
forbid (principal is Person, action == Action::"grant", resource is Entitlement)
when { principal.worker_type == "contractor" && resource.risk == "privileged" };"#,
    ),
    (
        "policies/eu.cedar",
        r#"@id("eu-data-stays-with-eu-staff")
forbid (principal is Person, action == Action::"grant", resource is Entitlement)
when { resource has client && resource.client has data_region && resource.client.data_region == "eu" }
unless { principal has location && ["Berlin", "Paris"].contains(principal.location) };"#,
    ),
    (
        "policies/nda.cedar",
        r#"@id("client-nda-signed")
forbid (principal is Person, action == Action::"grant", resource is Entitlement)
when { resource has client && resource.client has nda_required && resource.client.nda_required }
unless { principal has nda_signed && principal.nda_signed };

@id("client-trainings-done")
forbid (principal is Person, action == Action::"grant", resource is Entitlement)
when { resource has client && resource.client has required_trainings }
unless { principal has trainings && principal.trainings.containsAll(resource.client.required_trainings) };"#,
    ),
    (
        "policies/approvals.cedar",
        r#"@id("high-risk-needs-owner-approval")
@approval("owner")
permit (principal is Person, action == Action::"grant", resource is Entitlement)
when { resource.risk == "high" || resource.risk == "privileged" };"#,
    ),
];

fn src(p: &str, s: &str) -> SourceFile {
    SourceFile {
        path: p.into(),
        text: s.into(),
    }
}

fn config() -> Config {
    config_from(CONFIG)
}

/// The test's templates over the main file `main`.
fn config_from(main: &str) -> Config {
    Config::parse(
        &src("tenure.toml", main),
        &[
            src("all.toml", "entitlements = [\"directory:staff\"]\n"),
            src(
                "admins.toml",
                "entitlements = [\"directory:admins\"]\n[match]\ntitle = [\"Admin\"]\n",
            ),
            src(
                "buyers.toml",
                "entitlements = [\"erp:vendors\"]\n[match]\ndepartment = [\"Procurement\"]\n",
            ),
            src(
                "payables.toml",
                "entitlements = [\"erp:payments\"]\n[match]\ntitle = [\"Payables Clerk\"]\n",
            ),
            src(
                "refunds.toml",
                "entitlements = [\"erp:refunds\"]\n[match]\ntitle = [\"Refunds Clerk\"]\n",
            ),
            src(
                "consultant.toml",
                "entitlements = [\"crm:{client}\"]\n[match]\nengagement_role = [\"consultant\"]\n",
            ),
            src(
                "client-admin.toml",
                "entitlements = [\"directory:admins\"]\n[match]\nengagement_role = [\"admin\"]\n",
            ),
            src(
                "client-payer.toml",
                "entitlements = [\"erp:payments\"]\n[match]\nengagement_role = [\"payer\"]\n",
            ),
            src(
                "client-refunder.toml",
                "entitlements = [\"erp:refunds\"]\n[match]\nengagement_role = [\"refunder\"]\n",
            ),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

struct Harness {
    engine: Engine,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    harness_from(config(), POLICIES).await
}

/// A harness whose engine starts with `config` and the policy files `policies`.
async fn harness_from(config: Config, policies: &[(&str, &str)]) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = match std::env::var("TENURE_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let name = format!("tenure_policy_{}", uuid::Uuid::new_v4().simple());
            let url = tenure_store::create_scratch_database(&url, &name)
                .await
                .unwrap();
            Store::connect(&url).await.unwrap()
        }
        _ => Store::open_sqlite(&dir.path().join("t.db")).await.unwrap(),
    };
    let files: Vec<_> = policies.iter().map(|(p, t)| src(p, t)).collect();
    let policy = PolicyEngine::load(&config, None, &files)
        .unwrap_or_else(|e| panic!("{e}"))
        .engine;
    let engine = Engine::start_with_policy(
        store,
        Arc::new(config),
        Arc::new(policy),
        Arc::new(ManualClock::new(1_780_000_000_000)),
        EngineOptions {
            seed: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    Harness { engine, _dir: dir }
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

    /// Waits until the run is in `state` (terminal or not).
    async fn reach(&self, run_id: &str, state: RunState) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let now = self.engine.run_detail(run_id).await.unwrap().run.state;
            if now == state {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline && !now.is_terminal(),
                "run {run_id} is {now}, expected {state}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn planned_audit(&self, run_id: &str) -> Value {
        let mut c = self.engine.store().reader().await.unwrap();
        let entries = tenure_store::audit_page(&mut c, 0, None, 10_000)
            .await
            .unwrap();
        let e = entries
            .iter()
            .find(|e| e.action == "run.planned" && e.run_id.as_deref() == Some(run_id))
            .expect("a run.planned entry");
        serde_json::from_str(&e.details).unwrap()
    }

    async fn grant_state(&self, person: &str, entitlement: &str) -> Option<GrantState> {
        let mut c = self.engine.store().reader().await.unwrap();
        tenure_store::grants_of(&mut c, person)
            .await
            .unwrap()
            .into_iter()
            .find(|(g, _)| g.entitlement == entitlement)
            .map(|(g, _)| g.state)
    }
}

fn hire(id: &str, worker_type: &str, title: &str, location: &str) -> String {
    format!(
        r#"{{"type":"hire","person":{{"id":"{id}","name":"N {id}","email":"{id}@example.com","worker_type":"{worker_type}","title":"{title}","location":"{location}","manager":"boss"}}}}"#
    )
}

fn grants_in(steps: &[tenure_store::StepRow]) -> Vec<&str> {
    steps
        .iter()
        .filter(|s| s.action == Action::Grant)
        .filter_map(|s| s.entitlement.as_deref())
        .collect()
}

#[tokio::test]
async fn a_forbidden_grant_makes_no_step_and_records_why() {
    let h = harness().await;
    let run = h.send(&hire("c1", "contractor", "Admin", "Berlin")).await;
    h.reach(&run, RunState::Succeeded).await;
    let d = h.engine.run_detail(&run).await.unwrap();
    assert_eq!(
        grants_in(&d.steps),
        vec!["directory:staff"],
        "{:#?}",
        d.steps
    );
    assert_eq!(h.grant_state("c1", "directory:admins").await, None);

    let note: Value = serde_json::from_str(d.run.note.as_deref().expect("a note")).unwrap();
    assert_eq!(note["denied"][0]["entitlement"], "directory:admins");
    assert_eq!(
        note["denied"][0]["policies"],
        serde_json::json!(["contractors-never-privileged"])
    );

    let audit = h.planned_audit(&run).await;
    assert_eq!(audit["denied"][0]["entitlement"], "directory:admins");
    assert_eq!(
        audit["denied"][0]["reason"],
        "forbidden by contractors-never-privileged"
    );
    let decisions = audit["authorization"].as_array().unwrap();
    assert_eq!(decisions.len(), 2, "{decisions:?}");
    assert!(
        decisions
            .iter()
            .any(|d| d["entitlement"] == "directory:staff"
                && d["decision"] == "allow"
                && d["policies"] == serde_json::json!(["base"]))
    );
}

#[tokio::test]
async fn a_grant_needing_approval_waits_in_awaiting_approval() {
    let h = harness().await;
    let run = h.send(&hire("e1", "employee", "Admin", "Paris")).await;
    h.reach(&run, RunState::AwaitingApproval).await;
    let d = h.engine.run_detail(&run).await.unwrap();
    let admins = d
        .steps
        .iter()
        .find(|s| s.entitlement.as_deref() == Some("directory:admins"))
        .expect("a step for the privileged grant");
    assert_eq!(admins.state, StepState::AwaitingApproval);
    assert!(
        d.steps
            .iter()
            .filter(|s| s.id != admins.id)
            .all(|s| s.state == StepState::Succeeded),
        "{:#?}",
        d.steps
    );
    assert_eq!(
        h.grant_state("e1", "directory:admins").await,
        Some(GrantState::AwaitingApproval)
    );
    assert_eq!(
        h.grant_state("e1", "directory:staff").await,
        Some(GrantState::Granted)
    );
    // The privileged group was not granted on the target system.
    let dir = h.engine.connector("directory").unwrap();
    assert_eq!(
        dir.list_memberships("e1").await.unwrap(),
        vec!["directory:staff"]
    );

    let want = serde_json::json!([{
        "entitlement": "directory:admins",
        "approvals": [{ "approver": "owner", "who": "it-ops", "policy": "high-risk-needs-owner-approval" }],
    }]);
    assert_eq!(h.planned_audit(&run).await["awaiting_approval"], want);
    let note: Value = serde_json::from_str(d.run.note.as_deref().unwrap()).unwrap();
    assert_eq!(note["awaiting_approval"], want);

    // A leave does not wait for the approval: it cancels the waiting grant and revokes the rest.
    let leave = h.send(r#"{"type":"leave","person":{"id":"e1"}}"#).await;
    h.reach(&leave, RunState::Succeeded).await;
    assert_eq!(h.grant_state("e1", "directory:admins").await, None);
}

#[tokio::test]
async fn a_system_reached_only_by_denied_grants_gets_no_account() {
    let h = harness().await;
    let run = h
        .send(&hire("u1", "employee", "Engineer", "New York"))
        .await;
    h.reach(&run, RunState::Succeeded).await;
    let run = h
        .send(r#"{"type":"engagement_start","person":{"id":"u1"},"engagement":{"client":"acme","role":"consultant"}}"#)
        .await;
    h.reach(&run, RunState::Succeeded).await;
    let d = h.engine.run_detail(&run).await.unwrap();
    assert!(d.steps.is_empty(), "{:#?}", d.steps);
    let note: Value = serde_json::from_str(d.run.note.as_deref().unwrap()).unwrap();
    assert_eq!(
        note["denied"][0]["policies"],
        serde_json::json!(["eu-data-stays-with-eu-staff"])
    );
    let crm = h.engine.connector("crm").unwrap();
    assert!(crm.list_accounts().await.unwrap().is_empty());

    // Staff in the EU get the client's access.
    let run = h.send(&hire("u2", "employee", "Engineer", "Berlin")).await;
    h.reach(&run, RunState::Succeeded).await;
    let run = h
        .send(r#"{"type":"engagement_start","person":{"id":"u2"},"engagement":{"client":"acme","role":"consultant"}}"#)
        .await;
    h.reach(&run, RunState::Succeeded).await;
    assert_eq!(crm.list_memberships("u2").await.unwrap(), vec!["crm:acme"]);
}

fn hire_in(id: &str, department: &str, title: &str) -> String {
    format!(
        r#"{{"type":"hire","person":{{"id":"{id}","name":"N {id}","email":"{id}@example.com","worker_type":"employee","department":"{department}","title":"{title}","location":"Paris","manager":"boss"}}}}"#
    )
}

fn transfer(id: &str, department: &str, title: &str) -> String {
    format!(
        r#"{{"type":"transfer","person":{{"id":"{id}","department":"{department}","title":"{title}"}}}}"#
    )
}

#[tokio::test]
async fn a_grant_completing_a_toxic_combination_is_denied_citing_the_rule() {
    let h = harness().await;
    let run = h.send(&hire_in("b1", "Procurement", "Buyer")).await;
    h.reach(&run, RunState::Succeeded).await;
    assert_eq!(
        h.grant_state("b1", "erp:vendors").await,
        Some(GrantState::Granted)
    );

    // Still in Procurement, now also a payables clerk: paying would complete the combination.
    let run = h
        .send(&transfer("b1", "Procurement", "Payables Clerk"))
        .await;
    h.reach(&run, RunState::Succeeded).await;
    let d = h.engine.run_detail(&run).await.unwrap();
    assert!(grants_in(&d.steps).is_empty(), "{:#?}", d.steps);
    assert_eq!(h.grant_state("b1", "erp:payments").await, None);
    let note: Value = serde_json::from_str(d.run.note.as_deref().expect("a note")).unwrap();
    assert_eq!(note["denied"][0]["entitlement"], "erp:payments");
    assert_eq!(
        note["denied"][0]["policies"],
        serde_json::json!(["sod:vendors-payments"])
    );
    let audit = h.planned_audit(&run).await;
    assert_eq!(
        audit["denied"][0]["reason"],
        "forbidden by sod:vendors-payments"
    );
    let erp = h.engine.connector("erp").unwrap();
    assert_eq!(
        erp.list_memberships("b1").await.unwrap(),
        vec!["erp:vendors"]
    );

    // Leaving Procurement for Finance gives up vendors in the same plan: no combination.
    let run = h.send(&transfer("b1", "Finance", "Payables Clerk")).await;
    h.reach(&run, RunState::Succeeded).await;
    assert_eq!(
        erp.list_memberships("b1").await.unwrap(),
        vec!["erp:payments"]
    );
    assert_eq!(
        h.grant_state("b1", "erp:payments").await,
        Some(GrantState::Granted)
    );
}

#[tokio::test]
async fn a_toxic_combination_with_an_exception_rule_waits_for_its_approver() {
    let h = harness().await;
    let run = h.send(&hire_in("r1", "Procurement", "Refunds Clerk")).await;
    h.reach(&run, RunState::AwaitingApproval).await;
    let d = h.engine.run_detail(&run).await.unwrap();
    // Both are new: grants are decided in id order, so erp:refunds goes through and erp:vendors
    // is the one that completes the pair.
    let vendors = d
        .steps
        .iter()
        .find(|s| s.entitlement.as_deref() == Some("erp:vendors"))
        .expect("a step for the exception");
    assert_eq!(vendors.state, StepState::AwaitingApproval);
    assert_eq!(
        h.grant_state("r1", "erp:refunds").await,
        Some(GrantState::Granted)
    );
    let want = serde_json::json!([{
        "entitlement": "erp:vendors",
        "approvals": [{ "approver": "manager", "who": "boss", "policy": "sod:vendors-refunds" }],
    }]);
    assert_eq!(h.planned_audit(&run).await["awaiting_approval"], want);
}

#[tokio::test]
async fn client_contract_rules_read_facts_that_come_with_the_person() {
    let h = harness().await;
    let run = h.send(&hire("n1", "employee", "Engineer", "Berlin")).await;
    h.reach(&run, RunState::Succeeded).await;
    let start = r#"{"type":"engagement_start","person":{"id":"n1"},"engagement":{"client":"globex","role":"consultant"}}"#;
    let run = h.send(start).await;
    h.reach(&run, RunState::Succeeded).await;
    let d = h.engine.run_detail(&run).await.unwrap();
    assert!(grants_in(&d.steps).is_empty(), "{:#?}", d.steps);
    let note: Value = serde_json::from_str(d.run.note.as_deref().unwrap()).unwrap();
    assert_eq!(
        note["denied"][0]["policies"],
        serde_json::json!(["client-nda-signed", "client-trainings-done"])
    );

    // The NDA is signed, but the training is not done: still denied, by the training rule only.
    let run = h
        .send(r#"{"type":"transfer","person":{"id":"n1","attributes":{"nda_signed":true,"trainings":["gdpr"]}}}"#)
        .await;
    h.reach(&run, RunState::Succeeded).await;
    let note: Value = serde_json::from_str(
        h.engine
            .run_detail(&run)
            .await
            .unwrap()
            .run
            .note
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        note["denied"][0]["policies"],
        serde_json::json!(["client-trainings-done"])
    );

    // Both done: the client's access follows on the same engagement.
    let run = h
        .send(r#"{"type":"transfer","person":{"id":"n1","attributes":{"trainings":["gdpr","secure-coding"]}}}"#)
        .await;
    h.reach(&run, RunState::Succeeded).await;
    let d = h.engine.run_detail(&run).await.unwrap();
    assert_eq!(grants_in(&d.steps), vec!["crm:globex"], "{:#?}", d.steps);

    // A fact of the wrong type counts as absent: the NDA rule denies.
    let run = h
        .send(r#"{"type":"hire","person":{"id":"n2","name":"N","email":"n2@example.com","worker_type":"employee","attributes":{"nda_signed":"yes","trainings":["secure-coding"]}}}"#)
        .await;
    h.reach(&run, RunState::Succeeded).await;
    let run = h.send(&start.replace("\"n1\"", "\"n2\"")).await;
    h.reach(&run, RunState::Succeeded).await;
    let note: Value = serde_json::from_str(
        h.engine
            .run_detail(&run)
            .await
            .unwrap()
            .run
            .note
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        note["denied"][0]["policies"],
        serde_json::json!(["client-nda-signed"])
    );
}

#[tokio::test]
async fn client_terms_that_come_with_an_engagement_are_enforced() {
    let h = harness().await;
    let note_of = |d: &tenure_engine::RunDetail| -> Value {
        d.run
            .note
            .as_deref()
            .map_or(Value::Null, |n| serde_json::from_str(n).unwrap())
    };
    let start = |person: &str, client: Value| {
        serde_json::json!({ "type": "engagement_start", "person": { "id": person },
            "engagement": { "client": client, "role": "consultant" } })
        .to_string()
    };

    // Configured, acme keeps its data in the EU: staff in Austin are refused.
    let run = h.send(&hire("u1", "employee", "Engineer", "Austin")).await;
    h.reach(&run, RunState::Succeeded).await;
    let run = h.send(&start("u1", "acme".into())).await;
    h.reach(&run, RunState::Succeeded).await;
    let d = h.engine.run_detail(&run).await.unwrap();
    assert!(grants_in(&d.steps).is_empty(), "{:#?}", d.steps);
    assert_eq!(
        note_of(&d)["denied"][0]["policies"],
        serde_json::json!(["eu-data-stays-with-eu-staff"])
    );

    // The staffing system says acme's new contract keeps its data in the US: its word wins.
    let us =
        serde_json::json!({ "id": "acme", "name": "Acme", "attributes": { "data_region": "us" } });
    let run = h.send(&start("u1", us.clone())).await;
    h.reach(&run, RunState::Succeeded).await;
    let d = h.engine.run_detail(&run).await.unwrap();
    assert_eq!(grants_in(&d.steps), vec!["crm:acme"], "{:#?}", d.steps);

    // And a term the configuration does not have binds as well: an NDA for acme's work.
    let nda = serde_json::json!({ "id": "acme", "name": "Acme",
        "attributes": { "data_region": "us", "nda_required": true } });
    let run = h.send(&hire("u3", "employee", "Engineer", "Austin")).await;
    h.reach(&run, RunState::Succeeded).await;
    let run = h.send(&start("u3", nda)).await;
    h.reach(&run, RunState::Succeeded).await;
    let d = h.engine.run_detail(&run).await.unwrap();
    assert!(grants_in(&d.steps).is_empty(), "{:#?}", d.steps);
    assert_eq!(
        note_of(&d)["denied"][0]["policies"],
        serde_json::json!(["client-nda-signed"])
    );
    // The new term binds u1 too, who holds acme's CRM without an NDA: u3's event gave u1 a
    // reconcile run, which takes that access away without any event of u1's.
    let reconcile = {
        let mut c = h.engine.store().reader().await.unwrap();
        let runs = tenure_store::list_runs(&mut c, None, Some("u1"), None, 100)
            .await
            .unwrap();
        runs.into_iter()
            .find(|r| r.kind == RunKind::Reconcile)
            .expect("u1 has a reconcile run")
    };
    h.reach(&reconcile.id, RunState::Succeeded).await;
    let d = h.engine.run_detail(&reconcile.id).await.unwrap();
    let revoked: Vec<&str> = d
        .steps
        .iter()
        .filter(|s| s.action == Action::Revoke)
        .filter_map(|s| s.entitlement.as_deref())
        .collect();
    assert_eq!(revoked, ["crm:acme"], "{:#?}", d.steps);

    // What-if of such an event reads the event's own terms, before anything is stored.
    let us_again = parse_event(start("u3", us).as_bytes()).unwrap();
    let w = h.engine.what_if_event(&us_again).await.unwrap();
    assert_eq!(w.grants, 1, "{w:#?}");
}

#[tokio::test]
async fn access_policy_no_longer_allows_is_revoked_when_the_facts_change() {
    let h = harness().await;
    let run = h.send(&hire("m1", "employee", "Engineer", "Berlin")).await;
    h.reach(&run, RunState::Succeeded).await;
    let start = r#"{"type":"engagement_start","person":{"id":"m1"},"engagement":{"client":"acme","role":"consultant"}}"#;
    let run = h.send(start).await;
    h.reach(&run, RunState::Succeeded).await;
    assert_eq!(
        h.grant_state("m1", "crm:acme").await,
        Some(GrantState::Granted)
    );

    // A change policy does not care about keeps everything.
    let run = h
        .send(r#"{"type":"transfer","person":{"id":"m1","title":"Senior Engineer"}}"#)
        .await;
    h.reach(&run, RunState::Succeeded).await;
    assert_eq!(
        h.grant_state("m1", "crm:acme").await,
        Some(GrantState::Granted)
    );

    // Moving out of the EU: acme's EU data is no longer theirs to touch.
    let run = h
        .send(r#"{"type":"transfer","person":{"id":"m1","location":"Austin"}}"#)
        .await;
    h.reach(&run, RunState::Succeeded).await;
    let d = h.engine.run_detail(&run).await.unwrap();
    let revokes: Vec<_> = d
        .steps
        .iter()
        .filter(|s| s.action == Action::Revoke)
        .filter_map(|s| s.entitlement.as_deref())
        .collect();
    assert_eq!(revokes, vec!["crm:acme"], "{:#?}", d.steps);
    assert_eq!(
        h.grant_state("m1", "crm:acme").await,
        Some(GrantState::Revoked)
    );
    assert_eq!(
        h.grant_state("m1", "directory:staff").await,
        Some(GrantState::Granted)
    );
    let note: Value = serde_json::from_str(d.run.note.as_deref().unwrap()).unwrap();
    assert_eq!(
        note["denied"],
        serde_json::json!([{
            "entitlement": "crm:acme",
            "policies": ["eu-data-stays-with-eu-staff"],
            "reason": "forbidden by eu-data-stays-with-eu-staff",
            "errors": [],
            "revoked": true,
        }])
    );
    let audit = h.planned_audit(&run).await;
    assert_eq!(audit["denied"][0]["revoked"], true);

    // A what-if of moving back shows the grant again, stored state untouched.
    let back =
        parse_event(br#"{"type":"transfer","person":{"id":"m1","location":"Paris"}}"#).unwrap();
    let w = h.engine.what_if_event(&back).await.unwrap();
    assert_eq!((w.grants, w.revokes), (1, 0), "{w:#?}");
    assert_eq!(
        h.grant_state("m1", "crm:acme").await,
        Some(GrantState::Revoked)
    );
}

// ---------------------------------------------------------------- every path, every rule

/// The kinds of rule a grant can meet.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    /// A Cedar `forbid`: contractors never hold privileged access.
    Forbid,
    /// A separation-of-duties `deny`: nobody both creates vendors and pays them.
    SodDeny,
    /// A separation-of-duties exception: vendors and refunds together need the manager.
    SodApproval,
}

const RULES: [Rule; 3] = [Rule::Forbid, Rule::SodDeny, Rule::SodApproval];

impl Rule {
    /// What a contractor buyer (who holds `erp:vendors`) is given that meets the rule.
    fn target(self) -> &'static str {
        match self {
            Rule::Forbid => "directory:admins",
            Rule::SodDeny => "erp:payments",
            Rule::SodApproval => "erp:refunds",
        }
    }

    /// The title whose template wants the target.
    fn title(self) -> &'static str {
        match self {
            Rule::Forbid => "Admin",
            Rule::SodDeny => "Payables Clerk",
            Rule::SodApproval => "Refunds Clerk",
        }
    }

    /// The engagement role whose template wants the target.
    fn role(self) -> &'static str {
        match self {
            Rule::Forbid => "admin",
            Rule::SodDeny => "payer",
            Rule::SodApproval => "refunder",
        }
    }

    /// The policy or rule that decides, as decisions cite it.
    fn policy(self) -> &'static str {
        match self {
            Rule::Forbid => "contractors-never-privileged",
            Rule::SodDeny => "sod:vendors-payments",
            Rule::SodApproval => "sod:vendors-refunds",
        }
    }

    /// The entitlements the rule keeps apart (for a forbid, the one it forbids).
    fn combination(self) -> &'static [&'static str] {
        match self {
            Rule::Forbid => &["directory:admins"],
            Rule::SodDeny => &["erp:vendors", "erp:payments"],
            Rule::SodApproval => &["erp:vendors", "erp:refunds"],
        }
    }
}

/// What brings a grant.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Via {
    Template,
    Engagement,
    Request,
    BreakGlass,
    Rehire,
}

/// A contractor buyer in Paris: holds `directory:staff` and `erp:vendors` once hired.
fn buyer(id: &str, title: &str) -> String {
    format!(
        r#"{{"type":"hire","person":{{"id":"{id}","name":"N {id}","email":"{id}@example.com","worker_type":"contractor","department":"Procurement","title":"{title}","location":"Paris","manager":"boss"}}}}"#
    )
}

impl Harness {
    /// Waits until the run waits for approval or has ended; returns its state.
    async fn settle(&self, run_id: &str) -> RunState {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let now = self.engine.run_detail(run_id).await.unwrap().run.state;
            if now.is_terminal() || now == RunState::AwaitingApproval {
                return now;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {run_id} is still {now}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Asks for `entitlement` for `person`, as `person`; returns (request id, run id).
    async fn ask(&self, person: &str, entitlement: &str, break_glass: bool) -> (String, String) {
        let a = self
            .engine
            .request_access(tenure_engine::NewRequest {
                person_id: person.into(),
                entitlement: entitlement.into(),
                requester: person.into(),
                justification: "month-end close".into(),
                duration_ms: None,
                break_glass,
            })
            .await
            .unwrap();
        (a.request_id, a.run_id)
    }

    async fn note(&self, run_id: &str) -> Value {
        let d = self.engine.run_detail(run_id).await.unwrap();
        d.run
            .note
            .as_deref()
            .map_or(Value::Null, |n| serde_json::from_str(n).unwrap())
    }

    async fn audit_of(
        &self,
        action: &str,
        correlation: &str,
    ) -> Vec<tenure_core::audit::AuditEntry> {
        let mut c = self.engine.store().reader().await.unwrap();
        tenure_store::audit_page(&mut c, 0, None, 100_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == action && e.correlation_id.as_deref() == Some(correlation))
            .collect()
    }

    /// What the person holds on the target systems.
    async fn memberships(&self, person: &str) -> Vec<String> {
        let mut out = Vec::new();
        for system in ["directory", "erp"] {
            out.extend(
                self.engine
                    .connector(system)
                    .unwrap()
                    .list_memberships(person)
                    .await
                    .unwrap(),
            );
        }
        out
    }

    /// Hires a contractor buyer, then gives them `rule`'s target `via` the path under test.
    /// Returns the run that carries the grant, and its request if one asked for it.
    async fn through(&self, via: Via, rule: Rule, person: &str) -> (String, Option<String>) {
        let run = self.send(&buyer(person, "Buyer")).await;
        self.reach(&run, RunState::Succeeded).await;
        assert_eq!(
            self.grant_state(person, "erp:vendors").await,
            Some(GrantState::Granted)
        );
        match via {
            Via::Template => {
                let run = self
                    .send(&transfer(person, "Procurement", rule.title()))
                    .await;
                (run, None)
            }
            Via::Engagement => {
                let start = serde_json::json!({ "type": "engagement_start", "person": { "id": person },
                    "engagement": { "client": "acme", "role": rule.role() } });
                (self.send(&start.to_string()).await, None)
            }
            Via::Request | Via::BreakGlass => {
                let (request, run) = self
                    .ask(person, rule.target(), via == Via::BreakGlass)
                    .await;
                (run, Some(request))
            }
            Via::Rehire => {
                let leave = format!(r#"{{"type":"leave","person":{{"id":"{person}"}}}}"#);
                let run = self.send(&leave).await;
                self.reach(&run, RunState::Succeeded).await;
                assert!(self.memberships(person).await.is_empty());
                let rehire = buyer(person, rule.title()).replace("\"hire\"", "\"rehire\"");
                (self.send(&rehire).await, None)
            }
        }
    }
}

/// Every path a grant can come by, against each kind of rule: the same policy and the same
/// separation-of-duties rules judge it before it reaches a connector. Break-glass skips
/// approvals only.
async fn every_rule_holds(via: Via) {
    let h = harness().await;
    for rule in RULES {
        let person = format!("{via:?}-{rule:?}").to_lowercase();
        let (run, request) = h.through(via, rule, &person).await;
        let state = h.settle(&run).await;
        let note = h.note(&run).await;
        let cites = |list: &Value| {
            list.as_array()
                .into_iter()
                .flatten()
                .any(|d| d["policies"] == serde_json::json!([rule.policy()]))
        };
        let waits_for_the_rule = note["awaiting_approval"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| {
                d["approvals"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|a| a["policy"] == rule.policy())
            });
        let held = h.memberships(&person).await;
        let completes = rule
            .combination()
            .iter()
            .all(|e| held.contains(&e.to_string()));
        let case = format!("{via:?} x {rule:?}: run {state}, note {note}, holds {held:?}");
        let approval_skipped = via == Via::BreakGlass && rule == Rule::SodApproval;
        if approval_skipped {
            // Break-glass skips approvals only: the exception goes through, reviewed afterwards.
            assert_eq!(state, RunState::Succeeded, "{case}");
            assert!(completes, "{case}");
        } else {
            assert!(!completes, "{case}");
            match rule {
                Rule::Forbid | Rule::SodDeny => assert!(cites(&note["denied"]), "{case}"),
                Rule::SodApproval => {
                    assert_eq!(state, RunState::AwaitingApproval, "{case}");
                    assert!(waits_for_the_rule, "{case}");
                }
            }
        }
        if let Some(request) = request {
            let detail = h.engine.request(&request).await.unwrap();
            let approved = h.audit_of("request.approved", &request).await;
            match rule {
                Rule::Forbid | Rule::SodDeny => {
                    assert_eq!(detail.request.state, RequestState::Denied, "{case}");
                    assert_eq!(detail.denied_by, vec![rule.policy()], "{case}");
                    assert!(approved.is_empty(), "{case}: {approved:?}");
                    let denied = h.audit_of("request.denied", &request).await;
                    assert_eq!(denied.len(), 1, "{case}");
                    assert_eq!(denied[0].reason, format!("forbidden by {}", rule.policy()));
                }
                Rule::SodApproval if approval_skipped => {
                    assert_eq!(detail.request.state, RequestState::Approved, "{case}");
                    assert_eq!(approved.len(), 1, "{case}");
                }
                Rule::SodApproval => {
                    assert_eq!(detail.request.state, RequestState::Pending, "{case}");
                    assert!(approved.is_empty(), "{case}");
                }
            }
        }
    }
}

#[tokio::test]
async fn every_rule_holds_on_a_template_grant() {
    every_rule_holds(Via::Template).await;
}

#[tokio::test]
async fn every_rule_holds_on_an_engagement_grant() {
    every_rule_holds(Via::Engagement).await;
}

#[tokio::test]
async fn every_rule_holds_on_an_access_request() {
    every_rule_holds(Via::Request).await;
}

#[tokio::test]
async fn every_rule_but_an_approval_holds_on_break_glass() {
    every_rule_holds(Via::BreakGlass).await;
}

#[tokio::test]
async fn every_rule_holds_on_a_rehire() {
    every_rule_holds(Via::Rehire).await;
}

/// Access found behind tenure's back, on a path no grant took: a buyer whose template wants each
/// rule's target is given it by hand on the system, and reconciliation (revoking excess) runs.
/// What a rule denies is taken away again; what waits for an exception's approver is reported
/// for a person to decide, and never counted as granted.
#[tokio::test]
async fn every_rule_holds_on_access_reconciliation_found() {
    let main = CONFIG.replace(
        "connector = \"sandbox\"\n",
        "connector = \"sandbox\"\n[systems.reconcile]\nactions = { excess = \"revoke\" }\nmax_disable_percent = 100\n",
    );
    let h = harness_from(config_from(&main), POLICIES).await;
    for rule in RULES {
        let person = format!("found-{rule:?}").to_lowercase();
        let run = h.send(&buyer(&person, "Buyer")).await;
        h.reach(&run, RunState::Succeeded).await;
        let run = h
            .send(&transfer(&person, "Procurement", rule.title()))
            .await;
        h.settle(&run).await;
        let system = rule.target().split(':').next().unwrap();
        let mut tx = h.engine.store().begin().await.unwrap();
        tenure_store::db::query(
            "INSERT INTO sandbox_memberships (system, person_id, entitlement) VALUES ($1, $2, $3)",
        )
        .bind(system)
        .bind(person.clone())
        .bind(rule.target())
        .execute(tx.conn())
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let found = h
            .engine
            .reconcile(tenure_engine::ReconcileRequest {
                system: system.into(),
                dry_run: false,
                confirm: false,
                trigger: tenure_store::ReconTrigger::Request,
                actor: "test".into(),
            })
            .await
            .unwrap();
        let case = format!("{rule:?}: {found:?}");
        let mut c = h.engine.store().reader().await.unwrap();
        let runs = tenure_store::runs_matching(
            &mut c,
            &tenure_store::RunFilter {
                person: Some(&person),
                kind: Some(RunKind::Remediate),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        drop(c);
        match rule {
            Rule::Forbid | Rule::SodDeny => {
                assert_eq!(runs.len(), 1, "{case}");
                h.reach(&runs[0].id, RunState::Succeeded).await;
                let held = h.memberships(&person).await;
                assert!(
                    !held.contains(&rule.target().to_string()),
                    "{case}: {held:?}"
                );
                assert_ne!(
                    h.grant_state(&person, rule.target()).await,
                    Some(GrantState::Granted),
                    "{case}"
                );
            }
            Rule::SodApproval => {
                assert!(runs.is_empty(), "{case}");
                assert_eq!(
                    h.grant_state(&person, rule.target()).await,
                    Some(GrantState::AwaitingApproval),
                    "{case}"
                );
                let mut c = h.engine.store().reader().await.unwrap();
                let open = tenure_store::list_findings(
                    &mut c,
                    tenure_store::FindingFilter {
                        person: Some(&person),
                        open: true,
                        limit: 10,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
                assert_eq!(open.len(), 1, "{case}: {open:?}");
                assert_eq!(open[0].remedy, tenure_core::drift::Remedy::Report, "{case}");
            }
        }
    }
}

/// Policy reload: grants waiting for approval under the old rules are judged by the new ones.
/// One the new rules deny is withdrawn before anyone approves it, its request denied citing
/// them; one that now needs an exception still waits, and never goes through without one.
#[tokio::test]
async fn every_rule_holds_on_a_policy_reload() {
    let before = CONFIG.split("# Nobody both").next().unwrap();
    let lenient: Vec<(&str, &str)> = POLICIES
        .iter()
        .copied()
        .filter(|(p, _)| !p.contains("contractors"))
        .collect();
    let h = harness_from(config_from(before), &lenient).await;
    let mut asked = Vec::new();
    for rule in RULES {
        let person = format!("reload-{rule:?}").to_lowercase();
        let run = h.send(&buyer(&person, "Buyer")).await;
        h.reach(&run, RunState::Succeeded).await;
        let (request, run) = h.ask(&person, rule.target(), false).await;
        assert_eq!(h.settle(&run).await, RunState::AwaitingApproval, "{rule:?}");
        asked.push((rule, person, request, run));
    }

    let config = config();
    let files: Vec<_> = POLICIES.iter().map(|(p, t)| src(p, t)).collect();
    let policy = PolicyEngine::load(&config, None, &files).unwrap().engine;
    let reloaded = h.engine.reload(config, policy, "test").await.unwrap();
    assert_eq!(reloaded.runs, 2, "{reloaded:?}");

    for (rule, person, request, run) in asked {
        let detail = h.engine.request(&request).await.unwrap();
        let approval = &detail.approvals[0].approval;
        let case = format!("{rule:?}: {detail:?}");
        match rule {
            Rule::Forbid | Rule::SodDeny => {
                let reconcile = {
                    let mut c = h.engine.store().reader().await.unwrap();
                    tenure_store::list_runs(&mut c, None, Some(&person), None, 100)
                        .await
                        .unwrap()
                        .into_iter()
                        .find(|r| r.kind == RunKind::Reconcile)
                        .unwrap_or_else(|| panic!("{case}: no reconcile run"))
                };
                h.reach(&reconcile.id, RunState::Succeeded).await;
                let note = h.note(&reconcile.id).await;
                assert_eq!(note["denied"][0]["entitlement"], rule.target(), "{case}");
                assert_eq!(
                    note["denied"][0]["policies"],
                    serde_json::json!([rule.policy()]),
                    "{case}"
                );
                let detail = h.engine.request(&request).await.unwrap();
                assert_eq!(detail.request.state, RequestState::Denied, "{case}");
                assert_eq!(detail.denied_by, vec![rule.policy()], "{case}");
                assert_eq!(
                    detail.approvals[0].approval.state,
                    tenure_core::approval::ApprovalState::Withdrawn,
                    "{case}"
                );
                // The request's run, left with nothing to do, ended; nothing was granted.
                assert!(
                    h.engine
                        .run_detail(&run)
                        .await
                        .unwrap()
                        .run
                        .state
                        .is_terminal()
                );
                assert_eq!(h.grant_state(&person, rule.target()).await, None, "{case}");
            }
            Rule::SodApproval => {
                assert_eq!(detail.request.state, RequestState::Pending, "{case}");
                assert_eq!(
                    approval.state,
                    tenure_core::approval::ApprovalState::Pending,
                    "{case}"
                );
                assert_eq!(
                    h.grant_state(&person, rule.target()).await,
                    Some(GrantState::AwaitingApproval),
                    "{case}"
                );
            }
        }
        let held = h.memberships(&person).await;
        assert!(
            !rule
                .combination()
                .iter()
                .all(|e| held.contains(&e.to_string())),
            "{case}: holds {held:?}"
        );
    }
}

/// `[approvals] break_glass_may_override` lets break-glass through the separation-of-duties
/// rules it names, flagged and audited as an override; every other rule and every `forbid`
/// still stop it, and a request that is not break-glass is denied as before.
#[tokio::test]
async fn break_glass_overrides_only_the_rules_the_configuration_names() {
    let main =
        format!("{CONFIG}\n[approvals]\nbreak_glass_may_override = [\"vendors-payments\"]\n");
    let h = harness_from(config_from(&main), POLICIES).await;

    let run = h.send(&buyer("bg1", "Buyer")).await;
    h.reach(&run, RunState::Succeeded).await;
    let (request, run) = h.ask("bg1", "erp:payments", true).await;
    assert_eq!(h.settle(&run).await, RunState::Succeeded);
    assert!(
        h.memberships("bg1")
            .await
            .contains(&"erp:payments".to_string())
    );
    let note = h.note(&run).await;
    assert_eq!(
        note["break_glass_overrides"],
        serde_json::json!([{ "entitlement": "erp:payments", "policies": ["sod:vendors-payments"] }])
    );
    assert_eq!(
        h.planned_audit(&run).await["break_glass_overrides"],
        note["break_glass_overrides"]
    );
    let overrides = h.audit_of("request.sod_overridden", &request).await;
    assert_eq!(overrides.len(), 1);
    assert_eq!(overrides[0].actor, "bg1");
    assert!(
        overrides[0].reason.contains("sod:vendors-payments"),
        "{overrides:?}"
    );
    assert_eq!(
        h.engine.request(&request).await.unwrap().request.state,
        RequestState::Approved
    );

    // The same grant asked for without break-glass: the rule denies it.
    let run = h.send(&buyer("bg2", "Buyer")).await;
    h.reach(&run, RunState::Succeeded).await;
    let (request, run) = h.ask("bg2", "erp:payments", false).await;
    h.settle(&run).await;
    let detail = h.engine.request(&request).await.unwrap();
    assert_eq!(detail.request.state, RequestState::Denied);
    assert_eq!(detail.denied_by, vec!["sod:vendors-payments"]);

    // A forbid is never overridden.
    let (request, run) = h.ask("bg2", "directory:admins", true).await;
    h.settle(&run).await;
    let detail = h.engine.request(&request).await.unwrap();
    assert_eq!(detail.request.state, RequestState::Denied);
    assert_eq!(detail.denied_by, vec!["contractors-never-privileged"]);
    assert!(
        h.audit_of("request.sod_overridden", &request)
            .await
            .is_empty()
    );
    assert!(
        !h.memberships("bg2")
            .await
            .contains(&"directory:admins".to_string())
    );
}
