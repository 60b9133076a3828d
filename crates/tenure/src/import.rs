//! `tenure import FILE.csv`: diffs an HR roster (the full current list of people) against
//! tenure's people and sends the `leave`, `hire`, `rehire`, `transfer` and `contract_change`
//! events that bring tenure in line, to a running tenure (`--url`) or into the database
//! directly through an in-process engine (`--data-dir` / `--database`).
//!
//! The file is streamed, in passes: the first parses and checks every row, marks who is
//! present and decides each person's events (keeping per person only an id and a fingerprint
//! of the compared fields); the import is held when it would terminate too many people; then
//! leaves are sent, and one more pass per kind of event that has any sends hires, rehires,
//! transfers and contract changes in file order.

use crate::{DbArgs, config_files};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenure_core::Person;
use tenure_core::config::ImportSettings;
use tenure_core::event::{EventInput, EventType, validate_event};
use tenure_core::roster::{
    self, Change, Columns, Differ, Field, Hold, Plan, ROW_KINDS, RosterReader, RosterRow, RowError,
};
use tenure_core::run::RunState;
use tenure_engine::{Engine, EngineError, EngineOptions, IngestOutcome, Submission, SystemClock};
use tenure_store::Store;
use tokio::task::JoinSet;

/// Exit status when the import is held for confirmation (nothing applied).
pub const EXIT_HELD: i32 = 3;
/// Exit status when some rows were bad or some events refused (the rest went through).
pub const EXIT_PARTIAL: i32 = 4;

/// Options of `tenure import`.
#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// The roster: a CSV file with a header row that lists everyone who works here now. With
    /// --watch, the drop folder rosters arrive in.
    pub file: PathBuf,
    /// Treat FILE as a drop folder: import every `*.csv` in it, oldest name first, then move
    /// each to `done/`, `held/` (over the leave share; move it back with --confirm to apply)
    /// or `failed/` beside it, with the time of the import in front of its name; then look
    /// again every --every-secs. Writers should write elsewhere (or as `*.part`) and rename
    /// the finished file in, so a half-written roster is never read.
    #[arg(long)]
    pub watch: bool,
    /// With --watch: seconds between looks at the drop folder.
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    pub every_secs: u64,
    /// With --watch: look once, import what is there, and exit (for cron or a systemd timer).
    #[arg(long)]
    pub once: bool,
    /// A running tenure to import into (`http://HOST:PORT`), with the token in TENURE_TOKEN
    /// (scopes `read` and `events:write`). Without it, the database (--data-dir or --database)
    /// is opened directly: only while `tenure serve` is stopped.
    #[arg(long)]
    pub url: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
    /// tenure.toml: its `[import]` section (column mapping, max_leave_share) and, when writing
    /// to the database directly, the systems, templates and policies runs are planned with.
    /// Without it: the default columns, a 5% leave share and the built-in demo configuration.
    #[arg(long, env = "TENURE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the diff (one line per person) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply even when the roster would terminate more than max_leave_share of the people.
    #[arg(long)]
    pub confirm: bool,
    /// Machine-readable output: one JSON object per line (bad rows, changes in a dry run,
    /// refused events), then a summary object.
    #[arg(long)]
    pub json: bool,
    /// Events in flight at once (HTTP requests with --url).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Without --url: how long to wait for the import's runs to finish (their steps run in this
    /// process meanwhile; a run awaiting approval counts as finished here). What is left then
    /// runs when `tenure serve` next starts. 0: stop as soon as every event is stored.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub wait_secs: u64,
}

/// Runs `tenure import`; exits with [`EXIT_HELD`] or [`EXIT_PARTIAL`] when that is the outcome.
pub async fn run(args: ImportArgs) -> Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx=error")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    if args.watch {
        return watch(args).await;
    }
    let code = import(args).await?;
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

