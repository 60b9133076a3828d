//! Access requests, approval chains, time-bound access and the durable scheduler, in process,
//! on an injected clock: time moves only when a test moves it, and timers fire when the test
//! asks (`Engine::fire_due_timers`), so nothing here sleeps to wait for time to pass.
//! `TENURE_TEST_DATABASE_URL=postgres://...` runs the same tests on PostgreSQL.

use std::sync::Arc;
use std::time::Duration;
use tenure_core::approval::{ApprovalState, RequestState, StageKind, Verdict};
use tenure_core::config::{Config, SourceFile};
use tenure_core::event::parse_event;
use tenure_core::run::{RunKind, RunState};
use tenure_core::timer::{TimerKind, TimerState};
use tenure_core::{GrantState, PersonStatus};
use tenure_engine::tenure_policy::PolicyEngine;
use tenure_engine::{
    Clock, Engine, EngineError, EngineOptions, IngestOutcome, ManualClock, NewRequest, Submission,
};
use tenure_store::{ApprovalRow, Store};

const HOUR: i64 = 3_600_000;
const START: i64 = 1_780_000_000_000;

const CONFIG: &str = r#"
[[systems]]
id = "directory"
connector = "sandbox"
[[systems]]
id = "db"
connector = "sandbox"
[[systems]]
id = "crm"
connector = "sandbox"

[[clients]]
id = "acme"
[clients.attributes]
owner = "carl"

[[entitlements]]
id = "directory:staff"
system = "directory"
[[entitlements]]
id = "directory:reports"
system = "directory"
owner = "olga"
[[entitlements]]
id = "db:prod-admin"
system = "db"
risk = "privileged"
owner = "dba-team"
[[entitlements]]
id = "crm:acme"
system = "crm"
client = "acme"

[approvals]
request_stages = ["manager"]
require_all = ["owner"]
stage_timeout_minutes = 1440
deadline_minutes = 4320
max_window_minutes = 480
break_glass_max_minutes = 60
[approvals.teams]
dba-team = ["dora", "dan"]
"#;

const POLICIES: &[(&str, &str)] = &[
    (
        "policies/base.cedar",
        r#"@id("base") permit (principal is Person, action == Action::"grant", resource is Entitlement);"#,
    ),
    (
        "policies/owner.cedar",
        r#"@id("privileged-needs-owner") @approval("owner")
permit (principal is Person, action == Action::"grant", resource is Entitlement)
when { resource.risk == "privileged" };"#,
    ),
    (
        "policies/client.cedar",
        r#"@id("client-needs-client-owner") @approval("client_owner")
permit (principal is Person, action == Action::"grant", resource is Entitlement)
when { resource has client };"#,
    ),
];

fn ids(v: Vec<ApprovalRow>) -> Vec<String> {
    v.into_iter().map(|a| a.id).collect()
}

/// Every approval of a run, whatever its state.
fn run_approvals(run: &str) -> tenure_store::ApprovalFilter<'_> {
    tenure_store::ApprovalFilter {
        run: Some(run),
        limit: 10,
        ..Default::default()
    }
}

fn src(p: &str, s: &str) -> SourceFile {
    SourceFile {
        path: p.into(),
        text: s.into(),
    }
}

fn config(extra: &str) -> Config {
    config_with(extra, &[])
}

/// The base configuration with `extra` appended and more templates beside `all.toml`.
fn config_with(extra: &str, templates: &[(&str, &str)]) -> Config {
    config_from(&format!("{CONFIG}{extra}"), templates)
}

fn config_from(main: &str, templates: &[(&str, &str)]) -> Config {
    let mut files = vec![src("all.toml", "entitlements = [\"directory:staff\"]\n")];
    files.extend(templates.iter().map(|(p, t)| src(p, t)));
    Config::parse(&src("tenure.toml", main), &files).unwrap_or_else(|e| panic!("{e}"))
}

struct Harness {
    engine: Engine,
    clock: Arc<ManualClock>,
    url: String,
    config: Arc<Config>,
    secret: Option<String>,
    _dir: tempfile::TempDir,
}

async fn harness_with(extra: &str, secret: Option<&str>) -> Harness {
    harness_full(config(extra), secret).await
}

async fn harness_full(config: Config, secret: Option<&str>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let url = match std::env::var("TENURE_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let name = format!("tenure_appr_{}", uuid::Uuid::new_v4().simple());
            tenure_store::create_scratch_database(&url, &name)
                .await
                .unwrap()
        }
        _ => format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()),
    };
    let clock = Arc::new(ManualClock::new(START));
    let config = Arc::new(config);
    let secret = secret.map(str::to_string);
    let engine = start(&url, &config, &clock, secret.clone()).await;
    let h = Harness {
        engine,
        clock,
        url,
        config,
        secret,
        _dir: dir,
    };
    for (id, manager) in [
        ("ceo", None),
        ("mia", Some("ceo")),
        ("ann", Some("mia")),
        ("bob", Some("mia")),
        ("olga", Some("ceo")),
        ("dora", Some("ceo")),
        ("dan", Some("ceo")),
        ("carl", Some("ceo")),
        ("sub", Some("ceo")),
    ] {
        let run = h.send(&hire(id, manager, None)).await;
        assert_eq!(h.finish(&run).await, RunState::Succeeded);
    }
    h
}

async fn harness() -> Harness {
    harness_with("", None).await
}

