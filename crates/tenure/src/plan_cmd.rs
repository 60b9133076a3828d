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
use tenure_api::RuleFiles;

/// Options of `tenure plan`.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The configuration folder to plan with (its tenure.toml): the changed templates and
    /// policies to review. With --url its files are laid over the server's by name; without,
    /// the folder is planned as it stands. Without it: the built-in demo configuration (or,
    /// with --url, the server's own rules).
    #[arg(long, env = "TENURE_CONFIG")]
    config: Option<PathBuf>,
    /// Plan this one event (a JSON file, as POSTed to /api/v1/events) instead of everyone.
    #[arg(long)]
    event: Option<PathBuf>,
    /// Ask a running tenure (`http://HOST:PORT`; token with the read scope in TENURE_TOKEN)
    /// instead of reading a stopped one's database.
    #[arg(long)]
    url: Option<String>,
    /// With --url: a file of the server's folder to plan without (`templates/NAME.toml` or
    /// `policies/NAME.cedar`). The files of --config are laid over the server's by name, so a
    /// file missing from --config is not removed unless named here. Repeat for several.
    #[arg(long, value_name = "FOLDER/FILE", requires = "url")]
    remove: Vec<String>,
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
    if event.is_some() && !args.remove.is_empty() {
        bail!("--remove changes the rules: plan one event, or changed rules, not both");
    }
    let body = match (event, &args.config) {
        (Some(e), _) => json!({ "event": e, "limit": args.limit }),
        (None, None) if args.remove.is_empty() => {
            bail!(
                "give --event FILE, or --config DIR/tenure.toml with the changed rules (or --remove FOLDER/FILE)"
            )
        }
        (None, config) => {
            let mut files = match config {
                Some(path) => sent_files(&Sources::read(Some(path))?),
                None => RuleFiles::default(),
            };
            for r in &args.remove {
                let (set, name) = match r.split_once('/') {
                    Some(("templates", name)) => (files.templates.get_or_insert_default(), name),
                    Some(("policies", name)) => (files.policies.get_or_insert_default(), name),
                    _ => bail!(
                        "--remove {r}: name a file of the folder as templates/NAME.toml or policies/NAME.cedar"
                    ),
                };
                set.insert(name.to_string(), None);
            }
            files.check_names()?;
            json!({
                "config": files.config,
                "templates": files.templates,
                "policies": files.policies,
                "limit": args.limit,
            })
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

/// The files of a folder as a what-if sends them: each laid over the server's file of the
/// same name.
fn sent_files(s: &Sources) -> RuleFiles {
    let by_name = |files: &[tenure_core::config::SourceFile]| {
        files
            .iter()
            .map(|f| {
                let name = std::path::Path::new(&f.path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (name, Some(f.text.clone()))
            })
            .collect()
    };
    RuleFiles {
        config: Some(s.main.text.clone()),
        templates: Some(by_name(&s.templates)),
        policies: Some(by_name(&s.policies)),
    }
}

async fn local(args: &PlanArgs, event: Option<Value>) -> Result<Value> {
    let loaded = Sources::read(args.config.as_deref())?.load()?;
    let rules = tenure_engine::Rules {
        config: Arc::new(loaded.config),
        policy: Arc::new(loaded.policy),
        label: "what-if".into(),
    };
    let store = args.db.open_existing().await?;
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
