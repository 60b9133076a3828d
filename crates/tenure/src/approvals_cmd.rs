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
        /// pending (the default), approved, denied, expired, withdrawn, decided or all.
        #[arg(long)]
        state: Option<String>,
        /// Only access for this person.
        #[arg(long)]
        person: Option<String>,
        /// Only this entitlement.
        #[arg(long)]
        entitlement: Option<String>,
        /// Every approver's approvals, not only yours (a token with read or admin).
        #[arg(long)]
        all: bool,
        /// The most to list (1 to 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// Start after this approval id (the `more:` line of the previous page).
        #[arg(long)]
        after: Option<String>,
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

/// A client of the HTTP API with the token in TENURE_TOKEN.
pub(crate) struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// A client for `target`; `scope` is the scope to name when TENURE_TOKEN is not set.
    pub(crate) fn new(target: &Target, scope: &str) -> Result<Api> {
        let token = std::env::var("TENURE_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "put a token acting as you in TENURE_TOKEN (scope {scope}; \
                     `tenure token create --name NAME --scope {scope} --as YOUR_ID`)"
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

    /// `GET path?query`, leaving out the parameters that are not given.
    pub(crate) async fn get(&self, path: &str, query: &[(&str, Option<String>)]) -> Result<Value> {
        let query: Vec<(&str, &str)> = query
            .iter()
            .filter_map(|(k, v)| Some((*k, v.as_deref()?)))
            .collect();
        self.send(reqwest::Method::GET, path, &query, None).await
    }

    /// Calls the API; the answer's JSON, or the API's error message.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        self.send(method, path, &[], body).await
    }

    /// `GET path?query` answered with text (an export): the body as it came.
    pub(crate) async fn get_text(&self, path: &str, query: &[(&str, &str)]) -> Result<String> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .with_context(|| format!("`{}` is not a URL", self.base))?;
        url.query_pairs_mut().extend_pairs(query);
        let res = self
            .client
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("calling {}", self.base))?;
        let status = res.status();
        let text = res
            .text()
            .await
            .with_context(|| format!("reading the answer to {path}"))?;
        if !status.is_success() {
            bail!("{status}: {}", error_message(&text));
        }
        Ok(text)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .with_context(|| format!("`{}` is not a URL", self.base))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut req = self.client.request(method, url).bearer_auth(&self.token);
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
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("reading the answer to {path}"))
    }
}

/// Runs one `tenure approvals` command.
pub async fn run(command: ApprovalsCommand) -> Result<()> {
    match command {
        ApprovalsCommand::List {
            target,
            state,
            person,
            entitlement,
            all,
            limit,
            after,
            json,
        } => {
            let api = Api::new(&target, "approve")?;
            let page = api
                .get(
                    "/api/v1/approvals",
                    &[
                        ("state", state),
                        ("person", person),
                        ("entitlement", entitlement),
                        ("all", flag(all)),
                        ("limit", limit.map(|l| l.to_string())),
                        ("after", after),
                    ],
                )
                .await?;
            show_page(&page, json, "nothing to show", "after", |a| {
                let stage =
                    &a["chain"]["stages"][a["chain"]["current"].as_u64().unwrap_or(0) as usize];
                format!(
                    "{}  {} for {} (asked by {}), {}, stage {}",
                    a["id"].as_str().unwrap_or_default(),
                    a["entitlement"].as_str().unwrap_or_default(),
                    a["person_id"].as_str().unwrap_or_default(),
                    a["requester"].as_str().unwrap_or_default(),
                    a["state"].as_str().unwrap_or("?"),
                    stage["kind"].as_str().unwrap_or("?"),
                )
            })
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

/// Prints a page of a list: the API's JSON, or one `line` per item (`empty` when there is
/// none) and how to ask for the next page when there is one (`next_after`, `next_before`).
pub(crate) fn show_page(
    page: &Value,
    json: bool,
    empty: &str,
    cursor: &str,
    line: impl Fn(&Value) -> String,
) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(page)?);
        return Ok(());
    }
    let items = page["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("{empty}");
    }
    for item in &items {
        println!("{}", line(item));
    }
    if let Some(next) = page[format!("next_{cursor}")].as_str() {
        println!("more: --{cursor} {next}");
    }
    Ok(())
}

/// A flag as a query parameter: `true` when set, left out otherwise.
pub(crate) fn flag(set: bool) -> Option<String> {
    set.then(|| "true".to_string())
}

async fn decide(target: &Target, id: &str, decision: &str, comment: &str) -> Result<()> {
    let api = Api::new(target, "approve")?;
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
