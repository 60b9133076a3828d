//! `tenure bench --reconcile`: one system of `--accounts` accounts with `--memberships`
//! memberships each, against as many people, reconciled once (a dry run); prints the time,
//! the rate, what was found and the peak memory of the pass.
//!
//! tenure's side of the fixture is written straight into its tables (people, accounts,
//! grants) in large transactions: sending a million hires through the engine would measure
//! the engine, not reconciliation. The system is the sandbox by default, its tables written
//! the same way; with `--target FILE --system ID` it is a real system (LDAP, PostgreSQL)
//! configured in FILE, whose accounts and memberships are made through its connector before
//! the pass and deleted through it after. One account in a hundred of each kind drifts: a
//! leaver's account still enabled (stale), a person tenure holds no account for (unlinked), a
//! lost membership (missing), an extra one (excess, where the system has an entitlement more
//! than `--memberships`), and an account nobody owns (orphan).

use anyhow::{Context, Result};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use tenure_connectors::{Connector, ConnectorError, Op};
use tenure_core::config::{Config, SourceFile};
use tenure_core::{Entitlement, Person, PersonStatus};
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
    /// A tenure.toml and the real system in it to reconcile instead of the sandbox.
    pub target: Option<(std::path::PathBuf, String)>,
}

#[derive(Serialize)]
struct Figures {
    backend: &'static str,
    system: String,
    connector: String,
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

/// The sandbox system's configuration: `memberships` entitlements and one more.
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

/// The id of the orphan made beside person `i` (one in a hundred).
fn orphan_id(i: usize) -> String {
    format!("zz{i:08}")
}

fn person(id: String, status: PersonStatus) -> Person {
    Person {
        status,
        ..Person::new(&id, format!("Person {id}"), format!("{id}@example.com"))
    }
}

/// The drift of person `i`: (a leaver, no account record, a lost membership, an extra one,
/// an orphan beside).
fn drift(i: usize) -> (bool, bool, bool, bool, bool) {
    let k = i % 100;
    (k == 1, k == 2, k == 3, k == 5, k == 4)
}

/// Seeds tenure's records (see the module docs): `entitlements` are the system's ids of the
/// memberships each person holds.
async fn seed(
    store: &Store,
    system: &str,
    n: usize,
    entitlements: &[String],
    now: i64,
) -> Result<()> {
    use db::Value as V;
    let text = |s: String| V::from(s);
    insert(
        store,
        "INSERT INTO people (id, status, data, updated_at, email_index) VALUES ",
        5,
        (0..n).map(|i| {
            let status = if drift(i).0 {
                PersonStatus::Terminated
            } else {
                PersonStatus::Active
            };
            let p = person(id(i), status);
            vec![
                text(id(i)),
                text(status.as_str().into()),
                text(serde_json::to_string(&p).expect("a person serializes")),
                V::from(now),
                // Stored in clear (the bench's store has no master key), found by email as
                // reconciliation looks people up.
                text(store.vault().email_index(&p.email)),
            ]
        }),
    )
    .await?;
    // tenure's records: an account for all but the unlinked; the leavers' disabled.
    insert(
        store,
        "INSERT INTO accounts (person_id, system, state, updated_at) VALUES ",
        4,
        (0..n).filter(|i| !drift(*i).1).map(|i| {
            vec![
                text(id(i)),
                text(system.into()),
                text(if drift(i).0 { "disabled" } else { "active" }.into()),
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
            .filter(|i| !drift(*i).0 && !drift(*i).1)
            .flat_map(|i| entitlements.iter().map(move |e| (i, e)))
            .map(|(i, e)| {
                vec![
                    text(id(i)),
                    text(e.clone()),
                    text(system.into()),
                    text("birthright".into()),
                    text("bench".into()),
                    text("granted".into()),
                    V::from(now),
                ]
            }),
    )
    .await?;
    Ok(())
}

/// Seeds the sandbox system's tables (see the module docs).
async fn seed_sandbox(store: &Store, n: usize, m: usize) -> Result<()> {
    use db::Value as V;
    let text = |s: String| V::from(s);
    // The system: every account enabled (the leavers' too: stale), orphans besides.
    insert(
        store,
        "INSERT INTO sandbox_accounts (system, person_id, enabled, attrs) VALUES ",
        4,
        (0..n)
            .map(id)
            .chain((0..n).filter(|i| drift(*i).4).map(orphan_id))
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
            .filter(|i| !drift(*i).0 && !drift(*i).1)
            .flat_map(|i| {
                let lost = drift(i).2;
                let extra = drift(i).3.then(|| format!("{SYSTEM}:extra"));
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

/// A real system to reconcile (`--target`).
struct Target {
    system: String,
    connector: Arc<dyn Connector>,
    /// The memberships each person holds.
    entitlements: Vec<Entitlement>,
    /// The one held too by one person in a hundred (excess), if the system has one more.
    extra: Option<Entitlement>,
}

/// Calls made at once while seeding and cleaning a real system.
const CALLS_AT_ONCE: usize = 16;

/// Runs `f` on every item, [`CALLS_AT_ONCE`] at a time; the first failure ends it.
async fn each<T, F, Fut>(items: Vec<T>, f: F) -> Result<()>
where
    T: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<(), ConnectorError>> + Send + 'static,
{
    let mut running = tokio::task::JoinSet::new();
    for item in items {
        if running.len() >= CALLS_AT_ONCE
            && let Some(done) = running.join_next().await
        {
            done??;
        }
        running.spawn(f(item));
    }
    while let Some(done) = running.join_next().await {
        done??;
    }
    Ok(())
}

/// Makes the system's side of the fixture through its connector: every person's account
/// (the leavers' and the unlinked too), their memberships with the drift, and the orphans.
async fn seed_target(t: &Target, n: usize) -> Result<()> {
    let mut work = Vec::with_capacity(n + n / 100 + 1);
    for i in 0..n {
        let (left, unlinked, lost, extra, orphan) = drift(i);
        let mut grants: Vec<Entitlement> = if left || unlinked {
            Vec::new()
        } else {
            t.entitlements
                .iter()
                .skip(usize::from(lost))
                .cloned()
                .collect()
        };
        if extra && let Some(e) = &t.extra {
            grants.push(e.clone());
        }
        work.push((person(id(i), PersonStatus::Active), grants));
        if orphan {
            work.push((person(orphan_id(i), PersonStatus::Active), Vec::new()));
        }
    }
    let c = t.connector.clone();
    each(work, move |(p, grants)| {
        let c = c.clone();
        async move {
            let op = |k: usize| Op {
                id: format!("bench-{}-{k}", p.id),
                attempt: 1,
                priority: tenure_core::run::Priority::Normal,
            };
            c.create_account(&op(0), &p).await?;
            for (k, e) in grants.iter().enumerate() {
                c.grant(&op(k + 1), &p, e).await?;
            }
            Ok(())
        }
    })
    .await
    .context("making the accounts on the system")
}

/// Deletes every account [`seed_target`] made, through the connector.
async fn clean_target(t: &Target, n: usize) -> Result<()> {
    let ids: Vec<String> = (0..n)
        .map(id)
        .chain((0..n).filter(|i| drift(*i).4).map(orphan_id))
        .collect();
    let c = t.connector.clone();
    each(ids, move |id| {
        let c = c.clone();
        async move {
            let op = Op {
                id: format!("bench-{id}-delete"),
                attempt: 1,
                priority: tenure_core::run::Priority::Normal,
            };
            c.delete_account(&op, &person(id, PersonStatus::Terminated))
                .await
        }
    })
    .await
    .context("deleting the accounts made on the system")
}

/// Reads `--target`'s file: its configuration, and the system's first `m` entitlements (by
/// id) and the one after, if any.
fn target_config(file: &std::path::Path, system: &str, m: usize) -> Result<(Config, Vec<String>)> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let config = Config::parse(
        &SourceFile {
            path: file.display().to_string(),
            text,
        },
        &[],
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(s) = config.systems.get(system) else {
        anyhow::bail!("{} names no system `{system}`", file.display());
    };
    anyhow::ensure!(
        s.connector != "sandbox",
        "`{system}` is a sandbox system: leave out --target to measure the sandbox"
    );
    let ids: Vec<String> = config
        .entitlements
        .values()
        .filter(|e| e.system == system)
        .map(|e| e.id.clone())
        .collect();
    anyhow::ensure!(
        ids.len() >= m,
        "`{system}` has {} entitlements; --memberships {m} needs at least as many",
        ids.len()
    );
    Ok((config, ids))
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
    let (config, system, entitlements) = match &args.target {
        Some((file, system)) => {
            let (config, ids) = target_config(file, system, m)?;
            (config, system.clone(), ids)
        }
        None => (
            config(m)?,
            SYSTEM.to_string(),
            (0..m).map(|e| format!("{SYSTEM}:e{e}")).collect(),
        ),
    };
    let connector_kind = config.systems[&system].connector.clone();
    let held: Vec<String> = entitlements.iter().take(m).cloned().collect();
    let engine = Engine::start(
        store.clone(),
        Arc::new(config.clone()),
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
    seed(&store, &system, n, &held, now)
        .await
        .context("seeding the fixture")?;
    let target = match &args.target {
        None => {
            seed_sandbox(&store, n, m).await?;
            None
        }
        Some(_) => {
            let t = Target {
                connector: engine
                    .connector(&system)
                    .context("the system's connector did not start")?,
                entitlements: held
                    .iter()
                    .map(|id| config.entitlements[id].clone())
                    .collect(),
                extra: entitlements
                    .get(m)
                    .map(|id| config.entitlements[id].clone()),
                system: system.clone(),
            };
            if !args.json {
                eprintln!("making them on `{}` through its connector...", t.system);
            }
            if let Err(e) = seed_target(&t, n).await {
                let _ = clean_target(&t, n).await;
                return Err(e);
            }
            Some(t)
        }
    };
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
            system: system.clone(),
            dry_run: true,
            confirm: false,
            trigger: ReconTrigger::Request,
            actor: "bench".into(),
        })
        .await;
    let secs = started.elapsed().as_secs_f64();
    let peak = if reset { proc_mib("VmHWM:") } else { None };
    if let Some(t) = &target {
        if !args.json {
            eprintln!("deleting what was made on `{}`...", t.system);
        }
        clean_target(t, n).await?;
    }
    engine.shutdown().await;
    let row = row?;
    anyhow::ensure!(
        row.state == tenure_store::ReconState::Completed,
        "the reconciliation ended {}: {:?}",
        row.state.as_str(),
        row.message
    );
    let f = Figures {
        backend,
        system: system.clone(),
        connector: connector_kind,
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
    println!(
        "reconciliation of one {} system, `{}` (tenure on {backend})",
        f.connector, f.system
    );
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
