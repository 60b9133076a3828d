//! `tenure`: the identity-lifecycle engine as one binary.

/// mimalloc instead of the system allocator: reconciliation and the engine make many small,
/// short-lived allocations across threads (rows, ids, findings), where glibc's malloc spends its
/// time in arena locks and consolidation (see ARCHITECTURE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod access_cmd;
mod approvals_cmd;
mod backup;
mod bench;
mod bench_policies;
mod config_files;
mod demo;
mod evidence;
mod files;
mod http;
mod import;
mod plan_cmd;
mod policy_cmd;
mod privacy;
mod recon_bench;
mod reconcile_cmd;
mod reviews_bench;
mod reviews_cmd;
mod scim_bench;
mod serve;
mod tasks_cmd;
mod traces;
mod whatif_bench;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tenure_api::Scope;
use tenure_engine::EngineOptions;
use tenure_store::Store;

/// Identity lifecycle automation: the right access on day one, none the moment it ends.
#[derive(Parser)]
#[command(name = "tenure", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the engine.
    Serve(serve::ServeArgs),
    /// Create, list and revoke API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Work with the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The evidence of a person's latest leave: each system's removals with the audit entries
    /// that prove them, what is still held, and the `[sla] revoke` targets met or missed.
    Evidence(evidence::LeaverArgs),
    /// Reports: `tenure report sla`, how long access took to arrive and to go in a period.
    Report {
        #[command(subcommand)]
        command: evidence::ReportCommand,
    },
    /// Write a consistent copy of the embedded SQLite database while tenure runs (for
    /// PostgreSQL, use pg_dump).
    Backup {
        /// The copy to write (refused if it exists). It holds no person keys.
        file: PathBuf,
        /// Also write every person key (each sealed under the master key) to this new file,
        /// for a restore where the database is lost. Keep it with the master key, apart from
        /// the backup: a person forgotten later stays readable through it.
        #[arg(long, value_name = "FILE")]
        keys: Option<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Put a backup back as the embedded SQLite database (tenure must not be running).
    Restore {
        /// The backup `tenure backup` wrote.
        file: PathBuf,
        /// Replace the database there.
        #[arg(long)]
        force: bool,
        /// A keys file `tenure backup --keys` wrote: where the database the backup came from
        /// is not there to take the keys from.
        #[arg(long, value_name = "FILE")]
        keys: Option<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Forget a person who has left: delete the key their personal data is sealed with (in
    /// the database and in every backup of it), leaving their id alone. Audited; refused while
    /// they still hold access or a run on them is going.
    Forget(privacy::ForgetArgs),
    /// Keys: the master key that seals personal data, and those that sign the audit trail's
    /// checkpoints.
    Keys {
        #[command(subcommand)]
        command: evidence::KeysCommand,
    },
    /// Validate a configuration (tenure.toml and its templates) without starting anything.
    Check {
        /// The tenure.toml to check.
        #[arg(long, env = "TENURE_CONFIG")]
        config: PathBuf,
    },
    /// Run the engine in process against zero-latency sandbox systems and print throughput
    /// and latency figures.
    Bench(bench::BenchArgs),
    /// Policy as code (Cedar): check policies, print the schema, measure decisions.
    Policy {
        #[command(subcommand)]
        command: policy_cmd::PolicyCommand,
    },
    /// Import an HR roster (CSV, the full current list of people): diff it against tenure's
    /// people and send the hire, rehire, transfer, contract_change and leave events.
    Import(import::ImportArgs),
    /// What-if: every grant, revoke and account change that one event, or a changed
    /// configuration folder, would cause, with policy's reasons; nothing is executed or stored.
    Plan(plan_cmd::PlanArgs),
    /// Decide access approvals over the HTTP API (token in TENURE_TOKEN, acting as you).
    Approvals {
        #[command(subcommand)]
        command: approvals_cmd::ApprovalsCommand,
    },
    /// Your access requests over the HTTP API (token in TENURE_TOKEN, acting as you).
    Requests {
        #[command(subcommand)]
        command: access_cmd::RequestsCommand,
    },
    /// Substitutes who decide your approvals while you are away (token in TENURE_TOKEN).
    Delegations {
        #[command(subcommand)]
        command: access_cmd::DelegationsCommand,
    },
    /// Access reviews over the HTTP API (token in TENURE_TOKEN): list campaigns, open one,
    /// show and decide your items, close, export the evidence.
    Reviews {
        #[command(subcommand)]
        command: reviews_cmd::ReviewsCommand,
    },
    /// Tasks that steps wait on (manual systems, webhook callbacks): list, complete, fail.
    Tasks {
        #[command(subcommand)]
        command: tasks_cmd::TasksCommand,
    },
    /// Reconcile a target system over the HTTP API (token in TENURE_TOKEN, admin): compare
    /// what it holds with tenure's records, record the findings, correct what its settings
    /// say to; waits for the end and prints the counts and findings.
    Reconcile(reconcile_cmd::ReconcileArgs),
    /// Write the demo configuration (tenure.toml, templates/, policies/) into a folder, ready
    /// for `tenure serve --config DIR/tenure.toml`.
    Init {
        /// The folder to write into (created if missing).
        dir: PathBuf,
        /// Overwrite files that already exist.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print its secret (shown once).
    Create {
        /// Who or what will hold it (shows as the actor in the audit trail).
        #[arg(long)]
        name: String,
        /// A scope to grant; repeat for several. `admin` allows everything.
        #[arg(long = "scope", required = true, value_parser = scope_parser())]
        scopes: Vec<Scope>,
        /// The person (HR id) the token acts as when it asks for or approves access.
        #[arg(long = "as", value_name = "PERSON")]
        person: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token id (tok_...).
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the whole hash chain, and each signed checkpoint against it (--public-key); or an
    /// export, offline (--export). Names the entries altered, removed or reordered.
    Verify(evidence::VerifyArgs),
    /// Write entries (a range, or one person's) with the checkpoints that cover them to a file
    /// of JSON lines, for verification elsewhere.
    Export(evidence::ExportArgs),
}

/// How much work the engine holds at once (`tenure serve`, `tenure bench`).
#[derive(Args, Clone, Debug)]
pub struct EngineLimits {
    /// Steps in flight at once (claimed and not yet recorded), over all systems. A system's
    /// own `max_concurrency` still bounds the calls it is sent at once, so steps beyond the
    /// systems' sum only wait: set it near that sum.
    #[arg(long, env = "TENURE_MAX_IN_FLIGHT", default_value_t = EngineOptions::default().max_in_flight)]
    pub max_in_flight: usize,
    /// Leavers' steps in flight at once, on top of `--max-in-flight`: room no backlog of
    /// hires takes.
    #[arg(long, env = "TENURE_MAX_URGENT_IN_FLIGHT", default_value_t = EngineOptions::default().max_urgent_in_flight)]
    pub max_urgent_in_flight: usize,
    /// Steps claimed per transaction (at most `--max-in-flight`).
    #[arg(long, env = "TENURE_CLAIM_BATCH", default_value_t = EngineOptions::default().claim_batch)]
    pub claim_batch: usize,
    /// Where leavers' work runs: `thread`, a thread of its own that no backlog of hires keeps
    /// busy; `shared`, the runtime's worker threads, beside everything else (a little more
    /// throughput, leavers wait longer under load).
    #[arg(long, env = "TENURE_URGENT_LANE", value_enum, default_value_t = UrgentLane::Thread)]
    pub urgent_lane: UrgentLane,
}

/// Where leavers' work runs (`--urgent-lane`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrgentLane {
    /// On a thread of its own.
    Thread,
    /// On the runtime's worker threads.
    Shared,
}

impl UrgentLane {
    /// The name `--urgent-lane` takes.
    pub fn name(self) -> &'static str {
        match self {
            UrgentLane::Thread => "thread",
            UrgentLane::Shared => "shared",
        }
    }
}

impl EngineLimits {
    /// These limits over `options`.
    pub fn apply(&self, options: EngineOptions) -> EngineOptions {
        EngineOptions {
            max_in_flight: self.max_in_flight,
            max_urgent_in_flight: self.max_urgent_in_flight,
            claim_batch: self.claim_batch,
            ..options
        }
    }

    /// `store`, with the urgent lane these limits ask for.
    pub fn lane(&self, store: Store) -> Result<Store> {
        Ok(match self.urgent_lane {
            UrgentLane::Thread => store.with_urgent_thread()?,
            UrgentLane::Shared => store,
        })
    }
}

/// Where the database is.
#[derive(Args, Clone, Debug)]
pub struct DbArgs {
    /// Data directory for the embedded SQLite database.
    #[arg(long, env = "TENURE_DATA_DIR", default_value = "./tenure-data")]
    pub data_dir: PathBuf,
    /// A PostgreSQL URL (postgres://...) instead of the embedded SQLite.
    #[arg(long, env = "TENURE_DATABASE_URL")]
    pub database: Option<String>,
    /// The file holding the master key that seals personal data (as `tenure keys master`
    /// writes it). Or give the key itself in TENURE_MASTER_KEY. Default on SQLite:
    /// `master.key` in the data directory, made on first start; PostgreSQL needs one of them.
    #[arg(long, env = "TENURE_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
}

impl DbArgs {
    /// Opens the store these arguments name, creating an empty SQLite database if there is
    /// none: for `serve`, which starts one.
    pub async fn open(&self) -> Result<Store> {
        match &self.database {
            Some(url) => {
                let vault = privacy::master_vault(self)?;
                Ok(Store::connect(url)
                    .await
                    .with_context(|| format!("connecting to {}", without_credentials(url)))?
                    .with_vault(vault))
            }
            None => {
                std::fs::create_dir_all(&self.data_dir).with_context(|| {
                    format!("creating data directory {}", self.data_dir.display())
                })?;
                let vault = privacy::master_vault(self)?;
                let path = self.data_dir.join("tenure.db");
                Ok(Store::open_sqlite(&path)
                    .await
                    .with_context(|| format!("opening {}", path.display()))?
                    .with_vault(vault))
            }
        }
    }

    /// Opens the database of an instance that has run: where there is no SQLite database,
    /// says where it looked instead of creating an empty one (whose tokens no server reads).
    pub async fn open_existing(&self) -> Result<Store> {
        if self.database.is_none() {
            let path = self.data_dir.join("tenure.db");
            if !path.is_file() {
                let shown = std::path::absolute(&path).unwrap_or(path);
                bail!(
                    "no tenure database at {}: run this where `tenure serve` keeps its data, or name it with --data-dir (TENURE_DATA_DIR) or --database (TENURE_DATABASE_URL)",
                    shown.display()
                );
            }
        }
        self.open().await
    }
}

/// A database URL fit for messages: scheme, host and database, without user, password or
/// parameters.
fn without_credentials(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let rest = match rest.split_once('/') {
                Some((authority, path)) => {
                    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                    format!("{host}/{path}")
                }
                None => rest.rsplit_once('@').map_or(rest, |(_, h)| h).to_string(),
            };
            format!("{scheme}://{rest}")
        }
        None => "the database".into(),
    }
}

