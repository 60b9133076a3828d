//! `tenure reviews list|open|show|decide|close|export`: access review campaigns over the HTTP
//! API of a running tenure, with the token in TENURE_TOKEN (acting as the reviewer to see and
//! decide their items; `admin` to open and close; `read` to export).

use crate::approvals_cmd::{Api, Target, show_page};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};

/// `tenure reviews ...`
#[derive(Subcommand, Debug)]
pub enum ReviewsCommand {
    /// Campaigns, newest first, with how far each got.
    List {
        #[command(flatten)]
        target: Target,
        /// open, closed or all (the default).
        #[arg(long)]
        state: Option<String>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Open a campaign of a `[[reviews]]` definition of tenure.toml (admin).
    Open {
        /// The definition's name.
        definition: String,
        #[command(flatten)]
        target: Target,
    },
    /// A campaign, and the items waiting for you (or everyone's with --all).
    Show {
        /// The campaign id.
        id: String,
        #[command(flatten)]
        target: Target,
        /// Every reviewer's items, not only yours (a token with read).
        #[arg(long)]
        all: bool,
        /// open (the default), decided or all.
        #[arg(long)]
        state: Option<String>,
        /// The most items to list (1 to 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// Start after this item number (the `more:` line of the previous page).
        #[arg(long)]
        after: Option<i64>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Keep or revoke items: all of them, or none if one cannot be decided.
    Decide {
        /// The campaign id.
        id: String,
        /// The item numbers.
        #[arg(required = true)]
        items: Vec<i64>,
        /// The access stays.
        #[arg(long, conflicts_with = "revoke", required_unless_present = "revoke")]
        keep: bool,
        /// The access goes.
        #[arg(long)]
        revoke: bool,
        /// Why (required to keep high or privileged access).
        #[arg(long, short)]
        justification: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Close a campaign now and apply its results (admin).
    Close {
        /// The campaign id.
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Write a campaign's evidence: every item, its decision and the audit entries that prove
    /// it (read).
    Export {
        /// The campaign id.
        id: String,
        /// csv or json (the default).
        #[arg(long, default_value = "json")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
        #[command(flatten)]
        target: Target,
    },
}

fn campaign_line(c: &Value) -> String {
    format!(
        "{}  {}  {}, {} of {} decided, due {}{}",
        c["id"].as_str().unwrap_or_default(),
        c["name"].as_str().unwrap_or_default(),
        c["state"].as_str().unwrap_or("?"),
        c["decided"],
        c["items"],
        c["due_at"].as_str().unwrap_or("?"),
        if c["overdue"].as_bool() == Some(true) {
            " (overdue)"
        } else {
            ""
        }
    )
}

fn item_line(i: &Value) -> String {
    let rec = &i["recommendation"];
    let recommended = if rec.is_null() {
        "no recommendation".to_string()
    } else {
        let why: Vec<&str> = rec["evidence"]
            .as_array()
            .map(|e| e.iter().filter_map(|x| x["detail"].as_str()).collect())
            .unwrap_or_default();
        format!(
            "recommended {} ({}%: {})",
            rec["decision"].as_str().unwrap_or("?"),
            rec["confidence"],
            why.join("; ")
        )
    };
    let decided = match i["decision"].as_str() {
        Some(d) => format!(
            ", decided {d} by {}",
            i["decided_by"].as_str().unwrap_or("?")
        ),
        None => String::new(),
    };
    format!(
        "{:>6}  {} holds {} ({}, {}), {}{}",
        i["seq"],
        i["person_id"].as_str().unwrap_or_default(),
        i["entitlement"].as_str().unwrap_or_default(),
        i["risk"].as_str().unwrap_or("?"),
        i["source"].as_str().unwrap_or("?"),
        recommended,
        decided
    )
}

/// Runs one `tenure reviews` command.
pub async fn run(command: ReviewsCommand) -> Result<()> {
    match command {
        ReviewsCommand::List {
            target,
            state,
            json,
        } => {
            let api = Api::new(&target, "approve")?;
            let page = api.get("/api/v1/reviews", &[("state", state)]).await?;
            show_page(&page, json, "no campaigns", "before", campaign_line)
        }
        ReviewsCommand::Open { definition, target } => {
            let api = Api::new(&target, "admin")?;
            let c = api
                .call(
                    reqwest::Method::POST,
                    "/api/v1/reviews",
                    Some(json!({ "definition": definition })),
                )
                .await?;
            println!("{}", campaign_line(&c));
            Ok(())
        }
        ReviewsCommand::Show {
            id,
            target,
            all,
            state,
            limit,
            after,
            json,
        } => {
            let api = Api::new(&target, "approve")?;
            let c = api.get(&format!("/api/v1/reviews/{id}"), &[]).await?;
            let page = api
                .get(
                    &format!("/api/v1/reviews/{id}/items"),
                    &[
                        ("reviewer", all.then(|| "all".to_string())),
                        ("state", state),
                        ("limit", limit.map(|l| l.to_string())),
                        ("after", after.map(|a| a.to_string())),
                    ],
                )
                .await?;
            if json {
                let both = json!({ "campaign": c, "items": page });
                println!("{}", serde_json::to_string_pretty(&both)?);
                return Ok(());
            }
            println!("{}", campaign_line(&c));
            let items = page["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                println!("no items to show");
            }
            for i in &items {
                println!("{}", item_line(i));
            }
            if let Some(next) = page["next_after"].as_i64() {
                println!("more: --after {next}");
            }
            Ok(())
        }
        ReviewsCommand::Decide {
            id,
            items,
            keep,
            revoke,
            justification,
            target,
        } => {
            let decision = match (keep, revoke) {
                (true, false) => "keep",
                (false, true) => "revoke",
                _ => bail!("say --keep or --revoke"),
            };
            let api = Api::new(&target, "approve")?;
            let mut body = json!({ "items": items, "decision": decision });
            if let Some(j) = justification {
                body["justification"] = j.into();
            }
            let done = api
                .call(
                    reqwest::Method::POST,
                    &format!("/api/v1/reviews/{id}/decisions"),
                    Some(body),
                )
                .await?;
            for i in done["items"].as_array().cloned().unwrap_or_default() {
                println!("{}", item_line(&i));
            }
            Ok(())
        }
        ReviewsCommand::Close { id, target } => {
            let api = Api::new(&target, "admin")?;
            let c = api
                .call(
                    reqwest::Method::POST,
                    &format!("/api/v1/reviews/{id}/close"),
                    None,
                )
                .await?;
            println!("{}", campaign_line(&c));
            Ok(())
        }
        ReviewsCommand::Export {
            id,
            format,
            output,
            target,
        } => {
            let api = Api::new(&target, "read")?;
            let text = api
                .get_text(
                    &format!("/api/v1/reviews/{id}/export"),
                    &[("format", format.as_str())],
                )
                .await?;
            match output {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{text}"),
            }
            Ok(())
        }
    }
}
