//! `tenure requests list|show` and `tenure delegations list|add|remove`: a requester's view of
//! their access requests and an approver's substitutes, over the HTTP API of a running tenure
//! (token in TENURE_TOKEN, acting as you).

use crate::approvals_cmd::{Api, Target, flag, show_page};
use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Subcommand;
use serde_json::{Value, json};

/// `tenure requests ...`
#[derive(Subcommand, Debug)]
pub enum RequestsCommand {
    /// Your access requests (made by you or for you), newest first.
    List {
        #[command(flatten)]
        target: Target,
        /// pending, approved, denied, expired or withdrawn.
        #[arg(long)]
        state: Option<String>,
        /// Only access for this person.
        #[arg(long)]
        person: Option<String>,
        /// Everyone's requests (a token with read or admin).
        #[arg(long)]
        all: bool,
        /// The most to list (1 to 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// Start before this request id (the `more:` line of the previous page).
        #[arg(long)]
        before: Option<String>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Where one request stands: its approvals, their stages and who decided what.
    Show {
        /// The request id.
        id: String,
        #[command(flatten)]
        target: Target,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `tenure delegations ...`
#[derive(Subcommand, Debug)]
pub enum DelegationsCommand {
    /// Delegations you made or received that have not ended.
    List {
        #[command(flatten)]
        target: Target,
        /// Everyone's (an admin token).
        #[arg(long)]
        all: bool,
        /// Withdrawn and ended ones too.
        #[arg(long)]
        include_ended: bool,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Name a substitute who decides your approvals for a period.
    Add {
        /// Who decides for you.
        delegate: String,
        /// When it starts (RFC 3339); now when not given.
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// When it ends (RFC 3339).
        #[arg(long)]
        until: DateTime<Utc>,
        /// Delegate for this approver instead of yourself (an admin token).
        #[arg(long = "for")]
        delegator: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Withdraw a delegation from now on.
    Remove {
        /// The delegation id.
        id: String,
        #[command(flatten)]
        target: Target,
    },
}

/// A time the API gives (RFC 3339) as shown in a table, `-` when there is none.
fn when(v: &Value) -> String {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// Runs one `tenure requests` command.
pub async fn requests(command: RequestsCommand) -> Result<()> {
    match command {
        RequestsCommand::List {
            target,
            state,
            person,
            all,
            limit,
            before,
            json,
        } => {
            let api = Api::new(&target, "request")?;
            let page = api
                .get(
                    "/api/v1/requests",
                    &[
                        ("state", state),
                        ("person", person),
                        ("all", flag(all)),
                        ("limit", limit.map(|l| l.to_string())),
                        ("before", before),
                    ],
                )
                .await?;
            show_page(&page, json, "no requests", "before", |r| {
                format!(
                    "{}  {} for {} (asked by {}): {}{}, expires {}",
                    str_of(&r["id"]),
                    str_of(&r["entitlement"]),
                    str_of(&r["person_id"]),
                    str_of(&r["requester"]),
                    str_of(&r["state"]),
                    if r["break_glass"] == true {
                        " (break-glass)"
                    } else {
                        ""
                    },
                    when(&r["expires_at"]),
                )
            })
        }
        RequestsCommand::Show { id, target, json } => {
            let api = Api::new(&target, "request")?;
            let d = api
                .call(
                    reqwest::Method::GET,
                    &format!("/api/v1/requests/{id}"),
                    None,
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
                return Ok(());
            }
            let r = &d["request"];
            println!(
                "{}: {} for {} (asked by {}): {}",
                str_of(&r["id"]),
                str_of(&r["entitlement"]),
                str_of(&r["person_id"]),
                str_of(&r["requester"]),
                str_of(&r["state"])
            );
            println!(
                "  decided {}, expires {}",
                when(&r["decided_at"]),
                when(&r["expires_at"])
            );
            for a in d["approvals"].as_array().into_iter().flatten() {
                println!("  approval {}: {}", str_of(&a["id"]), str_of(&a["state"]));
                let current = a["chain"]["current"].as_u64();
                for (i, st) in a["chain"]["stages"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let names = |k: &str| -> String {
                        st[k]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    println!(
                        "    stage {} {}{} ({}): approvers {}; approved by {}",
                        i + 1,
                        str_of(&st["kind"]),
                        if current == Some(i as u64) && a["state"] == "pending" {
                            " (waiting)"
                        } else {
                            ""
                        },
                        str_of(&st["rule"]),
                        names("approvers"),
                        names("approved_by"),
                    );
                }
                for x in a["decisions"].as_array().into_iter().flatten() {
                    println!(
                        "    {} {} by {}{}: {}",
                        when(&x["at"]),
                        str_of(&x["decision"]),
                        str_of(&x["actor"]),
                        if x["actor"] != x["on_behalf_of"] {
                            format!(" for {}", str_of(&x["on_behalf_of"]))
                        } else {
                            String::new()
                        },
                        str_of(&x["comment"]),
                    );
                }
            }
            Ok(())
        }
    }
}

/// Runs one `tenure delegations` command.
pub async fn delegations(command: DelegationsCommand) -> Result<()> {
    match command {
        DelegationsCommand::List {
            target,
            all,
            include_ended,
            json,
        } => {
            let api = Api::new(&target, "approve")?;
            let page = api
                .get(
                    "/api/v1/delegations",
                    &[("all", flag(all)), ("include_ended", flag(include_ended))],
                )
                .await?;
            show_page(&page, json, "no delegations", "after", |d| {
                format!(
                    "{}  {} decides for {} from {} until {}{}",
                    str_of(&d["id"]),
                    str_of(&d["delegate"]),
                    str_of(&d["delegator"]),
                    when(&d["starts_at"]),
                    when(&d["ends_at"]),
                    if d["revoked_at"].is_null() {
                        String::new()
                    } else {
                        format!(", withdrawn {}", when(&d["revoked_at"]))
                    },
                )
            })
        }
        DelegationsCommand::Add {
            delegate,
            from,
            until,
            delegator,
            target,
        } => {
            let api = Api::new(&target, "approve")?;
            let mut body = json!({
                "delegate": delegate,
                "starts_at": from.unwrap_or_else(Utc::now).to_rfc3339(),
                "ends_at": until.to_rfc3339(),
            });
            if let Some(d) = delegator {
                body["delegator"] = d.into();
            }
            let d = api
                .call(reqwest::Method::POST, "/api/v1/delegations", Some(body))
                .await?;
            println!(
                "{}: {} decides for {} until {}",
                str_of(&d["id"]),
                str_of(&d["delegate"]),
                str_of(&d["delegator"]),
                when(&d["ends_at"])
            );
            Ok(())
        }
        DelegationsCommand::Remove { id, target } => {
            let api = Api::new(&target, "approve")?;
            api.call(
                reqwest::Method::DELETE,
                &format!("/api/v1/delegations/{id}"),
                None,
            )
            .await?;
            println!("{id}: withdrawn");
            Ok(())
        }
    }
}
