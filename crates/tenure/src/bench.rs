//! `tenure bench`: the engine in process against zero-latency sandbox systems.
//!
//! N hires (eight entitlements each over four systems) are sent as fast as the engine takes
//! them; once half are in, the leaves of the earliest hires are sent among the rest. Figures:
//! steps per second over the whole run, and time-to-provision and time-to-revoke percentiles
//! (event received to last step done).
//!
//! With `--faults`, every system fails 30 % of calls before acting and 5 % after acting with no
//! answer (a timeout); the figures then add whether everything converged, how often each
//! circuit opened and closed, and whether anything was done twice.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tenure_core::audit::AuditAction;
use tenure_core::config::{Config, SourceFile};
use tenure_core::event::parse_event;
use tenure_core::planner::Action;
use tenure_core::run::{RunKind, RunState};
use tenure_engine::{Engine, EngineOptions, IngestOutcome, Submission, SystemClock};
use tenure_store::Store;

/// Options of `tenure bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// How many hires.
    #[arg(long, default_value_t = 10_000)]
    hires: usize,
    /// How many leaves, sent while hires are still flowing.
    #[arg(long, default_value_t = 1_000)]
    leaves: usize,
    /// Send the leaves spread evenly among this many of the hires that follow the first half
    /// (all of them by default). With `--leaves-among 1000` the 1,000 leaves go one for one
    /// with the next 1,000 hires: a burst of leaves that compete with each other.
    #[arg(long)]
    leaves_among: Option<usize>,
    /// Database URL; a fresh SQLite file in a temporary folder by default.
    #[arg(long)]
    database: Option<String>,
    #[command(flatten)]
    limits: crate::EngineLimits,
    /// Each system's `max_concurrency`: the calls it is sent at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    system_concurrency: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Run the audit checkpoint writer beside the engine, signing as often as it can (a
    /// checkpoint whenever the head moved, checked every second) into a file sink: compare
    /// with a run without it for the overhead of checkpoints.
    #[arg(long, conflicts_with_all = ["expiry", "scim"])]
    checkpoints: bool,
    /// Store personal data in clear, as without a master key, instead of sealed under a fresh
    /// one as `tenure serve` does: compare with a run without it for the overhead of
    /// encryption.
    #[arg(long)]
    plain: bool,
    /// Measure expiry precision instead: `--grants` time-bound grants expiring within the same
    /// minute, and how late each is revoked (p99 target: under 5 s).
    #[arg(long)]
    expiry: bool,
    /// How many time-bound grants for `--expiry`.
    #[arg(long, default_value_t = 10_000)]
    grants: usize,
    /// Measure the SCIM server instead: substring filters and a large group PATCH with
    /// `--users` users and `--groups` groups stored (targets: filter p99 under 20 ms, PATCH
    /// under 1 s).
    #[arg(long, conflicts_with = "expiry")]
    scim: bool,
    /// How many users `--scim` loads.
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// How many groups `--scim` loads (each user is a member of two).
    #[arg(long, default_value_t = 10_000)]
    groups: usize,
    /// How many requests `--scim` times per filter.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// How many members one `--scim` PATCH adds.
    #[arg(long, default_value_t = 5_000)]
    members: usize,
    /// How many PATCH requests `--scim` times (each on a fresh group).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Inject faults: every system fails 30 % of calls before acting and 5 % after acting with
    /// no answer; report convergence, circuit openings and closings, and anything done twice.
    #[arg(long, conflicts_with_all = ["expiry", "scim"])]
    faults: bool,
    /// Measure a single leave on an idle engine instead: `--leaves` people are hired, then
    /// their leaves go one at a time, each once the one before has ended (p99 target: under
    /// 10 ms).
    #[arg(long, conflicts_with_all = ["expiry", "scim", "faults", "checkpoints"])]
    idle: bool,
    /// Measure reconciliation instead: one sandbox system of `--accounts` accounts with
    /// `--memberships` memberships each, against as many people, one in a hundred of each kind
    /// drifted (target: 1,000,000 accounts and 5,000,000 memberships in under 10 s).
    #[arg(long, conflicts_with_all = ["expiry", "scim", "faults", "checkpoints", "idle"])]
    reconcile: bool,
    /// How many accounts (and people) `--reconcile` seeds.
    #[arg(long, default_value_t = 1_000_000)]
    accounts: usize,
    /// How many memberships per account `--reconcile` seeds.
    #[arg(long, default_value_t = 5)]
    memberships: usize,
    /// With `--reconcile`: a tenure.toml naming a real system (LDAP, PostgreSQL, SCIM) to
    /// reconcile instead of the sandbox. Its accounts and memberships are made through the
    /// connector before the pass and deleted after it.
    #[arg(long, requires_all = ["reconcile", "system"], value_name = "FILE")]
    target: Option<std::path::PathBuf>,
    /// With `--target`: the system of that file to reconcile.
    #[arg(long, requires = "target", value_name = "ID")]
    system: Option<String>,
    /// Measure an access review instead: `--people` people holding `--grants-each` grants
    /// each, a campaign opened over all of them (target: 100,000 x 10 in under 5 s), a
    /// reviewer's page of items timed over HTTP `--requests` times (target: under 50 ms), a
    /// bulk decision and the close.
    #[arg(long, conflicts_with_all = ["expiry", "scim", "faults", "checkpoints", "idle", "reconcile"])]
    reviews: bool,
    /// How many people `--reviews` seeds.
    #[arg(long, default_value_t = 100_000)]
    people: usize,
    /// How many grants each person holds for `--reviews`.
    #[arg(long, default_value_t = 10)]
    grants_each: usize,
}

