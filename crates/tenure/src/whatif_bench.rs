//! `tenure policy what-if-bench`: times a what-if over a large population. Seeds a fresh SQLite
//! database with N people holding what the demo's templates give them, then plans everyone
//! against changed rules: 20 templates (one of them changed) and 50 policies.

use crate::config_files::Sources;
use anyhow::Result;
use clap::Args;
use std::sync::Arc;
use std::time::Instant;
use tenure_core::config::SourceFile;
use tenure_core::model::{AccountState, GrantState, Person, PersonStatus, WorkerType};
use tenure_core::planner;
use tenure_engine::Rules;
use tenure_store::Store;

/// Options of `tenure policy what-if-bench`.
#[derive(Args, Debug)]
pub struct WhatIfBenchArgs {
    /// How many people to seed and plan.
    #[arg(long, default_value_t = 100_000)]
    people: usize,
    /// How many templates in the changed rules (the demo's, padded with generated ones).
    #[arg(long, default_value_t = 20)]
    templates: usize,
    /// How many policies in the changed rules (the demo's, padded with generated ones).
    #[arg(long, default_value_t = 50)]
    policies: usize,
}

const DEPARTMENTS: [&str; 6] = [
    "Engineering",
    "Sales",
    "Support",
    "Finance",
    "Design",
    "Ops",
];
const TITLES: [&str; 5] = [
    "Engineer",
    "Staff Engineer",
    "Account Executive",
    "Agent",
    "Analyst",
];
const LOCATIONS: [&str; 4] = ["Berlin", "London", "New York", "Paris"];

pub async fn run(args: WhatIfBenchArgs) -> Result<()> {
    let baseline = Sources::read(None)?.load()?;
    let mut changed = Sources::read(None)?;
    // The change under review: engineers also get the CRM.
    for t in &mut changed.templates {
        if t.path.ends_with("engineering.toml") {
            t.text = t
                .text
                .replace("entitlements = [", "entitlements = [\"crm:user\", ");
        }
    }
    let demo_templates = changed.templates.len();
    for i in demo_templates..args.templates.max(demo_templates) {
        changed.templates.push(SourceFile {
            path: format!("templates/generated-{i}.toml"),
            text: format!(
                "entitlements = [\"ticketing:agent\"]\n[match]\ndepartment = [\"Dept{i}\"]\ntitle = [\"Title{i}\"]\n"
            ),
        });
    }
    let demo_policies = changed.policies.len();
    if args.policies > demo_policies {
        changed.policies.push(SourceFile {
            path: "policies/generated.cedar".into(),
            text: crate::bench_policies::generated_policies(args.policies - demo_policies),
        });
    }
    let changed = changed.load()?;
    let rules = Rules {
        config: Arc::new(changed.config),
        policy: Arc::new(changed.policy),
        label: "what-if".into(),
    };

    let dir = tempfile::tempdir()?;
    let store = Store::open_sqlite(&dir.path().join("tenure.db")).await?;
    let started = Instant::now();
    seed(&store, &baseline.config, args.people).await?;
    let seeded = started.elapsed();

    let now = chrono::Utc::now().timestamp_millis();
    // Two reviews of the same change. With the new policies already in force, only the
    // templates change: policy is asked about new grants. Against the demo's rules, policy
    // changes too: access already held is judged again as well.
    let policy_in_force = Rules {
        config: Arc::new(baseline.config.clone()),
        policy: rules.policy.clone(),
        label: "in force".into(),
    };
    let demo_in_force = Rules {
        config: Arc::new(baseline.config),
        policy: Arc::new(baseline.policy),
        label: "in force".into(),
    };
    for (what, in_force) in [
        ("templates changed", &policy_in_force),
        (
            "templates and policies changed, held access judged again",
            &demo_in_force,
        ),
    ] {
        let started = Instant::now();
        let result = tenure_engine::what_if(&store, &rules, Some(in_force), now, 0).await?;
        let took = started.elapsed();
        println!(
            "what-if over {} people ({} templates, {} policies; {what}): {:.2} s, {:.0} people/s",
            result.people,
            rules.config.templates.len(),
            rules.policy.policy_ids().len(),
            took.as_secs_f64(),
            result.people as f64 / took.as_secs_f64()
        );
        println!(
            "  would change {} people: {} grants, {} revokes, {} account changes, {} denied, {} awaiting approval",
            result.people_changed,
            result.grants,
            result.revokes,
            result.account_changes,
            result.denied,
            result.awaiting_approval
        );
    }
    println!(
        "  (seeding the database took {:.1} s)",
        seeded.as_secs_f64()
    );
    store.close().await;
    Ok(())
}

/// Stores `n` people with the accounts and grants the baseline templates give them.
async fn seed(store: &Store, config: &tenure_core::config::Config, n: usize) -> Result<()> {
    let today = chrono::Utc::now().date_naive();
    let now = chrono::Utc::now().timestamp_millis();
    for chunk_start in (0..n).step_by(1_000) {
        let mut tx = store.begin().await?;
        let mut accounts = Vec::new();
        let mut grants = Vec::new();
        for i in chunk_start..(chunk_start + 1_000).min(n) {
            let person = Person {
                id: format!("P{i:07}"),
                name: format!("Person {i}"),
                email: format!("p{i}@example.com"),
                worker_type: if i % 10 == 0 {
                    WorkerType::Contractor
                } else {
                    WorkerType::Employee
                },
                department: Some(DEPARTMENTS[i % DEPARTMENTS.len()].into()),
                title: Some(TITLES[i % TITLES.len()].into()),
                location: Some(LOCATIONS[i % LOCATIONS.len()].into()),
                manager: None,
                start_date: None,
                end_date: None,
                status: PersonStatus::Active,
                attributes: Default::default(),
            };
            let desired =
                planner::desired_access(config, &Default::default(), &person, &[], &[], today, now);
            for system in &desired.systems {
                accounts.push((person.id.clone(), system.clone(), AccountState::Active));
            }
            for (ent, want) in &desired.entitlements {
                let system = config.entitlements[ent].system.clone();
                grants.push((
                    tenure_core::model::Grant {
                        person_id: person.id.clone(),
                        entitlement: ent.clone(),
                        source: want.source,
                        source_ref: want.source_ref.clone(),
                        state: GrantState::Granted,
                        granted_at: Some(now),
                        expires_at: None,
                    },
                    system,
                ));
            }
            tenure_store::upsert_person(tx.conn(), &person, now).await?;
        }
        tenure_store::upsert_accounts(tx.conn(), &accounts, now).await?;
        tenure_store::upsert_grants(tx.conn(), &grants, now).await?;
        tx.commit().await?;
    }
    Ok(())
}