/// `--scope`: one of [`Scope::ALL`], which `--help` and the error for any other word list.
fn scope_parser() -> impl clap::builder::TypedValueParser<Value = Scope> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Scope::ALL.map(Scope::as_str))
        .try_map(|s| s.parse::<Scope>())
}

/// Runs the command; an error is printed as one message (its causes after colons) and exits 1,
/// never with a backtrace, whatever `RUST_BACKTRACE` says.
fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::serve(args).await,
            Command::Token { command } => token(command).await,
            Command::Audit {
                command: AuditCommand::Verify(args),
            } => evidence::verify(args).await,
            Command::Audit {
                command: AuditCommand::Export(args),
            } => evidence::export(args).await,
            Command::Keys { command } => evidence::keys(command),
            Command::Forget(args) => privacy::forget(args).await,
            Command::Evidence(args) => evidence::leaver(args).await,
            Command::Report { command } => evidence::report(command).await,
            Command::Backup { file, keys, db } => backup::backup(file, keys, db).await,
            Command::Restore {
                file,
                force,
                keys,
                db,
            } => backup::restore(file, keys, force, db).await,
            Command::Check { config } => {
                let c = config_files::load(&config)?;
                if let Some(settings) = &c.audit.checkpoints {
                    let base = config.parent().unwrap_or(std::path::Path::new("."));
                    if let Some(public) = evidence::check_checkpoint_key(settings, base)? {
                        println!("audit.checkpoints: signing key ok, public key {public}");
                    }
                }
                println!(
                    "{}: ok ({} systems, {} entitlements, {} templates, {} clients)",
                    config.display(),
                    c.systems.len(),
                    c.entitlements.len(),
                    c.templates.len(),
                    c.clients.len()
                );
                Ok(())
            }
            Command::Bench(args) => bench::run(args).await,
            Command::Policy { command } => policy_cmd::run(command).await,
            Command::Import(args) => import::run(args).await,
            Command::Plan(args) => plan_cmd::run(args).await,
            Command::Approvals { command } => approvals_cmd::run(command).await,
            Command::Requests { command } => access_cmd::requests(command).await,
            Command::Delegations { command } => access_cmd::delegations(command).await,
            Command::Tasks { command } => tasks_cmd::run(command).await,
            Command::Reviews { command } => reviews_cmd::run(command).await,
            Command::Reconcile(args) => reconcile_cmd::run(args).await,
            Command::Init { dir, force } => {
                let written = config_files::write_demo(&dir, force)?;
                for p in &written {
                    println!("wrote {}", p.display());
                }
                let config = dir.join("tenure.toml");
                println!(
                    "next: tenure policy check --config {0}\n      tenure serve --config {0}",
                    config.display()
                );
                Ok(())
            }
        }
    })
}