/// The drop-folder loop of `tenure import --watch`.
async fn watch(args: ImportArgs) -> Result<()> {
    let dir = args.file.clone();
    if !dir.is_dir() {
        bail!("--watch: {} is not a folder", dir.display());
    }
    if args.dry_run {
        bail!("--watch moves the files it imports; it does not take --dry-run");
    }
    loop {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading the drop folder {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "csv"))
            .collect();
        files.sort();
        for file in files {
            let mut one = args.clone();
            one.watch = false;
            one.file = file.clone();
            let (outcome, code) = match import(one).await {
                Ok(0) => ("done", 0),
                Ok(EXIT_HELD) => ("held", EXIT_HELD),
                Ok(code) => ("done", code), // some rows bad: the good ones went through
                Err(e) => {
                    eprintln!("{}: {e:#}", file.display());
                    ("failed", 1)
                }
            };
            let to = dir.join(outcome);
            std::fs::create_dir_all(&to).with_context(|| format!("creating {}", to.display()))?;
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
            let name = file.file_name().expect("a file").to_string_lossy();
            let target = to.join(format!("{stamp}-{name}"));
            std::fs::rename(&file, &target)
                .with_context(|| format!("moving {} to {}", file.display(), target.display()))?;
            eprintln!(
                "{} imported: {outcome} (exit {code}), moved to {}",
                file.display(),
                target.display()
            );
        }
        if args.once {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(args.every_secs.max(1))).await;
    }
}

/// Where current people come from and events go.
enum Target {
    /// A running tenure over HTTP.
    Http(Http),
    /// The database, through an engine started in this process (not in a dry run).
    Store {
        store: Option<Store>,
        config: Option<PathBuf>,
    },
}

#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    base: Arc<str>,
    token: Arc<str>,
}

async fn import(args: ImportArgs) -> Result<i32> {
    let started = Instant::now();
    let settings = match &args.config {
        Some(path) => config_files::load_config(path)?.0.import,
        None => ImportSettings::default(),
    };
    let mut out = Out::new(args.json, args.file.display().to_string());

    // The people tenure knows.
    let mut target = match &args.url {
        Some(url) => {
            let token = std::env::var("TENURE_TOKEN")
                .ok()
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| {
                    anyhow!(
                        "--url needs a token in TENURE_TOKEN (scopes read and events:write; \
                         `tenure token create --name hr-import --scope read --scope events:write`)"
                    )
                })?;
            Target::Http(Http {
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()?,
                base: url.trim_end_matches('/').into(),
                token: token.trim().into(),
            })
        }
        None => Target::Store {
            store: open_store(&args.db, args.dry_run).await?,
            config: args.config.clone(),
        },
    };
    let mut differ = Differ::new();
    let known = match &target {
        Target::Http(h) => h.load_people(&mut differ).await?,
        Target::Store { store, .. } => match store {
            Some(s) => load_people_from_store(s, &mut differ).await?,
            None => 0,
        },
    };

    // First pass: check every row, mark who is present, decide the events.
    let mut file = File::open(&args.file)
        .with_context(|| format!("opening the roster {}", args.file.display()))?;
    let mut rows = RowStream::open(&mut file, &settings, &args.file)?;
    let id_column = rows.columns.label(Field::Id).to_string();
    while let Some(row) = rows.next()? {
        let result = match row {
            Ok(row) => differ.observe(&row, &id_column),
            Err(e) => {
                differ.observe_bad(&e);
                Err(e)
            }
        };
        if let Err(e) = result {
            out.bad_row(&e)?;
        }
    }
    let file_hash = rows.finish();
    let key = roster::import_key(&file_hash);
    let plan = differ.plan();
    let hold = plan.hold(settings.max_leave_share);
    let held = hold.is_some() && !args.confirm;

    let mut summary = Summary {
        plan: &plan,
        known,
        held: if held { hold.as_ref() } else { None },
        confirmed_hold: if args.confirm { hold.as_ref() } else { None },
        dry_run: args.dry_run,
        max_share: settings.max_leave_share,
        sent: Tally::default(),
        applied: false,
        key: &key,
        runs: None,
    };

    if args.dry_run {
        for change in differ.leave_events(&plan, &key) {
            out.change(&change)?;
        }
        for kind in ROW_KINDS {
            if plan.count(kind) == 0 {
                continue;
            }
            let mut rows = RowStream::open(&mut file, &settings, &args.file)?;
            while let Some(row) = rows.next()? {
                if let Ok(row) = row
                    && let Some(change) = differ.event_for(&row, kind, &key)
                {
                    out.change(&change)?;
                }
            }
            check_unchanged(&args.file, &file_hash, rows.finish())?;
        }
        out.summary(&summary, started)?;
        return Ok(exit_code(&summary));
    }
    if held {
        out.summary(&summary, started)?;
        return Ok(EXIT_HELD);
    }

    // Apply: leaves first, then each kind in file order.
    let sink = match &mut target {
        Target::Http(h) => Sink::Http(h.clone()),
        Target::Store { store, config } => {
            let store = match store.take() {
                Some(s) => s,
                None => args.db.open().await?,
            };
            Sink::Engine(start_engine(store, config.as_deref()).await?)
        }
    };
    let limit = match &sink {
        Sink::Http(_) => args.concurrency as usize,
        // The ingester stores up to 128 events per transaction: keep it fed.
        Sink::Engine(_) => 256,
    };
    let mut sender = Sender {
        sink,
        set: JoinSet::new(),
        limit,
        fatal: None,
        runs: Vec::new(),
    };
    'send: {
        for change in differ.leave_events(&plan, &key) {
            if !sender.send(change, &mut summary.sent, &mut out).await? {
                break 'send;
            }
        }
        for kind in ROW_KINDS {
            if plan.count(kind) == 0 {
                continue;
            }
            let mut rows = RowStream::open(&mut file, &settings, &args.file)?;
            while let Some(row) = rows.next()? {
                if let Ok(row) = row
                    && let Some(change) = differ.event_for(&row, kind, &key)
                    && !sender.send(change, &mut summary.sent, &mut out).await?
                {
                    break 'send;
                }
            }
            check_unchanged(&args.file, &file_hash, rows.finish())?;
        }
    }
    sender.drain(&mut summary.sent, &mut out).await?;
    if let Sink::Engine(engine) = &sender.sink {
        // Every submission was answered: its event is stored and, unless it queues behind an
        // earlier run of the same person, its run planned. Let the runs finish (the engine
        // runs their steps meanwhile), so that the engine stops with nothing in hand.
        let runs = std::mem::take(&mut sender.runs);
        summary.runs =
            Some(wait_finished(engine, runs, Duration::from_secs(args.wait_secs)).await?);
        engine.shutdown().await;
        engine.store().close().await;
    }
    summary.applied = true;
    out.summary(&summary, started)?;
    if let Some(why) = sender.fatal {
        bail!("the import stopped early: {why}");
    }
    Ok(exit_code(&summary))
}

