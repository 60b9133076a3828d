//! `tenure tasks list|complete|fail`: the queue of manual steps and webhook callbacks, over
//! the HTTP API of a running tenure (token in TENURE_TOKEN).

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

/// Where the running tenure is.
#[derive(Args)]
pub struct Remote {
    /// The running tenure (`http://HOST:PORT`).
    #[arg(long, env = "TENURE_URL", default_value = "http://127.0.0.1:8080")]
    pub(crate) url: String,
}

#[derive(Subcommand)]
pub enum TasksCommand {
    /// List tasks (open ones by default), oldest first; overdue ones are marked.
    List {
        #[command(flatten)]
        remote: Remote,
        /// open, done, failed or all.
        #[arg(long, default_value = "open")]
        state: String,
        /// Only this team's tasks.
        #[arg(long)]
        team: Option<String>,
        /// Print the JSON the API returned.
        #[arg(long)]
        json: bool,
    },
    /// Mark a task done: the step waiting on it succeeds.
    Complete {
        #[command(flatten)]
        remote: Remote,
        /// The task id.
        id: String,
        /// A note for the audit trail.
        #[arg(long)]
        message: Option<String>,
    },
    /// Mark a task failed: the step waiting on it fails with the reason.
    Fail {
        #[command(flatten)]
        remote: Remote,
        /// The task id.
        id: String,
        /// Why it could not be done.
        #[arg(long)]
        reason: String,
    },
}

fn token() -> Result<String> {
    std::env::var("TENURE_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .map(|t| t.trim().to_string())
        .context("set TENURE_TOKEN to a token with the read scope (list) or tasks:write (complete, fail)")
}

pub(crate) async fn check(resp: reqwest::Response) -> Result<serde_json::Value> {
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.context("reading the answer")?;
    if !status.is_success() {
        let msg = body["error"]["message"].as_str().unwrap_or("no message");
        bail!("{status}: {msg}");
    }
    Ok(body)
}

/// Runs a `tenure tasks` command.
pub async fn run(cmd: TasksCommand) -> Result<()> {
    let client = reqwest::Client::new();
    let token = token()?;
    match cmd {
        TasksCommand::List {
            remote,
            state,
            team,
            json,
        } => {
            let mut url = reqwest::Url::parse(&format!(
                "{}/api/v1/tasks",
                remote.url.trim_end_matches('/')
            ))
            .context("--url")?;
            url.query_pairs_mut().append_pair("state", &state);
            if let Some(t) = &team {
                url.query_pairs_mut().append_pair("team", t);
            }
            let body = check(
                client
                    .get(url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .context("contacting tenure")?,
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            let tasks = body["tasks"].as_array().cloned().unwrap_or_default();
            if tasks.is_empty() {
                println!("no {state} tasks");
            }
            for t in tasks {
                let due = t["due_at"]
                    .as_str()
                    .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
                    .map(|d| d.to_utc().format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{id}  {state:<6} {team:<16} due {due}{late}\n    {title}",
                    id = t["id"].as_str().unwrap_or(""),
                    state = t["state"].as_str().unwrap_or(""),
                    team = t["team"].as_str().unwrap_or("(callback)"),
                    late = if t["overdue"].as_bool() == Some(true) {
                        "  OVERDUE"
                    } else {
                        ""
                    },
                    title = t["title"].as_str().unwrap_or(""),
                );
            }
        }
        TasksCommand::Complete {
            remote,
            id,
            message,
        } => {
            finish(&client, &token, &remote, &id, "complete", message).await?;
            println!("task {id} done");
        }
        TasksCommand::Fail { remote, id, reason } => {
            finish(&client, &token, &remote, &id, "fail", Some(reason)).await?;
            println!("task {id} failed");
        }
    }
    Ok(())
}

async fn finish(
    client: &reqwest::Client,
    token: &str,
    remote: &Remote,
    id: &str,
    verb: &str,
    message: Option<String>,
) -> Result<()> {
    let mut url = reqwest::Url::parse(&format!(
        "{}/api/v1/tasks/",
        remote.url.trim_end_matches('/')
    ))
    .context("--url")?;
    url.path_segments_mut()
        .map_err(|_| anyhow::anyhow!("--url cannot take a path"))?
        .pop_if_empty()
        .push(id)
        .push(verb);
    let body = serde_json::json!({ "message": message });
    check(
        client
            .post(url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .context("contacting tenure")?,
    )
    .await?;
    Ok(())
}