async fn start(
    url: &str,
    config: &Arc<Config>,
    clock: &Arc<ManualClock>,
    secret: Option<String>,
) -> Engine {
    let store = Store::connect(url).await.unwrap();
    let files: Vec<_> = POLICIES.iter().map(|(p, t)| src(p, t)).collect();
    let policy = PolicyEngine::load(config, None, &files)
        .unwrap_or_else(|e| panic!("{e}"))
        .engine;
    Engine::start_with_policy(
        store,
        config.clone(),
        Arc::new(policy),
        clock.clone(),
        EngineOptions {
            seed: Some(1),
            webhook_secret: secret,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

fn hire(id: &str, manager: Option<&str>, end_date: Option<&str>) -> String {
    let mut person = serde_json::json!({
        "id": id, "name": format!("N {id}"), "email": format!("{id}@example.com"),
        "worker_type": "employee",
    });
    if let Some(m) = manager {
        person["manager"] = m.into();
    }
    if let Some(d) = end_date {
        person["end_date"] = d.into();
    }
    serde_json::json!({ "type": "hire", "person": person }).to_string()
}

impl Harness {
    async fn restart(&mut self) {
        self.engine.shutdown().await;
        self.engine.store().close().await;
        self.engine = start(&self.url, &self.config, &self.clock, self.secret.clone()).await;
    }

    async fn send(&self, body: &str) -> String {
        let event = parse_event(body.as_bytes()).unwrap();
        match self
            .engine
            .submit(Submission {
                event,
                idempotency_key: None,
                actor: "hr".into(),
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

    async fn request(
        &self,
        person: &str,
        requester: &str,
        entitlement: &str,
        hours: Option<i64>,
        break_glass: bool,
    ) -> Result<(String, String), EngineError> {
        self.engine
            .request_access(NewRequest {
                person_id: person.into(),
                entitlement: entitlement.into(),
                requester: requester.into(),
                justification: "quarterly close".into(),
                duration_ms: hours.map(|h| h * HOUR),
                break_glass,
            })
            .await
            .map(|a| (a.request_id, a.run_id))
    }

    /// Waits until the run is in `state`, failing if it ends in another.
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
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn finish(&self, run_id: &str) -> RunState {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let now = self.engine.run_detail(run_id).await.unwrap().run.state;
            if now.is_terminal() {
                return now;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {run_id} still {now}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until the run has ended or waits for an approval.
    async fn finish_or_wait(&self, run_id: &str) -> RunState {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let now = self.engine.run_detail(run_id).await.unwrap().run.state;
            if now.is_terminal() || now == RunState::AwaitingApproval {
                return now;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "run {run_id} still {now}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn grant(&self, person: &str, entitlement: &str) -> Option<tenure_core::Grant> {
        let mut c = self.engine.store().reader().await.unwrap();
        tenure_store::grants_of(&mut c, person)
            .await
            .unwrap()
            .into_iter()
            .find(|(g, _)| g.entitlement == entitlement)
            .map(|(g, _)| g)
    }

    async fn approval_of_run(&self, run: &str) -> ApprovalRow {
        let mut c = self.engine.store().reader().await.unwrap();
        let mut all = tenure_store::list_approvals(&mut c, &run_approvals(run))
            .await
            .unwrap();
        assert_eq!(all.len(), 1, "{all:#?}");
        all.remove(0)
    }

    /// The ids of the approvals `who` may decide now.
    async fn pending(&self, who: &str) -> Vec<String> {
        ids(self.engine.pending_approvals(Some(who)).await.unwrap())
    }

    async fn decide(&self, id: &str, actor: &str, verdict: Verdict) -> Result<(), EngineError> {
        self.engine
            .decide_approval(id, actor, verdict, &format!("{actor} says {verdict}"))
            .await
            .map(|_| ())
    }

    async fn audit(&self, action: &str) -> Vec<tenure_core::audit::AuditEntry> {
        let mut c = self.engine.store().reader().await.unwrap();
        tenure_store::audit_page(&mut c, 0, None, 100_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action == action)
            .collect()
    }

    /// Waits (polling a few ms apart) until `n` webhook deliveries are in `state`.
    async fn deliveries_until(
        &self,
        state: TimerState,
        n: usize,
    ) -> Vec<tenure_store::DeliveryRow> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut c = self.engine.store().reader().await.unwrap();
            let t = tenure_store::deliveries_in(&mut c, state).await.unwrap();
            if t.len() == n {
                return t;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} deliveries {state}, expected {n}",
                t.len()
            );
            drop(c);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// `person` asks for `entitlement` themselves; the run waits for approval. Returns the
    /// request, its run and the approval.
    async fn waiting_request(
        &self,
        person: &str,
        entitlement: &str,
        hours: Option<i64>,
    ) -> (String, String, ApprovalRow) {
        let (request, run) = self
            .request(person, person, entitlement, hours, false)
            .await
            .unwrap();
        self.reach(&run, RunState::AwaitingApproval).await;
        let a = self.approval_of_run(&run).await;
        (request, run, a)
    }

    /// `person` asks for `entitlement` for `hours`; `approvers` approve it in turn, and the
    /// run that grants it succeeds. Returns the approval.
    async fn granted_on_request(
        &self,
        person: &str,
        entitlement: &str,
        hours: i64,
        approvers: &[&str],
    ) -> ApprovalRow {
        let (_, run, a) = self.waiting_request(person, entitlement, Some(hours)).await;
        for who in approvers {
            self.decide(&a.id, who, Verdict::Approve).await.unwrap();
        }
        assert_eq!(self.finish(&run).await, RunState::Succeeded);
        a
    }

    /// What `person` holds on `system`, as the system says.
    async fn memberships(&self, system: &str, person: &str) -> Vec<String> {
        self.engine
            .connector(system)
            .unwrap()
            .list_memberships(person)
            .await
            .unwrap()
    }

    /// Moves the clock and fires what became due.
    async fn advance(&self, ms: i64) {
        self.clock.advance(ms);
        self.engine.fire_due_timers().await.unwrap();
    }
}

#[tokio::test]
async fn a_full_chain_approves_stage_by_stage_and_the_grant_expires_on_time() {
    let h = harness().await;
    let (request, run) = h
        .request("ann", "ann", "db:prod-admin", Some(2), false)
        .await
        .unwrap();
    h.reach(&run, RunState::AwaitingApproval).await;
    assert_eq!(
        h.grant("ann", "db:prod-admin").await.unwrap().state,
        GrantState::AwaitingApproval
    );
    let a = h.approval_of_run(&run).await;
    assert_eq!(a.request_id.as_deref(), Some(request.as_str()));
    let kinds: Vec<_> = a.chain.stages.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, vec![StageKind::Manager, StageKind::Owner]);
    assert_eq!(a.chain.stages[1].approvers, vec!["dora", "dan"]);

    // The owner stage is not open yet: dora cannot decide before the manager.
    assert!(matches!(
        h.decide(&a.id, "dora", Verdict::Approve).await,
        Err(EngineError::Forbidden(_))
    ));
    // Pending lists follow the current stage.
    assert_eq!(
        ids(h.engine.pending_approvals(Some("mia")).await.unwrap()),
        vec![a.id.clone()]
    );
    assert!(
        h.engine
            .pending_approvals(Some("dora"))
            .await
            .unwrap()
            .is_empty()
    );
    h.decide(&a.id, "mia", Verdict::Approve).await.unwrap();
    assert_eq!(
        ids(h.engine.pending_approvals(Some("dora")).await.unwrap()),
        vec![a.id.clone()]
    );
    // `all` on the owner stage: one owner is not enough.
    h.decide(&a.id, "dora", Verdict::Approve).await.unwrap();
    assert_eq!(
        h.engine.run_detail(&run).await.unwrap().run.state,
        RunState::AwaitingApproval
    );
    h.decide(&a.id, "dan", Verdict::Approve).await.unwrap();
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    assert_eq!(
        h.engine.approval(&a.id).await.unwrap().approval.state,
        ApprovalState::Approved
    );
    assert!(h.engine.pending_approvals(None).await.unwrap().is_empty());
    let g = h.grant("ann", "db:prod-admin").await.unwrap();
    assert_eq!(g.state, GrantState::Granted);
    assert_eq!(g.expires_at, Some(START + 2 * HOUR));
    let db = h.engine.connector("db").unwrap();
    assert_eq!(
        db.list_memberships("ann").await.unwrap(),
        vec!["db:prod-admin"]
    );
    let r = h.engine.request(&request).await.unwrap().request;
    assert_eq!(r.state, RequestState::Approved);

    // Every decision is audited with its actor and comment.
    let decided = h.audit("approval.approve").await;
    let actors: Vec<_> = decided.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(actors, vec!["mia", "dora", "dan"]);
    assert_eq!(decided[0].reason, "mia says approve");

    // Not yet: one minute before the end.
    h.advance(2 * HOUR - 60_000).await;
    assert_eq!(
        h.grant("ann", "db:prod-admin").await.unwrap().state,
        GrantState::Granted
    );
    h.advance(60_000).await;
    let expired = h.audit("grant.expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].actor, "scheduler");
    let revoke_run = expired[0].run_id.clone().unwrap();
    assert_eq!(h.finish(&revoke_run).await, RunState::Succeeded);
    assert_eq!(
        h.grant("ann", "db:prod-admin").await.unwrap().state,
        GrantState::Revoked
    );
    assert!(db.list_memberships("ann").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_denial_ends_the_run_denied_and_unblocks_the_person() {
    let h = harness().await;
    let (request, run, a) = h.waiting_request("ann", "crm:acme", None).await;
    let kinds: Vec<_> = a.chain.stages.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, vec![StageKind::Manager, StageKind::ClientOwner]);

    // Meanwhile a transfer of ann goes ahead: a run waiting only for approvals holds nothing
    // back, and the request still waits.
    let transfer = h
        .send(r#"{"type":"transfer","person":{"id":"ann","title":"Lead"}}"#)
        .await;
    assert_eq!(h.finish(&transfer).await, RunState::Succeeded);
    assert_eq!(
        h.engine.run_detail(&run).await.unwrap().run.state,
        RunState::AwaitingApproval
    );
    h.decide(&a.id, "mia", Verdict::Approve).await.unwrap();
    h.decide(&a.id, "carl", Verdict::Deny).await.unwrap();
    assert_eq!(h.finish(&run).await, RunState::Denied);
    assert_eq!(
        h.grant("ann", "crm:acme").await.unwrap().state,
        GrantState::Denied
    );
    assert_eq!(
        h.engine.request(&request).await.unwrap().request.state,
        RequestState::Denied
    );
    let detail = h.engine.approval(&a.id).await.unwrap();
    assert_eq!(detail.approval.state, ApprovalState::Denied);
    assert_eq!(detail.decisions.len(), 2);
    assert_eq!(detail.decisions[1].comment, "carl says deny");
    assert!(h.memberships("crm", "ann").await.is_empty());
    // A decided approval takes no more decisions.
    assert!(matches!(
        h.decide(&a.id, "carl", Verdict::Approve).await,
        Err(EngineError::Conflict(_))
    ));
    assert_eq!(h.audit("approval.denied").await[0].actor, "carl");
}

#[tokio::test]
async fn nobody_approves_their_own_request_or_their_own_access() {
    let h = harness().await;
    // mia asks for her report ann: the manager stage would be mia herself, so it goes to
    // mia's manager instead.
    let (_, run) = h
        .request("ann", "mia", "directory:reports", None, false)
        .await
        .unwrap();
    h.reach(&run, RunState::AwaitingApproval).await;
    let a = h.approval_of_run(&run).await;
    assert_eq!(a.chain.stages[0].approvers, vec!["ceo"]);
    for actor in ["mia", "ann"] {
        let err = h.decide(&a.id, actor, Verdict::Approve).await.unwrap_err();
        assert!(matches!(err, EngineError::Forbidden(_)), "{actor}: {err}");
        assert!(
            h.engine
                .pending_approvals(Some(actor))
                .await
                .unwrap()
                .is_empty()
        );
    }
    // A delegate of the approver who is the beneficiary still cannot approve it.
    h.engine
        .delegate("ceo", "ann", START, START + HOUR, "test")
        .await
        .unwrap();
    assert!(matches!(
        h.decide(&a.id, "ann", Verdict::Approve).await,
        Err(EngineError::Forbidden(_))
    ));
    h.decide(&a.id, "ceo", Verdict::Approve).await.unwrap();
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
}

#[tokio::test]
async fn a_delegate_decides_for_the_approver_during_the_delegation_only() {
    let mut h = harness().await;
    h.engine
        .delegate("mia", "sub", START, START + HOUR, "mia")
        .await
        .unwrap();
    let (_, run, a) = h.waiting_request("ann", "directory:reports", None).await;
    assert_eq!(
        h.engine.pending_approvals(Some("sub")).await.unwrap().len(),
        1
    );
    h.decide(&a.id, "sub", Verdict::Approve).await.unwrap();
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    let d = h.engine.approval(&a.id).await.unwrap();
    assert_eq!(d.decisions[0].actor, "sub");
    assert_eq!(d.decisions[0].on_behalf_of, "mia");

    // After the delegation has ended, sub decides nothing for mia.
    h.clock.advance(2 * HOUR);
    let (_, _, a) = h.waiting_request("bob", "directory:reports", None).await;
    assert!(
        h.engine
            .pending_approvals(Some("sub"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        h.decide(&a.id, "sub", Verdict::Approve).await,
        Err(EngineError::Forbidden(_))
    ));

    // A delegation counts from its start, not before.
    let now = START + 2 * HOUR;
    let d = h
        .engine
        .delegate("mia", "sub", now + HOUR, now + 3 * HOUR, "mia")
        .await
        .unwrap();
    assert!(h.pending("sub").await.is_empty());
    assert!(matches!(
        h.decide(&a.id, "sub", Verdict::Approve).await,
        Err(EngineError::Forbidden(_))
    ));
    h.clock.advance(HOUR);
    assert_eq!(h.pending("sub").await, vec![a.id.clone()]);
    // A database from before the approvers were indexed (so from before schema versions were
    // recorded, too): opening it indexes them.
    let mut tx = h.engine.store().begin().await.unwrap();
    for sql in [
        "DELETE FROM approval_approvers",
        "DROP TABLE schema_migrations",
    ] {
        tenure_store::db::query(sql)
            .execute(tx.conn())
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    assert!(h.pending("mia").await.is_empty());
    h.restart().await;
    assert_eq!(h.pending("sub").await, vec![a.id.clone()]);
    // Withdrawn: sub decides nothing for mia any more, and the withdrawal is audited.
    let revoked = h
        .engine
        .revoke_delegation(&d.id, "mia-token")
        .await
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(now + HOUR));
    assert!(h.pending("sub").await.is_empty());
    assert!(matches!(
        h.decide(&a.id, "sub", Verdict::Approve).await,
        Err(EngineError::Forbidden(_))
    ));
    let audit = h.audit("approval.delegation_revoked").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].actor, "mia-token");
    for (id, conflict) in [(d.id.as_str(), true), ("nope", false)] {
        match h.engine.revoke_delegation(id, "mia-token").await {
            Err(EngineError::Conflict(_)) if conflict => {}
            Err(EngineError::NotFound(_)) if !conflict => {}
            other => panic!("{id}: {other:?}"),
        }
    }

    // bob, mia's delegate, decides neither his own request nor access for himself.
    h.engine
        .delegate("mia", "bob", now, now + 3 * HOUR, "mia")
        .await
        .unwrap();
    assert!(h.pending("bob").await.is_empty());
    assert!(matches!(
        h.decide(&a.id, "bob", Verdict::Approve).await,
        Err(EngineError::Forbidden(_))
    ));

    // A period already over, or a person tenure does not know, is refused.
    for (delegator, delegate, ends, field) in [
        ("mia", "sub", now, "ends_at"),
        ("mia", "ghost", now + 4 * HOUR, "delegate"),
        ("ghost", "sub", now + 4 * HOUR, "delegator"),
    ] {
        match h
            .engine
            .delegate(delegator, delegate, START, ends, "mia")
            .await
        {
            Err(EngineError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{delegator} -> {delegate}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_undecided_stage_escalates_and_an_undecided_request_is_denied_at_its_deadline() {
    let h = harness().await;
    let (request, run, a) = h.waiting_request("ann", "directory:reports", None).await;
    assert!(
        h.engine
            .pending_approvals(Some("ceo"))
            .await
            .unwrap()
            .is_empty()
    );

    h.advance(24 * HOUR - 1).await;
    assert!(h.audit("approval.escalated").await.is_empty());
    h.advance(1).await;
    let esc = h.audit("approval.escalated").await;
    assert_eq!(esc.len(), 1);
    assert_eq!(esc[0].actor, "scheduler");
    assert_eq!(esc[0].reason, "stage timed out; escalated to ceo");
    assert_eq!(
        h.engine.pending_approvals(Some("ceo")).await.unwrap()[0].id,
        a.id
    );
    // The second escalation finds nobody above the ceo; the deadline then denies.
    h.advance(24 * HOUR).await;
    assert_eq!(h.audit("approval.escalated").await.len(), 2);
    h.advance(24 * HOUR).await;
    let expired = h.audit("approval.expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].actor, "scheduler");
    assert_eq!(h.finish(&run).await, RunState::Denied);
    assert_eq!(
        h.engine.request(&request).await.unwrap().request.state,
        RequestState::Expired
    );
    assert_eq!(
        h.grant("ann", "directory:reports").await.unwrap().state,
        GrantState::Denied
    );
    // Fired once: more time changes nothing.
    h.advance(100 * HOUR).await;
    assert_eq!(h.audit("approval.expired").await.len(), 1);
}

#[tokio::test]
async fn an_expiry_due_while_the_engine_was_down_revokes_after_restart_once() {
    let mut h = harness().await;
    let a = h
        .granted_on_request("ann", "db:prod-admin", 1, &["mia", "dora", "dan"])
        .await;

    h.engine.shutdown().await;
    h.clock.advance(3 * HOUR);
    h.restart().await;
    // The scheduler's own loop fires it: nothing is asked of the engine here.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while h.grant("ann", "db:prod-admin").await.unwrap().state != GrantState::Revoked {
        assert!(tokio::time::Instant::now() < deadline, "not revoked");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let expired = h.audit("grant.expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(
        expired[0].details,
        serde_json::json!({
            "source": "request",
            "source_ref": a.request_id,
            "request_id": a.request_id,
            "expires_at": START + HOUR,
            "late_ms": 2 * HOUR
        })
        .to_string()
    );
    h.restart().await;
    h.advance(HOUR).await;
    assert_eq!(h.audit("grant.expired").await.len(), 1);
    assert!(h.memberships("db", "ann").await.is_empty());
}

/// The state and error of the stored timer `id`.
async fn timer_state(h: &Harness, id: &str) -> (String, Option<String>) {
    let mut c = h.engine.store().reader().await.unwrap();
    let row = tenure_store::db::query("SELECT state, last_error FROM timers WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(&mut c)
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// An expiry stored in the older shape (the request named by `request_id` alone, as versions
/// before planned grants could be time-bound wrote it) still revokes; a stored timer this
/// version cannot read is kept as `unreadable` with the reason, and the others fire beside it.
#[tokio::test]
async fn an_expiry_of_the_older_shape_revokes_and_an_unreadable_timer_is_kept() {
    let h = harness().await;
    let a = h
        .granted_on_request("ann", "db:prod-admin", 1, &["mia", "dora", "dan"])
        .await;
    let request_id = a.request_id.clone().unwrap();
    let mut tx = h.engine.store().begin().await.unwrap();
    let older = serde_json::json!({
        "person_id": "ann", "entitlement": "db:prod-admin", "request_id": request_id,
    });
    let updated =
        tenure_store::db::query("UPDATE timers SET payload = $1 WHERE kind = $2 AND subject = $3")
            .bind(older.to_string())
            .bind(TimerKind::GrantExpiry.as_str())
            .bind(tenure_core::timer::grant_subject("ann", "db:prod-admin"))
            .execute(tx.conn())
            .await
            .unwrap();
    assert_eq!(updated.rows_affected(), 1);
    for (id, kind, payload) in [
        ("t-unknown", "grant.renewal", "{}"),
        ("t-bad", "person.end", r#"{"end_date":"soon"}"#),
    ] {
        tenure_store::db::query(
            "INSERT INTO timers (id, kind, subject, due_at, payload, state, attempts, created_at)
             VALUES ($1, $2, 'ann', $3, $4, 'pending', 0, $3)",
        )
        .bind(id.to_string())
        .bind(kind.to_string())
        .bind(START + HOUR)
        .bind(payload.to_string())
        .execute(tx.conn())
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    h.advance(2 * HOUR).await;
    let expired = h.audit("grant.expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(
        expired[0].details,
        serde_json::json!({
            "source": "request",
            "source_ref": request_id,
            "request_id": request_id,
            "expires_at": START + HOUR,
            "late_ms": HOUR
        })
        .to_string()
    );
    assert_eq!(
        h.finish(expired[0].run_id.as_deref().unwrap()).await,
        RunState::Succeeded
    );
    assert!(h.memberships("db", "ann").await.is_empty());

    let (state, error) = timer_state(&h, "t-unknown").await;
    assert_eq!(state, "unreadable");
    assert!(
        error
            .as_deref()
            .unwrap()
            .contains("unknown TimerKind `grant.renewal`"),
        "{error:?}"
    );
    let (state, error) = timer_state(&h, "t-bad").await;
    assert_eq!(state, "unreadable");
    assert!(
        error
            .as_deref()
            .unwrap()
            .starts_with("cannot read a `person.end` timer for `ann`"),
        "{error:?}"
    );
    // Kept, and never fired: later firings leave them be.
    h.advance(HOUR).await;
    assert_eq!(timer_state(&h, "t-unknown").await.0, "unreadable");
    assert_eq!(h.audit("grant.expired").await.len(), 1);
}

#[tokio::test]
async fn break_glass_skips_approval_is_flagged_and_expires_within_its_short_window() {
    let h = harness().await;
    assert!(matches!(
        h.request("ann", "ann", "db:prod-admin", Some(2), true)
            .await,
        Err(EngineError::Invalid { .. })
    ));
    let (request, run) = h
        .request("ann", "ann", "db:prod-admin", None, true)
        .await
        .unwrap();
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    let mut c = h.engine.store().reader().await.unwrap();
    assert!(
        tenure_store::list_approvals(&mut c, &run_approvals(&run))
            .await
            .unwrap()
            .is_empty()
    );
    drop(c);
    let r = h.engine.request(&request).await.unwrap().request;
    assert!(r.break_glass);
    assert_eq!(r.expires_at, Some(START + HOUR));
    let flagged = h.audit("request.break_glass").await;
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0].actor, "ann");
    h.advance(HOUR).await;
    let expired = h.audit("grant.expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(
        h.finish(expired[0].run_id.as_deref().unwrap()).await,
        RunState::Succeeded
    );
    assert_eq!(
        h.grant("ann", "db:prod-admin").await.unwrap().state,
        GrantState::Revoked
    );
}

#[tokio::test]
async fn risky_access_is_never_unbounded_and_bad_requests_are_refused() {
    let h = harness().await;
    assert!(matches!(
        h.request("ann", "ann", "db:prod-admin", Some(9), false)
            .await,
        Err(EngineError::Invalid { field, .. }) if field == "duration_secs"
    ));
    assert!(matches!(
        h.request("ann", "ann", "nope:x", None, false).await,
        Err(EngineError::Invalid { field, .. }) if field == "entitlement"
    ));
    assert!(matches!(
        h.request("ghost", "ghost", "directory:reports", None, false)
            .await,
        Err(EngineError::NotFound(_))
    ));
    // Birthright access is not asked for.
    assert!(matches!(
        h.request("ann", "ann", "directory:staff", None, false)
            .await,
        Err(EngineError::Conflict(_))
    ));
    // No duration on privileged access: the maximum window applies.
    let (request, run) = h
        .request("bob", "bob", "db:prod-admin", None, false)
        .await
        .unwrap();
    h.reach(&run, RunState::AwaitingApproval).await;
    // A second request for the same access while the first is open is refused.
    assert!(matches!(
        h.request("bob", "bob", "db:prod-admin", None, false).await,
        Err(EngineError::Conflict(_))
    ));
    let a = h.approval_of_run(&run).await;
    for who in ["mia", "dora", "dan"] {
        h.decide(&a.id, who, Verdict::Approve).await.unwrap();
    }
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    assert_eq!(
        h.engine.request(&request).await.unwrap().request.expires_at,
        Some(START + 8 * HOUR)
    );
}

#[tokio::test]
async fn contract_end_dates_revoke_on_the_day_without_an_event() {
    let h = harness().await;
    // 1_780_000_000_000 is 2026-05-28T20:26:40Z.
    let run = h.send(&hire("kim", Some("mia"), Some("2026-05-30"))).await;
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    let midnight_after = 1_780_185_600_000; // 2026-05-31T00:00:00Z
    h.advance(midnight_after - 1 - START).await;
    assert!(h.audit("scheduler.leave").await.is_empty());
    h.advance(1).await;
    assert_eq!(h.audit("scheduler.leave").await.len(), 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut c = h.engine.store().reader().await.unwrap();
        let p = tenure_store::get_person(&mut c, "kim")
            .await
            .unwrap()
            .unwrap();
        if p.status == PersonStatus::Terminated
            && h.grant("kim", "directory:staff").await.unwrap().state == GrantState::Revoked
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "kim did not leave");
        drop(c);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
}

/// A webhook receiver on loopback that fails its first call, like a receiver restarting.
async fn receiver() -> (Receiver, String) {
    use axum::http::StatusCode;
    let r = Receiver::default();
    let state = r.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let state = state.clone();
            async move {
                let mut got = state.got.lock().unwrap();
                got.push((headers, body));
                if got.len() == 1 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, url)
}

#[tokio::test]
async fn approvers_are_notified_by_a_signed_webhook_retried_until_delivered() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (rx, url) = receiver().await;
    let h = harness_with(
        &format!(
            "[notifications]\nwebhook_url = \"{url}\"\nsecret_env = \"TENURE_WEBHOOK_SECRET\"\n"
        ),
        Some(SECRET),
    )
    .await;
    let (_, run) = h
        .request("ann", "ann", "directory:reports", None, false)
        .await
        .unwrap();
    h.reach(&run, RunState::AwaitingApproval).await;
    h.engine.fire_due_timers().await.unwrap();
    // The first delivery failed (this call or the scheduler's loop made it): it waits for a
    // retry after a backoff, not before. (When the loop made it, its claim may not be
    // committed yet, and the timer still reads as never tried.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let waiting = loop {
        let waiting = h.deliveries_until(TimerState::Pending, 1).await;
        if waiting[0].attempts > 0 || tokio::time::Instant::now() > deadline {
            break waiting;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(waiting[0].attempts, 1, "{waiting:?}");
    assert!(waiting[0].due_at > START, "{waiting:?}");
    assert_eq!(rx.got.lock().unwrap().len(), 1);
    h.advance(10 * 60_000).await;
    h.deliveries_until(TimerState::Fired, 1).await;
    let got = rx.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "one failed call, then one delivered");
    let key = tenure_core::webhook::secret_key(SECRET).unwrap();
    let header = |h: &axum::http::HeaderMap, n: &str| h[n].to_str().unwrap().to_string();
    assert_eq!(
        header(&got[0].0, "webhook-id"),
        header(&got[1].0, "webhook-id")
    );
    let (headers, body) = &got[1];
    let ts: i64 = header(headers, "webhook-timestamp").parse().unwrap();
    assert!(tenure_core::webhook::verify(
        &key,
        &header(headers, "webhook-id"),
        ts,
        body.as_bytes(),
        &header(headers, "webhook-signature"),
        h.clock.now_ms() / 1000,
    ));
    // A body changed in transit does not verify.
    assert!(!tenure_core::webhook::verify(
        &key,
        &header(headers, "webhook-id"),
        ts,
        body.replace("mia", "eve").as_bytes(),
        &header(headers, "webhook-signature"),
        h.clock.now_ms() / 1000,
    ));
    let msg: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(msg["type"], "approval.requested");
    assert_eq!(msg["data"]["recipients"], serde_json::json!(["mia"]));
    assert_eq!(msg["data"]["event"]["entitlement"], "directory:reports");
}

#[tokio::test]
async fn a_webhook_without_its_secret_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("t.db")).await.unwrap();
    let config = Arc::new(config(
        "[notifications]\nwebhook_url = \"http://127.0.0.1:9/x\"\nsecret_env = \"TENURE_WEBHOOK_SECRET\"\n",
    ));
    let err = Engine::start(
        store,
        config,
        Arc::new(ManualClock::new(START)),
        EngineOptions::default(),
    )
    .await
    .err()
    .expect("refused");
    assert!(err.to_string().contains("TENURE_WEBHOOK_SECRET"), "{err}");
}

/// Waits until the person's grant of `entitlement` is in `state`.
async fn grant_reaches(
    h: &Harness,
    person: &str,
    entitlement: &str,
    state: GrantState,
) -> tenure_core::Grant {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(g) = h.grant(person, entitlement).await
            && g.state == state
        {
            return g;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{person}'s {entitlement} never became {state}: {:?}",
            h.grant(person, entitlement).await
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn dba(id: &str, department: &str) -> String {
    serde_json::json!({ "type": "hire", "person": {
        "id": id, "name": format!("N {id}"), "email": format!("{id}@example.com"),
        "worker_type": "employee", "manager": "mia", "department": department,
        "start_date": "2026-05-01",
    }})
    .to_string()
}

#[tokio::test]
async fn privileged_birthright_access_expires_and_comes_back_only_through_a_request() {
    let h = harness_full(
        config_with(
            "",
            &[(
                "dbas.toml",
                "entitlements = [\"db:prod-admin\"]\n[match]\ndepartment = [\"Databases\"]\n",
            )],
        ),
        None,
    )
    .await;
    let run = h.send(&dba("pia", "Databases")).await;
    h.reach(&run, RunState::AwaitingApproval).await;
    // The window starts when the grant is approved, not when it was planned.
    h.clock.advance(HOUR);
    let approval = h.approval_of_run(&run).await;
    for dba in ["dora", "dan"] {
        h.decide(&approval.id, dba, Verdict::Approve).await.unwrap();
    }
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    let g = grant_reaches(&h, "pia", "db:prod-admin", GrantState::Granted).await;
    assert_eq!(g.expires_at, Some(START + HOUR + 8 * HOUR), "{g:?}");
    let bound = h.audit("grant.time_bound").await;
    assert_eq!(bound.len(), 1, "{bound:#?}");
    assert_eq!(
        bound[0].reason,
        "privileged-risk access lasts at most 480 minutes"
    );

    // One millisecond early: still held. At the end of the window: revoked, audited.
    h.advance(8 * HOUR - 1).await;
    assert_eq!(
        h.grant("pia", "db:prod-admin").await.unwrap().state,
        GrantState::Granted
    );
    h.advance(1).await;
    let g = grant_reaches(&h, "pia", "db:prod-admin", GrantState::Revoked).await;
    assert_eq!(
        g.expires_at,
        Some(START + 9 * HOUR),
        "the record that it ran out stays"
    );
    let expired = h.audit("grant.expired").await;
    assert_eq!(expired.len(), 1, "{expired:#?}");
    assert!(
        expired[0].reason.contains("birthright dbas"),
        "{}",
        expired[0].reason
    );

    // The template still matches, but a later change of the person does not give it back.
    let mut transfer: serde_json::Value = serde_json::from_str(&dba("pia", "Databases")).unwrap();
    transfer["type"] = "transfer".into();
    transfer["person"]["title"] = "Senior DBA".into();
    let run = h.send(&transfer.to_string()).await;
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    let detail = h.engine.run_detail(&run).await.unwrap();
    assert!(
        detail
            .steps
            .iter()
            .all(|s| s.entitlement.as_deref() != Some("db:prod-admin")),
        "{:#?}",
        detail.steps
    );
    let note = detail.run.note.unwrap_or_default();
    assert!(note.contains("time-bound access ended at"), "{note}");
    assert_eq!(
        h.grant("pia", "db:prod-admin").await.unwrap().state,
        GrantState::Revoked
    );

    // A request brings it back, through the approvals, for a new window.
    let (_, run) = h
        .request("pia", "pia", "db:prod-admin", Some(2), false)
        .await
        .unwrap();
    h.reach(&run, RunState::AwaitingApproval).await;
    let approval = h.approval_of_run(&run).await;
    for who in ["mia", "dora", "dan"] {
        h.decide(&approval.id, who, Verdict::Approve).await.unwrap();
    }
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    let g = grant_reaches(&h, "pia", "db:prod-admin", GrantState::Granted).await;
    assert_eq!(g.expires_at, Some(h.clock.now_ms() + 2 * HOUR));
}

#[tokio::test]
async fn a_client_contract_bounds_engagement_access_and_a_new_engagement_starts_afresh() {
    let h = harness_full(
        config_from(
            &CONFIG.replace("id = \"acme\"\n", "id = \"acme\"\nmax_access_days = 30\n"),
            &[(
                "acme.toml",
                "entitlements = [\"crm:{client}\"]\n[match]\nengagement_role = [\"consultant\"]\n",
            )],
        ),
        None,
    )
    .await;
    let engagement = |id: &str| {
        serde_json::json!({ "type": "engagement_start", "person": { "id": "bob" },
            "engagement": { "id": id, "client": "acme", "role": "consultant" } })
        .to_string()
    };
    let run = h.send(&engagement("e1")).await;
    h.reach(&run, RunState::AwaitingApproval).await;
    let approval = h.approval_of_run(&run).await;
    h.decide(&approval.id, "carl", Verdict::Approve)
        .await
        .unwrap();
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    let g = grant_reaches(&h, "bob", "crm:acme", GrantState::Granted).await;
    let day = 24 * HOUR;
    assert_eq!(g.expires_at, Some(START + 30 * day), "{g:?}");
    h.advance(30 * day).await;
    grant_reaches(&h, "bob", "crm:acme", GrantState::Revoked).await;
    let bound = h.audit("grant.time_bound").await;
    assert_eq!(
        bound[0].reason,
        "client `acme` allows access for at most 30 days"
    );

    // A new engagement with the client is a new contract period: access again, bounded again.
    let run = h.send(&engagement("e2")).await;
    h.reach(&run, RunState::AwaitingApproval).await;
    let approval = h.approval_of_run(&run).await;
    h.decide(&approval.id, "carl", Verdict::Approve)
        .await
        .unwrap();
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    let g = grant_reaches(&h, "bob", "crm:acme", GrantState::Granted).await;
    assert_eq!(g.source_ref, "e2");
    assert_eq!(g.expires_at, Some(h.clock.now_ms() + 30 * day));
}

/// The base configuration with a consultant template for client access and a template that
/// gives the Databases department privileged access (which waits for its owners' approval).
fn lifecycle_config() -> Config {
    config_with(
        "",
        &[
            (
                "consultants.toml",
                "entitlements = [\"crm:{client}\"]\n[match]\nengagement_role = [\"consultant\"]\n",
            ),
            (
                "dbas.toml",
                "entitlements = [\"db:prod-admin\"]\n[match]\ndepartment = [\"Databases\"]\n",
            ),
        ],
    )
}

/// The run an `approval.withdrawn` entry names as its cause.
fn by_run(e: &tenure_core::audit::AuditEntry) -> String {
    let details: serde_json::Value = serde_json::from_str(&e.details).unwrap();
    details["by_run"].as_str().unwrap_or_default().to_string()
}

/// Waits until the person has no open run left.
async fn settled(h: &Harness, runs: &[&str]) {
    for r in runs {
        h.finish(r).await;
    }
}

#[tokio::test]
async fn an_engagement_ends_on_time_while_a_request_of_the_person_waits_for_approval() {
    let h = harness_full(lifecycle_config(), None).await;
    // bob consults for acme until 2026-05-30 (the client owner approves his access).
    let start = h
        .send(
            &serde_json::json!({ "type": "engagement_start", "person": { "id": "bob" },
                "engagement": { "id": "e1", "client": "acme", "role": "consultant",
                                "end_date": "2026-05-30" } })
            .to_string(),
        )
        .await;
    h.reach(&start, RunState::AwaitingApproval).await;
    let approval = h.approval_of_run(&start).await;
    h.decide(&approval.id, "carl", Verdict::Approve)
        .await
        .unwrap();
    assert_eq!(h.finish(&start).await, RunState::Succeeded);
    grant_reaches(&h, "bob", "crm:acme", GrantState::Granted).await;

    // He asks for reports access; his manager is away for days.
    let (request, run, waiting) = h.waiting_request("bob", "directory:reports", None).await;

    // The engagement's end date passes: nobody acts, and acme's access goes at once.
    let midnight_after = 1_780_185_600_000; // 2026-05-31T00:00:00Z
    h.advance(midnight_after - START).await;
    assert_eq!(h.audit("scheduler.engagement_end").await.len(), 1);
    let end_run = {
        let mut c = h.engine.store().reader().await.unwrap();
        let runs = tenure_store::list_runs(&mut c, None, Some("bob"), None, 10)
            .await
            .unwrap();
        runs.into_iter()
            .find(|r| r.kind == RunKind::EngagementEnd)
            .expect("the end's run")
            .id
    };
    assert_eq!(h.finish(&end_run).await, RunState::Succeeded);
    grant_reaches(&h, "bob", "crm:acme", GrantState::Revoked).await;
    assert!(h.memberships("crm", "bob").await.is_empty());

    // The request was not in the way and is not touched: it still waits, and is granted once
    // approved.
    assert_eq!(
        h.engine.run_detail(&run).await.unwrap().run.state,
        RunState::AwaitingApproval
    );
    assert_eq!(
        h.grant("bob", "directory:reports").await.unwrap().state,
        GrantState::AwaitingApproval
    );
    assert!(h.audit("approval.withdrawn").await.is_empty());
    h.decide(&waiting.id, "mia", Verdict::Approve)
        .await
        .unwrap();
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    grant_reaches(&h, "bob", "directory:reports", GrantState::Granted).await;
    assert_eq!(
        h.engine.request(&request).await.unwrap().request.state,
        RequestState::Approved
    );
    // Planned once: the end's run did not plan the waiting grant a second time.
    let end = h.engine.run_detail(&end_run).await.unwrap();
    assert!(
        end.steps
            .iter()
            .all(|s| s.entitlement.as_deref() != Some("directory:reports")),
        "{:#?}",
        end.steps
    );
}

#[tokio::test]
async fn a_transfer_out_of_the_template_withdraws_the_approval_its_grant_waited_for() {
    let h = harness_full(lifecycle_config(), None).await;
    let hire = h.send(&dba("pia", "Databases")).await;
    h.reach(&hire, RunState::AwaitingApproval).await;
    let approval = h.approval_of_run(&hire).await;
    assert_eq!(
        h.grant("pia", "db:prod-admin").await.unwrap().state,
        GrantState::AwaitingApproval
    );
    // One of the two owners approves; then pia moves to sales before the other does.
    h.decide(&approval.id, "dora", Verdict::Approve)
        .await
        .unwrap();
    let mut transfer: serde_json::Value = serde_json::from_str(&dba("pia", "Sales")).unwrap();
    transfer["type"] = "transfer".into();
    let transfer = h.send(&transfer.to_string()).await;
    assert_eq!(h.finish(&transfer).await, RunState::Succeeded);

    // The approval is withdrawn, with the reason and the run that caused it.
    let detail = h.engine.approval(&approval.id).await.unwrap();
    assert_eq!(detail.approval.state, ApprovalState::Withdrawn);
    assert_eq!(detail.approval.chain.state, ApprovalState::Withdrawn);
    assert!(h.engine.pending_approvals(None).await.unwrap().is_empty());
    let withdrawn = h.audit("approval.withdrawn").await;
    assert_eq!(withdrawn.len(), 1, "{withdrawn:#?}");
    assert_eq!(withdrawn[0].actor, "engine");
    assert_eq!(withdrawn[0].run_id.as_deref(), Some(hire.as_str()));
    assert_eq!(by_run(&withdrawn[0]), transfer);
    assert!(
        withdrawn[0].reason.contains(&transfer),
        "{}",
        withdrawn[0].reason
    );
    // Its timers go with it.
    for kind in [TimerKind::ApprovalEscalate, TimerKind::ApprovalDeadline] {
        let mut c = h.engine.store().reader().await.unwrap();
        let pending = tenure_store::timers_of_kind(&mut c, kind, TimerState::Pending)
            .await
            .unwrap();
        assert!(pending.iter().all(|t| t.subject != approval.id), "{kind}");
    }
    // The hire has nothing left to do: it ends, its waiting step cancelled.
    assert_eq!(h.finish(&hire).await, RunState::Cancelled);
    let steps = h.engine.run_detail(&hire).await.unwrap().steps;
    let grant = steps
        .iter()
        .find(|s| s.entitlement.as_deref() == Some("db:prod-admin"))
        .unwrap();
    assert_eq!(grant.state, tenure_core::run::StepState::Cancelled);
    assert!(h.grant("pia", "db:prod-admin").await.is_none());

    // Deciding it afterwards is refused and grants nothing.
    let late = h.decide(&approval.id, "dan", Verdict::Approve).await;
    match late {
        Err(EngineError::Conflict(m)) => assert!(m.contains("withdrawn"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.engine
            .approval(&approval.id)
            .await
            .unwrap()
            .decisions
            .len(),
        1
    );
    h.engine.wake();
    settled(&h, &[&hire, &transfer]).await;
    assert!(h.grant("pia", "db:prod-admin").await.is_none());
    assert!(h.memberships("db", "pia").await.is_empty());
}

#[tokio::test]
async fn an_expiry_and_later_runs_go_ahead_while_an_approval_waits() {
    let h = harness().await;
    h.granted_on_request("ann", "db:prod-admin", 2, &["mia", "dora", "dan"])
        .await;
    grant_reaches(&h, "ann", "db:prod-admin", GrantState::Granted).await;

    // A second request waits for its approvers.
    let (_, second, waiting) = h.waiting_request("ann", "crm:acme", None).await;

    // The first grant's window ends: revoked on time, though an approval is open.
    h.advance(2 * HOUR).await;
    grant_reaches(&h, "ann", "db:prod-admin", GrantState::Revoked).await;
    assert_eq!(h.audit("grant.expired").await.len(), 1);
    assert!(h.memberships("db", "ann").await.is_empty());
    // A transfer plans at once too, and the waiting request is left as it was.
    let transfer = h
        .send(r#"{"type":"transfer","person":{"id":"ann","title":"Lead"}}"#)
        .await;
    assert_eq!(h.finish(&transfer).await, RunState::Succeeded);
    assert_eq!(
        h.engine.run_detail(&second).await.unwrap().run.state,
        RunState::AwaitingApproval
    );
    for who in ["mia", "carl"] {
        h.decide(&waiting.id, who, Verdict::Approve).await.unwrap();
    }
    assert_eq!(h.finish(&second).await, RunState::Succeeded);
    grant_reaches(&h, "ann", "crm:acme", GrantState::Granted).await;
}

#[tokio::test]
async fn a_leave_withdraws_the_approvals_of_the_person_and_audits_it() {
    let h = harness().await;
    let (request, run, a) = h.waiting_request("ann", "crm:acme", None).await;
    let leave = h.send(r#"{"type":"leave","person":{"id":"ann"}}"#).await;
    assert_eq!(h.finish(&leave).await, RunState::Succeeded);
    assert_eq!(h.finish(&run).await, RunState::Cancelled);
    let detail = h.engine.approval(&a.id).await.unwrap();
    assert_eq!(detail.approval.state, ApprovalState::Withdrawn);
    assert_eq!(
        h.engine.request(&request).await.unwrap().request.state,
        RequestState::Withdrawn
    );
    let withdrawn = h.audit("approval.withdrawn").await;
    assert_eq!(withdrawn.len(), 1, "{withdrawn:#?}");
    assert_eq!(by_run(&withdrawn[0]), leave);
    assert!(matches!(
        h.decide(&a.id, "mia", Verdict::Approve).await,
        Err(EngineError::Conflict(_))
    ));
    // The deadline timer does not revive it.
    h.advance(4 * 24 * HOUR).await;
    assert_eq!(
        h.engine.approval(&a.id).await.unwrap().approval.state,
        ApprovalState::Withdrawn
    );
    assert!(h.audit("approval.expired").await.is_empty());
}

#[tokio::test]
async fn an_extension_is_approved_like_a_request_and_withdrawn_once_the_access_is_gone() {
    let h = harness().await;
    // A request's run waits for its approval; an extension's run has no step, and ends at
    // once, while its approval stays open.
    let approve_all = |run: String| {
        let h = &h;
        async move {
            h.finish_or_wait(&run).await;
            let a = h.approval_of_run(&run).await;
            for who in ["mia", "dora", "dan"] {
                h.decide(&a.id, who, Verdict::Approve).await.unwrap();
                if h.approval_of_run(&run).await.state != ApprovalState::Pending {
                    break;
                }
            }
            a
        }
    };
    let (_, run) = h
        .request("ann", "ann", "db:prod-admin", Some(1), false)
        .await
        .unwrap();
    approve_all(run.clone()).await;
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    let g = grant_reaches(&h, "ann", "db:prod-admin", GrantState::Granted).await;
    assert_eq!(g.expires_at, Some(START + HOUR));

    // Asked again while held: an extension, approved through the same chain, for a new window.
    h.clock.advance(HOUR / 2);
    let (ext, run) = h
        .request("ann", "ann", "db:prod-admin", Some(2), false)
        .await
        .unwrap();
    approve_all(run.clone()).await;
    h.finish(&run).await;
    let g = h.grant("ann", "db:prod-admin").await.unwrap();
    assert_eq!(
        (g.state, g.expires_at),
        (GrantState::Granted, Some(START + HOUR / 2 + 2 * HOUR))
    );
    assert_eq!(g.source_ref, ext);

    // Another extension, but ann leaves before it is decided: nothing is extended.
    let (ext2, run) = h
        .request("ann", "ann", "db:prod-admin", Some(2), false)
        .await
        .unwrap();
    h.finish_or_wait(&run).await;
    let a = h.approval_of_run(&run).await;
    let leave = h.send(r#"{"type":"leave","person":{"id":"ann"}}"#).await;
    assert_eq!(h.finish(&leave).await, RunState::Succeeded);
    grant_reaches(&h, "ann", "db:prod-admin", GrantState::Revoked).await;
    let mut refused = None;
    for who in ["mia", "dora", "dan"] {
        if let Err(e) = h.decide(&a.id, who, Verdict::Approve).await {
            refused = Some(e);
            break;
        }
    }
    assert!(
        matches!(&refused, Some(EngineError::Conflict(m)) if m.contains("was withdrawn")),
        "{refused:?}"
    );
    let withdrawn = h.audit("approval.withdrawn").await;
    assert!(
        withdrawn
            .iter()
            .any(|e| e.reason.contains("the access to extend is no longer held")),
        "{withdrawn:#?}"
    );
    assert_eq!(
        h.grant("ann", "db:prod-admin").await.unwrap().state,
        GrantState::Revoked
    );
    assert_ne!(
        h.engine.request(&ext2).await.unwrap().request.state,
        RequestState::Approved
    );
}

/// An approver who leaves hands their part of every pending approval to the first working
/// manager above them, as an escalation would, audited; someone who left decides nothing.
#[tokio::test]
async fn an_approver_who_leaves_hands_over_and_decides_nothing_more() {
    let h = harness().await;
    let (_, run, a) = h.waiting_request("ann", "db:prod-admin", None).await;
    let stages = |a: &ApprovalRow| -> Vec<Vec<String>> {
        a.chain.stages.iter().map(|s| s.approvers.clone()).collect()
    };
    assert_eq!(stages(&a), [vec!["mia"], vec!["dora", "dan"]]);
    assert_eq!(h.pending("mia").await, vec![a.id.clone()]);

    // mia (ann's manager) leaves: the ceo, above her, decides the manager stage.
    let leave = h.send(r#"{"type":"leave","person":{"id":"mia"}}"#).await;
    assert_eq!(h.finish(&leave).await, RunState::Succeeded);
    let a = h.approval_of_run(&run).await;
    assert_eq!(stages(&a), [vec!["ceo"], vec!["dora", "dan"]]);
    assert!(h.pending("mia").await.is_empty());
    assert_eq!(h.pending("ceo").await, vec![a.id.clone()]);
    let esc = h.audit("approval.escalated").await;
    assert_eq!(esc.len(), 1);
    assert_eq!(esc[0].actor, "engine");
    assert_eq!(esc[0].reason, "approver `mia` left; their part goes to ceo");
    assert!(matches!(
        h.decide(&a.id, "mia", Verdict::Approve).await,
        Err(EngineError::Forbidden(m)) if m.contains("terminated")
    ));
    h.decide(&a.id, "ceo", Verdict::Approve).await.unwrap();

    // dora, in the all-stage, leaves: the ceo stands in for her beside dan.
    let leave = h.send(r#"{"type":"leave","person":{"id":"dora"}}"#).await;
    assert_eq!(h.finish(&leave).await, RunState::Succeeded);
    let a = h.approval_of_run(&run).await;
    assert_eq!(stages(&a)[1], ["dan", "ceo"]);
    h.decide(&a.id, "dan", Verdict::Approve).await.unwrap();

    // The ceo leaves with nobody above: the stage keeps them, and what they decide is refused.
    let leave = h.send(r#"{"type":"leave","person":{"id":"ceo"}}"#).await;
    assert_eq!(h.finish(&leave).await, RunState::Succeeded);
    let esc = h.audit("approval.escalated").await;
    assert!(
        esc.last().unwrap().reason.contains("nobody above them"),
        "{esc:?}"
    );
    assert!(matches!(
        h.decide(&a.id, "ceo", Verdict::Approve).await,
        Err(EngineError::Forbidden(m)) if m.contains("`ceo` is terminated")
    ));
    let a = h.approval_of_run(&run).await;
    assert_eq!(a.state, ApprovalState::Pending);
    assert_eq!(
        h.grant("ann", "db:prod-admin").await.unwrap().state,
        GrantState::AwaitingApproval
    );
}

// ------------------------------------------------------------------ retention
// (here for this file's harness: an engine on a clock the test moves)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_old_payloads_of_ended_runs_only_and_audits_each_batch() {
    const DAY: i64 = 24 * HOUR;
    let h = harness_with("[retention]\nevent_payloads = \"30d\"\n", None).await;
    // The nine hires of the harness ended at START. A hire dated two months ahead keeps its run
    // pending, so its payload is still needed, however old the event gets.
    let later = chrono::DateTime::from_timestamp_millis(START + 60 * DAY)
        .unwrap()
        .to_rfc3339();
    let mut future: serde_json::Value =
        serde_json::from_str(&hire("zoe", Some("ceo"), None)).unwrap();
    future["effective_at"] = later.into();
    let pending = h.send(&future.to_string()).await;
    h.clock.set(START + 29 * DAY);
    let none = h.engine.apply_retention().await.unwrap();
    assert_eq!(
        none.event_payloads_dropped, 0,
        "nothing is past 30 days yet"
    );

    h.clock.set(START + 31 * DAY);
    let pass = h.engine.apply_retention().await.unwrap();
    assert_eq!(pass.event_payloads_dropped, 9);
    let stored = stored_events(&h).await;
    assert_eq!(stored.len(), 10);
    let mut dropped = Vec::new();
    for (run, e) in &stored {
        if *run == pending {
            assert_eq!(e.payload_dropped_at, None, "its run has not ended");
            assert!(e.body.contains("zoe@example.com"), "{}", e.body);
        } else {
            assert_eq!(e.payload_dropped_at, Some(START + 31 * DAY), "{e:?}");
            assert_eq!(e.body, "null");
            assert_eq!(
                e.body_hash.len(),
                64,
                "the hash stays: a retry is still recognised"
            );
            dropped.push(e.id.clone());
        }
    }
    dropped.sort();
    let audited = h.audit("retention.event_payloads_dropped").await;
    assert_eq!(audited.len(), 1, "one batch, one entry");
    let details: serde_json::Value = serde_json::from_str(&audited[0].details).unwrap();
    assert_eq!(details["events"], serde_json::json!(dropped));
    assert_eq!(details["received_before"], START + DAY);
    assert_eq!(audited[0].actor, "retention");

    // A second pass has nothing left to do.
    let again = h.engine.apply_retention().await.unwrap();
    assert_eq!(again.event_payloads_dropped, 0);
    assert_eq!(h.audit("retention.event_payloads_dropped").await.len(), 1);
}

/// Every run that has an event, with the event as stored.
async fn stored_events(h: &Harness) -> Vec<(String, tenure_store::EventRow)> {
    let mut c = h.engine.store().reader().await.unwrap();
    let runs = tenure_store::list_runs(&mut c, None, None, None, 1000)
        .await
        .unwrap();
    let mut out = Vec::new();
    for r in runs {
        if let Some(id) = &r.event_id {
            let e = tenure_store::get_event(&mut c, id).await.unwrap().unwrap();
            out.push((r.id.clone(), e));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retention_nothing_is_dropped() {
    let h = harness().await;
    h.clock.set(START + 10 * 365 * 24 * HOUR);
    let pass = h.engine.apply_retention().await.unwrap();
    assert_eq!(pass.event_payloads_dropped, 0);
    assert!(h.audit("retention.event_payloads_dropped").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_forgets_people_who_left_longer_ago_than_the_period() {
    const DAY: i64 = 24 * HOUR;
    let h = harness_with("[retention]\nforget_people = \"30d\"\n", None).await;
    let leave = h.send(r#"{"type":"leave","person":{"id":"dan"}}"#).await;
    assert_eq!(h.finish(&leave).await, RunState::Succeeded);

    h.clock.set(START + 29 * DAY);
    let none = h.engine.apply_retention().await.unwrap();
    assert_eq!(none.people_forgotten, 0, "dan left 29 days ago");

    h.clock.set(START + 31 * DAY);
    let pass = h.engine.apply_retention().await.unwrap();
    assert_eq!(pass.people_forgotten, 1, "dan alone: the rest still work");
    let mut c = h.engine.store().reader().await.unwrap();
    assert_eq!(
        tenure_store::get_person(&mut c, "dan").await.unwrap(),
        Some(tenure_core::Person::forgotten("dan"))
    );
    assert_eq!(
        tenure_store::forgotten_at(&mut c, "dan").await.unwrap(),
        Some(START + 31 * DAY)
    );
    assert_eq!(
        tenure_store::get_person(&mut c, "carl")
            .await
            .unwrap()
            .unwrap()
            .name,
        "N carl"
    );
    drop(c);
    let audited = h.audit("person.forgotten").await;
    assert_eq!(audited.len(), 1);
    assert_eq!(
        (audited[0].actor.as_str(), audited[0].person_id.as_deref()),
        ("retention", Some("dan"))
    );
    assert!(
        audited[0].reason.contains("30 days"),
        "{}",
        audited[0].reason
    );

    // Nothing left to forget; and a forget by hand of someone working is refused.
    assert_eq!(
        h.engine.apply_retention().await.unwrap().people_forgotten,
        0
    );
    let refused = h
        .engine
        .forget_person("carl", "admin", "asked")
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("is active"), "{refused}");
}

// ------------------------------------------------------------------------- access reviews

use tenure_core::review::{
    ApplyAt, CampaignDefinition, CampaignState, ItemOutcome, ReviewDecision, ReviewScope,
    ReviewerKind, SettledBy, Signal, WhenUndecided,
};
use tenure_engine::{DecideItems, OpenCampaign};

fn campaign(reviewer: ReviewerKind, scope: ReviewScope) -> CampaignDefinition {
    CampaignDefinition {
        scope,
        reviewer,
        team: None,
        fallback: None,
        duration_days: 14,
        reminder_days: vec![7],
        recurrence: None,
        when_undecided: WhenUndecided::Keep,
        apply: ApplyAt::Close,
        auto_close: true,
    }
}

fn only(entitlements: &[&str]) -> ReviewScope {
    ReviewScope {
        entitlements: entitlements.iter().map(|e| e.to_string()).collect(),
        ..Default::default()
    }
}

impl Harness {
    async fn open_review(&self, name: &str, def: CampaignDefinition) -> tenure_store::CampaignRow {
        self.engine
            .open_review(OpenCampaign {
                name: name.into(),
                definition: def,
                actor: "admin".into(),
            })
            .await
            .unwrap()
    }

    async fn items(&self, campaign: &str) -> Vec<tenure_store::ItemRow> {
        let mut c = self.engine.store().reader().await.unwrap();
        tenure_store::review_items(
            &mut c,
            &tenure_store::ItemFilter {
                campaign_id: campaign,
                limit: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
    }

    async fn item(&self, campaign: &str, person: &str, entitlement: &str) -> tenure_store::ItemRow {
        self.items(campaign)
            .await
            .into_iter()
            .find(|i| i.person_id == person && i.entitlement == entitlement)
            .unwrap_or_else(|| panic!("no item for {person} {entitlement}"))
    }

    async fn review(
        &self,
        campaign: &str,
        items: &[i64],
        actor: &str,
        decision: ReviewDecision,
        justification: Option<&str>,
    ) -> Result<Vec<tenure_store::ItemRow>, EngineError> {
        self.engine
            .decide_review(DecideItems {
                campaign_id: campaign.into(),
                items: items.to_vec(),
                decision,
                justification: justification.map(str::to_string),
                actor: actor.into(),
                admin: false,
            })
            .await
    }

    /// `person` holds `entitlement` through an approved request (approved by `approver`).
    async fn granted_by_request(&self, person: &str, entitlement: &str, approver: &str) {
        let (_, run, a) = self.waiting_request(person, entitlement, None).await;
        self.decide(&a.id, approver, Verdict::Approve)
            .await
            .unwrap();
        assert_eq!(self.finish(&run).await, RunState::Succeeded);
    }
}

#[tokio::test]
async fn a_review_revokes_what_reviewers_revoke_through_a_run_and_keeps_the_rest() {
    let h = harness().await;
    h.granted_by_request("ann", "directory:reports", "mia")
        .await;
    h.granted_by_request("bob", "directory:reports", "mia")
        .await;
    let c = h
        .open_review(
            "reports",
            campaign(
                ReviewerKind::Manager,
                only(&["directory:reports", "directory:staff"]),
            ),
        )
        .await;
    assert_eq!(c.state, CampaignState::Open);
    // Everyone's staff membership, and two reports.
    assert_eq!(c.items, 9 + 2);
    let ann = h.item(&c.id, "ann", "directory:reports").await;
    let bob = h.item(&c.id, "bob", "directory:reports").await;
    assert_eq!(ann.reviewer.as_deref(), Some("mia"), "the manager reviews");
    let ceo = h.item(&c.id, "ceo", "directory:staff").await;
    assert_eq!(ceo.reviewer, None, "nobody manages the CEO: admins decide");

    // Nobody reviews their own access, nor someone else's items.
    let own = h
        .review(&c.id, &[ann.seq], "ann", ReviewDecision::Keep, None)
        .await;
    assert!(
        matches!(own, Err(EngineError::Forbidden(ref m)) if m.contains("own access")),
        "{own:?}"
    );
    let other = h
        .review(&c.id, &[ann.seq], "bob", ReviewDecision::Keep, None)
        .await;
    assert!(matches!(other, Err(EngineError::Forbidden(_))), "{other:?}");
    // All or nothing: an item not mia's refuses the whole decision.
    let mixed = h
        .review(
            &c.id,
            &[ann.seq, ceo.seq],
            "mia",
            ReviewDecision::Revoke,
            None,
        )
        .await;
    assert!(matches!(mixed, Err(EngineError::Forbidden(_))), "{mixed:?}");
    assert_eq!(
        h.item(&c.id, "ann", "directory:reports").await.decision,
        None
    );

    let decided = h
        .review(
            &c.id,
            &[ann.seq],
            "mia",
            ReviewDecision::Revoke,
            Some("left the team"),
        )
        .await
        .unwrap();
    assert_eq!(decided[0].decided_by.as_deref(), Some("mia"));
    assert_eq!(
        h.review(&c.id, &[ann.seq], "mia", ReviewDecision::Keep, None)
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string(),
        format!("item {} was already decided (revoke) by `mia`", ann.seq)
    );
    // Revoking a template's access: flagged, not revoked in a loop.
    let staff = h.item(&c.id, "bob", "directory:staff").await;
    h.review(
        &c.id,
        &[bob.seq, staff.seq],
        "mia",
        ReviewDecision::Revoke,
        None,
    )
    .await
    .unwrap();
    // Nothing changes before the campaign closes.
    assert_eq!(
        h.grant("ann", "directory:reports").await.unwrap().state,
        GrantState::Granted
    );

    let closed = h.engine.close_review(&c.id, "admin").await.unwrap();
    assert_eq!(closed.state, CampaignState::Closed);
    assert_eq!(closed.decided, 3);
    let ann = h.item(&c.id, "ann", "directory:reports").await;
    assert_eq!(ann.outcome, Some(ItemOutcome::Revoked));
    assert_eq!(ann.settled_by, Some(SettledBy::Reviewer));
    let run = ann.run_id.clone().unwrap();
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    let detail = h.engine.run_detail(&run).await.unwrap();
    assert_eq!(detail.run.kind, RunKind::Review);
    assert_eq!(
        h.grant("ann", "directory:reports").await.unwrap().state,
        GrantState::Revoked
    );
    assert!(
        !h.memberships("directory", "ann")
            .await
            .contains(&"directory:reports".to_string())
    );
    let staff = h.item(&c.id, "bob", "directory:staff").await;
    assert_eq!(staff.outcome, Some(ItemOutcome::Flagged));
    assert_eq!(
        h.grant("bob", "directory:staff").await.unwrap().state,
        GrantState::Granted
    );
    let kept = h.item(&c.id, "dan", "directory:staff").await;
    assert_eq!(
        (kept.outcome, kept.settled_by),
        (Some(ItemOutcome::Kept), Some(SettledBy::Default))
    );
    assert_eq!(h.audit("review.decided").await.len(), 3);
    assert_eq!(h.audit("review.revoked").await.len(), 2);
    assert_eq!(h.audit("review.flagged").await.len(), 1);
    assert_eq!(h.audit("review.closed").await.len(), 1);
    // Closing twice changes nothing; deciding after the close is refused.
    assert!(matches!(
        h.engine.close_review(&c.id, "admin").await,
        Err(EngineError::Conflict(_))
    ));
    let late = h
        .review(&c.id, &[kept.seq], "ceo", ReviewDecision::Revoke, None)
        .await;
    assert!(matches!(late, Err(EngineError::Conflict(_))), "{late:?}");
}

#[tokio::test]
async fn reviewing_needs_a_justification_to_keep_privileged_access_and_delegates_stand_in() {
    let h = harness().await;
    h.granted_on_request("ann", "db:prod-admin", 8, &["mia", "dora", "dan"])
        .await;
    let mut def = campaign(ReviewerKind::Owner, only(&["db:prod-admin"]));
    def.apply = ApplyAt::Decision;
    let c = h.open_review("privileged", def).await;
    let item = h.item(&c.id, "ann", "db:prod-admin").await;
    assert_eq!(
        item.reviewer.as_deref(),
        Some("team:dba-team"),
        "the owning team reviews"
    );
    let bare = h
        .review(&c.id, &[item.seq], "dora", ReviewDecision::Keep, None)
        .await;
    assert!(
        matches!(bare, Err(EngineError::Invalid { ref field, .. }) if field == "justification"),
        "{bare:?}"
    );
    // A delegate of a team member decides for them; applied at once.
    h.engine
        .delegate("dora", "sub", START, START + 1000 * HOUR, "dora")
        .await
        .unwrap();
    let done = h
        .review(
            &c.id,
            &[item.seq],
            "sub",
            ReviewDecision::Revoke,
            Some("not needed"),
        )
        .await
        .unwrap();
    assert_eq!(done[0].decided_for.as_deref(), Some("dora"));
    assert_eq!(
        done[0].outcome,
        Some(ItemOutcome::Revoked),
        "applied on decision"
    );
    assert_eq!(
        h.finish(done[0].run_id.as_deref().unwrap()).await,
        RunState::Succeeded
    );
    assert_eq!(
        h.grant("ann", "db:prod-admin").await.unwrap().state,
        GrantState::Revoked
    );
}

#[tokio::test]
async fn an_undecided_review_closes_at_its_end_and_follows_recommendations_on_low_risk_only() {
    let h = harness().await;
    h.granted_by_request("ann", "directory:reports", "mia")
        .await;
    h.granted_on_request("bob", "db:prod-admin", 8, &["mia", "dora", "dan"])
        .await;
    let mut def = campaign(
        ReviewerKind::Manager,
        only(&["directory:reports", "db:prod-admin"]),
    );
    def.when_undecided = WhenUndecided::Recommendation;
    def.fallback = Some("olga".into());
    // Ann's leave is announced for later: her access is recommended for revocation.
    h.send(
        &serde_json::json!({"type": "leave", "effective_at": "2030-01-01T00:00:00Z",
            "person": {"id": "ann", "end_date": "2030-01-01"}})
        .to_string(),
    )
    .await;
    let c = h.open_review("ends", def).await;
    let ann = h.item(&c.id, "ann", "directory:reports").await;
    let rec = ann.recommendation.clone();
    let bob = h.item(&c.id, "bob", "db:prod-admin").await;
    // Nobody decides; the end comes.
    h.advance(14 * 24 * HOUR + 1).await;
    let mut r = h.engine.store().reader().await.unwrap();
    let closed = tenure_store::get_campaign(&mut r, &c.id)
        .await
        .unwrap()
        .unwrap();
    drop(r);
    assert_eq!(closed.state, CampaignState::Closed);
    assert_eq!(closed.closed_by.as_deref(), Some("scheduler"));
    let bob_after = h.item(&c.id, "bob", "db:prod-admin").await;
    assert_eq!(
        bob_after.outcome,
        Some(ItemOutcome::Kept),
        "privileged: never revoked on a recommendation alone ({:?})",
        bob.recommendation
    );
    let ann_after = h.item(&c.id, "ann", "directory:reports").await;
    match rec {
        Some(r) if r.decision == ReviewDecision::Revoke => {
            assert_eq!(ann_after.settled_by, Some(SettledBy::Recommendation));
            assert!(
                r.evidence.iter().any(|e| e.signal == Signal::Leaving),
                "{r:?}"
            );
        }
        other => panic!("ann is leaving: expected a revoke recommendation, got {other:?}"),
    }
}

#[tokio::test]
async fn a_review_with_an_unknown_team_or_entitlement_is_refused_and_nothing_is_stored() {
    let h = harness().await;
    let mut def = campaign(ReviewerKind::Team, only(&["directory:nope"]));
    def.team = Some("ghosts".into());
    let e = h
        .engine
        .open_review(OpenCampaign {
            name: "bad".into(),
            definition: def,
            actor: "admin".into(),
        })
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("ghosts") && text.contains("directory:nope"),
        "{text}"
    );
    let mut c = h.engine.store().reader().await.unwrap();
    assert!(
        tenure_store::list_campaigns(&mut c, None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_reviewer_who_leaves_hands_their_items_to_the_fallback() {
    let h = harness().await;
    h.granted_by_request("ann", "directory:reports", "mia")
        .await;
    let mut def = campaign(
        ReviewerKind::Manager,
        only(&["directory:reports", "directory:staff"]),
    );
    def.fallback = Some("olga".into());
    let c = h.open_review("handover", def).await;
    let ann = h.item(&c.id, "ann", "directory:reports").await;
    assert_eq!(ann.reviewer.as_deref(), Some("mia"));
    let olga = h.item(&c.id, "olga", "directory:staff").await;
    assert_eq!(olga.reviewer.as_deref(), Some("ceo"));
    let mia_own = h.item(&c.id, "mia", "directory:staff").await;
    let run = h
        .send(&serde_json::json!({"type": "leave", "person": {"id": "mia"}}).to_string())
        .await;
    assert_eq!(h.finish(&run).await, RunState::Succeeded);
    let ann = h.item(&c.id, "ann", "directory:reports").await;
    assert_eq!(
        ann.reviewer.as_deref(),
        Some("olga"),
        "the fallback takes over"
    );
    assert_eq!(
        h.item(&c.id, "mia", "directory:staff").await.reviewer,
        mia_own.reviewer,
        "items about the leaver stay with their reviewer"
    );
    assert_eq!(h.audit("review.reassigned").await.len(), 1);
    let gone = h
        .review(&c.id, &[ann.seq], "mia", ReviewDecision::Keep, None)
        .await;
    assert!(matches!(gone, Err(EngineError::Forbidden(_))), "{gone:?}");
    h.review(&c.id, &[ann.seq], "olga", ReviewDecision::Keep, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn reviewers_are_told_when_a_campaign_opens_and_reminded_before_its_end() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (rx, url) = receiver().await;
    let h = harness_with(
        &format!(
            "[notifications]\nwebhook_url = \"{url}\"\nsecret_env = \"TENURE_WEBHOOK_SECRET\"\n"
        ),
        Some(SECRET),
    )
    .await;
    let c = h
        .open_review(
            "staff",
            campaign(ReviewerKind::Manager, only(&["directory:staff"])),
        )
        .await;
    // Messages of `kind` delivered, by recipient list: retried until each arrives once.
    let delivered = |kind: &'static str, n: usize| {
        let rx = rx.clone();
        let h = &h;
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let mut seen = std::collections::BTreeMap::new();
                for (headers, body) in rx.got.lock().unwrap().iter() {
                    let msg: serde_json::Value = serde_json::from_str(body).unwrap();
                    if msg["type"] == kind {
                        let id = headers["webhook-id"].to_str().unwrap().to_string();
                        seen.insert(id, msg["data"].clone());
                    }
                }
                if seen.len() >= n {
                    return seen.into_values().collect::<Vec<_>>();
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{} {kind} of {n}",
                    seen.len()
                );
                h.advance(60_000).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    // Two reviewers: mia (ann, bob) and ceo (everyone else but the ceo, whom admins review).
    let opened = delivered("review.opened", 2).await;
    let mia = opened
        .iter()
        .find(|d| d["recipients"] == serde_json::json!(["mia"]))
        .unwrap_or_else(|| panic!("{opened:?}"));
    assert_eq!(mia["event"]["items"], 2);
    assert_eq!(mia["event"]["campaign_id"], c.id.as_str());
    // Seven days before the end, each reviewer with open items is reminded.
    h.advance(7 * 24 * HOUR).await;
    let reminded = delivered("review.reminder", 2).await;
    assert!(
        reminded
            .iter()
            .all(|d| d["event"]["open_items"].as_i64() > Some(0)),
        "{reminded:?}"
    );
}
