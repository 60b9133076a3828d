//! `tenure serve`: the engine and the HTTP API, with graceful shutdown.

use crate::{DbArgs, EngineLimits, config_files, demo};
use anyhow::{Context, Result};
use clap::Args;
use metrics_exporter_prometheus::PrometheusBuilder;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tenure_api::{AppState, Scope};
use tenure_engine::{Engine, EngineOptions, SystemClock};
use tenure_store::Backend;

/// Options of `tenure serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TENURE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    limits: EngineLimits,
    /// tenure.toml; without it the built-in demo configuration is used.
    #[arg(long, env = "TENURE_CONFIG")]
    config: Option<PathBuf>,
    /// Seed a small demo company (about 40 people) on first start.
    #[arg(long)]
    demo: bool,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
    /// How long a claimed step is held before another instance (or this one, after a crash)
    /// may take it over. Calls that take longer may run twice (safely: they carry operation ids).
    #[arg(long, env = "TENURE_STEP_LEASE_SECS", default_value_t = 60)]
    step_lease_secs: u64,
    /// The URL clients reach tenure at (`https://tenure.example.com`, a path allowed), for
    /// absolute links such as SCIM's `meta.location`; http:// and the listen address if unset.
    #[arg(long, env = "TENURE_PUBLIC_URL")]
    public_url: Option<String>,
    /// HTTP connections served at once (lowered to what the open-file limit allows); more
    /// wait to be accepted.
    #[arg(long, env = "TENURE_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,
    /// Seconds a connection may send nothing (its request headers unfinished, its request
    /// body stalled, or idle between requests) before it is closed.
    #[arg(long, env = "TENURE_IDLE_TIMEOUT_SECS", default_value_t = 30)]
    idle_timeout_secs: u64,
}

