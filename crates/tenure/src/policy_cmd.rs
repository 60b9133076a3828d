//! `tenure policy`: check policies against the schema, print the schema, measure decisions.

use crate::config_files;
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;
use tenure_core::config::SourceFile;
use tenure_core::model::{GrantSource, Person, PersonStatus, WorkerType};
use tenure_engine::tenure_policy::{GrantContext, PolicyEngine, schema_text};

/// `tenure policy ...`.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate tenure.toml, its templates and the policies in policies/ against the schema;
    /// print every problem as file:line:column and exit non-zero if there is one.
    Check {
        /// The tenure.toml to check.
        #[arg(long, env = "TENURE_CONFIG")]
        config: PathBuf,
    },
    /// Print the Cedar schema generated from a configuration (the policies are not read).
    Schema {
        /// The tenure.toml; the built-in demo configuration without it.
        #[arg(long, env = "TENURE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Time authorization decisions against the demo configuration with a set of policies
    /// (the demo's, padded with generated ones) and print microseconds per decision.
    Bench(BenchArgs),
    /// Time a what-if over a seeded population (default 100,000 people, 20 templates, 50
    /// policies) and print seconds and people per second.
    WhatIfBench(crate::whatif_bench::WhatIfBenchArgs),
}

/// Options of `tenure policy bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// How many decisions to time.
    #[arg(long, default_value_t = 100_000)]
    decisions: usize,
    /// How many policies in the set (at least the demo's four).
    #[arg(long, default_value_t = 50)]
    policies: usize,
}

pub async fn run(command: PolicyCommand) -> Result<()> {
    match command {
        PolicyCommand::Check { config } => check(&config),
        PolicyCommand::Schema { config } => {
            let c = match config {
                Some(path) => config_files::load_config(&path)?.0,
                None => config_files::demo(),
            };
            print!("{}", schema_text(&c));
            Ok(())
        }
        PolicyCommand::Bench(args) => bench(args),
        PolicyCommand::WhatIfBench(args) => crate::whatif_bench::run(args).await,
    }
}

fn check(path: &std::path::Path) -> Result<()> {
    let loaded = config_files::load_all(path)?;
    for w in &loaded.warnings {
        eprintln!("{}:{}:{}: warning: {}", w.file, w.line, w.column, w.message);
    }
    let c = &loaded.config;
    let policies = if loaded.policy_files == 0 {
        "no policy files: every grant is allowed".to_string()
    } else {
        format!(
            "{} policies in {} files: {}",
            loaded.policy.policy_ids().len(),
            loaded.policy_files,
            loaded.policy.policy_ids().join(", ")
        )
    };
    println!(
        "{}: ok ({} systems, {} entitlements, {} templates, {} clients; {policies})",
        path.display(),
        c.systems.len(),
        c.entitlements.len(),
        c.templates.len(),
        c.clients.len(),
    );
    Ok(())
}

fn bench(args: BenchArgs) -> Result<()> {
    let demo = config_files::DEMO_POLICIES.len();
    if args.policies < demo {
        bail!("--policies must be at least {demo} (the demo's own)");
    }
    if args.decisions == 0 {
        bail!("--decisions must be at least 1");
    }
    let config = config_files::demo();
    let mut files: Vec<_> = config_files::DEMO_POLICIES
        .iter()
        .map(|(name, text)| SourceFile {
            path: format!("demo/policies/{name}"),
            text: (*text).into(),
        })
        .collect();
    files.push(SourceFile {
        path: "bench/generated.cedar".into(),
        text: crate::bench_policies::generated_policies(args.policies - demo),
    });
    let started = Instant::now();
    let engine = PolicyEngine::load(&config, None, &files)
        .map_err(|e| anyhow::anyhow!("bench policies invalid:\n{e}"))?
        .engine;
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;

    let people: Vec<Person> = (0..16)
        .map(|i| Person {
            id: format!("E{i:03}"),
            name: format!("Person {i}"),
            email: format!("p{i}@example.com"),
            worker_type: if i % 4 == 3 {
                WorkerType::Contractor
            } else {
                WorkerType::Employee
            },
            department: Some(["Engineering", "Sales", "Support"][i % 3].into()),
            title: Some(["Staff Engineer", "Account Executive"][i % 2].into()),
            location: Some(["London", "Berlin", "New York"][i % 3].into()),
            manager: Some("E000".into()),
            start_date: None,
            end_date: None,
            status: PersonStatus::Active,
            attributes: Default::default(),
        })
        .collect();
    let ents: Vec<_> = config.entitlements.values().collect();
    // Fresh: Cedar evaluates every question (what one authorization costs). Remembered: the
    // engine's memo answers questions already asked for the same facts (a what-if's case).
    for remembered in [false, true] {
        let ask = |i: usize| {
            let p = &people[i % people.len()];
            let e = ents[(i / people.len()) % ents.len()];
            let client = e.client.as_ref().and_then(|c| config.clients.get(c));
            let ctx = GrantContext {
                source: GrantSource::Birthright,
                source_ref: "bench",
            };
            if remembered {
                engine.authorize(p, e, client, ctx)
            } else {
                engine.authorize_fresh(p, e, client, ctx)
            }
        };
        for i in 0..args.decisions.min(1_000) {
            black_box(ask(i));
        }
        let (mut allowed, mut denied, mut approval) = (0usize, 0usize, 0usize);
        let started = Instant::now();
        for i in 0..args.decisions {
            let d = black_box(ask(i));
            if !d.errors.is_empty() {
                bail!("decision {i} failed: {:?}", d.errors);
            }
            match (d.allowed, d.needs_approval()) {
                (false, _) => denied += 1,
                (true, true) => approval += 1,
                (true, false) => allowed += 1,
            }
        }
        let elapsed = started.elapsed();
        let us = elapsed.as_secs_f64() * 1e6 / args.decisions as f64;
        println!(
            "{} decisions with {} policies, {}: {us:.1} µs/decision ({:.0} decisions/s; {allowed} allowed, {approval} need approval, {denied} denied; policy set loaded and validated in {load_ms:.1} ms)",
            args.decisions,
            engine.policy_ids().len(),
            if remembered { "remembered" } else { "fresh" },
            1e6 / us,
        );
    }
    Ok(())
}
