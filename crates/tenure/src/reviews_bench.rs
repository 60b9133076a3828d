//! `tenure bench --reviews`: an access review over a large population. Seeds `--people`
//! people holding `--grants` grants each, opens a campaign over every grant (each person's
//! manager reviews, with their peers' holdings behind each recommendation), then times a
//! reviewer's page of items over HTTP, a bulk decision, and the close.

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenure_core::config::{Config, SourceFile};
use tenure_core::model::{GrantSource, GrantState, Person, PersonStatus, WorkerType};
use tenure_core::review::{ApplyAt, CampaignDefinition, ReviewScope, ReviewerKind, WhenUndecided};
use tenure_engine::{Engine, EngineOptions, OpenCampaign, SystemClock};
use tenure_store::Store;

/// What `tenure bench --reviews` seeds and measures.
pub struct ReviewsBenchArgs {
    /// People seeded.
    pub people: usize,
    /// Grants each holds.
    pub grants: usize,
    /// Timed requests of a reviewer's page.
    pub requests: usize,
    /// Database URL; a fresh SQLite file by default.
    pub database: Option<String>,
    /// Print one JSON object.
    pub json: bool,
    /// People's records sealed under this vault (as `tenure serve` seals them, unless
    /// `--plain`).
    pub vault: tenure_store::Vault,
}

/// Entitlements in the catalog; each person holds `--grants` of them.
const ENTITLEMENTS: usize = 40;
/// People per manager (the manager included).
const TEAM: usize = 20;
const DEPARTMENTS: usize = 20;
const TITLES: usize = 10;

fn entitlement(n: usize) -> String {
    format!("app:e{n:02}")
}