/// The public URL given, checked: http or https, a host, no query or fragment.
fn public_url(given: &str) -> Result<String> {
    let url = reqwest::Url::parse(given).with_context(|| format!("--public-url `{given}`"))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        anyhow::bail!(
            "--public-url `{given}` must be an http(s) URL with a host and no query or fragment"
        );
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

pub async fn serve(args: ServeArgs) -> Result<()> {
    let telemetry = crate::traces::init(args.log_json, "info,sqlx=warn")?;
    if args.config.is_none() {
        tracing::info!("no --config given: using the built-in demo configuration and policies");
    }
    let loaded = config_files::Sources::read(args.config.as_deref())?.load()?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    tracing::info!(
        policy_files = loaded.policy_files,
        enforcing = loaded.policy.is_enforcing(),
        "configuration and policies loaded"
    );
    let (config, policy) = (loaded.config, loaded.policy);
    let given_url = args.public_url.as_deref().map(public_url).transpose()?;
    let limits = crate::http::Limits {
        max_connections: args.max_connections,
        idle_timeout: std::time::Duration::from_secs(args.idle_timeout_secs.max(1)),
    }
    .within(crate::http::raise_open_file_limit());
    let metrics = PrometheusBuilder::new()
        .set_buckets(&[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
        ])?
        .install_recorder()
        .context("installing the metrics recorder")?;

    // The secret itself never sits in the configuration: only the variable's name.
    let webhook_secret = config
        .notifications
        .secret_env
        .as_deref()
        .and_then(|name| std::env::var(name).ok())
        .filter(|s| !s.is_empty());
    let config_checkpoints = config.audit.checkpoints.clone();
    let store = args.limits.lane(args.db.open().await?)?;
    // A wrong master key, or a database restored without its keys, stops the start here.
    tenure_store::check_keys(&mut *store.reader().await?)
        .await
        .context("checking the master key against the database")?;
    // Records stored in clear (before a master key, or before this version) are sealed and
    // indexed now, before the engine reads any.
    let sealed = crate::privacy::seal_existing(&store)
        .await
        .context("sealing personal data stored in clear")?;
    if sealed > 0 {
        tracing::info!(rows = sealed, "personal data stored in clear sealed");
    }
    // Bound before anything is created: a busy port stops this start before the first-start
    // admin token exists, so the next start creates and prints it.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    // The checkpoint writer signs the audit chain's head outside the engine's transactions.
    let checkpoints = match &config_checkpoints {
        Some(settings) => {
            let base = args
                .config
                .as_deref()
                .and_then(std::path::Path::parent)
                .unwrap_or(std::path::Path::new("."));
            let writer = crate::evidence::checkpoint_writer(
                settings,
                base,
                store.clone(),
                Arc::new(SystemClock),
            )?;
            let (stop, stopped) = tokio::sync::watch::channel(false);
            Some((stop, tokio::spawn(writer.run(stopped))))
        }
        None => None,
    };

    let sole_instance = store.backend() == Backend::Sqlite;
    let engine = Engine::start_with_policy(
        store.clone(),
        Arc::new(config),
        Arc::new(policy),
        Arc::new(SystemClock),
        args.limits.apply(EngineOptions {
            sole_instance,
            lease_ms: args.step_lease_secs.max(1) as i64 * 1000,
            webhook_secret,
            ..Default::default()
        }),
    )
    .await?;
    let demo_seeded = args.demo && demo::seed(&engine).await?;
    drain_scim_outbox(&engine).await?;

    let loader = config_files::rules_loader(args.config.clone());
    #[cfg(unix)]
    tokio::spawn(reload_on_hangup(engine.clone(), loader.clone()));
    let url = given_url.unwrap_or_else(|| {
        if addr.ip().is_unspecified() {
            tracing::warn!(%addr, "listening on every address without --public-url: links tenure writes (SCIM meta.location) name {addr}");
        }
        format!("http://{addr}")
    });
    // The router logs and counts every request under its request id.
    let state = AppState::with_rules(engine.clone(), Some(metrics), loader).with_public_url(&url);
    // The audit chain verified in the background, a bounded page at a time (see
    // `tenure_api::watch_audit_chain`): `GET /api/v1/audit/verification` reads the result.
    let (stop_chain, chain_stopped) = tokio::sync::watch::channel(false);
    let chain_watch = tokio::spawn(tenure_api::watch_audit_chain(
        state.clone(),
        tenure_api::CHAIN_CHECK_EVERY,
        chain_stopped,
    ));
    let app = tenure_api::router(state);
    // Last before serving: once the token exists, nothing stands between it and its one showing.
    let bootstrap = bootstrap_token(&store).await?;
    tracing::info!(%addr, backend = ?store.backend(), "tenure is listening");
    match bootstrap {
        Bootstrap::Created {
            secret: Some(secret),
        } => {
            println!("admin token (shown once, store it now): {secret}")
        }
        Bootstrap::Created { secret: None } => {
            println!("admin token taken from TENURE_BOOTSTRAP_TOKEN")
        }
        Bootstrap::EnvIgnored => tracing::warn!(
            "TENURE_BOOTSTRAP_TOKEN is ignored: this database already has tokens, and the bootstrap token is only created on first start; use `tenure token create` on this database"
        ),
        Bootstrap::NotNeeded => {}
    }
    if demo_seeded {
        demo::print_sign_ins(&store, &url).await?;
    }
    let shutdown = shutdown_signal();
    println!("tenure listening on http://{addr}");
    crate::http::serve(listener, app, limits, shutdown).await?;
    tracing::info!("draining: waiting for calls in flight to finish and be recorded");
    stop_chain.send_replace(true);
    if let Err(e) = chain_watch.await {
        tracing::error!(error = %e, "the audit chain's watch ended abnormally");
    }
    engine.shutdown().await;
    if let Some((stop, task)) = checkpoints {
        stop.send_replace(true);
        if let Err(e) = task.await {
            tracing::error!(error = %e, "the checkpoint writer ended abnormally");
        }
    }
    store.close().await;
    telemetry.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Sends the lifecycle events an earlier version left in the SCIM outbox (see
/// [`tenure_api::drain_scim_outbox`]) before serving: nothing new is ever queued there.
async fn drain_scim_outbox(engine: &Engine) -> Result<()> {
    let sent = tenure_api::drain_scim_outbox(engine)
        .await
        .context("sending the events left in the SCIM outbox")?;
    if sent > 0 {
        tracing::info!(sent, "SCIM events recovered from the outbox");
    }
    Ok(())
}

/// What start-up did about the first-start admin token.
enum Bootstrap {
    /// Created now; the secret to print once when it was not given (never logged).
    Created { secret: Option<String> },
    /// The database has tokens, and `TENURE_BOOTSTRAP_TOKEN` names one that is not made.
    EnvIgnored,
    /// The database has tokens and no bootstrap token was asked for.
    NotNeeded,
}

/// On first start (no token at all), creates the admin token: `TENURE_BOOTSTRAP_TOKEN` if set,
/// else a fresh one for the caller to print once on standard output.
async fn bootstrap_token(store: &tenure_store::Store) -> Result<Bootstrap> {
    let given = std::env::var("TENURE_BOOTSTRAP_TOKEN")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let mut c = store.reader().await?;
    if tenure_store::count_tokens(&mut c).await? > 0 {
        return Ok(match given {
            Some(_) => Bootstrap::EnvIgnored,
            None => Bootstrap::NotNeeded,
        });
    }
    drop(c);
    let secret = given.clone().unwrap_or_else(tenure_api::new_token);
    let now = chrono::Utc::now().timestamp_millis();
    let row = tenure_store::TokenRow {
        id: "tok_bootstrap".into(),
        name: "bootstrap-admin".into(),
        scopes: Scope::ALL.map(Scope::as_str).join(" "),
        created_at: now,
        revoked_at: None,
        person_id: None,
    };
    let mut tx = store.begin().await?;
    tenure_store::insert_token(tx.conn(), &row, &tenure_api::hash_token(&secret)).await?;
    tx.audit(tenure_store::NewAudit {
        at_ms: now,
        actor: "tenure".into(),
        action: "token.created".into(),
        reason: "first start: bootstrap admin token".into(),
        details: serde_json::json!({ "token_id": row.id, "scopes": row.scopes, "from_env": given.is_some() }),
        ..Default::default()
    });
    tx.commit().await?;
    Ok(Bootstrap::Created {
        secret: given.is_none().then_some(secret),
    })
}

/// On SIGHUP, re-reads the configuration folder and swaps the rules; an invalid folder is
/// logged and the rules in force stay.
#[cfg(unix)]
async fn reload_on_hangup(engine: Engine, loader: tenure_api::RulesLoader) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; reload with POST /api/v1/reload");
            return;
        }
    };
    while hup.recv().await.is_some() {
        let loaded = match loader(&tenure_api::RuleFiles::default()) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("reload refused, the rules in force stay: {e}");
                continue;
            }
        };
        match engine.reload(loaded.0, loaded.1, "signal:SIGHUP").await {
            Ok(r) => {
                tracing::info!(label = %r.label, policies = r.policies.len(), templates = r.templates.len(), replans = r.runs, "rules reloaded")
            }
            Err(e) => tracing::error!("reload refused, the rules in force stay: {e}"),
        }
    }
}

/// Resolves at the first Ctrl-C (SIGINT) or SIGTERM: a graceful stop.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    // Registered now, not when the future is first polled: the caller makes it before printing
    // that it listens, so a SIGTERM sent as soon as that line is read is a graceful stop, not
    // the default action (an abrupt exit).
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    async move {
        #[cfg(unix)]
        match signals {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot listen for SIGINT or SIGTERM");
                std::future::pending::<()>().await;
            }
        }
        #[cfg(not(unix))]
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutdown requested");
    }
}
