//! `tenure bench --reconcile`: one sandbox system of `--accounts` accounts with
//! `--memberships` memberships each, against as many people, reconciled once; prints the time,
//! the rate, what was found and the peak memory of the pass.
//!
//! The fixture is written straight into the tables (people, tenure's accounts and grants, the
//! sandbox's accounts and memberships) in large transactions: sending a million hires through
//! the engine would measure the engine, not reconciliation. One account in a hundred of each
//! kind drifts: a leaver's account still enabled (stale), a person tenure holds no account
//! for (unlinked), a lost membership (missing), an extra one (excess), and an account nobody
//! owns (orphan).

use anyhow::{Context, Result};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use tenure_core::config::{Config, SourceFile};
use tenure_core::{Person, PersonStatus, WorkerType};
use tenure_engine::{Engine, EngineOptions, ReconcileRequest, SystemClock};
use tenure_store::db::{self, AssertSqlSafe};
use tenure_store::{Backend, ReconTrigger, Store};

/// What `--reconcile` measures with.
pub struct ReconBenchArgs {
    /// Accounts on the system (and people).
    pub accounts: usize,
    /// Memberships per account.
    pub memberships: usize,
    /// Database URL; a fresh SQLite file by default.
    pub database: Option<String>,
    /// One JSON object instead of text.
    pub json: bool,
}

#[derive(Serialize)]
struct Figures {
    backend: &'static str,
    accounts: usize,
    memberships: usize,
    seed_seconds: f64,
    reconcile_seconds: f64,
    accounts_per_second: f64,
    peak_rss_mib_during_pass: Option<f64>,
    rss_mib_before_pass: Option<f64>,
    counts: std::collections::BTreeMap<String, i64>,
    load_average: Option<String>,
}

const SYSTEM: &str = "big";

