//! The tenure engine: takes lifecycle events in, plans them, and drives the resulting runs
//! through connectors until every step has succeeded, failed for good, or been compensated.
//!
//! Three loops share the work, each committing in batches (group commit):
//! - the **ingester** stores events (and plans those due now) many per transaction, and answers
//!   each submitter only after the transaction is on disk;
//! - the **dispatcher** plans due runs (future-dated events, runs that waited for an earlier run
//!   of the same person), claims ready steps most-urgent-first (leavers ahead of everyone) and
//!   hands them to connector calls, bounded per system and overall, behind a circuit breaker;
//! - the **completer** records call outcomes, schedules retries with backoff and jitter,
//!   advances each run system by system, phase by phase, and writes the audit entries, many per
//!   transaction.
//!
//! Invariant: every state change and its audit entry share one transaction; a crash at any
//! point leaves either the old or the new state, and running steps are retried with the same
//! operation id on restart, which connectors answer as "already done".
//!
//! The files form layers, each importing only those under it (ARCHITECTURE.md lists them;
//! `tests/layers.rs` fails on an import cycle): the shared context and messages, then the
//! writers inside a transaction (timers, progress, dispatch), the
//! approval gate, planning, the loops and commands, the scheduler, and this facade on top.

mod access;
mod approvals;
mod checkpoints;
mod clock;
mod context;
mod dispatch;
mod drift;
mod error;
mod facts;
mod gates;
mod ingest;
mod messages;
mod planning;
mod progress;
mod reconcile;
mod retention;
mod reviews;
mod scheduler;
mod search_index;
mod statistics;
mod timers;
mod worker;

pub use approvals::{ApprovalDetail, NewRequest, RequestAccepted, RequestDetail};
pub use checkpoints::{CheckpointError, CheckpointWriter, Round, Sink};
pub use clock::{Clock, ManualClock, SystemClock};
pub use context::{EngineOptions, Rules};
pub use drift::ReconcileRequest;
pub use error::{EngineError, Result};
pub use messages::{IngestOutcome, Planning, RunFinished, Submission};
pub use planning::RunDetail;
pub use reconcile::{
    GroupWhatIf, MemberChange, NotPlanned, PersonPlan, Reloaded, WhatIf, groups_transfer, what_if,
    what_if_event, what_if_group,
};
pub use retention::{RetentionPass, forget_person};
pub use reviews::{DecideItems, MAX_DECISION_ITEMS, MAX_JUSTIFICATION, OpenCampaign};
/// The policy crate, so callers can load the policy set they start the engine with.
pub use tenure_policy;