fn exit_code(s: &Summary) -> i32 {
    if s.held.is_some() {
        EXIT_HELD
    } else if s.plan.bad_rows > 0 || s.sent.rejected > 0 {
        EXIT_PARTIAL
    } else {
        0
    }
}

fn check_unchanged(path: &Path, first: &[u8; 32], now: [u8; 32]) -> Result<()> {
    if *first != now {
        bail!(
            "{} changed while it was being imported; import the new file again",
            path.display()
        );
    }
    Ok(())
}

/// Opens the database; in a dry run, a SQLite file that does not exist yet is not created
/// (there is nobody to compare with).
/// The database to import into. A first import may create the SQLite database (seeding an
/// instance before its first start), but says so, with the full path: an import into a
/// mistyped `--data-dir` must not pass for one into the instance that serves.
async fn open_store(db: &DbArgs, dry_run: bool) -> Result<Option<Store>> {
    let file = db.data_dir.join("tenure.db");
    if db.database.is_none() && !file.exists() {
        if dry_run {
            return Ok(None);
        }
        let shown = std::path::absolute(&file).unwrap_or(file);
        eprintln!(
            "no tenure database at {}: creating a new one (point --data-dir or --database at an existing instance to import into it)",
            shown.display()
        );
    }
    Ok(Some(db.open().await?))
}

