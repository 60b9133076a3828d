//! `tenure approvals list|approve|deny`: an approver's view of their pending approvals, over
//! the HTTP API of a running tenure, with the token (acting as the approver) in TENURE_TOKEN.

use crate::import::error_message;
use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::time::Duration;

/// Options shared by every `tenure approvals` command.
#[derive(Args, Debug)]
pub struct Target {
    /// The running tenure (`http://HOST:PORT`); the token goes in TENURE_TOKEN.
    #[arg(long, env = "TENURE_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
}

/// `tenure approvals ...`
#[derive(Subcommand, Debug)]
pub enum ApprovalsCommand {
    /// The approvals waiting for you (or for those who delegated to you).
    List {
        #[command(flatten)]
        target: Target,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Approve an approval's current stage.
    Approve {
        /// The approval id.
        id: String,
        /// Why (recorded in the audit trail).
        #[arg(long, short)]
        comment: String,
        #[command(flatten)]
        target: Target,
    },
    /// Deny an approval: the grant is not made and its run ends denied.
    Deny {
        /// The approval id.
        id: String,
        /// Why (recorded in the audit trail and sent to the requester).
        #[arg(long, short)]
        comment: String,
        #[command(flatten)]
        target: Target,
    },
}

struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(target: &Target) -> Result<Api> {
        let token = std::env::var("TENURE_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "put a token acting as you in TENURE_TOKEN (scope approve; \
                     `tenure token create --name NAME --scope approve --as YOUR_ID`)"
                )
            })?;
        Ok(Api {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            base: target.url.trim_end_matches('/').to_string(),
            token: token.trim().to_string(),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("calling {}", self.base))?;
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{status}: {}", error_message(&text));
        }
        serde_json::from_str(&text).with_context(|| format!("reading the answer to {path}"))
    }
}

/// Runs one `tenure approvals` command.
pub async fn run(command: ApprovalsCommand) -> Result<()> {
    match command {
        ApprovalsCommand::List { target, json } => {
            let api = Api::new(&target)?;
            let page = api
                .call(reqwest::Method::GET, "/api/v1/approvals", None)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
                return Ok(());
            }
            let items = page["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                println!("nothing waits for you");
            }
            for a in items {
                let stage =
                    &a["chain"]["stages"][a["chain"]["current"].as_u64().unwrap_or(0) as usize];
                println!(
                    "{}  {} for {} (asked by {}), stage {}",
                    a["id"].as_str().unwrap_or_default(),
                    a["entitlement"].as_str().unwrap_or_default(),
                    a["person_id"].as_str().unwrap_or_default(),
                    a["requester"].as_str().unwrap_or_default(),
                    stage["kind"].as_str().unwrap_or("?"),
                );
            }
            Ok(())
        }
        ApprovalsCommand::Approve {
            id,
            comment,
            target,
        } => decide(&target, &id, "approve", &comment).await,
        ApprovalsCommand::Deny {
            id,
            comment,
            target,
        } => decide(&target, &id, "deny", &comment).await,
    }
}

async fn decide(target: &Target, id: &str, decision: &str, comment: &str) -> Result<()> {
    let api = Api::new(target)?;
    let a = api
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/approvals/{id}/decision"),
            Some(json!({ "decision": decision, "comment": comment })),
        )
        .await?;
    println!(
        "{id}: {} ({} for {})",
        a["state"].as_str().unwrap_or("?"),
        a["entitlement"].as_str().unwrap_or_default(),
        a["person_id"].as_str().unwrap_or_default()
    );
    Ok(())
}