/// `--faults`' injected failures: 35 % of calls fail, a seventh of those (5 % of all calls)
/// after the system acted, with no answer.
const FAULT_RATE: f64 = 0.35;
const FAULT_TIMEOUT_SHARE: f64 = 1.0 / 7.0;

/// The bench's systems.
const SYSTEMS: [&str; 4] = ["directory", "chat", "crm", "ticketing"];

/// Four zero-latency sandbox systems, two entitlements each, one template giving all eight.
/// With `faults`, each system fails as `--faults` says; steps get enough attempts that none
/// runs out (0.35^20 is under one in a billion), retries come quickly, and an open circuit
/// tries again after a second.
fn bench_config(faults: bool, system_concurrency: u32) -> Config {
    let mut main = String::from(if faults {
        "[engine]\nmax_attempts = 20\nbackoff_base_ms = 50\nbackoff_max_ms = 2000\nbreaker_open_ms = 1000\n"
    } else {
        "[engine]\nmax_attempts = 6\n"
    });
    let mut ents = Vec::new();
    for (i, sys) in SYSTEMS.into_iter().enumerate() {
        main.push_str(&format!(
            "[[systems]]\nid = \"{sys}\"\nconnector = \"sandbox\"\nmax_concurrency = {system_concurrency}\n[systems.settings]\nlatency_ms = 0\nseed = {}\n",
            i + 1
        ));
        if faults {
            main.push_str(&format!(
                "failure_rate = {FAULT_RATE}\ntimeout_share = {FAULT_TIMEOUT_SHARE}\n"
            ));
        }
        for n in 1..=2 {
            main.push_str(&format!(
                "[[entitlements]]\nid = \"{sys}:group-{n}\"\nsystem = \"{sys}\"\n"
            ));
            ents.push(format!("\"{sys}:group-{n}\""));
        }
    }
    let template = format!("entitlements = [{}]\n", ents.join(", "));
    Config::parse(
        &SourceFile {
            path: "bench/tenure.toml".into(),
            text: main,
        },
        &[SourceFile {
            path: "bench/templates/all.toml".into(),
            text: template,
        }],
    )
    .expect("bench configuration is valid")
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// A hire event of the bench's person `h`.
fn hire_event(h: usize) -> String {
    format!(
        r#"{{"type":"hire","person":{{"id":"p{h}","name":"Person {h}","email":"p{h}@example.com","worker_type":"employee"}}}}"#
    )
}

/// One event the bench sends: a hire or a leave of the bench's person with this number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Hire(usize),
    Leave(usize),
}

/// The order events go out: the first half of the hires; then the rest of the hires with the
/// leaves of the earliest hires spread evenly among the first `among` of them (all by
/// default); then any leaves left over.
fn send_order(hires: usize, leaves: usize, among: Option<usize>) -> Vec<Sent> {
    let half = hires / 2;
    let rest = hires - half;
    let among = among.unwrap_or(rest).min(rest);
    let mut out: Vec<Sent> = (0..half).map(Sent::Hire).collect();
    let mut sent = 0;
    for j in 0..rest {
        out.push(Sent::Hire(half + j));
        // After the (j + 1)th hire of `among`, that share of the leaves has gone out.
        let due = if j < among {
            (j + 1) * leaves / among
        } else {
            leaves
        };
        // A leave never goes out before its person's hire.
        while sent < due.min(leaves).min(half + j + 1) {
            out.push(Sent::Leave(sent));
            sent += 1;
        }
    }
    out.extend((sent..leaves).map(Sent::Leave));
    out
}