async fn token(command: TokenCommand) -> Result<()> {
    match command {
        TokenCommand::Create {
            name,
            scopes,
            person,
            db,
        } => {
            tenure_api::check_token_name(&name).map_err(|e| anyhow::anyhow!("--name {e}"))?;
            let store = db.open_existing().await?;
            let (row, secret) =
                tenure_api::issue_token(&store, &name, &scopes, person.as_deref(), "cli")
                    .await
                    .map_err(|e| match e {
                        tenure_api::TokenRefused::Store(e) => anyhow::Error::from(e),
                        refused => anyhow::anyhow!("--as: {refused}"),
                    })?;
            println!("{secret}");
            eprintln!(
                "created {} ({}) with scopes: {}. The secret above is shown only once.",
                row.id, row.name, row.scopes
            );
        }
        TokenCommand::List { db } => {
            let store = db.open_existing().await?;
            let mut c = store.reader().await?;
            for t in tenure_store::list_tokens(&mut c).await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "live"
                };
                println!("{}\t{}\t{}\t{}", t.id, t.name, t.scopes, state);
            }
        }
        TokenCommand::Revoke { id, db } => {
            let store = db.open_existing().await?;
            match tenure_api::revoke_token_by_id(&store, &id, "cli").await? {
                tenure_api::Revocation::Revoked => println!("revoked {id}"),
                tenure_api::Revocation::NoSuchToken => bail!("no live token with id `{id}`"),
                tenure_api::Revocation::LastAdmin => bail!(
                    "`{id}` is the last live token holding `admin`: create another with `tenure token create --scope admin` first"
                ),
            }
        }
    }
    Ok(())
}