fn config(memberships: usize) -> Result<Config> {
    let mut main = format!(
        "[[systems]]\nid = \"{SYSTEM}\"\nconnector = \"sandbox\"\n[systems.settings]\nlatency_ms = 0\nseed = 1\n"
    );
    for e in 0..memberships {
        main.push_str(&format!(
            "[[entitlements]]\nid = \"{SYSTEM}:e{e}\"\nsystem = \"{SYSTEM}\"\n"
        ));
    }
    main.push_str(&format!(
        "[[entitlements]]\nid = \"{SYSTEM}:extra\"\nsystem = \"{SYSTEM}\"\n"
    ));
    Config::parse(
        &SourceFile {
            path: "bench/tenure.toml".into(),
            text: main,
        },
        &[],
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Rows written per statement.
const ROWS: usize = 400;

/// Inserts `rows` (each `cols` values) into `head` (`INSERT INTO t (a, b) VALUES `), in
/// statements of [`ROWS`] rows and transactions of 100 statements.
async fn insert(
    store: &Store,
    head: &str,
    cols: usize,
    rows: impl Iterator<Item = Vec<db::Value>>,
) -> Result<()> {
    let sqlite = store.backend() == Backend::Sqlite;
    let mut rows = rows.peekable();
    while rows.peek().is_some() {
        let mut tx = store.begin().await?;
        for _ in 0..100 {
            let chunk: Vec<Vec<db::Value>> = rows.by_ref().take(ROWS).collect();
            if chunk.is_empty() {
                break;
            }
            let mut sql = String::from(head);
            let mut n = 0;
            for (r, row) in chunk.iter().enumerate() {
                sql.push_str(if r == 0 { "(" } else { ", (" });
                for c in 0..cols {
                    if c > 0 {
                        sql.push_str(", ");
                    }
                    n += 1;
                    if sqlite {
                        sql.push('?');
                    } else {
                        sql.push_str(&format!("${n}"));
                    }
                }
                sql.push(')');
                debug_assert_eq!(row.len(), cols);
            }
            let mut q = db::query(AssertSqlSafe(sql));
            for row in chunk {
                for v in row {
                    q = q.bind(v);
                }
            }
            q.execute(tx.conn()).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

fn id(i: usize) -> String {
    format!("p{i:08}")
}

/// Seeds the fixture (see the module docs).
async fn seed(store: &Store, n: usize, m: usize, now: i64) -> Result<()> {
    use db::Value as V;
    let text = |s: String| V::from(s);
    insert(
        store,
        "INSERT INTO people (id, status, data, updated_at) VALUES ",
        4,
        (0..n).map(|i| {
            let status = if i % 100 == 1 {
                PersonStatus::Terminated
            } else {
                PersonStatus::Active
            };
            let p = Person {
                id: id(i),
                name: format!("Person {i}"),
                email: format!("{}@example.com", id(i)),
                worker_type: WorkerType::Employee,
                department: None,
                title: None,
                location: None,
                manager: None,
                start_date: None,
                end_date: None,
                status,
                attributes: Default::default(),
            };
            vec![
                text(id(i)),
                text(status.as_str().into()),
                text(serde_json::to_string(&p).expect("a person serializes")),
                V::from(now),
            ]
        }),
    )
    .await?;
    // tenure's records: an account for all but the unlinked; the leavers' disabled.
    insert(
        store,
        "INSERT INTO accounts (person_id, system, state, updated_at) VALUES ",
        4,
        (0..n).filter(|i| i % 100 != 2).map(|i| {
            vec![
                text(id(i)),
                text(SYSTEM.into()),
                text(if i % 100 == 1 { "disabled" } else { "active" }.into()),
                V::from(now),
            ]
        }),
    )
    .await?;
    insert(
        store,
        "INSERT INTO grants (person_id, entitlement, system, source, source_ref, state, updated_at) VALUES ",
        7,
        (0..n)
            .filter(|i| i % 100 != 1 && i % 100 != 2)
            .flat_map(|i| (0..m).map(move |e| (i, e)))
            .map(|(i, e)| {
                vec![
                    text(id(i)),
                    text(format!("{SYSTEM}:e{e}")),
                    text(SYSTEM.into()),
                    text("birthright".into()),
                    text("bench".into()),
                    text("granted".into()),
                    V::from(now),
                ]
            }),
    )
    .await?;
    // The system: every account enabled (the leavers' too: stale), orphans besides.
    insert(
        store,
        "INSERT INTO sandbox_accounts (system, person_id, enabled, attrs) VALUES ",
        4,
        (0..n)
            .map(id)
            .chain((0..n).filter(|i| i % 100 == 4).map(|i| format!("zz{i:08}")))
            .map(|key| {
                vec![
                    text(SYSTEM.into()),
                    text(key),
                    V::from(1i64),
                    text("{}".into()),
                ]
            }),
    )
    .await?;
    insert(
        store,
        "INSERT INTO sandbox_memberships (system, person_id, entitlement) VALUES ",
        3,
        (0..n)
            .filter(|i| i % 100 != 1 && i % 100 != 2)
            .flat_map(|i| {
                let lost = i % 100 == 3;
                let extra = (i % 100 == 5).then(|| format!("{SYSTEM}:extra"));
                (0..m)
                    .filter(move |e| !(lost && *e == 0))
                    .map(|e| format!("{SYSTEM}:e{e}"))
                    .chain(extra)
                    .map(move |ent| (i, ent))
            })
            .map(|(i, ent)| vec![text(SYSTEM.into()), text(id(i)), text(ent)]),
    )
    .await?;
    Ok(())
}

/// A figure of `/proc/self/status` in MiB (`VmHWM`, `VmRSS`), where there is one.
fn proc_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Runs `tenure bench --reconcile`.
pub async fn run(args: ReconBenchArgs) -> Result<()> {
    let (n, m) = (args.accounts.max(1), args.memberships);
    let dir = tempfile::tempdir()?;
    let store = match &args.database {
        Some(url) => Store::connect(url).await?,
        None => Store::open_sqlite(&dir.path().join("bench.db")).await?,
    };
    let backend = match store.backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let engine = Engine::start(
        store.clone(),
        Arc::new(config(m)?),
        Arc::new(SystemClock),
        EngineOptions {
            sole_instance: store.backend() == Backend::Sqlite,
            ..Default::default()
        },
    )
    .await?;
    let now = chrono::Utc::now().timestamp_millis();
    if !args.json {
        eprintln!("seeding {n} people and accounts with {m} memberships each...");
    }
    let started = Instant::now();
    seed(&store, n, m, now)
        .await
        .context("seeding the fixture")?;
    if store.backend() == Backend::Postgres {
        // As autovacuum leaves tables at rest: statistics for the planner, visibility map.
        let mut c = store.reader().await?;
        for table in [
            "people",
            "accounts",
            "grants",
            "sandbox_accounts",
            "sandbox_memberships",
        ] {
            c.execute(AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
                .await?;
        }
    }
    let seed_seconds = started.elapsed().as_secs_f64();
    let rss_before = proc_mib("VmRSS:");
    // Resets the peak so that it measures the pass alone (Linux).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let started = Instant::now();
    let row = engine
        .reconcile(ReconcileRequest {
            system: SYSTEM.into(),
            dry_run: true,
            confirm: false,
            trigger: ReconTrigger::Request,
            actor: "bench".into(),
        })
        .await?;
    let secs = started.elapsed().as_secs_f64();
    let peak = if reset { proc_mib("VmHWM:") } else { None };
    engine.shutdown().await;
    anyhow::ensure!(
        row.state == tenure_store::ReconState::Completed,
        "the reconciliation ended {}: {:?}",
        row.state.as_str(),
        row.message
    );
    let f = Figures {
        backend,
        accounts: row.accounts as usize,
        memberships: n * m,
        seed_seconds,
        reconcile_seconds: secs,
        accounts_per_second: row.accounts as f64 / secs,
        peak_rss_mib_during_pass: peak,
        rss_mib_before_pass: rss_before,
        counts: row
            .counts
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), *v))
            .collect(),
        load_average: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .map(|s| s.trim().to_string()),
    };
    if args.json {
        println!("{}", serde_json::to_string(&f)?);
        return Ok(());
    }
    println!("reconciliation of one sandbox system ({backend})");
    println!(
        "  accounts listed:      {} ({} memberships seeded, {:.1} s to seed)",
        f.accounts, f.memberships, f.seed_seconds
    );
    println!(
        "  pass:                 {:.2} s, {:.0} accounts/s",
        f.reconcile_seconds, f.accounts_per_second
    );
    match (f.peak_rss_mib_during_pass, f.rss_mib_before_pass) {
        (Some(p), Some(b)) => {
            println!("  peak RSS during pass: {p:.0} MiB (RSS before: {b:.0} MiB)")
        }
        _ => println!("  peak RSS during pass: not measurable here"),
    }
    for (k, v) in &f.counts {
        println!("  {k:<10} {v}");
    }
    if let Some(l) = &f.load_average {
        println!("  load average: {l}");
    }
    Ok(())
}