/// A leave event of the bench's person `l`.
fn leave_event(l: usize) -> String {
    format!(r#"{{"type":"leave","person":{{"id":"p{l}"}}}}"#)
}

/// Submits one event as the API would; returns once it is stored.
async fn submit(engine: &Engine, body: &str) -> Result<IngestOutcome> {
    let event = parse_event(body.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(engine
        .submit(Submission {
            event,
            idempotency_key: None,
            actor: "bench".into(),
            request_id: None,
            trace: None,
        })
        .await?)
}

/// Sends `events` in order from `concurrency` senders, each waiting for its event to be
/// stored before taking the next.
async fn send_all(engine: &Engine, events: Arc<Vec<String>>, concurrency: usize) -> Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..concurrency {
        let (engine, next, events) = (engine.clone(), next.clone(), events.clone());
        senders.push(tokio::spawn(async move {
            while let Some(body) = events.get(next.fetch_add(1, Ordering::Relaxed)) {
                match submit(&engine, body).await? {
                    IngestOutcome::Accepted { .. } => {}
                    other => bail!("unexpected {other:?}"),
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for s in senders {
        s.await??;
    }
    Ok(())
}

/// Personal data sealed under a fresh master key, as `tenure serve` seals it, unless
/// `--plain`.
fn bench_vault(args: &BenchArgs) -> tenure_store::Vault {
    if args.plain {
        tenure_store::Vault::plain()
    } else {
        tenure_store::Vault::from_base64(&tenure_store::vault::generate_master_key())
            .expect("a fresh key is well formed")
    }
}

/// The bench's database (a fresh SQLite file in `dir` unless `--database` names one), what its
/// disk commits, and the engine started on it with [`bench_config`].
async fn start(
    args: &BenchArgs,
    dir: &std::path::Path,
    faults: bool,
) -> Result<(Store, f64, Engine)> {
    let store = match &args.database {
        Some(url) => Store::connect(url).await?,
        None => Store::open_sqlite(&dir.join("bench.db")).await?,
    }
    .with_vault(bench_vault(args));
    let store = args.limits.lane(store)?;
    // What the disk under this database commits, measured before the engine starts: the
    // engine's throughput is judged as a multiple of it.
    let commits_per_sec =
        tenure_store::commit_rate(&store, std::time::Duration::from_millis(1_500)).await?;
    let engine = Engine::start(
        store.clone(),
        Arc::new(bench_config(faults, args.system_concurrency)),
        Arc::new(SystemClock),
        args.limits.apply(EngineOptions {
            sole_instance: store.backend() == tenure_store::Backend::Sqlite,
            seed: Some(42),
            ..Default::default()
        }),
    )
    .await?;
    Ok((store, commits_per_sec, engine))
}

pub async fn run(args: BenchArgs) -> Result<()> {
    // With OTLP export asked for in the standard way (docs/traces.md), the bench traces what it
    // runs, as `serve` would: that is how the cost of traces is measured. Logs stay at warnings.
    let telemetry = match crate::traces::trace_export(|name| std::env::var(name).ok())? {
        crate::traces::TraceExport::Off => None,
        crate::traces::TraceExport::Otlp(_) => {
            eprintln!("traces: exported over OTLP (OTEL_* variables set)");
            Some(crate::traces::init(false, "warn")?)
        }
    };
    let outcome = run_bench(args).await;
    if let Some(t) = telemetry {
        t.shutdown().await;
    }
    outcome
}

async fn run_bench(args: BenchArgs) -> Result<()> {
    if args.reconcile {
        return crate::recon_bench::run(crate::recon_bench::ReconBenchArgs {
            accounts: args.accounts,
            memberships: args.memberships,
            database: args.database,
            json: args.json,
            target: args.target.zip(args.system),
        })
        .await;
    }
    if args.reviews {
        return crate::reviews_bench::run(crate::reviews_bench::ReviewsBenchArgs {
            people: args.people,
            grants: args.grants_each,
            requests: args.requests,
            vault: bench_vault(&args),
            database: args.database,
            json: args.json,
        })
        .await;
    }
    if args.expiry {
        return expiry(args).await;
    }
    if args.idle {
        return idle(args).await;
    }
    if args.scim {
        return crate::scim_bench::run(crate::scim_bench::ScimBenchArgs {
            users: args.users,
            groups: args.groups,
            requests: args.requests,
            members: args.members,
            runs: args.runs,
            database: args.database,
            json: args.json,
        })
        .await;
    }
    if args.leaves > args.hires {
        bail!(
            "--leaves ({}) cannot exceed --hires ({})",
            args.leaves,
            args.hires
        );
    }
    // The circuits' openings and closings are counted by the engine's metrics.
    let metrics = if args.faults {
        Some(
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .context("installing the metrics recorder")?,
        )
    } else {
        None
    };
    let dir = tempfile::tempdir()?;
    let (store, commits_per_sec, engine) = start(&args, dir.path(), args.faults).await?;

    let writer = args.checkpoints.then(|| {
        let w = tenure_engine::CheckpointWriter::new(
            store.clone(),
            Arc::new(SystemClock),
            tenure_core::checkpoint::PrivateKey::from_bytes(&[42; 32]),
            tenure_core::checkpoint::Cadence {
                every_entries: Some(1),
                every_ms: None,
            },
            tenure_engine::Sink::File(dir.path().join("checkpoints.jsonl")),
        );
        let (stop, stopped) = tokio::sync::watch::channel(false);
        (stop, tokio::spawn(w.run(stopped)))
    });

    let expected = args.hires + args.leaves;
    let mut finished = engine.subscribe();
    let collector = tokio::spawn(async move {
        let mut ends = Ends::default();
        while ends.count() < expected {
            match finished.recv().await {
                Ok(f) => ends.add(f.kind, f.state, f.latency_ms, &f.run_id),
                Err(e) => anyhow::bail!("lost run notices: {e}"),
            }
        }
        Ok(ends)
    });

    let events = Arc::new(
        send_order(args.hires, args.leaves, args.leaves_among)
            .into_iter()
            .map(|e| match e {
                Sent::Hire(h) => hire_event(h),
                Sent::Leave(l) => leave_event(l),
            })
            .collect(),
    );

    let started = Instant::now();
    let committed_before = store.transactions_committed();
    let writer_before = store.writer_times();
    send_all(&engine, events, 32).await?;
    let Ends {
        mut provision,
        mut revoke,
        leave_runs,
        superseded,
        unfinished,
    } = collector.await?.context("collecting run results")?;
    let elapsed = started.elapsed().as_secs_f64();
    let transactions = store.transactions_committed() - committed_before;
    // How much of the run SQLite's one writer was held by a transaction, and doing what.
    let writer_busy = match (writer_before, store.writer_times()) {
        (Some(a), Some(b)) => {
            let t = b - a;
            let share =
                |d: std::time::Duration| (d.as_secs_f64() / elapsed * 1000.0).round() / 10.0;
            Some(serde_json::json!({
                "held_percent": share(t.held),
                "statements_percent": share(t.statements),
                "commits_percent": share(t.commits),
            }))
        }
        _ => None,
    };
    let faults = match &metrics {
        Some(metrics) => Some(fault_checks(&engine, &store, &metrics.render()).await?),
        None => None,
    };
    let mut c = store.reader().await?;
    let steps: i64 = tenure_store::step_counts(&mut c)
        .await?
        .iter()
        .filter(|(_, state, _)| state == "succeeded")
        .map(|(_, _, n)| n)
        .sum();
    drop(c);
    engine.shutdown().await;
    let phases = phase_times(&store, &leave_runs).await?;
    if let Some((stop, task)) = writer {
        stop.send_replace(true);
        task.await?;
    }
    let checkpoints = match std::fs::read_to_string(dir.path().join("checkpoints.jsonl")) {
        Ok(text) => text.lines().count(),
        Err(_) => 0,
    };
    provision.sort_unstable();
    revoke.sort_unstable();
    let mut figures = serde_json::json!({
        "backend": format!("{:?}", store.backend()).to_lowercase(),
        "hires": args.hires,
        "leaves": args.leaves,
        "hires_superseded_by_leave": superseded,
        "steps": steps,
        "checkpoints": checkpoints,
        "personal_data": if args.plain { "plain" } else { "sealed" },
        "limits": {
            "max_in_flight": args.limits.max_in_flight,
            "max_urgent_in_flight": args.limits.max_urgent_in_flight,
            "claim_batch": args.limits.claim_batch,
            "system_concurrency": args.system_concurrency,
            "urgent_lane": args.limits.urgent_lane.name(),
        },
        "seconds": (elapsed * 1000.0).round() / 1000.0,
        "steps_per_sec": (steps as f64 / elapsed).round(),
        "commits_per_sec": commits_per_sec.round(),
        "steps_per_commit": ((steps as f64 / elapsed) / commits_per_sec * 100.0).round() / 100.0,
        "transactions": transactions,
        "transactions_per_sec": (transactions as f64 / elapsed).round(),
        "sqlite_writer": writer_busy,
        "provision_p50_ms": percentile(&provision, 50.0),
        "provision_p99_ms": percentile(&provision, 99.0),
        "revoke_p50_ms": percentile(&revoke, 50.0),
        "revoke_p99_ms": percentile(&revoke, 99.0),
        "revoke_phases_ms": phases,
        "runs_not_converged": unfinished.len(),
    });
    if let (Some(f), Some(obj)) = (&faults, figures.as_object_mut()) {
        obj.insert("faults".into(), serde_json::to_value(f)?);
    }
    store.close().await;
    if args.json {
        println!("{figures}");
    } else {
        println!(
            "tenure bench ({} backend)",
            figures["backend"].as_str().unwrap_or("?")
        );
        println!(
            "  hires: {}  leaves: {}  (hires superseded by their leave: {superseded})  personal data: {}",
            args.hires,
            args.leaves,
            figures["personal_data"].as_str().unwrap_or("?")
        );
        println!(
            "  limits: {} steps in flight (+{} leavers'), claims of {}, {} calls at once per system, leavers' lane {}",
            args.limits.max_in_flight,
            args.limits.max_urgent_in_flight,
            args.limits.claim_batch,
            args.system_concurrency,
            args.limits.urgent_lane.name()
        );
        println!(
            "  steps succeeded: {steps} in {elapsed:.2} s = {} steps/s",
            figures["steps_per_sec"]
        );
        println!(
            "  the database's durable single-row commits: {} /s, so {} steps per commit",
            figures["commits_per_sec"], figures["steps_per_commit"]
        );
        println!(
            "  write transactions committed: {transactions} = {} /s, {:.2} steps each",
            figures["transactions_per_sec"],
            steps as f64 / transactions.max(1) as f64
        );
        if let Some(w) = &writer_busy {
            println!(
                "  the SQLite writer was held by a transaction {} % of the time: statements {} %, commits (log writes and fsync) {} %",
                w["held_percent"], w["statements_percent"], w["commits_percent"]
            );
        }
        println!(
            "  time-to-provision: p50 {} ms, p99 {} ms",
            figures["provision_p50_ms"], figures["provision_p99_ms"]
        );
        println!(
            "  time-to-revoke:    p50 {} ms, p99 {} ms",
            figures["revoke_p50_ms"], figures["revoke_p99_ms"]
        );
        print_phases(&phases);
        if args.checkpoints {
            println!("  audit checkpoints signed: {checkpoints}");
        }
        if let Some(f) = &faults {
            f.print();
        }
    }
    if !unfinished.is_empty() {
        bail!(
            "{} runs did not converge, for example {}",
            unfinished.len(),
            unfinished[..unfinished.len().min(5)].join(", ")
        );
    }
    if let Some(f) = &faults
        && let Some(why) = f.broken()
    {
        bail!("under faults: {why}");
    }
    Ok(())
}

/// How the runs ended, as the engine announced them.
#[derive(Default)]
struct Ends {
    /// Time-to-provision of each hire that succeeded (ms).
    provision: Vec<i64>,
    /// Time-to-revoke of each leave that succeeded (ms).
    revoke: Vec<i64>,
    /// The runs of the leaves that succeeded.
    leave_runs: Vec<String>,
    /// Hires cancelled by their person's leave.
    superseded: usize,
    /// Runs that ended otherwise: `kind run-id state`.
    unfinished: Vec<String>,
}

impl Ends {
    fn count(&self) -> usize {
        self.provision.len() + self.revoke.len() + self.superseded + self.unfinished.len()
    }

    fn add(&mut self, kind: RunKind, state: RunState, latency_ms: i64, run_id: &str) {
        match (kind, state) {
            (RunKind::Hire, RunState::Succeeded) => self.provision.push(latency_ms),
            (RunKind::Leave, RunState::Succeeded) => {
                self.revoke.push(latency_ms);
                self.leave_runs.push(run_id.to_string());
            }
            (RunKind::Hire, RunState::Cancelled) => self.superseded += 1,
            _ => self.unfinished.push(format!("{kind} {run_id} {state}")),
        }
    }
}

/// What `--faults` checks once every run has ended.
#[derive(Debug, serde::Serialize)]
struct FaultFigures {
    /// Per system: how often its circuit opened and closed, and where it stands now.
    circuits: Vec<CircuitFigures>,
    /// Operations audited as done more than once.
    steps_audited_twice: i64,
    /// Grants stored `granted` that their system does not hold.
    granted_not_held: i64,
    /// Memberships or enabled accounts that people who left still have on a system.
    leavers_still_holding: i64,
    /// Accounts and grants left `uncertain` (a call's outcome never learned).
    uncertain: i64,
    /// Failures the systems injected, as their own counters say.
    injected_failures: i64,
}

/// One system's circuit under `--faults`.
#[derive(Debug, serde::Serialize)]
struct CircuitFigures {
    system: String,
    opened: u64,
    closed: u64,
    closed_now: bool,
}

impl FaultFigures {
    /// What breaks the promise, if anything: every circuit is closed once all is done,
    /// nothing was done twice, and the store and the systems agree. (How often each circuit
    /// opened and closed is a figure: a small run may never string enough failures together
    /// to open one.)
    fn broken(&self) -> Option<String> {
        let mut why = Vec::new();
        for c in &self.circuits {
            if !c.closed_now {
                why.push(format!("the circuit of {} is still open", c.system));
            }
        }
        for (n, what) in [
            (self.steps_audited_twice, "operations audited twice"),
            (self.granted_not_held, "grants stored granted and not held"),
            (self.leavers_still_holding, "things leavers still hold"),
            (self.uncertain, "accounts and grants left uncertain"),
        ] {
            if n > 0 {
                why.push(format!("{n} {what}"));
            }
        }
        (!why.is_empty()).then(|| why.join("; "))
    }

    fn print(&self) {
        println!(
            "  under faults ({:.0} % of calls failing before acting, {:.0} % after acting):",
            FAULT_RATE * (1.0 - FAULT_TIMEOUT_SHARE) * 100.0,
            FAULT_RATE * FAULT_TIMEOUT_SHARE * 100.0
        );
        for c in &self.circuits {
            println!(
                "    circuit of {}: opened {} times, closed {} times, closed now: {}",
                c.system, c.opened, c.closed, c.closed_now
            );
        }
        println!(
            "    operations audited twice: {}; grants stored granted and not held: {}",
            self.steps_audited_twice, self.granted_not_held
        );
        println!(
            "    things leavers still hold: {}; accounts and grants left uncertain: {}",
            self.leavers_still_holding, self.uncertain
        );
        println!("    failures injected: {}", self.injected_failures);
    }
}

/// Reads what `--faults` checks: the circuits' transitions from the engine's metrics (`text`,
/// Prometheus' text format), and from the database the audit trail, tenure's record of
/// access, and the sandbox systems' own tables (which live in the same database).
async fn fault_checks(engine: &Engine, store: &Store, text: &str) -> Result<FaultFigures> {
    let transitions = |system: &str, transition: &str| -> u64 {
        let labels = [
            format!("system=\"{system}\""),
            format!("transition=\"{transition}\""),
        ];
        text.lines()
            .filter(|l| l.starts_with("tenure_circuit_transitions_total{"))
            .filter(|l| labels.iter().all(|want| l.contains(want.as_str())))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    };
    let now = engine.circuits();
    let circuits = SYSTEMS
        .iter()
        .map(|system| CircuitFigures {
            system: system.to_string(),
            opened: transitions(system, "opened"),
            closed: transitions(system, "closed"),
            closed_now: now.iter().any(|c| {
                c.id == *system
                    && matches!(c.circuit, tenure_core::breaker::CircuitState::Closed { .. })
            }),
        })
        .collect();
    let mut c = store.reader().await?;
    // A step's audit entry carries its operation id as the correlation id.
    let steps_audited_twice = count(
        &mut c,
        "SELECT COUNT(*) FROM (SELECT correlation_id FROM audit_log
           WHERE action IN ('step.create_account', 'step.enable_account', 'step.update_account',
                            'step.disable_account', 'step.delete_account', 'step.grant', 'step.revoke')
           GROUP BY correlation_id HAVING COUNT(*) > 1) twice",
    )
    .await?;
    // The bench's entitlements have no name of their own: the sandbox holds them by id.
    let granted_not_held = count(
        &mut c,
        "SELECT COUNT(*) FROM grants g WHERE g.state = 'granted' AND NOT EXISTS (
           SELECT 1 FROM sandbox_memberships m
           WHERE m.system = g.system AND m.person_id = g.person_id AND m.entitlement = g.entitlement)",
    )
    .await?;
    let leavers_still_holding = count(
        &mut c,
        "SELECT (SELECT COUNT(*) FROM sandbox_memberships m JOIN people p ON p.id = m.person_id
                 WHERE p.status = 'terminated')
              + (SELECT COUNT(*) FROM sandbox_accounts a JOIN people p ON p.id = a.person_id
                 WHERE p.status = 'terminated' AND a.enabled <> 0)",
    )
    .await?;
    let uncertain = count(
        &mut c,
        "SELECT (SELECT COUNT(*) FROM grants WHERE state = 'uncertain')
              + (SELECT COUNT(*) FROM accounts WHERE state = 'uncertain')",
    )
    .await?;
    let injected_failures = count(
        &mut c,
        "SELECT CAST(COALESCE(SUM(failures), 0) AS BIGINT) FROM sandbox_counters",
    )
    .await?;
    Ok(FaultFigures {
        circuits,
        steps_audited_twice,
        granted_not_held,
        leavers_still_holding,
        uncertain,
        injected_failures,
    })
}

/// The single number a counting query answers.
async fn count(c: &mut tenure_store::Conn, sql: &'static str) -> Result<i64> {
    let row = tenure_store::db::query(sql).fetch_one(c).await?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// `tenure bench --idle`: `--leaves` people are hired and their hires finish; then one leave
/// at a time goes to the otherwise idle engine, each sent once the one before it has ended.
/// The figure is each leave's time-to-revoke (received to account deleted everywhere), the
/// engine issue's "single leave on an idle engine" target (p99 under 10 ms).
async fn idle(args: BenchArgs) -> Result<()> {
    let n = args.leaves;
    if n == 0 {
        bail!("--idle needs --leaves of at least 1");
    }
    let dir = tempfile::tempdir()?;
    let (store, commits_per_sec, engine) = start(&args, dir.path(), false).await?;
    let mut finished = engine.subscribe();
    let hires: Vec<String> = (0..n).map(hire_event).collect();
    send_all(&engine, Arc::new(hires), 32).await?;
    let mut hired = 0;
    while hired < n {
        let f = finished.recv().await.context("lost run notices")?;
        if f.kind == RunKind::Hire {
            if f.state != RunState::Succeeded {
                bail!("hire run {} ended {}", f.run_id, f.state);
            }
            hired += 1;
        }
    }
    let mut revoke = Vec::with_capacity(n);
    let mut leaves = Vec::with_capacity(n);
    for l in 0..n {
        let run_id = match submit(&engine, &leave_event(l)).await? {
            IngestOutcome::Accepted { run_id, .. } => run_id,
            other => bail!("unexpected {other:?}"),
        };
        let f = loop {
            let f = finished.recv().await.context("lost run notices")?;
            if f.run_id == run_id {
                break f;
            }
        };
        if f.state != RunState::Succeeded {
            bail!("leave run {run_id} ended {}", f.state);
        }
        revoke.push(f.latency_ms);
        leaves.push(run_id);
    }
    engine.shutdown().await;
    let phases = phase_times(&store, &leaves).await?;
    store.close().await;
    revoke.sort_unstable();
    let figures = serde_json::json!({
        "backend": format!("{:?}", store.backend()).to_lowercase(),
        "leaves": n,
        "commits_per_sec": commits_per_sec.round(),
        "revoke_p50_ms": percentile(&revoke, 50.0),
        "revoke_p99_ms": percentile(&revoke, 99.0),
        "revoke_max_ms": percentile(&revoke, 100.0),
        "revoke_phases_ms": phases,
    });
    if args.json {
        println!("{figures}");
    } else {
        println!(
            "tenure bench --idle ({} backend)",
            figures["backend"].as_str().unwrap_or("?")
        );
        println!("  {n} leaves, one at a time, each of 16 steps over four systems");
        println!(
            "  the database's durable single-row commits: {} /s",
            figures["commits_per_sec"]
        );
        println!(
            "  time-to-revoke: p50 {} ms, p99 {} ms, max {} ms",
            figures["revoke_p50_ms"], figures["revoke_p99_ms"], figures["revoke_max_ms"]
        );
        print_phases(&phases);
    }
    Ok(())
}

/// Prints what [`phase_times`] found.
fn print_phases(phases: &serde_json::Map<String, serde_json::Value>) {
    println!(
        "  each phase of a leave, in ms after it was received, first and last step done: median (p99)"
    );
    for (action, p) in phases {
        println!(
            "    {action}: {} to {} ({} to {})",
            p["first"], p["last"], p["first_p99"], p["last_p99"]
        );
    }
}

/// Where a leave's time goes: for each of its step actions, the time (ms after the leave was
/// received) at which the first and the last such step was recorded done, read from the audit
/// trail of `runs`, at the median and at p99.
async fn phase_times(
    store: &Store,
    runs: &[String],
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let actions = [
        Action::DisableAccount,
        Action::Revoke,
        Action::DeleteAccount,
    ];
    // One read for every run, by the audit log's index on its action, then grouped here:
    // a read per run would scan the whole log each time (it has no index on `run_id`), which
    // took longer than the benchmark itself.
    let mut c = store.reader().await?;
    let mut read = tenure_store::db::query(
        "SELECT run_id, action, MIN(at_ms), MAX(at_ms) FROM audit_log \
         WHERE action IN ($1, $2, $3, $4) AND run_id IS NOT NULL GROUP BY run_id, action",
    )
    .bind(AuditAction::EventReceived.to_string());
    for a in actions {
        read = read.bind(AuditAction::StepDone(a).to_string());
    }
    let rows = read.fetch_all(&mut c).await?;
    drop(c);
    // Per run: when its event was received, and each phase's first and last step done.
    type Seen = (Option<i64>, Vec<Option<(i64, i64)>>);
    let mut by_run: HashMap<&str, Seen> = runs
        .iter()
        .map(|r| (r.as_str(), (None, vec![None; actions.len()])))
        .collect();
    for r in &rows {
        let run: String = r.try_get(0)?;
        let action: AuditAction = r.try_get::<String, _>(1)?.parse()?;
        let (first, last): (i64, i64) = (r.try_get(2)?, r.try_get(3)?);
        let Some((received, seen)) = by_run.get_mut(run.as_str()) else {
            continue;
        };
        match action {
            AuditAction::EventReceived => *received = Some(last),
            AuditAction::StepDone(a) => {
                if let Some(i) = actions.iter().position(|p| *p == a) {
                    seen[i] = Some((first, last));
                }
            }
            _ => {}
        }
    }
    let mut at: Vec<(Vec<i64>, Vec<i64>)> = vec![(Vec::new(), Vec::new()); actions.len()];
    for run in runs {
        let (received, seen) = &by_run[run.as_str()];
        let Some(t0) = *received else {
            bail!("leave run {run} has no event.received entry");
        };
        for (i, phase) in seen.iter().enumerate() {
            if let Some((first, last)) = phase {
                at[i].0.push(first - t0);
                at[i].1.push(last - t0);
            }
        }
    }
    Ok(actions
        .iter()
        .zip(at)
        .map(|(action, (mut first, mut last))| {
            first.sort_unstable();
            last.sort_unstable();
            let p = serde_json::json!({
                "first": percentile(&first, 50.0),
                "last": percentile(&last, 50.0),
                "first_p99": percentile(&first, 99.0),
                "last_p99": percentile(&last, 99.0),
            });
            (action.to_string(), p)
        })
        .collect())
}

/// The wall clock plus an offset the benchmark moves forward once, so that grants given with a
/// one-hour window come due a few seconds later without waiting an hour. The engine sees time
/// run at its normal pace before and after the jump.
struct ShiftedClock(std::sync::atomic::AtomicI64);

impl tenure_engine::Clock for ShiftedClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis() + self.0.load(Ordering::SeqCst)
    }
}

/// `tenure bench --expiry`: N people each get one time-bound grant through an access request
/// (no approval stage configured), with windows chosen so that every grant expires within the
/// same minute. The clock is then moved forward to just before that minute, and the figures
/// are how long after its `expires_at` each grant was recorded revoked on the target system.
async fn expiry(args: BenchArgs) -> Result<()> {
    let n = args.grants.max(1);
    let dir = tempfile::tempdir()?;
    let store = match &args.database {
        Some(url) => Store::connect(url).await?,
        None => Store::open_sqlite(&dir.path().join("bench.db")).await?,
    }
    .with_vault(bench_vault(&args));
    let sole = store.backend() == tenure_store::Backend::Sqlite;
    let main = "[[systems]]\nid = \"db\"\nconnector = \"sandbox\"\nmax_concurrency = 64\n\
                [systems.settings]\nlatency_ms = 0\nseed = 1\n\
                [[entitlements]]\nid = \"db:admin\"\nsystem = \"db\"\nrisk = \"high\"\n\
                [approvals]\nrequest_stages = []\nmax_window_minutes = 120\n";
    let config = Config::parse(
        &SourceFile {
            path: "bench/tenure.toml".into(),
            text: main.into(),
        },
        &[],
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let clock = Arc::new(ShiftedClock(std::sync::atomic::AtomicI64::new(0)));
    let engine = Engine::start(
        store.clone(),
        Arc::new(config),
        clock.clone(),
        EngineOptions {
            sole_instance: sole,
            seed: Some(42),
            ..Default::default()
        },
    )
    .await?;
    use tenure_engine::Clock as _;

    // The people, sent like HR events (their runs have nothing to do: no templates).
    let started = Instant::now();
    let mut finished = engine.subscribe();
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..32 {
        let (engine, next) = (engine.clone(), next.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                let body = format!(
                    r#"{{"type":"hire","person":{{"id":"x{i}","name":"Person {i}","email":"x{i}@example.com","worker_type":"employee"}}}}"#
                );
                let event = parse_event(body.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
                engine
                    .submit(Submission {
                        event,
                        idempotency_key: None,
                        actor: "bench".into(),
                        request_id: None,
                        trace: None,
                    })
                    .await?;
            }
        }));
    }
    for s in senders {
        s.await??;
    }
    let mut hired = 0;
    while hired < n {
        match finished.recv().await {
            Ok(f) if f.kind == RunKind::Hire => hired += 1,
            Ok(_) => {}
            Err(e) => bail!("lost run notices: {e}"),
        }
    }

    // The requests: grant i expires at t0 + i * 60 s / n, all within one minute an hour ahead.
    let t0 = clock.now_ms() + 3_600_000;
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..32 {
        let (engine, next, clock) = (engine.clone(), next.clone(), clock.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                let due = t0 + (i as i64 * 60_000) / n as i64;
                engine
                    .request_access(tenure_engine::NewRequest {
                        person_id: format!("x{i}"),
                        entitlement: "db:admin".into(),
                        requester: "bench".into(),
                        justification: "expiry benchmark".into(),
                        duration_ms: Some(due - clock.now_ms()),
                        break_glass: false,
                    })
                    .await?;
            }
        }));
    }
    for s in senders {
        s.await??;
    }
    let mut granted = 0;
    while granted < n {
        match finished.recv().await {
            Ok(f) if f.kind == RunKind::Request && f.state == RunState::Succeeded => granted += 1,
            Ok(f) if f.kind == RunKind::Request => {
                bail!("request run {} ended {}", f.run_id, f.state)
            }
            Ok(_) => {}
            Err(e) => bail!("lost run notices: {e}"),
        }
    }
    let setup = started.elapsed().as_secs_f64();
    let mut c = store.reader().await?;
    let mut expiries: Vec<i64> = tenure_store::list_requests(
        &mut c,
        &tenure_store::RequestFilter {
            limit: i64::MAX,
            ..Default::default()
        },
    )
    .await?
    .into_iter()
    .filter_map(|r| r.expires_at)
    .collect();
    expiries.sort_unstable();
    drop(c);
    let first = *expiries.first().context("no time-bound grant was made")?;
    let last = *expiries.last().unwrap_or(&first);

    // Jump to 5 s before the first expiry; then wait for every revoke.
    let jump = first - 5_000 - clock.now_ms();
    clock.0.fetch_add(jump.max(0), Ordering::SeqCst);
    engine.wake();
    let waited = Instant::now();
    let mut revoked = 0;
    while revoked < n {
        match tokio::time::timeout(std::time::Duration::from_secs(600), finished.recv()).await {
            Ok(Ok(f)) if f.kind == RunKind::Expiry && f.state == RunState::Succeeded => {
                revoked += 1
            }
            Ok(Ok(f)) if f.kind == RunKind::Expiry => {
                bail!("expiry run {} ended {}", f.run_id, f.state)
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("lost run notices: {e}"),
            Err(_) => bail!("only {revoked} of {n} grants revoked after 10 minutes"),
        }
    }
    let window_s = waited.elapsed().as_secs_f64();
    let mut c = store.reader().await?;
    let mut late: Vec<i64> = tenure_store::expiry_latencies(&mut c)
        .await?
        .into_iter()
        .map(|(expires, revoked)| revoked - expires)
        .collect();
    drop(c);
    engine.shutdown().await;
    store.close().await;
    late.sort_unstable();
    let figures = serde_json::json!({
        "backend": if sole { "sqlite" } else { "postgres" },
        "grants": n,
        "revoked": late.len(),
        "expiry_spread_ms": last - first,
        "setup_seconds": (setup * 10.0).round() / 10.0,
        "revocation_seconds": (window_s * 10.0).round() / 10.0,
        "late_p50_ms": percentile(&late, 50.0),
        "late_p99_ms": percentile(&late, 99.0),
        "late_max_ms": late.last().copied().unwrap_or(0),
        "early": late.iter().filter(|l| **l < 0).count(),
    });
    if args.json {
        println!("{figures}");
    } else {
        println!(
            "tenure bench --expiry ({} backend)",
            figures["backend"].as_str().unwrap_or("?")
        );
        println!(
            "  {n} time-bound grants expiring within {} ms of each other; {} revoked, {} early",
            last - first,
            late.len(),
            figures["early"]
        );
        println!(
            "  revoked after expires_at: p50 {} ms, p99 {} ms, max {} ms (target p99 < 5000 ms)",
            figures["late_p50_ms"], figures["late_p99_ms"], figures["late_max_ms"]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Sent, send_order};
    use Sent::{Hire as H, Leave as L};

    #[test]
    fn leaves_go_out_spread_among_the_second_half_of_the_hires() {
        assert_eq!(
            send_order(10, 2, None),
            [
                H(0),
                H(1),
                H(2),
                H(3),
                H(4),
                H(5),
                H(6),
                H(7),
                L(0),
                H(8),
                H(9),
                L(1)
            ]
        );
    }

    #[test]
    fn leaves_among_as_many_hires_go_one_for_one() {
        let order = send_order(10, 2, Some(2));
        assert_eq!(order[5..9], [H(5), L(0), H(6), L(1)]);
        // More leaves than hires left: the rest go out at the end.
        assert_eq!(
            send_order(4, 3, None),
            [H(0), H(1), H(2), L(0), H(3), L(1), L(2)]
        );
    }

    #[test]
    fn every_event_goes_out_once_and_each_leave_after_its_hire() {
        for (hires, leaves, among) in [
            (10_000, 1_000, None),
            (10_000, 1_000, Some(1_000)),
            (7, 7, Some(3)),
            (1, 0, None),
        ] {
            let order = send_order(hires, leaves, among);
            assert_eq!(order.len(), hires + leaves);
            for l in 0..leaves {
                let hired = order.iter().position(|e| *e == H(l)).unwrap();
                let left = order.iter().position(|e| *e == L(l)).unwrap();
                assert!(hired < left, "leave {l} before its hire");
            }
        }
    }
}
