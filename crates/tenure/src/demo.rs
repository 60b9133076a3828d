//! `--demo`: a small company to play with, seeded through the engine like real HR events.

use anyhow::Result;
use tenure_core::event::parse_event;
use tenure_engine::{Engine, IngestOutcome, Submission};

const FIRST: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "John",
    "Margaret",
    "Ken",
    "Radia",
    "Dennis",
    "Hedy",
    "Tim",
    "Katherine",
    "Linus",
    "Sophie",
    "Niklaus",
    "Joan",
    "Guido",
];
const LAST: &[&str] = &[
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Hamilton",
    "Thompson",
];
const DEPARTMENTS: &[(&str, &str)] = &[
    ("Engineering", "Software Engineer"),
    ("Sales", "Account Executive"),
    ("Support", "Support Engineer"),
    ("Engineering", "Staff Engineer"),
];
const CLIENTS: &[&str] = &["acme", "globex", "initech"];

/// Hires 40 people (a few contractors) and staffs them on client engagements, once: a
/// database that already has people is left alone.
pub async fn seed(engine: &Engine) -> Result<()> {
    let mut c = engine.store().reader().await?;
    if tenure_store::count_people(&mut c).await? > 0 {
        tracing::info!("demo data already present");
        return Ok(());
    }
    drop(c);
    let mut sent = 0;
    for i in 0..40usize {
        let id = format!("E{:03}", i + 1);
        let first = FIRST[i % FIRST.len()];
        let last = LAST[(i * 7) % LAST.len()];
        let (dept, title) = DEPARTMENTS[i % DEPARTMENTS.len()];
        let worker_type = if i % 8 == 7 { "contractor" } else { "employee" };
        let manager = if i < 4 {
            String::new()
        } else {
            format!(r#","manager":"E{:03}""#, i % 4 + 1)
        };
        let hire = format!(
            r#"{{"id":"demo-hire-{id}","type":"hire","source":"demo","person":{{"id":"{id}","name":"{first} {last}","email":"{}.{}@example.com","worker_type":"{worker_type}","department":"{dept}","title":"{title}","location":"{}"{manager}}}}}"#,
            first.to_lowercase(),
            last.to_lowercase(),
            if i % 3 == 0 { "London" } else { "New York" },
        );
        submit(engine, &hire).await?;
        sent += 1;
        if i % 2 == 0 {
            let client = CLIENTS[i % CLIENTS.len()];
            let role = match dept {
                "Sales" => "account-lead",
                "Support" => "support-engineer",
                _ => "consultant",
            };
            let engage = format!(
                r#"{{"id":"demo-engage-{id}","type":"engagement_start","source":"demo","person":{{"id":"{id}"}},"engagement":{{"client":"{client}","role":"{role}"}}}}"#
            );
            submit(engine, &engage).await?;
            sent += 1;
        }
    }
    tracing::info!(
        events = sent,
        "demo company seeded: 40 people, 20 client engagements"
    );
    Ok(())
}

async fn submit(engine: &Engine, body: &str) -> Result<()> {
    let event =
        parse_event(body.as_bytes()).map_err(|e| anyhow::anyhow!("demo event invalid: {e}"))?;
    match engine
        .submit(Submission {
            event,
            idempotency_key: None,
            actor: "demo".into(),
            request_id: None,
        })
        .await?
    {
        IngestOutcome::Accepted { .. } => Ok(()),
        IngestOutcome::KeyReused { key, .. } => anyhow::bail!("demo event key {key} reused"),
    }
}