fn config() -> Result<Config> {
    let mut main = String::from(
        "[[systems]]\nid = \"app\"\nconnector = \"sandbox\"\n[systems.settings]\nlatency_ms = 0\n",
    );
    for n in 0..ENTITLEMENTS {
        let risk = match n % 10 {
            0 => "privileged",
            1 | 2 => "high",
            _ => "low",
        };
        main.push_str(&format!(
            "[[entitlements]]\nid = \"{}\"\nsystem = \"app\"\nrisk = \"{risk}\"\nowner = \"security\"\n",
            entitlement(n)
        ));
    }
    main.push_str("[approvals.teams]\nsecurity = [\"P0000000\"]\n");
    let file = SourceFile {
        path: "tenure.toml".into(),
        text: main,
    };
    Config::parse(&file, &[]).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The grants person `i` holds: mostly what their peer group (department and title) holds,
/// with one of their own, so recommendations find both shared and unusual access.
fn holdings(i: usize, per_person: usize) -> Vec<usize> {
    let group = (i % DEPARTMENTS) * TITLES + (i / DEPARTMENTS) % TITLES;
    let own = (i * 7 + 13) % ENTITLEMENTS;
    let mut out = vec![own];
    let mut k = 0;
    while out.len() < per_person {
        let e = (group + k * 3) % ENTITLEMENTS;
        if !out.contains(&e) {
            out.push(e);
        }
        k += 1;
    }
    out.sort_unstable();
    out
}

fn person_id(i: usize) -> String {
    format!("P{i:07}")
}

async fn seed(store: &Store, people: usize, per_person: usize) -> Result<usize> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut total = 0;
    for start in (0..people).step_by(1_000) {
        let mut tx = store.begin().await?;
        let mut grants = Vec::new();
        for i in start..(start + 1_000).min(people) {
            let person = Person {
                worker_type: if i % 10 == 0 {
                    WorkerType::Contractor
                } else {
                    WorkerType::Employee
                },
                department: Some(format!("Dept{}", i % DEPARTMENTS)),
                title: Some(format!("Title{}", (i / DEPARTMENTS) % TITLES)),
                manager: (i % TEAM != 0).then(|| person_id(i - i % TEAM)),
                status: PersonStatus::Active,
                ..Person::new(
                    person_id(i),
                    format!("Person {i}"),
                    format!("p{i}@example.com"),
                )
            };
            tenure_store::upsert_person(tx.conn(), &person, now).await?;
            for n in holdings(i, per_person) {
                grants.push((
                    tenure_core::model::Grant {
                        person_id: person.id.clone(),
                        entitlement: entitlement(n),
                        source: GrantSource::Request,
                        source_ref: format!("req-{i}-{n}"),
                        state: GrantState::Granted,
                        granted_at: Some(now),
                        expires_at: None,
                    },
                    "app".to_string(),
                ));
            }
        }
        total += grants.len();
        tenure_store::upsert_grants(tx.conn(), &grants, now).await?;
        tx.commit().await?;
    }
    Ok(total)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn run(args: ReviewsBenchArgs) -> Result<()> {
    ensure!(args.people >= TEAM, "--people must be at least {TEAM}");
    ensure!(
        (1..=ENTITLEMENTS).contains(&args.grants),
        "--grants must be 1 to {ENTITLEMENTS}"
    );
    let dir = tempfile::tempdir()?;
    let store = match &args.database {
        Some(url) => Store::connect(url).await?,
        None => Store::open_sqlite(&dir.path().join("bench.db")).await?,
    }
    .with_vault(args.vault.clone());
    let sealed = args.vault.seals();
    let backend = store.backend();
    let t = Instant::now();
    let grants = seed(&store, args.people, args.grants).await?;
    let seed_s = t.elapsed().as_secs_f64();
    if backend == tenure_store::Backend::Postgres {
        tenure_store::analyze(&mut *store.reader().await?).await?;
    }
    let engine = Engine::start(
        store.clone(),
        Arc::new(config()?),
        Arc::new(SystemClock),
        EngineOptions {
            sole_instance: backend == tenure_store::Backend::Sqlite,
            seed: Some(42),
            ..Default::default()
        },
    )
    .await?;

    // Where the opening's time goes: the engine logs it (reading, inserting, in all).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "tenure_engine::reviews=info",
        ))
        .with_writer(std::io::stderr)
        .try_init();
    let definition = CampaignDefinition {
        scope: ReviewScope::default(),
        reviewer: ReviewerKind::Manager,
        team: None,
        fallback: Some("security".into()),
        duration_days: 14,
        reminder_days: vec![7, 2],
        recurrence: None,
        when_undecided: WhenUndecided::Keep,
        apply: ApplyAt::Close,
        auto_close: true,
    };
    let t = Instant::now();
    let campaign = engine
        .open_review(OpenCampaign {
            name: "everyone".into(),
            definition,
            actor: "bench".into(),
        })
        .await?;
    let open_s = t.elapsed().as_secs_f64();
    ensure!(
        campaign.items as usize == grants,
        "the campaign has {} items for {grants} grants",
        campaign.items
    );
    let recommended = {
        let mut c = store.reader().await?;
        tenure_store::review_items(
            &mut c,
            &tenure_store::ItemFilter {
                campaign_id: &campaign.id,
                limit: 1_000,
                ..Default::default()
            },
        )
        .await?
        .iter()
        .filter(|i| i.recommendation.is_some())
        .count()
    };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = tenure_api::router(tenure_api::AppState::new(engine.clone(), None));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let http = reqwest::Client::new();
    // Twenty managers spread over the population, each with their own token.
    let managers: Vec<String> = (0..20)
        .map(|k| person_id((k * args.people / 20) / TEAM * TEAM))
        .collect();
    let mut tokens = Vec::new();
    for m in &managers {
        let (_, token) = tenure_api::issue_token(
            &store,
            &format!("reviewer-{m}"),
            &[tenure_api::Scope::Approve],
            Some(m),
            "bench",
        )
        .await
        .map_err(|e| anyhow::anyhow!("issuing a reviewer's token: {e}"))?;
        tokens.push(token);
    }
    let page = format!("{base}/api/v1/reviews/{}/items?limit=100", campaign.id);
    let mut times = Vec::with_capacity(args.requests);
    let mut shown = 0;
    for n in 0..args.requests + tokens.len() {
        let token = &tokens[n % tokens.len()];
        let t = Instant::now();
        let res = http.get(&page).bearer_auth(token).send().await?;
        let status = res.status();
        let body: Value = res.json().await?;
        let took = ms(t.elapsed());
        ensure!(status == 200, "GET items: {status} {body}");
        shown = body["items"].as_array().map_or(0, Vec::len);
        // The first round warms each token's cache; it is not timed.
        if n >= tokens.len() {
            times.push(took);
        }
    }
    times.sort_by(f64::total_cmp);

    // A bulk decision: a manager keeps the low-risk items of their page at once.
    let (_, first_page): (u16, Value) = {
        let res = http.get(&page).bearer_auth(&tokens[1]).send().await?;
        (res.status().as_u16(), res.json().await?)
    };
    let low: Vec<i64> = first_page["items"]
        .as_array()
        .context("a page of items")?
        .iter()
        .filter(|i| i["risk"] == "low")
        .filter_map(|i| i["seq"].as_i64())
        .collect();
    let t = Instant::now();
    let res = http
        .post(format!("{base}/api/v1/reviews/{}/decisions", campaign.id))
        .bearer_auth(&tokens[1])
        .json(&json!({ "items": low, "decision": "keep" }))
        .send()
        .await?;
    let decide_ms = ms(t.elapsed());
    ensure!(res.status() == 200, "bulk decision: {}", res.text().await?);

    let t = Instant::now();
    let closed = engine.close_review(&campaign.id, "bench").await?;
    let close_s = t.elapsed().as_secs_f64();
    let _ = stop.send(());
    server.await??;
    engine.shutdown().await;
    store.close().await;

    let report = json!({
        "backend": format!("{backend:?}").to_lowercase(),
        "sealed": sealed,
        "people": args.people,
        "grants": grants,
        "seed_s": seed_s,
        "open_s": open_s,
        "items": campaign.items,
        "recommended_of_first_1000": recommended,
        "page_items": shown,
        "page_p50_ms": percentile(&times, 50.0),
        "page_p99_ms": percentile(&times, 99.0),
        "page_requests": times.len(),
        "bulk_decision_items": low.len(),
        "bulk_decision_ms": decide_ms,
        "close_s": close_s,
        "closed_decided": closed.decided,
    });
    if args.json {
        println!("{report}");
        return Ok(());
    }
    println!(
        "seeded {} people with {grants} grants in {seed_s:.1} s ({backend:?}, personal data {})",
        args.people,
        if sealed { "sealed" } else { "in clear" }
    );
    println!(
        "opened a campaign of {} items in {open_s:.2} s (target: under 5 s at 100,000 people x 10 grants); {recommended} of the first 1,000 carry a recommendation",
        campaign.items
    );
    println!(
        "a reviewer's page of {shown} items: p50 {:.1} ms, p99 {:.1} ms over {} requests (target: under 50 ms)",
        percentile(&times, 50.0),
        percentile(&times, 99.0),
        times.len()
    );
    println!(
        "a bulk decision of {} items: {decide_ms:.1} ms; closing the campaign: {close_s:.2} s",
        low.len()
    );
    Ok(())
}
