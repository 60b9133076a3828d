//! `tenure plan`: what-if. Shows, without executing or storing anything, every grant, revoke
//! and account change that one event, or a changed configuration folder, would cause, with
//! policy's reasons.

use crate::DbArgs;
use crate::config_files::Sources;
use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;

/// Options of `tenure plan`.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The configuration folder to plan with (its tenure.toml): the changed templates and
    /// policies to review. Without it: the built-in demo configuration (or, with --url and
    /// --event, the server's own rules).
    #[arg(long, env = "TENURE_CONFIG")]
    config: Option<PathBuf>,
    /// Plan this one event (a JSON file, as POSTed to /api/v1/events) instead of everyone.
    #[arg(long)]
    event: Option<PathBuf>,
    /// Ask a running tenure (`http://HOST:PORT`; token with the read scope in TENURE_TOKEN)
    /// instead of reading a stopped one's database.
    #[arg(long)]
    url: Option<String>,
    /// How many people's plans to list (the totals count everyone).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    #[command(flatten)]
    db: DbArgs,
}

pub async fn run(args: PlanArgs) -> Result<()> {
    let event: Option<Value> = match &args.event {
        Some(p) => {
            let text = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            Some(
                serde_json::from_slice(&text)
                    .with_context(|| format!("{} is not JSON", p.display()))?,
            )
        }
        None => None,
    };
    let out = match &args.url {
        Some(url) => remote(&args, url, event).await?,
        None => local(&args, event).await?,
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

async fn remote(args: &PlanArgs, url: &str, event: Option<Value>) -> Result<Value> {
    let token = std::env::var("TENURE_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .context("--url needs a token with the read scope in TENURE_TOKEN")?;
    let body = match (event, &args.config) {
        (Some(e), _) => json!({ "event": e, "limit": args.limit }),
        (None, Some(path)) => {
            let s = Sources::read(Some(path))?;
            let name = |f: &tenure_core::config::SourceFile| {
                std::path::Path::new(&f.path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            json!({
                "config": s.main.text,
                "templates": s.templates.iter().map(|f| (name(f), f.text.clone())).collect::<std::collections::BTreeMap<_, _>>(),
                "policies": s.policies.iter().map(|f| (name(f), f.text.clone())).collect::<std::collections::BTreeMap<_, _>>(),
                "limit": args.limit,
            })
        }
        (None, None) => {
            bail!("give --event FILE, or --config DIR/tenure.toml with the changed rules")
        }
    };
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/simulate", url.trim_end_matches('/')))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("asking {url}"))?;
    let status = res.status();
    let v: Value = res.json().await.context("reading the answer")?;
    if !status.is_success() {
        bail!(
            "{status}: {}",
            v["error"]["message"].as_str().unwrap_or("no message")
        );
    }
    Ok(v)
}

async fn local(args: &PlanArgs, event: Option<Value>) -> Result<Value> {
    let loaded = Sources::read(args.config.as_deref())?.load()?;
    let rules = tenure_engine::Rules {
        config: Arc::new(loaded.config),
        policy: Arc::new(loaded.policy),
        label: "what-if".into(),
    };
    let store = args.db.open().await?;
    let now = chrono::Utc::now().timestamp_millis();
    let started = std::time::Instant::now();
    let result = match event {
        Some(e) => {
            let raw = serde_json::to_vec(&e)?;
            let event = tenure_core::event::parse_event(&raw)
                .map_err(|e| anyhow::anyhow!("event.{}: {}", e.field, e.message))?;
            tenure_engine::what_if_event(&store, &rules, &event, now).await?
        }
        // Offline, the rules in force are not known: held access is judged again too.
        None => tenure_engine::what_if(&store, &rules, None, now, args.limit).await?,
    };
    store.close().await;
    let mut v = serde_json::to_value(result)?;
    v["elapsed_ms"] = json!(started.elapsed().as_millis() as u64);
    Ok(v)
}
