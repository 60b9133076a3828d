//! `tenure bench --scim`: the SCIM server with a large directory stored.
//!
//! Loads `--users` users (each hired, as a SCIM create makes them) and `--groups` groups
//! straight through the store functions the SCIM server writes with, a thousand per
//! transaction; checks that a user created over HTTP is stored exactly as the loaded ones are;
//! then, through a real server on loopback, times substring filters (`co`, `sw`, `ew`) and
//! PATCH requests adding `--members` members to one group.

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenure_core::config::{Config, SourceFile};
use tenure_core::event::{EventInput, EventType, PersonInput};
use tenure_core::model::WorkerType;
use tenure_engine::{Engine, EngineOptions, IngestOutcome, Submission, SystemClock};
use tenure_store::{Cond, CondOp, IndexedValue, ScimGroupRow, ScimUserRow, Store};

/// What `tenure bench --scim` loads and measures.
pub struct ScimBenchArgs {
    /// Users to load.
    pub users: usize,
    /// Groups to load.
    pub groups: usize,
    /// Requests per filter.
    pub requests: usize,
    /// Members one PATCH adds.
    pub members: usize,
    /// PATCH requests (each on a fresh group).
    pub runs: usize,
    /// Database URL; a fresh SQLite file in a temporary folder by default.
    pub database: Option<String>,
    /// Print one JSON object.
    pub json: bool,
}

const GIVEN: [&str; 24] = [
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Barbara",
    "Edsger",
    "Frances",
    "Tim",
    "Margaret",
    "Ken",
    "Radia",
    "Dennis",
    "Katherine",
    "John",
    "Hedy",
    "Donald",
    "Annie",
    "Niklaus",
    "Jean",
    "Bjarne",
    "Sophie",
    "Guido",
    "Lynn",
    "Yukihiro",
];

/// Family names are two of these: 1,600 of them, 79 holding `smi`.
const SYLLABLES: [&str; 40] = [
    "smi", "th", "son", "ber", "gar", "lo", "ve", "lace", "hop", "per", "ng", "mil", "ler", "jo",
    "nes", "wil", "li", "ams", "da", "vis", "mar", "tin", "and", "er", "ta", "yl", "or", "bro",
    "wn", "kel", "ly", "fer", "gu", "ro", "dri", "guez", "cha", "ko", "wal", "ski",
];

/// One in ten users is at `example.com`.
const DOMAINS: [&str; 10] = [
    "example.com",
    "corp.test",
    "mail.test",
    "eu.corp.test",
    "us.corp.test",
    "apac.corp.test",
    "sales.test",
    "eng.test",
    "ops.test",
    "support.test",
];

/// The filters timed: what each asks, as a query string value.
const FILTERS: [&str; 7] = [
    "userName co \"smi\"",
    "emails[value co \"example\"]",
    "userName co \"4213\"",
    "name.familyName sw \"Wal\"",
    "displayName ew \"son\"",
    "userName co \"smith@\"",
    "userName co \"zq\"",
];

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The SCIM document of user `i`, as a client sends it and the server stores it.
fn user_doc(i: usize) -> Value {
    let given = GIVEN[i % GIVEN.len()];
    let a = SYLLABLES[(i / 7) % SYLLABLES.len()];
    let b = SYLLABLES[(i / 311) % SYLLABLES.len()];
    let family = capitalized(&format!("{a}{b}"));
    let domain = DOMAINS[(i / 3) % DOMAINS.len()];
    let email = format!(
        "{}.{}{i}@{domain}",
        given.to_lowercase(),
        family.to_lowercase()
    );
    json!({
        "userName": email,
        "name": { "givenName": given, "familyName": family, "formatted": format!("{given} {family}") },
        "displayName": format!("{given} {family}"),
        "emails": [{ "value": email, "type": "work", "primary": true }],
        "active": true,
    })
}

