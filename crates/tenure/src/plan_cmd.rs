//! `tenure plan`: what-if. Shows, without executing or storing anything, every grant, revoke
//! and account change that one event, a change to an identity provider group's members, or a
//! changed configuration folder, would cause, with policy's reasons.

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
    /// Plan a change to the members of this identity provider group (its id or displayName;
    /// a displayName no group has is a group not pushed yet) instead of everyone, with
    /// --add-member, --remove-member or --replace-members. Planned against the rules in
    /// force (with --url, the server's).
    #[arg(long, conflicts_with_all = ["event", "remove"])]
    group: Option<String>,
    /// With --group: a person (SCIM user id) to add to it. Repeat for several.
    #[arg(long, value_name = "ID", requires = "group")]
    add_member: Vec<String>,
    /// With --group: a person (SCIM user id) to take out of it. Repeat for several.
    #[arg(long, value_name = "ID", requires = "group")]
    remove_member: Vec<String>,
    /// With --group: its members after the change, all of them (comma-separated; none given
    /// empties the group), instead of --add-member and --remove-member.
    #[arg(
        long,
        value_name = "IDS",
        num_args = 0..,
        value_delimiter = ',',
        requires = "group",
        conflicts_with_all = ["add_member", "remove_member"]
    )]
    replace_members: Option<Vec<String>>,
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
    let out = match (&args.group, &args.url) {
        (Some(group), url) => plan_group(&args, group, url.as_deref()).await?,
        (None, Some(url)) => remote(&args, url, event).await?,
        (None, None) => local(&args, event).await?,
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// The group change `--add-member`, `--remove-member` and `--replace-members` ask about.
fn member_change(args: &PlanArgs) -> Result<tenure_engine::MemberChange> {
    let set = |v: &[String]| {
        v.iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    Ok(match &args.replace_members {
        Some(members) => tenure_engine::MemberChange::Replace(set(members)),
        None if args.add_member.is_empty() && args.remove_member.is_empty() => bail!(
            "--group needs --add-member ID, --remove-member ID or --replace-members ID,ID,..."
        ),
        None => tenure_engine::MemberChange::AddRemove {
            add: set(&args.add_member),
            remove: set(&args.remove_member),
        },
    })
}

/// What a change to a group's members would do: asked of a running tenure with --url, else
/// planned on a stopped one's database with the configuration folder's rules.
async fn plan_group(args: &PlanArgs, group: &str, url: Option<&str>) -> Result<Value> {
    let change = member_change(args)?;
    if let Some(url) = url {
        if args.config.is_some() {
            bail!("--group with --url plans against the server's rules in force: drop --config");
        }
        let mut body = json!({ "group": group, "limit": args.limit });
        match &change {
            tenure_engine::MemberChange::Replace(m) => body["replace"] = json!(m),
            tenure_engine::MemberChange::AddRemove { add, remove } => {
                body["add"] = json!(add);
                body["remove"] = json!(remove);
            }
        }
        return post(url, "/api/v1/simulate/group", &body).await;
    }
    let rules = folder_rules(args)?;
    let store = args.db.open_existing().await?;
    let now = chrono::Utc::now().timestamp_millis();
    let started = std::time::Instant::now();
    let result =
        tenure_engine::what_if_group(&store, &rules, group, &change, now, args.limit).await;
    store.close().await;
    let mut v = serde_json::to_value(result?)?;
    v["elapsed_ms"] = json!(started.elapsed().as_millis() as u64);
    Ok(v)
}

/// POSTs `body` to a running tenure's `path` with the token in TENURE_TOKEN.
async fn post(url: &str, path: &str, body: &Value) -> Result<Value> {
    let token = std::env::var("TENURE_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .context("--url needs a token with the read scope in TENURE_TOKEN")?;
    let res = reqwest::Client::new()
        .post(format!("{}{path}", url.trim_end_matches('/')))
        .bearer_auth(token)
        .json(body)
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

async fn remote(args: &PlanArgs, url: &str, event: Option<Value>) -> Result<Value> {
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
    post(url, "/api/v1/simulate", &body).await
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

/// The rules of the --config folder (or the demo's), to plan with on a stopped instance's
/// database.
fn folder_rules(args: &PlanArgs) -> Result<tenure_engine::Rules> {
    let loaded = Sources::read(args.config.as_deref())?.load()?;
    Ok(tenure_engine::Rules {
        config: Arc::new(loaded.config),
        policy: Arc::new(loaded.policy),
        label: "what-if".into(),
    })
}

async fn local(args: &PlanArgs, event: Option<Value>) -> Result<Value> {
    let rules = folder_rules(args)?;
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
