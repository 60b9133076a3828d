//! `tenure reconcile --system ID [--dry-run] [--confirm]`: reconciles a system through the
//! HTTP API of a running tenure (token in TENURE_TOKEN, with the admin scope), waits for the
//! end, and prints what was found.

use crate::tasks_cmd::{Remote, check};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::time::Duration;

/// `tenure reconcile`.
#[derive(Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    remote: Remote,
    /// The system to reconcile.
    #[arg(long)]
    system: String,
    /// Record the findings only; correct nothing.
    #[arg(long)]
    dry_run: bool,
    /// Make the corrections even when they would disable more accounts than the system's
    /// `reconcile.max_disable_percent` allows.
    #[arg(long)]
    confirm: bool,
    /// Print the JSON the API returned.
    #[arg(long)]
    json: bool,
}

/// How often the reconciliation is looked at while it runs.
const POLL: Duration = Duration::from_millis(500);

/// Runs `tenure reconcile`.
pub async fn run(args: ReconcileArgs) -> Result<()> {
    let token = std::env::var("TENURE_TOKEN")
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .context("set TENURE_TOKEN to a token with the admin scope")?;
    let base = args.remote.url.trim_end_matches('/').to_string();
    let client = reqwest::Client::new();
    let started = check(
        client
            .post(format!("{base}/api/v1/reconciliations"))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "system": args.system,
                "dry_run": args.dry_run,
                "confirm": args.confirm,
            }))
            .send()
            .await
            .context("contacting tenure")?,
    )
    .await?;
    let id = started["id"]
        .as_str()
        .context("the answer names no reconciliation")?
        .to_string();
    let mut url =
        reqwest::Url::parse(&format!("{base}/api/v1/reconciliations/")).context("--url")?;
    url.path_segments_mut()
        .map_err(|_| anyhow::anyhow!("--url cannot take a path"))?
        .pop_if_empty()
        .push(&id);
    url.query_pairs_mut().append_pair("limit", "1000");
    let body = loop {
        let body = check(
            client
                .get(url.clone())
                .bearer_auth(&token)
                .send()
                .await
                .context("contacting tenure")?,
        )
        .await?;
        if body["state"] != "running" {
            break body;
        }
        tokio::time::sleep(POLL).await;
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        print!("{}", summary(&body));
    }
    match body["state"].as_str() {
        Some("completed") => Ok(()),
        Some(state) => bail!(
            "reconciliation {id} {state}: {}",
            body["message"].as_str().unwrap_or("no message")
        ),
        None => bail!("reconciliation {id}: the answer has no state"),
    }
}

/// The reconciliation in a few lines, then one line per finding.
fn summary(body: &serde_json::Value) -> String {
    let mut out = format!(
        "reconciliation {} of {}: {}{}\n  accounts listed: {}\n",
        body["id"].as_str().unwrap_or(""),
        body["system"].as_str().unwrap_or(""),
        body["state"].as_str().unwrap_or(""),
        if body["dry_run"] == true {
            " (dry run)"
        } else {
            ""
        },
        body["accounts"],
    );
    if let Some(counts) = body["counts"].as_object() {
        for (situation, n) in counts {
            out.push_str(&format!("  {situation}: {n}\n"));
        }
    }
    out.push_str(&format!(
        "  corrected: {}, remediate runs: {}\n",
        body["corrected"], body["runs"]
    ));
    if let Some(m) = body["message"].as_str() {
        out.push_str(&format!("  {m}\n"));
    }
    for f in body["findings"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<9} {:<7} account {}{}{}: {} [{}]\n",
            f["situation"].as_str().unwrap_or(""),
            f["severity"].as_str().unwrap_or(""),
            f["account"].as_str().unwrap_or(""),
            f["person_id"]
                .as_str()
                .map(|p| format!(" (person {p})"))
                .unwrap_or_default(),
            f["entitlement"]
                .as_str()
                .map(|e| format!(", {e}"))
                .unwrap_or_default(),
            f["detail"].as_str().unwrap_or(""),
            f["remedy"].as_str().unwrap_or(""),
        ));
    }
    if body["next_after"].is_string() {
        out.push_str("  (more findings: GET /api/v1/reconciliations/findings)\n");
    }
    out
}