fn ms_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The value index the server writes for [`user_doc`] (lowercased text, booleans as words).
fn user_index(id: &str, doc: &Value, at: &str) -> Vec<IndexedValue> {
    let v = |attr: &str, idx: i64, sub: &str, val: &str| IndexedValue {
        attr: attr.into(),
        idx,
        sub: sub.into(),
        val: val.into(),
    };
    let text = |x: &Value| x.as_str().unwrap_or_default().to_lowercase();
    let email = &doc["emails"][0];
    vec![
        v("id", 0, "", id),
        v("meta", 0, "created", at),
        v("meta", 0, "lastmodified", at),
        v("username", 0, "", &text(&doc["userName"])),
        v("name", 0, "formatted", &text(&doc["name"]["formatted"])),
        v("name", 0, "familyname", &text(&doc["name"]["familyName"])),
        v("name", 0, "givenname", &text(&doc["name"]["givenName"])),
        v("displayname", 0, "", &text(&doc["displayName"])),
        v("emails", 0, "value", &text(&email["value"])),
        v("emails", 0, "type", &text(&email["type"])),
        v("emails", 0, "primary", "true"),
        v("active", 0, "", "true"),
    ]
}

/// The stored row, index and hire of user `i`, created at `now`.
fn user_write(i: usize, now: i64) -> ((ScimUserRow, Vec<IndexedValue>), Submission) {
    let id = uuid::Uuid::now_v7().to_string();
    let doc = user_doc(i);
    let row = ScimUserRow {
        id: id.clone(),
        user_name_ci: doc["userName"].as_str().unwrap_or_default().to_lowercase(),
        lifecycle: "active".into(),
        version: 1,
        created_at: now,
        updated_at: now,
        doc: doc.to_string(),
    };
    let index = user_index(&id, &doc, &ms_rfc3339(now));
    let hire = Submission {
        event: EventInput {
            id: None,
            kind: EventType::Hire,
            person: PersonInput {
                id: id.clone(),
                name: doc["displayName"].as_str().map(str::to_string),
                email: doc["emails"][0]["value"].as_str().map(str::to_string),
                worker_type: Some(WorkerType::Employee),
                ..Default::default()
            },
            engagement: None,
            effective_at: None,
            source: Some("scim".into()),
        },
        idempotency_key: Some(format!("scim:{id}:1")),
        actor: "scim".into(),
        request_id: None,
        trace: None,
    };
    ((row, index), hire)
}