/// Waits (up to `patience`) until every one of `runs` has ended or awaits approval; returns
/// how many runs are in each state then.
async fn wait_finished(
    engine: &Engine,
    mut open: Vec<u128>,
    patience: Duration,
) -> Result<BTreeMap<String, usize>> {
    let deadline = Instant::now() + patience;
    let mut pause = Duration::from_millis(10);
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        let last = open.is_empty() || Instant::now() >= deadline;
        let mut still = Vec::new();
        let mut c = engine.store().reader().await?;
        for chunk in open.chunks(500) {
            let ids: Vec<String> = chunk
                .iter()
                .map(|u| uuid::Uuid::from_u128(*u).to_string())
                .collect();
            for run in tenure_store::runs_by_ids(&mut c, &ids).await? {
                let settled = run.state.is_terminal() || run.state == RunState::AwaitingApproval;
                if settled || last {
                    *states.entry(run.state.as_str().to_string()).or_default() += 1;
                } else if let Ok(id) = uuid::Uuid::parse_str(&run.id) {
                    still.push(id.as_u128());
                }
            }
        }
        drop(c);
        open = still;
        if last || open.is_empty() {
            return Ok(states);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

async fn load_people_from_store(store: &Store, differ: &mut Differ) -> Result<usize> {
    let mut c = store.reader().await?;
    let mut after: Option<String> = None;
    let mut n = 0;
    loop {
        let page = tenure_store::list_people(&mut c, after.as_deref(), 5_000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        n += page.len();
        for p in &page {
            differ.know(p);
        }
    }
    Ok(n)
}

/// Starts an engine on the store with the configuration `tenure serve` would use: the given
/// tenure.toml with its policies, else the built-in demo configuration.
async fn start_engine(store: Store, config: Option<&Path>) -> Result<Engine> {
    // As `tenure serve` does: on SQLite this process is the only one (serve is stopped), so
    // steps a stopped process left running are taken back at once.
    let options = EngineOptions {
        sole_instance: store.backend() == tenure_store::Backend::Sqlite,
        ..Default::default()
    };
    let engine = match config {
        Some(path) => {
            let loaded = config_files::load_all(path)?;
            Engine::start_with_policy(
                store,
                Arc::new(loaded.config),
                Arc::new(loaded.policy),
                Arc::new(SystemClock),
                options,
            )
            .await?
        }
        None => {
            Engine::start(
                store,
                Arc::new(config_files::demo()),
                Arc::new(SystemClock),
                options,
            )
            .await?
        }
    };
    Ok(engine)
}

// ---------------------------------------------------------------- reading the file

/// SHA-256 of every byte read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// One pass over the roster: rows one at a time, blank lines skipped.
struct RowStream<'f> {
    reader: RosterReader<Hashing<&'f mut File>>,
    columns: Columns,
    path: &'f Path,
}

impl<'f> RowStream<'f> {
    /// Rewinds the file and reads its header.
    fn open(file: &'f mut File, settings: &ImportSettings, path: &'f Path) -> Result<Self> {
        file.seek(SeekFrom::Start(0))?;
        let reader = RosterReader::new(Hashing {
            inner: file,
            hasher: Sha256::new(),
        })
        .with_context(|| format!("reading the header of {}", path.display()))?;
        let columns = settings
            .columns
            .resolve(reader.header())
            .map_err(|e| anyhow!("{}:1: {e}", path.display()))?;
        Ok(RowStream {
            reader,
            columns,
            path,
        })
    }

    fn next(&mut self) -> Result<Option<Result<RosterRow, RowError>>> {
        let next = self
            .reader
            .next_record()
            .with_context(|| format!("reading {}", self.path.display()))?;
        Ok(next.map(|(line, record)| self.columns.parse(record, line)))
    }

    /// The SHA-256 of the whole file (the pass has read it to the end).
    fn finish(self) -> [u8; 32] {
        let mut h = self.reader.into_inner();
        // Whatever the CSV reader left unread (nothing, after the last record).
        let _ = std::io::copy(&mut h, &mut std::io::sink());
        h.hasher.finalize().into()
    }
}

// ---------------------------------------------------------------- the API

#[derive(serde::Deserialize)]
struct PeoplePage {
    items: Vec<Person>,
    next_after: Option<String>,
}

impl Http {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn load_people(&self, differ: &mut Differ) -> Result<usize> {
        let mut after: Option<String> = None;
        let mut n = 0;
        loop {
            let mut url = reqwest::Url::parse(&self.url("/api/v1/people"))
                .with_context(|| format!("--url {}", self.base))?;
            url.query_pairs_mut().append_pair("limit", "1000");
            if let Some(a) = &after {
                url.query_pairs_mut().append_pair("after", a);
            }
            let res = self
                .client
                .get(url)
                .bearer_auth(&*self.token)
                .send()
                .await
                .with_context(|| format!("reading people from {}", self.base))?;
            let status = res.status();
            if !status.is_success() {
                let body = res.text().await.unwrap_or_default();
                bail!(
                    "reading people from {}: {status}: {}",
                    self.base,
                    error_message(&body)
                );
            }
            let page: PeoplePage = res
                .json()
                .await
                .with_context(|| format!("reading people from {}", self.base))?;
            n += page.items.len();
            for p in &page.items {
                differ.know(p);
            }
            match page.next_after {
                Some(next) if !page.items.is_empty() => after = Some(next),
                _ => break,
            }
        }
        Ok(n)
    }

    /// POSTs one event; retries what may pass later (network, 429, 5xx) a few times. The
    /// event id makes a retry of an event that was stored a replay, never a second event.
    async fn send(&self, event: &EventInput) -> Sent {
        let mut delay = Duration::from_millis(200);
        let mut last = String::new();
        for attempt in 0..5 {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            let res = self
                .client
                .post(self.url("/api/v1/events"))
                .bearer_auth(&*self.token)
                .json(event)
                .send()
                .await;
            let res = match res {
                Ok(r) => r,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let status = res.status();
            if status.is_success() {
                return Sent::Accepted {
                    replay: res.headers().contains_key("idempotent-replayed"),
                    run_id: None,
                };
            }
            let body = res.text().await.unwrap_or_default();
            let message = format!("{status}: {}", error_message(&body));
            match status.as_u16() {
                401 | 403 => return Sent::Fatal(message),
                429 => last = message,
                s if s >= 500 => last = message,
                _ => return Sent::Refused(message),
            }
        }
        Sent::Failed(last)
    }
}

/// The `message` (and `field`) of an API error body, else the body.
pub(crate) fn error_message(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) if v["error"]["message"].is_string() => {
            let msg = v["error"]["message"].as_str().unwrap_or_default();
            match v["error"]["field"].as_str() {
                Some(f) => format!("{f}: {msg}"),
                None => msg.to_string(),
            }
        }
        _ => body.chars().take(300).collect(),
    }
}

// ---------------------------------------------------------------- sending

enum Sink {
    Http(Http),
    Engine(Engine),
}

/// What became of one event.
enum Sent {
    Accepted {
        replay: bool,
        /// The run it started (in process only).
        run_id: Option<String>,
    },
    /// Refused for this event alone (4xx): reported, the import goes on.
    Refused(String),
    /// Could not be delivered after retries: reported, the import goes on.
    Failed(String),
    /// Nothing more can go through (bad token, engine stopping): stop sending.
    Fatal(String),
}

async fn submit(engine: &Engine, event: EventInput) -> Sent {
    if let Err(e) = validate_event(&event) {
        return Sent::Refused(e.to_string());
    }
    let mut delay = Duration::from_millis(100);
    for attempt in 0..5 {
        if attempt > 0 {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        let submission = Submission {
            event: event.clone(),
            idempotency_key: None,
            actor: "cli:import".into(),
            request_id: None,
            trace: None,
        };
        match engine.submit(submission).await {
            Ok(IngestOutcome::Accepted { replay, run_id, .. }) => {
                return Sent::Accepted {
                    replay,
                    run_id: Some(run_id),
                };
            }
            Ok(IngestOutcome::KeyReused { key, event_id }) => {
                return Sent::Refused(format!(
                    "event id `{key}` was already used for a different event ({event_id})"
                ));
            }
            Ok(IngestOutcome::Refused { field, message }) => {
                return Sent::Refused(format!("{field}: {message}"));
            }
            Err(EngineError::Unavailable(m)) if attempt < 4 => {
                tracing::warn!(error = %m, "storing an event failed; retrying");
            }
            Err(EngineError::Unavailable(m)) => return Sent::Failed(m),
            Err(e) => return Sent::Fatal(e.to_string()),
        }
    }
    Sent::Failed("storage unavailable".into())
}

/// Counts of what was sent, per event kind.
#[derive(Default, Debug)]
struct Tally {
    accepted: [usize; 5],
    replayed: usize,
    rejected: usize,
}

fn kind_index(kind: EventType) -> usize {
    match kind {
        EventType::Leave => 0,
        EventType::Hire => 1,
        EventType::Rehire => 2,
        EventType::Transfer => 3,
        _ => 4,
    }
}

const KINDS: [EventType; 5] = [
    EventType::Leave,
    EventType::Hire,
    EventType::Rehire,
    EventType::Transfer,
    EventType::ContractChange,
];

struct Sender {
    sink: Sink,
    set: JoinSet<(Change, Sent)>,
    limit: usize,
    fatal: Option<String>,
    /// The runs started (or found again) in process, to wait for their planning.
    runs: Vec<u128>,
}

impl Sender {
    /// Sends one event, with at most `limit` in flight; false once sending must stop.
    async fn send(&mut self, change: Change, tally: &mut Tally, out: &mut Out) -> Result<bool> {
        while self.set.len() >= self.limit {
            self.settle_one(tally, out).await?;
        }
        if self.fatal.is_some() {
            return Ok(false);
        }
        match &self.sink {
            Sink::Http(h) => {
                let h = h.clone();
                self.set.spawn(async move {
                    let sent = h.send(&change.event).await;
                    (change, sent)
                });
            }
            Sink::Engine(e) => {
                let e = e.clone();
                self.set.spawn(async move {
                    let sent = submit(&e, change.event.clone()).await;
                    (change, sent)
                });
            }
        }
        Ok(true)
    }

    async fn settle_one(&mut self, tally: &mut Tally, out: &mut Out) -> Result<()> {
        let Some(joined) = self.set.join_next().await else {
            return Ok(());
        };
        let (change, sent) = joined.context("an event task failed")?;
        match sent {
            Sent::Accepted { replay, run_id } => {
                tally.accepted[kind_index(change.event.kind)] += 1;
                if replay {
                    tally.replayed += 1;
                }
                if let Some(id) = run_id.and_then(|r| uuid::Uuid::parse_str(&r).ok()) {
                    self.runs.push(id.as_u128());
                }
            }
            Sent::Refused(why) | Sent::Failed(why) => {
                tally.rejected += 1;
                out.rejected(&change, &why)?;
            }
            Sent::Fatal(why) => {
                tally.rejected += 1;
                out.rejected(&change, &why)?;
                self.fatal.get_or_insert(why);
            }
        }
        Ok(())
    }

    async fn drain(&mut self, tally: &mut Tally, out: &mut Out) -> Result<()> {
        while !self.set.is_empty() {
            self.settle_one(tally, out).await?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- output

struct Summary<'a> {
    plan: &'a Plan,
    known: usize,
    held: Option<&'a Hold>,
    confirmed_hold: Option<&'a Hold>,
    dry_run: bool,
    max_share: f64,
    sent: Tally,
    applied: bool,
    key: &'a str,
    /// In process: the import's runs by state when the import stopped.
    runs: Option<BTreeMap<String, usize>>,
}

/// Where the report goes: text (diagnostics on stderr, the diff and summary on stdout) or
/// JSON lines on stdout.
struct Out {
    json: bool,
    file: String,
    stdout: BufWriter<std::io::Stdout>,
}

impl Out {
    fn new(json: bool, file: String) -> Out {
        Out {
            json,
            file,
            stdout: BufWriter::with_capacity(1 << 16, std::io::stdout()),
        }
    }

    fn json_line(&mut self, v: &Value) -> Result<()> {
        serde_json::to_writer(&mut self.stdout, v)?;
        self.stdout.write_all(b"\n")?;
        Ok(())
    }

    fn bad_row(&mut self, e: &RowError) -> Result<()> {
        if self.json {
            self.json_line(&json!({
                "type": "bad_row", "line": e.line, "column": e.column, "reason": e.reason, "id": e.id,
            }))
        } else {
            self.stdout.flush()?;
            eprintln!("{}:{}:{}: {}", self.file, e.line, e.column, e.reason);
            Ok(())
        }
    }

    fn change(&mut self, c: &Change) -> Result<()> {
        if self.json {
            let fields: serde_json::Map<String, Value> = c
                .fields
                .iter()
                .filter_map(|f| {
                    roster::field_value(&c.event.person, *f)
                        .map(|v| (f.as_str().to_string(), Value::String(v)))
                })
                .collect();
            self.json_line(&json!({
                "type": "change", "kind": c.event.kind, "person": c.event.person.id,
                "fields": fields, "event_id": c.event.id,
            }))
        } else {
            writeln!(self.stdout, "{c}")?;
            Ok(())
        }
    }

    fn rejected(&mut self, c: &Change, why: &str) -> Result<()> {
        if self.json {
            self.json_line(&json!({
                "type": "rejected", "kind": c.event.kind, "person": c.event.person.id,
                "event_id": c.event.id, "reason": why,
            }))
        } else {
            self.stdout.flush()?;
            eprintln!(
                "refused: {} {} ({}): {why}",
                c.event.kind,
                c.event.person.id,
                c.event.id.as_deref().unwrap_or("")
            );
            Ok(())
        }
    }

    fn summary(&mut self, s: &Summary<'_>, started: Instant) -> Result<()> {
        let p = s.plan;
        let elapsed = started.elapsed().as_secs_f64();
        let rows = p.rows + p.bad_rows;
        if self.json {
            let events: serde_json::Map<String, Value> = KINDS
                .iter()
                .map(|k| (k.as_str().to_string(), json!(p.count(*k))))
                .collect();
            let accepted: serde_json::Map<String, Value> = KINDS
                .iter()
                .map(|k| {
                    (
                        k.as_str().to_string(),
                        json!(s.sent.accepted[kind_index(*k)]),
                    )
                })
                .collect();
            let hold = s.held.or(s.confirmed_hold);
            self.json_line(&json!({
                "type": "summary",
                "file": self.file,
                "import_key": s.key,
                "rows": rows,
                "good_rows": p.rows,
                "bad_rows": p.bad_rows,
                "people": s.known,
                "active_people": p.active,
                "events": events,
                "max_leave_share": s.max_share,
                "held": s.held.is_some(),
                "hold_reason": hold.map(|h| h.to_string()),
                "confirmed": s.confirmed_hold.is_some() && s.applied,
                "dry_run": s.dry_run,
                "applied": s.applied,
                "accepted": accepted,
                "replayed": s.sent.replayed,
                "rejected": s.sent.rejected,
                "runs": s.runs,
                "seconds": elapsed,
            }))?;
        } else {
            let w = &mut self.stdout;
            writeln!(
                w,
                "{}: {rows} rows ({} good, {} bad); tenure knows {} people ({} not terminated)",
                self.file, p.rows, p.bad_rows, s.known, p.active
            )?;
            let counts: Vec<String> = KINDS
                .iter()
                .map(|k| format!("{} {}", p.count(*k), k))
                .collect();
            writeln!(w, "events: {} ({} in all)", counts.join(", "), p.total())?;
            if let Some(h) = s.held {
                if s.dry_run {
                    writeln!(
                        w,
                        "would be held: {h}; without --dry-run nothing would be applied unless --confirm is given"
                    )?;
                } else {
                    writeln!(
                        w,
                        "held: {h}; nothing was applied. Check that {} is complete, then run again with --confirm to apply it anyway.",
                        self.file
                    )?;
                }
            } else if s.dry_run {
                writeln!(w, "dry run: nothing was changed")?;
            } else if s.applied {
                if let Some(h) = s.confirmed_hold {
                    writeln!(w, "confirmed: {h}")?;
                }
                let accepted: usize = s.sent.accepted.iter().sum();
                writeln!(
                    w,
                    "applied: {accepted} events accepted ({} replays of an earlier import of this file), {} refused",
                    s.sent.replayed, s.sent.rejected
                )?;
                if let Some(runs) = &s.runs {
                    let shown: Vec<String> = runs
                        .iter()
                        .map(|(state, n)| format!("{n} {state}"))
                        .collect();
                    let open: usize = ["pending", "running"]
                        .iter()
                        .filter_map(|k| runs.get(*k))
                        .sum();
                    writeln!(
                        w,
                        "runs: {}{}",
                        if shown.is_empty() {
                            "none".to_string()
                        } else {
                            shown.join(", ")
                        },
                        if open > 0 {
                            format!(
                                "; the {open} not finished go on when `tenure serve` next starts"
                            )
                        } else {
                            String::new()
                        }
                    )?;
                }
            }
        }
        self.stdout.flush()?;
        if let Some(h) = s.held
            && !self.json
            && !s.dry_run
        {
            eprintln!("import held for confirmation: {h}");
        }
        Ok(())
    }
}
