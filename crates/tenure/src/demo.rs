//! `--demo`: a small company to play with, seeded through the engine like real HR events.

use anyhow::Result;
use tenure_api::Scope;
use tenure_core::event::parse_event;
use tenure_engine::{Engine, IngestOutcome, NewRequest, Submission};

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
/// The offices, one person in three each. Acme keeps its data in the EU (the demo's
/// data-residency policy): everyone staffed on acme works in Berlin, so their access is granted.
const OFFICES: &[&str] = &["Berlin", "London", "New York"];

/// Hires 40 people (a few contractors) and staffs them on client engagements, once: a
/// database that already has people is left alone. Whether it seeded now.
pub async fn seed(engine: &Engine) -> Result<bool> {
    let mut c = engine.store().reader().await?;
    if tenure_store::count_people(&mut c).await? > 0 {
        tracing::info!("demo data already present");
        return Ok(false);
    }
    drop(c);
    let events = events();
    for body in &events {
        submit(engine, body).await?;
    }
    tracing::info!(
        events = events.len(),
        "demo company seeded: 40 people, 20 client engagements"
    );
    // Something for the manager to decide in the console: E006 asks for admin rights, which
    // need E002's approval (their manager), then it-ops' (E001 and E002).
    engine
        .request_access(NewRequest {
            person_id: "E006".into(),
            entitlement: "directory:admins".into(),
            requester: "E006".into(),
            justification: "print server migration this week".into(),
            duration_ms: Some(2 * 3_600_000),
            break_glass: false,
        })
        .await?;
    Ok(true)
}

/// The people whose sign-in the demo console shows, each with what their token may do.
const SIGN_INS: &[(&str, &str, &[Scope])] = &[
    ("E010", "an employee", &[Scope::Request, Scope::Read]),
    (
        "E002",
        "a manager, with an approval waiting",
        &[Scope::Approve, Scope::Request, Scope::Read],
    ),
    (
        "E001",
        "an owner of directory:admins (it-ops)",
        &[Scope::Approve, Scope::Read],
    ),
];

/// Makes a console sign-in token for each demo role and prints them once, beside the admin
/// token printed before.
pub async fn print_sign_ins(store: &tenure_store::Store, url: &str) -> Result<()> {
    println!("console: {url}/console, signing in with a token; the demo's people:");
    for (person, role, scopes) in SIGN_INS {
        let name = format!("console-{}", person.to_lowercase());
        let (_, secret) = tenure_api::issue_token(store, &name, scopes, Some(person), "demo")
            .await
            .map_err(|e| anyhow::anyhow!("demo token for {person}: {e}"))?;
        println!("  {person}, {role}: {secret}");
    }
    Ok(())
}

/// The demo's events, in order: each hire, followed by the person's engagement if they have one.
fn events() -> Vec<String> {
    let mut out = Vec::new();
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
        out.push(format!(
            r#"{{"id":"demo-hire-{id}","type":"hire","source":"demo","person":{{"id":"{id}","name":"{first} {last}","email":"{}.{}@example.com","worker_type":"{worker_type}","department":"{dept}","title":"{title}","location":"{}"{manager}}}}}"#,
            first.to_lowercase(),
            last.to_lowercase(),
            OFFICES[i % OFFICES.len()],
        ));
        if i % 2 == 0 {
            let client = CLIENTS[i % CLIENTS.len()];
            let role = match dept {
                "Sales" => "account-lead",
                "Support" => "support-engineer",
                _ => "consultant",
            };
            out.push(format!(
                r#"{{"id":"demo-engage-{id}","type":"engagement_start","source":"demo","person":{{"id":"{id}"}},"engagement":{{"client":"{client}","role":"{role}"}}}}"#
            ));
        }
    }
    out
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
            trace: None,
        })
        .await?
    {
        IngestOutcome::Accepted { .. } => Ok(()),
        IngestOutcome::KeyReused { key, .. } => anyhow::bail!("demo event key {key} reused"),
        IngestOutcome::Refused { field, message } => {
            anyhow::bail!("demo event refused: {field}: {message}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_files::Sources;
    use std::collections::BTreeMap;
    use tenure_core::event::{EventType, apply_event};
    use tenure_core::model::GrantSource;
    use tenure_engine::tenure_policy::GrantContext;

    /// Everyone the demo staffs on a client may hold that client's entitlements under the demo
    /// policies: no engagement of the demo is a denial waiting to surprise its first reader.
    #[test]
    fn the_demo_policies_allow_every_demo_engagement() {
        let loaded = Sources::read(None).unwrap().load().unwrap();
        let (config, policy) = (loaded.config, loaded.policy);
        let today = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        let mut people = BTreeMap::new();
        let mut engagements = 0;
        for body in events() {
            let event = parse_event(body.as_bytes()).unwrap();
            let stored = people.get(&event.person.id);
            let applied = apply_event(&event, stored, &[], today).unwrap();
            if event.kind == EventType::EngagementStart {
                let client = event.engagement.as_ref().unwrap().client.id();
                let terms = &config.clients[client];
                let held: Vec<_> = config
                    .entitlements
                    .values()
                    .filter(|e| e.client.as_deref() == Some(client))
                    .collect();
                assert!(!held.is_empty(), "{client} has entitlements");
                for e in held {
                    let d = policy.authorize(
                        &applied.person,
                        e,
                        Some(terms),
                        GrantContext {
                            source: GrantSource::Engagement,
                            source_ref: client,
                        },
                    );
                    assert!(
                        d.allowed,
                        "{} ({:?}) on {client}: {} denied by {:?}",
                        applied.person.id, applied.person.location, e.id, d.reasons
                    );
                }
                engagements += 1;
            }
            people.insert(applied.person.id.clone(), applied.person);
        }
        assert_eq!((people.len(), engagements), (40, 20));
    }
}