fn bench_config() -> Config {
    Config::parse(
        &SourceFile {
            path: "bench/tenure.toml".into(),
            text: "[[systems]]\nid = \"directory\"\nconnector = \"sandbox\"\n[systems.settings]\nlatency_ms = 0\n".into(),
        },
        &[],
    )
    .expect("bench configuration is valid")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Loads the users, a thousand to a transaction (users, value index, hires), and returns
/// their ids in load order.
async fn load_users(engine: &Engine, n: usize) -> Result<Vec<String>> {
    let mut ids = Vec::with_capacity(n);
    for start in (0..n).step_by(1000) {
        let now = chrono::Utc::now().timestamp_millis();
        let (writes, hires): (Vec<_>, Vec<_>) = (start..(start + 1000).min(n))
            .map(|i| user_write(i, now))
            .unzip();
        let mut tx = engine.store().begin().await?;
        tenure_store::insert_scim_users(tx.conn(), &writes).await?;
        for outcome in engine
            .submit_in(&mut tx, &hires, tenure_engine::Planning::InTransaction)
            .await?
        {
            ensure!(
                matches!(outcome, IngestOutcome::Accepted { .. }),
                "a hire was not accepted: {outcome:?}"
            );
        }
        tx.commit().await?;
        ids.extend(writes.into_iter().map(|(row, _)| row.id));
    }
    Ok(ids)
}

/// Loads the groups, each user a member of two of them.
async fn load_groups(store: &Store, n: usize, users: &[String]) -> Result<usize> {
    let mut members: Vec<Vec<&str>> = vec![Vec::new(); n];
    for (i, u) in users.iter().enumerate() {
        let (a, b) = (i % n, (i * 7919 + 13) % n);
        members[a].push(u);
        if b != a {
            members[b].push(u);
        }
    }
    let now = chrono::Utc::now().timestamp_millis();
    let mut total = 0;
    for start in (0..n).step_by(1000) {
        let mut tx = store.begin().await?;
        for (g, m) in members
            .iter()
            .enumerate()
            .take((start + 1000).min(n))
            .skip(start)
        {
            let row = ScimGroupRow {
                id: uuid::Uuid::now_v7().to_string(),
                display_name: format!("Team {} {g}", capitalized(SYLLABLES[g % SYLLABLES.len()])),
                external_id: None,
                version: 1,
                created_at: now,
                updated_at: now,
            };
            ensure!(tenure_store::put_scim_group(tx.conn(), &row, None).await?);
            tenure_store::change_scim_group_members(tx.conn(), &row.id, m, &[]).await?;
            total += m.len();
        }
        tx.commit().await?;
    }
    Ok(total)
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let text = res.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

/// Creates one more user over HTTP and checks the server stored it exactly as the loader
/// stores the others (document, lifecycle and value index): the figures are of the same data
/// the server writes.
async fn check_loaded_like_served(client: &Client, store: &Store, i: usize) -> Result<()> {
    let doc = user_doc(i);
    let mut body = doc.clone();
    body["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User"]);
    let (status, created) = client
        .send(reqwest::Method::POST, "/scim/v2/Users", Some(&body))
        .await?;
    ensure!(
        status == 201,
        "creating a user over HTTP: {status} {created}"
    );
    let id = created["id"].as_str().context("created user has an id")?;
    let mut c = store.reader().await?;
    let row = tenure_store::scim_user(&mut c, id)
        .await?
        .context("the created user is stored")?;
    let mut stored = tenure_store::scim_values_of(&mut c, id).await?;
    let mut loaded = user_index(id, &doc, &ms_rfc3339(row.created_at));
    let key = |v: &IndexedValue| (v.attr.clone(), v.idx, v.sub.clone(), v.val.clone());
    stored.sort_by_key(key);
    loaded.sort_by_key(key);
    let stored_doc: Value = serde_json::from_str(&row.doc)?;
    if stored != loaded || stored_doc != doc || row.lifecycle != "active" {
        bail!(
            "the loader no longer writes users as the server does: the server stored {stored_doc} ({}) indexed as {stored:?}; the loader writes {doc} indexed as {loaded:?}",
            row.lifecycle
        );
    }
    Ok(())
}

/// Waits until no run is left to end (polling: a benchmark's wait, not a test's).
async fn wait_for_runs(store: &Store) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut c = store.reader().await?;
        let open = tenure_store::run_counts(&mut c)
            .await?
            .into_iter()
            .any(|(state, n)| {
                n > 0
                    && !state
                        .parse::<tenure_core::run::RunState>()
                        .is_ok_and(|s| s.is_terminal())
            });
        drop(c);
        if !open {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "runs were still open after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Latencies (ms, sorted) of `n` requests of `path`, one at a time, and the last answer.
async fn time_gets(client: &Client, path: &str, n: usize) -> Result<(Vec<f64>, Value)> {
    let (status, mut last) = client.send(reqwest::Method::GET, path, None).await?;
    ensure!(status == 200, "GET {path}: {status} {last}");
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let (status, body) = client.send(reqwest::Method::GET, path, None).await?;
        times.push(ms(t.elapsed()));
        ensure!(status == 200, "GET {path}: {status} {body}");
        last = body;
    }
    times.sort_by(f64::total_cmp);
    Ok((times, last))
}

/// The store's condition for the first two filters, to show their plans.
fn plan_conds() -> [(&'static str, Cond); 2] {
    [
        (
            FILTERS[0],
            Cond::Cmp {
                attr: "username".into(),
                sub: String::new(),
                op: CondOp::Co,
                val: "smi".into(),
            },
        ),
        (
            FILTERS[1],
            Cond::Element {
                attr: "emails".into(),
                cond: Box::new(Cond::Cmp {
                    attr: String::new(),
                    sub: "value".into(),
                    op: CondOp::Co,
                    val: "example".into(),
                }),
            },
        ),
    ]
}

pub async fn run(args: ScimBenchArgs) -> Result<()> {
    ensure!(
        args.members * args.runs <= args.users,
        "--members × --runs ({}) cannot exceed --users ({}): each PATCH adds users not added before",
        args.members * args.runs,
        args.users
    );
    ensure!(args.groups > 0, "--groups must be at least 1");
    let dir = tempfile::tempdir()?;
    let db_file = dir.path().join("bench.db");
    let store = match &args.database {
        Some(url) => Store::connect(url).await?,
        None => Store::open_sqlite(&db_file).await?,
    };
    let backend = store.backend();
    let engine = Engine::start(
        store.clone(),
        Arc::new(bench_config()),
        Arc::new(SystemClock),
        EngineOptions {
            sole_instance: backend == tenure_store::Backend::Sqlite,
            seed: Some(42),
            ..Default::default()
        },
    )
    .await?;

    let t = Instant::now();
    let users = load_users(&engine, args.users).await?;
    let load_users_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let memberships = load_groups(&store, args.groups, &users).await?;
    let load_groups_s = t.elapsed().as_secs_f64();
    // The hires' runs end before anything is timed: the engine works on nothing else then.
    wait_for_runs(&store).await?;
    if backend == tenure_store::Backend::Postgres {
        // A bulk load outruns autovacuum: without fresh statistics the planner takes each
        // attribute for a few rows and never reads the trigram index. An operator loading
        // this much runs ANALYZE too.
        tenure_store::analyze(&mut *store.reader().await?).await?;
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app =
        tenure_api::router(tenure_api::AppState::new(engine.clone(), None).with_public_url(&base));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let (_, token) = tenure_api::issue_token(
        &store,
        "scim-bench",
        &[tenure_api::Scope::Scim],
        None,
        "bench",
    )
    .await
    .map_err(|e| anyhow::anyhow!("issuing the bench's token: {e}"))?;
    let client = Client {
        http: reqwest::Client::new(),
        base,
        token,
    };
    check_loaded_like_served(&client, &store, args.users).await?;

    let mut filters = Vec::new();
    for f in FILTERS {
        let path = format!("/scim/v2/Users?count=100&filter={}", url_encode(f));
        let (times, last) = time_gets(&client, &path, args.requests).await?;
        filters.push(json!({
            "filter": f,
            "total_results": last["totalResults"],
            "p50_ms": percentile(&times, 50.0),
            "p99_ms": percentile(&times, 99.0),
            "max_ms": times.last().copied().unwrap_or(f64::NAN),
        }));
    }
    let group_filter = "displayName co \"team smi\"";
    let path = format!(
        "/scim/v2/Groups?count=100&excludedAttributes=members&filter={}",
        url_encode(group_filter)
    );
    let (times, last) = time_gets(&client, &path, args.requests).await?;
    filters.push(json!({
        "filter": format!("Groups: {group_filter}"),
        "total_results": last["totalResults"],
        "p50_ms": percentile(&times, 50.0),
        "p99_ms": percentile(&times, 99.0),
        "max_ms": times.last().copied().unwrap_or(f64::NAN),
    }));

    let mut patches = Vec::with_capacity(args.runs);
    // From the PATCH sent until every run it caused (a transfer per member, planned by the
    // engine after the commit) has ended.
    let mut settled = Vec::with_capacity(args.runs);
    for r in 0..args.runs {
        let (status, group) = client
            .send(
                reqwest::Method::POST,
                "/scim/v2/Groups",
                Some(&json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": format!("bench patch {r}"),
                })),
            )
            .await?;
        ensure!(status == 201, "creating a group: {status} {group}");
        let gid = group["id"].as_str().context("created group has an id")?;
        let value: Vec<Value> = users[r * args.members..(r + 1) * args.members]
            .iter()
            .map(|u| json!({ "value": u }))
            .collect();
        let patch = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "add", "path": "members", "value": value }],
        });
        let t = Instant::now();
        let (status, body) = client
            .send(
                reqwest::Method::PATCH,
                &format!("/scim/v2/Groups/{gid}?excludedAttributes=members"),
                Some(&patch),
            )
            .await?;
        patches.push(ms(t.elapsed()));
        ensure!(
            status == 200 || status == 204,
            "PATCH adding members: {status} {body}"
        );
        wait_for_runs(&store).await?;
        settled.push(ms(t.elapsed()));
    }
    patches.sort_by(f64::total_cmp);
    settled.sort_by(f64::total_cmp);

    let mut plans = Vec::new();
    let mut c = store.reader().await?;
    for (f, cond) in plan_conds() {
        plans.push(json!({
            "filter": f,
            "plan": tenure_store::scim_search_plan(&mut c, Some(&cond)).await?,
        }));
    }
    drop(c);
    let _ = stop.send(());
    server.await??;
    engine.shutdown().await;
    store.close().await;
    let db_bytes = if args.database.is_none() {
        ["", "-wal"]
            .iter()
            .filter_map(|s| std::fs::metadata(format!("{}{s}", db_file.display())).ok())
            .map(|m| m.len())
            .sum::<u64>()
    } else {
        0
    };

    let figures = json!({
        "backend": format!("{backend:?}").to_lowercase(),
        "users": users.len() + 1,
        "groups": args.groups,
        "memberships": memberships,
        "load_users_s": load_users_s,
        "load_groups_s": load_groups_s,
        "sqlite_bytes": db_bytes,
        "requests_per_filter": args.requests,
        "filters": filters,
        "patch_members": args.members,
        "patch_runs": args.runs,
        "patch_p50_ms": percentile(&patches, 50.0),
        "patch_p99_ms": percentile(&patches, 99.0),
        "patch_settled_p50_ms": percentile(&settled, 50.0),
        "patch_settled_p99_ms": percentile(&settled, 99.0),
        "plans": plans,
    });
    if args.json {
        println!("{figures}");
        return Ok(());
    }
    println!(
        "{} users and {} groups ({memberships} memberships) loaded on {} in {load_users_s:.1} s + {load_groups_s:.1} s{}",
        users.len() + 1,
        args.groups,
        figures["backend"].as_str().unwrap_or_default(),
        if db_bytes > 0 {
            format!(", database {:.0} MiB", db_bytes as f64 / 1048576.0)
        } else {
            String::new()
        }
    );
    println!(
        "filters, {} requests each, one at a time (target: co p99 < 20 ms):",
        args.requests
    );
    for f in &filters {
        println!(
            "  {:<45} {:>6} results   p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
            f["filter"].as_str().unwrap_or_default(),
            f["total_results"],
            f["p50_ms"].as_f64().unwrap_or(f64::NAN),
            f["p99_ms"].as_f64().unwrap_or(f64::NAN),
            f["max_ms"].as_f64().unwrap_or(f64::NAN),
        );
    }
    println!(
        "PATCH adding {} members to one group, {} runs: p50 {:.0} ms, p99 {:.0} ms (target: < 1,000 ms)",
        args.members,
        args.runs,
        percentile(&patches, 50.0),
        percentile(&patches, 99.0)
    );
    println!(
        "  and until every run it caused had ended: p50 {:.0} ms, p99 {:.0} ms",
        percentile(&settled, 50.0),
        percentile(&settled, 99.0)
    );
    for p in &plans {
        println!("plan of {}:", p["filter"].as_str().unwrap_or_default());
        for line in p["plan"].as_array().into_iter().flatten() {
            println!("  {}", line.as_str().unwrap_or_default());
        }
    }
    Ok(())
}