use context::{Inner, Lane, SystemHandle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tenure_connectors::Connector;
use tenure_connectors::ldap::LdapConnector;
use tenure_connectors::manual::{ManualConnector, ManualSettings, NowFn};
use tenure_connectors::postgres::PostgresConnector;
use tenure_connectors::sandbox::{SandboxHub, SandboxSettings};
use tenure_connectors::webhook::WebhookConnector;
use tenure_core::breaker::{Breaker, CircuitState};
use tenure_core::config::Config;
use tenure_core::health::{HealthStatus, SystemHealth};
use tenure_core::run::Priority;
use tenure_policy::PolicyEngine;
use tenure_store::Store;
use tenure_store::turns::Turns;
use tokio::sync::{Notify, broadcast, mpsc, watch};

/// The running engine: cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

/// A target system's state for `GET /api/v1/systems`.
#[derive(Debug, Clone)]
pub struct SystemStatus {
    /// System id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Connector kind.
    pub connector: String,
    /// Ok, degraded or down, since when, and the last error.
    pub health: HealthStatus,
    /// The circuit breaker.
    pub circuit: CircuitState,
    /// Calls in flight now.
    pub in_flight: usize,
    /// Calls waiting for one of the system's `max_concurrency` slots (a leaver's go first).
    pub queued: usize,
    /// Connector figures (the sandbox's call and change counters).
    pub stats: Option<serde_json::Value>,
}

/// A system's circuit and health as the engine last saw them, without asking the system.
#[derive(Debug, Clone)]
pub struct SystemCircuit {
    /// System id.
    pub id: String,
    /// The circuit breaker.
    pub circuit: CircuitState,
    /// Ok, degraded or down, since when, and the last error.
    pub health: HealthStatus,
}

impl Engine {
    /// Builds connectors for every configured system and starts the engine's loops, without
    /// policy: every grant is allowed. See [`Engine::start_with_policy`].
    pub async fn start(
        store: Store,
        config: Arc<Config>,
        clock: Arc<dyn Clock>,
        options: EngineOptions,
    ) -> Result<Engine> {
        let policy = Arc::new(PolicyEngine::allow_all());
        Engine::start_with_policy(store, config, policy, clock, options).await
    }

    /// Like [`Engine::start`], with a policy set (loaded against the same `config`) that
    /// authorizes every grant before it becomes a step.
    pub async fn start_with_policy(
        store: Store,
        config: Arc<Config>,
        policy: Arc<PolicyEngine>,
        clock: Arc<dyn Clock>,
        options: EngineOptions,
    ) -> Result<Engine> {
        options.validate()?;
        let sandbox = SandboxHub::start(store.clone())
            .await
            .map_err(EngineError::Store)?;
        let mut systems = HashMap::new();
        let started_ms = clock.now_ms();
        let now: NowFn = {
            let clock = clock.clone();
            Arc::new(move || clock.now_ms())
        };
        for s in config.systems.values() {
            let bad = |e: String| EngineError::Config(format!("system `{}`: {e}", s.id));
            let connector: Arc<dyn Connector> = match s.connector.as_str() {
                "sandbox" => {
                    let settings = SandboxSettings::from_map(&s.settings).map_err(bad)?;
                    Arc::new(sandbox.connector(&s.id, settings))
                }
                "postgres" => Arc::new(PostgresConnector::from_map(&s.settings).map_err(bad)?),
                "ldap" => Arc::new(LdapConnector::from_map(&s.settings).map_err(bad)?),
                "webhook" => Arc::new(
                    WebhookConnector::from_map(&s.id, &s.settings, store.clone(), now.clone())
                        .map_err(bad)?,
                ),
                "manual" => {
                    let settings = ManualSettings::from_map(&s.settings).map_err(bad)?;
                    Arc::new(ManualConnector::new(
                        store.clone(),
                        &s.id,
                        settings,
                        now.clone(),
                    ))
                }
                "scim" => Arc::new(
                    tenure_connectors::scim::ScimSettings::from_map(&s.settings)
                        .and_then(|c| tenure_connectors::scim::ScimConnector::new(&s.id, c))
                        .map_err(|e| EngineError::Config(format!("system `{}`: {e}", s.id)))?,
                ),
                other => {
                    return Err(EngineError::Config(format!(
                        "system `{}`: unknown connector `{other}`",
                        s.id
                    )));
                }
            };
            systems.insert(
                s.id.clone(),
                SystemHandle {
                    connector,
                    // An eighth of a system's calls (rounded down) is kept for leavers'
                    // steps: under a backlog of hires, a leaver's call seldom waits for a slot.
                    permits: Arc::new(Turns::with_reserve(
                        s.max_concurrency as usize,
                        s.max_concurrency as usize / 8,
                    )),
                    breaker: Mutex::new(Breaker::new(
                        config.engine.breaker_failure_threshold,
                        config.engine.breaker_open_ms,
                    )),
                    health: Mutex::new(SystemHealth::new(started_ms)),
                },
            );
        }
        let webhook_key = match (&config.notifications.webhook_url, &options.webhook_secret) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(EngineError::Config(format!(
                    "notifications: the webhook secret is missing: set the environment variable {}",
                    config
                        .notifications
                        .secret_env
                        .as_deref()
                        .unwrap_or("named by secret_env")
                )));
            }
            (Some(_), Some(secret)) => Some(
                tenure_core::webhook::secret_key(secret)
                    .map_err(|e| EngineError::Config(format!("notifications: {e}")))?,
            ),
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| EngineError::Config(format!("notifications: HTTP client: {e}")))?;
        let (urgent_intake, urgent_intake_rx) = mpsc::channel(4096);
        let (normal_intake, normal_intake_rx) = mpsc::channel(4096);
        let (outcome_tx, outcome_rx) = mpsc::channel(8192);
        let (urgent_tx, urgent_rx) = mpsc::channel(4096);
        let (renew_tx, renew_rx) = mpsc::channel(16);
        let (urgent_renew_tx, urgent_renew_rx) = mpsc::channel(16);
        let (finished, _) = broadcast::channel(16_384);
        let (shutdown, _) = watch::channel(false);
        let seed = options
            .seed
            .unwrap_or_else(|| rand::RngCore::next_u64(&mut StdRng::from_os_rng()));
        let inner = Arc::new(Inner {
            store,
            rules: RwLock::new(Arc::new(Rules {
                config,
                policy,
                label: "as started".into(),
            })),
            reloading: tokio::sync::Mutex::new(0),
            systems,
            clock,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            options,
            wake: Arc::new(Notify::new()),
            timer_wake: Arc::new(Notify::new()),
            firing: tokio::sync::Mutex::new(()),
            http,
            webhook_key,
            in_flight: AtomicUsize::new(0),
            urgent_in_flight: AtomicUsize::new(0),
            finished,
            urgent_intake,
            normal_intake,
            intake_queued: Default::default(),
            urgent_lane: Lane {
                outcomes: urgent_tx,
                renew: urgent_renew_tx,
            },
            normal_lane: Lane {
                outcomes: outcome_tx,
                renew: renew_tx,
            },
            held: Mutex::new(HashMap::new()),
            shutdown,
            circuits_closed: Mutex::new(Vec::new()),
            reconcile_wake: Notify::new(),
        });
        worker::recover(&inner).await?;
        // The urgent lane's loops run on the store's urgent thread when it has one.
        let store = &inner.store;
        let tasks = vec![
            store.spawn(
                Priority::Urgent,
                ingest::run(inner.clone(), urgent_intake_rx),
            ),
            tokio::spawn(ingest::run(inner.clone(), normal_intake_rx)),
            tokio::spawn(worker::dispatcher(inner.clone())),
            store.spawn(
                Priority::Urgent,
                worker::completer(inner.clone(), Priority::Urgent, urgent_rx, urgent_renew_rx),
            ),
            tokio::spawn(worker::completer(
                inner.clone(),
                Priority::Normal,
                outcome_rx,
                renew_rx,
            )),
            tokio::spawn(scheduler::run(inner.clone())),
            tokio::spawn(drift::run(inner.clone())),
            tokio::spawn(retention::run(inner.clone())),
            tokio::spawn(statistics::run(inner.clone())),
            tokio::spawn(search_index::run(inner.clone())),
        ];
        Ok(Engine {
            inner,
            tasks: Arc::new(Mutex::new(tasks)),
        })
    }

    /// The store the engine runs on.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.inner.rules().config.clone()
    }

    /// The policy set in force.
    pub fn policy(&self) -> Arc<PolicyEngine> {
        self.inner.rules().policy.clone()
    }

    /// The configuration and policy in force, together.
    pub fn rules(&self) -> Arc<Rules> {
        self.inner.rules()
    }

    /// Replaces the configuration and policy (already validated together) in one swap: plans
    /// made from now on use the new rules, plans already stored are not touched. Then every
    /// person whose access the new rules change gets a `reconcile` run, which carries out
    /// exactly what [`Engine::what_if`] showed for them. Systems cannot change while running
    /// (their connectors are built at start): a reload that changes them is refused and the old
    /// rules stay.
    pub async fn reload(
        &self,
        config: Config,
        policy: PolicyEngine,
        actor: &str,
    ) -> Result<reconcile::Reloaded> {
        reconcile::reload(&self.inner, config, policy, actor).await
    }

    /// What the given rules would do to everyone's access, without executing or storing
    /// anything: every grant, revoke and account change per person, with policy's reasons.
    /// `limit` caps how many people's plans are listed (the totals count everyone).
    pub async fn what_if(&self, rules: &Rules, limit: usize) -> Result<reconcile::WhatIf> {
        let now = self.inner.clock.now_ms();
        let in_force = self.inner.rules();
        reconcile::what_if(&self.inner.store, rules, Some(&in_force), now, limit).await
    }

    /// What one event would do, without storing it or anything else: the person's plan with
    /// policy's reasons, as the engine would plan it now.
    pub async fn what_if_event(
        &self,
        event: &tenure_core::event::EventInput,
    ) -> Result<reconcile::WhatIf> {
        let now = self.inner.clock.now_ms();
        reconcile::what_if_event(&self.inner.store, &self.inner.rules(), event, now).await
    }

    /// What changing an identity provider group's members would do, without storing anything;
    /// see [`what_if_group`].
    pub async fn what_if_group(
        &self,
        group: &str,
        change: &MemberChange,
        limit: usize,
    ) -> Result<GroupWhatIf> {
        let now = self.inner.clock.now_ms();
        reconcile::what_if_group(
            &self.inner.store,
            &self.inner.rules(),
            group,
            change,
            now,
            limit,
        )
        .await
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Stores an event durably and starts its run; see [`Submission`].
    pub async fn submit(&self, submission: Submission) -> Result<IngestOutcome> {
        ingest::submit(&self.inner, submission).await
    }

    /// Whether each event names only people and clients tenure knows, as [`Engine::submit`]
    /// will judge it when they are submitted in turn (see [`tenure_core::known`]), without
    /// storing anything: for a front end that refuses a whole payload when one of its events
    /// would be refused.
    pub async fn vet(
        &self,
        events: &[&tenure_core::event::EventInput],
    ) -> Result<Vec<Result<(), tenure_core::event::EventError>>> {
        let mut c = self.inner.store.reader().await?;
        let config = self.inner.rules().config.clone();
        ingest::vet(&mut c, &config, events, tenure_core::known::Batch::InTurn).await
    }

    /// Stores events inside the caller's transaction, exactly as [`Engine::submit`] would
    /// (idempotency keys, runs, audit, and with [`Planning::InTransaction`] planning what is
    /// due), so that a change and the events it causes commit together: a front end with a
    /// write transaction of its own (the SCIM server) needs no outbox and no second commit.
    /// The engine looks for new work once `tx` is committed.
    pub async fn submit_in(
        &self,
        tx: &mut tenure_store::Tx,
        submissions: &[Submission],
        planning: Planning,
    ) -> Result<Vec<IngestOutcome>> {
        let now = self.inner.clock.now_ms();
        let subs: Vec<(&Submission, i64)> = submissions.iter().map(|s| (s, now)).collect();
        let outcomes = ingest::store_events(&self.inner, tx, &subs, now, planning).await?;
        let wake = self.inner.wake_handle();
        tx.after_commit(move || wake.notify_one());
        Ok(outcomes)
    }

    /// Notice of every run that ends from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RunFinished> {
        self.inner.finished.subscribe()
    }

    /// Looks for due work and due timers now (after the clock moved, in tests).
    pub fn wake(&self) {
        self.inner.wake_all();
    }

    /// Asks for access on a person's behalf; see [`NewRequest`]. The run's grant waits for
    /// its approvals (none for break-glass).
    pub async fn request_access(&self, request: NewRequest) -> Result<RequestAccepted> {
        approvals::request_access(&self.inner, request).await
    }

    /// An access request with its approvals and their decisions.
    pub async fn request(&self, id: &str) -> Result<RequestDetail> {
        approvals::request_detail(&self.inner, id).await
    }

    /// The approvals `person` may decide now (every pending one for `None`).
    pub async fn pending_approvals(
        &self,
        person: Option<&str>,
    ) -> Result<Vec<tenure_store::ApprovalRow>> {
        approvals::pending_for(&self.inner, person).await
    }

    /// An approval with its decisions.
    pub async fn approval(&self, id: &str) -> Result<ApprovalDetail> {
        approvals::detail(&self.inner, id).await
    }

    /// Records `actor`'s decision (a person id) on an approval.
    pub async fn decide_approval(
        &self,
        id: &str,
        actor: &str,
        verdict: tenure_core::approval::Verdict,
        comment: &str,
    ) -> Result<ApprovalDetail> {
        approvals::decide(&self.inner, id, actor, verdict, comment).await
    }

    /// Opens an access review campaign: its items are the grants in scope held now.
    pub async fn open_review(&self, req: OpenCampaign) -> Result<tenure_store::CampaignRow> {
        reviews::open(&self.inner, req).await
    }

    /// Records a reviewer's decision on items of an open campaign (all of them or none).
    pub async fn decide_review(&self, d: DecideItems) -> Result<Vec<tenure_store::ItemRow>> {
        reviews::decide(&self.inner, d).await
    }

    /// Closes an open campaign and applies its results (`revoke`s become runs).
    pub async fn close_review(&self, id: &str, actor: &str) -> Result<tenure_store::CampaignRow> {
        reviews::close(&self.inner, id, actor).await
    }

    /// `delegator` names `delegate` to decide their approvals from `starts_at` until `ends_at`.
    pub async fn delegate(
        &self,
        delegator: &str,
        delegate: &str,
        starts_at: i64,
        ends_at: i64,
        actor: &str,
    ) -> Result<tenure_store::DelegationRow> {
        approvals::delegate(&self.inner, delegator, delegate, starts_at, ends_at, actor).await
    }

    /// Withdraws a delegation from now on, audited with `actor`.
    pub async fn revoke_delegation(
        &self,
        id: &str,
        actor: &str,
    ) -> Result<tenure_store::DelegationRow> {
        approvals::revoke_delegation(&self.inner, id, actor).await
    }

    /// Renews now the leases of this process's in-flight steps that are a third or more used,
    /// without waiting for the completers' own ticks (every third of `lease_ms`); returns how
    /// many were renewed. A step another instance took back is not renewed. For tests and tools.
    pub async fn renew_leases(&self) -> Result<usize> {
        let mut renewed = 0;
        // Each completer renews the leases of the steps it records.
        for priority in [Priority::Urgent, Priority::Normal] {
            let (reply, answer) = tokio::sync::oneshot::channel();
            self.inner
                .lane(priority)
                .renew
                .send(reply)
                .await
                .map_err(|_| EngineError::ShuttingDown)?;
            renewed += answer.await.map_err(|_| EngineError::ShuttingDown)??;
        }
        Ok(renewed)
    }

    /// Fires the timers due now and sends due notifications, without waiting for the
    /// scheduler's loop; returns how many timers fired. For tests and benchmarks.
    pub async fn fire_due_timers(&self) -> Result<usize> {
        let now = self.inner.clock.now_ms();
        let mut total = 0;
        loop {
            let n = scheduler::fire_due(&self.inner, now).await?;
            total += n;
            if n == 0 {
                break;
            }
        }
        scheduler::deliver(&self.inner, now).await?;
        Ok(total)
    }

    /// Reconciles one system now (see `docs/reconciliation.md`): compares what it holds with
    /// tenure's records, records the findings, and corrects what its settings say to. Returns
    /// once it has ended; the runs it scheduled go on.
    pub async fn reconcile(&self, request: ReconcileRequest) -> Result<tenure_store::ReconRow> {
        drift::reconcile(&self.inner, request).await
    }

    /// Starts reconciling one system and returns at once with the reconciliation `running`;
    /// it goes on in a task of its own (follow it with `tenure_store::get_reconciliation`).
    pub async fn start_reconcile(
        &self,
        request: ReconcileRequest,
    ) -> Result<tenure_store::ReconRow> {
        drift::spawn(&self.inner, request).await
    }

    /// Reconciles now every system whose `reconcile.every` has passed since its last
    /// reconciliation began, and those whose circuit closed again; returns what ended. The
    /// reconciler's loop calls this; tests call it with a manual clock.
    pub async fn reconcile_due(&self) -> Result<Vec<tenure_store::ReconRow>> {
        drift::due(&self.inner).await
    }

    /// A run with its steps.
    pub async fn run_detail(&self, run_id: &str) -> Result<RunDetail> {
        planning::run_detail(&self.inner, run_id).await
    }

    /// Cancels a run: stops its pending steps and undoes the steps already done.
    pub async fn cancel_run(&self, run_id: &str, actor: &str) -> Result<RunDetail> {
        planning::cancel_run(&self.inner, run_id, actor).await?;
        self.wake();
        self.run_detail(run_id).await
    }

    /// Runs a `[retention]` pass now (the engine also runs one at start and every hour): what
    /// is past its period by the engine's clock is dropped, each batch audited.
    pub async fn apply_retention(&self) -> Result<RetentionPass> {
        retention::pass(&self.inner).await
    }

    /// Forgets a person who has left (`tenure forget`, `POST /api/v1/people/{id}/forget`):
    /// deletes the key their personal data is sealed with and leaves a tombstone, audited as
    /// `person.forgotten`. `NotFound` for an unknown person; `Conflict` while they have not
    /// left, still hold access, have a run going, or were forgotten before.
    pub async fn forget_person(
        &self,
        person: &str,
        actor: &str,
        reason: &str,
    ) -> Result<tenure_store::Erased> {
        retention::forget(&self.inner, person, actor, reason).await
    }

    /// Retries a failed run's failed steps with fresh attempts.
    pub async fn retry_run(&self, run_id: &str, actor: &str) -> Result<RunDetail> {
        planning::retry_run(&self.inner, run_id, actor).await?;
        self.wake();
        self.run_detail(run_id).await
    }

    /// Every configured system with its health, circuit and counters. Asks each connector's
    /// health check, whose failure makes the system `down`.
    pub async fn systems(&self) -> Vec<SystemStatus> {
        let mut out = Vec::new();
        for s in self.inner.rules().config.systems.values() {
            let h = &self.inner.systems[&s.id];
            let probe = h.connector.health().await.map_err(|e| e.to_string());
            let circuit = h.breaker.lock().expect("breaker lock").state();
            let health = {
                let mut health = h.health.lock().expect("health lock");
                let probe = probe.as_ref().map(|_| ()).map_err(String::as_str);
                health.on_probe(self.inner.clock.now_ms(), probe, circuit);
                health.status()
            };
            let stats = h.connector.stats().await;
            out.push(SystemStatus {
                id: s.id.clone(),
                name: s.name.clone(),
                connector: s.connector.clone(),
                health,
                circuit,
                in_flight: s.max_concurrency as usize - h.permits.free(),
                queued: h.permits.waiting(),
                stats,
            });
        }
        out
    }

    /// Every configured system's circuit and health as last seen, without calling anything:
    /// cheap enough for every metrics scrape.
    pub fn circuits(&self) -> Vec<SystemCircuit> {
        let now = self.inner.clock.now_ms();
        let mut out: Vec<SystemCircuit> = self
            .inner
            .systems
            .iter()
            .map(|(id, h)| {
                let circuit = h.breaker.lock().expect("breaker lock").state();
                let mut health = h.health.lock().expect("health lock");
                health.on_circuit(now, circuit);
                SystemCircuit {
                    id: id.clone(),
                    circuit,
                    health: health.status(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// The connector of a system, for tests and reconciliation.
    pub fn connector(&self, system: &str) -> Option<Arc<dyn Connector>> {
        self.inner.systems.get(system).map(|h| h.connector.clone())
    }

    /// Steps in flight now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Relaxed)
            + self.inner.urgent_in_flight.load(Ordering::Relaxed)
    }

    /// Stops taking new work, lets calls in flight finish and record, then stops the loops.
    pub async fn shutdown(&self) {
        // `send` would drop the value when no task has subscribed yet; this always stores it.
        self.inner.shutdown.send_replace(true);
        self.inner.wake.notify_waiters();
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().expect("task list lock"));
        for t in tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "engine task ended abnormally");
            }
        }
    }
}
