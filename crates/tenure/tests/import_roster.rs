//! `tenure import`: the real binary against a fresh database (a temporary --data-dir, or a
//! fresh PostgreSQL database when `TENURE_TEST_DATABASE_URL` is set), and against a running
//! `tenure serve` with --url.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

const CONFIG: &str = r#"
[engine]
max_attempts = 3
backoff_base_ms = 10
backoff_max_ms = 50

[[systems]]
id = "directory"
connector = "sandbox"
[systems.settings]
latency_ms = 0

[[entitlements]]
id = "directory:all-staff"
system = "directory"
"#;

const TEMPLATES: &[(&str, &str)] = &[("all-staff", "entitlements = [\"directory:all-staff\"]\n")];

const HEADER: &str =
    "id,name,email,worker_type,department,title,location,manager,start_date,end_date";

/// One roster row of person `n` with the default attributes.
fn row(n: u32) -> Vec<String> {
    let id = format!("E{n:03}");
    vec![
        id.clone(),
        format!("Person {n}"),
        format!("{}@example.com", id.to_lowercase()),
        "employee".into(),
        if n.is_multiple_of(2) {
            "Engineering"
        } else {
            "Sales"
        }
        .into(),
        "Engineer".into(),
        "London".into(),
        if n > 1 { "E001".into() } else { String::new() },
        "2024-01-15".into(),
        String::new(),
    ]
}

fn csv(rows: &[Vec<String>]) -> String {
    let mut s = format!("{HEADER}\n");
    for r in rows {
        s.push_str(&r.join(","));
        s.push('\n');
    }
    s
}

fn people(range: std::ops::RangeInclusive<u32>) -> Vec<Vec<String>> {
    range.map(row).collect()
}

struct Import {
    out: Output,
    lines: Vec<Value>,
}

impl Import {
    fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }

    fn summary(&self) -> &Value {
        self.lines
            .iter()
            .rev()
            .find(|l| l["type"] == "summary")
            .unwrap_or_else(|| panic!("no summary: {}", describe(&self.out)))
    }

    fn events(&self) -> Vec<(String, i64)> {
        let e = &self.summary()["events"];
        ["leave", "hire", "rehire", "transfer", "contract_change"]
            .iter()
            .map(|k| (k.to_string(), e[k].as_i64().unwrap_or(-1)))
            .filter(|(_, n)| *n != 0)
            .collect()
    }

    fn of_type(&self, t: &str) -> Vec<&Value> {
        self.lines.iter().filter(|l| l["type"] == t).collect()
    }

    /// Changes of a dry run as (kind, person, fields).
    fn changes(&self) -> Vec<(String, String, Value)> {
        self.of_type("change")
            .iter()
            .map(|c| {
                (
                    c["kind"].as_str().unwrap().to_string(),
                    c["person"].as_str().unwrap().to_string(),
                    c["fields"].clone(),
                )
            })
            .collect()
    }

    fn new_events(&self) -> i64 {
        let s = self.summary();
        let accepted: i64 = s["accepted"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap())
            .sum();
        accepted - s["replayed"].as_i64().unwrap()
    }
}

fn write_roster(env: &TestEnv, name: &str, text: &str) -> PathBuf {
    let p = env.dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `tenure import FILE --config CONFIG --json EXTRA... <db args>`.
fn import(env: &TestEnv, file: &Path, extra: &[&str]) -> Import {
    let file = file.display().to_string();
    let config = env.config.display().to_string();
    let mut args = vec!["import", &file, "--config", &config, "--json"];
    args.extend_from_slice(extra);
    let out = env.cli(&args);
    parse(out)
}

fn parse(out: Output) -> Import {
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{}", describe(&out))))
        .collect();
    Import { out, lines }
}

async fn count(env: &TestEnv, sql: &str) -> i64 {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&env.database_url())
        .await
        .expect("opening the test database");
    let n: i64 = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut c)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    let _ = c.close().await;
    n
}

/// Waits until no run is pending or running.
async fn settle(server: &Server) {
    let start = Instant::now();
    loop {
        let mut open = 0;
        for state in ["pending", "running"] {
            open += server
                .get(&format!("/api/v1/runs?state={state}&limit=10"))
                .await["items"]
                .as_array()
                .unwrap()
                .len();
        }
        if open == 0 {
            return;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "runs still open after {:?}:\n{}",
            start.elapsed(),
            server.log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn pairs(v: &[(&str, i64)]) -> Vec<(String, i64)> {
    v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

#[tokio::test]
async fn a_roster_hires_once_and_the_same_roster_again_sends_nothing() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let file = write_roster(&env, "roster.csv", &csv(&people(1..=40)));

    // A dry run on an empty data directory creates nothing.
    let dry = import(&env, &file, &["--dry-run"]);
    assert_eq!(dry.code(), 0, "{}", describe(&dry.out));
    assert_eq!(dry.events(), pairs(&[("hire", 40)]));
    assert_eq!(dry.changes().len(), 40);
    assert_eq!(dry.changes()[0].0, "hire");
    assert_eq!(dry.changes()[0].2["title"], "Engineer");
    assert_eq!(dry.summary()["applied"], false);
    if env.pg.is_none() {
        assert!(
            !env.sqlite_file().exists(),
            "a dry run created the database"
        );
    }

    let first = import(&env, &file, &[]);
    assert_eq!(first.code(), 0, "{}", describe(&first.out));
    assert_eq!(first.events(), pairs(&[("hire", 40)]));
    // A first import into a new data directory says it created the database, and where.
    let said =
        |i: &Import| String::from_utf8_lossy(&i.out.stderr).contains("no tenure database at ");
    assert_eq!(said(&first), env.pg.is_none(), "{}", describe(&first.out));
    assert_eq!(first.summary()["accepted"]["hire"], 40);
    assert_eq!(first.summary()["rejected"], 0);
    // The import waited for its runs: the in-process engine ran their steps.
    assert_eq!(first.summary()["runs"], json!({"succeeded": 40}));
    assert_eq!(count(&env, "SELECT COUNT(*) FROM events").await, 40);
    assert_eq!(count(&env, "SELECT COUNT(*) FROM people").await, 40);

    let second = import(&env, &file, &[]);
    assert_eq!(second.code(), 0, "{}", describe(&second.out));
    assert!(!said(&second), "{}", describe(&second.out));
    assert_eq!(second.events(), vec![], "{}", describe(&second.out));
    assert_eq!(second.summary()["people"], 40);
    assert_eq!(count(&env, "SELECT COUNT(*) FROM events").await, 40);

    // tenure serve sees the imported people, their runs and their access.
    let server = env.start().await;
    settle(&server).await;
    let p = server.person("E007").await;
    assert_eq!(p["status"], "active");
    assert_eq!(
        grants(&p),
        map(&[("directory:all-staff", "granted")]),
        "{p:#}"
    );
    let runs = server.items("/api/v1/runs").await;
    assert_eq!(runs.len(), 40);
    assert!(runs.iter().all(|r| r["state"] == "succeeded"), "{runs:#?}");
}

#[tokio::test]
async fn bad_rows_are_reported_by_line_and_column_and_good_rows_go_through() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let mut rows = people(1..=6);
    rows[1][8] = "2024-02-30".into(); // line 3: no such date
    rows[2][2] = "carol-at-example.com".into(); // line 4: not an email
    rows[3][3] = "robot".into(); // line 5: unknown worker type
    rows.push(row(1)); // line 8: E001 again
    rows.push(vec![String::new(); 10]); // blank line: skipped
    let mut text = csv(&rows);
    text.push_str("E009,\"Dee, Jr.\",dee@example.com,Partner,,,,,,\n"); // line 10: good
    let file = write_roster(&env, "roster.csv", &text);

    let out = import(&env, &file, &[]);
    assert_eq!(out.code(), 4, "{}", describe(&out.out));
    let bad: Vec<(i64, String)> = out
        .of_type("bad_row")
        .iter()
        .map(|b| {
            (
                b["line"].as_i64().unwrap(),
                b["column"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(i64, String)> = [
        (3, "start_date"),
        (4, "email"),
        (5, "worker_type"),
        (8, "id"),
    ]
    .iter()
    .map(|(l, c)| (*l, c.to_string()))
    .collect();
    assert_eq!(bad, want, "{}", describe(&out.out));
    let reasons: Vec<&str> = out
        .of_type("bad_row")
        .iter()
        .map(|b| b["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("`2024-02-30` is not a valid date"));
    assert!(reasons[1].contains("not an email address"));
    assert!(reasons[2].contains("unknown worker type `robot`"));
    assert!(reasons[3].contains("duplicate id `E001` (first on line 2)"));
    // The good rows went through: E001, E005, E006 and E009.
    assert_eq!(out.events(), pairs(&[("hire", 4)]));
    assert_eq!(out.summary()["bad_rows"], 4);
    assert_eq!(count(&env, "SELECT COUNT(*) FROM people").await, 4);

    // Plain text: FILE:LINE:COLUMN: reason on stderr.
    let text = env.cli(&[
        "import",
        &file.display().to_string(),
        "--config",
        &env.config.display().to_string(),
        "--dry-run",
    ]);
    assert_eq!(text.status.code(), Some(4), "{}", describe(&text));
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:4:email: `carol-at-example.com` is not an email address",
            file.display()
        )),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("8 rows (4 good, 4 bad)"), "{stdout}");
}

#[tokio::test]
async fn a_truncated_roster_is_held_until_confirmed_and_dry_runs_change_nothing() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let full = write_roster(&env, "full.csv", &csv(&people(1..=40)));
    assert_eq!(import(&env, &full, &[]).code(), 0);
    let events = count(&env, "SELECT COUNT(*) FROM events").await;

    // Two people gone (5%): applied without asking.
    let minus_two = write_roster(&env, "minus2.csv", &csv(&people(1..=38)));
    let dry = import(&env, &minus_two, &["--dry-run"]);
    assert_eq!(dry.code(), 0, "{}", describe(&dry.out));
    assert_eq!(dry.events(), pairs(&[("leave", 2)]));
    assert_eq!(dry.summary()["held"], false);

    // The file was cut after 30 rows: 10 of 40 (25%) would go. Held, nothing applied.
    let cut = write_roster(&env, "cut.csv", &csv(&people(1..=30)));
    let dry = import(&env, &cut, &["--dry-run"]);
    assert_eq!(dry.code(), 3, "{}", describe(&dry.out));
    assert_eq!(dry.summary()["held"], true);
    assert_eq!(dry.changes().len(), 10);
    let held = import(&env, &cut, &[]);
    assert_eq!(held.code(), 3, "{}", describe(&held.out));
    assert_eq!(held.summary()["applied"], false);
    assert_eq!(held.events(), pairs(&[("leave", 10)]));
    assert!(
        held.summary()["hold_reason"]
            .as_str()
            .unwrap()
            .contains("terminate 10 of 40 people (25.0%), more than max_leave_share 5%"),
        "{}",
        held.summary()
    );
    assert_eq!(count(&env, "SELECT COUNT(*) FROM events").await, events);
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM people WHERE status = 'terminated'"
        )
        .await,
        0
    );

    // Text output says so, with the count.
    let text = env.cli(&[
        "import",
        &cut.display().to_string(),
        "--config",
        &env.config.display().to_string(),
    ]);
    assert_eq!(text.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("held: the roster would terminate 10 of 40 people"),
        "{stdout}"
    );
    assert!(stdout.contains("--confirm"), "{stdout}");

    // --confirm applies it.
    let confirmed = import(&env, &cut, &["--confirm"]);
    assert_eq!(confirmed.code(), 0, "{}", describe(&confirmed.out));
    assert_eq!(confirmed.summary()["accepted"]["leave"], 10);
    assert_eq!(confirmed.summary()["confirmed"], true);
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM people WHERE status = 'terminated'"
        )
        .await,
        10
    );
    // Bringing them back is a rehire each (they are known and terminated).
    let dry = import(&env, &full, &["--dry-run"]);
    assert_eq!(dry.events(), pairs(&[("rehire", 10)]));
    assert_eq!(
        count(&env, "SELECT COUNT(*) FROM events").await,
        events + 10
    );
}

#[tokio::test]
async fn the_config_maps_columns_and_sets_the_leave_share() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    env.write_config(&format!(
        "{CONFIG}\n[import]\nmax_leave_share = 0.5\n[import.columns]\nid = \"Employee ID\"\nname = \"Full Name\"\nemail = \"Work Email\"\nworker_type = \"Type\"\n"
    ));
    let text = "Employee ID,Full Name,Work Email,Type,Cost Center,Title\n\
                A1,Ada,ada@example.com,employee,100,CTO\n\
                A2,Bob,bob@example.com,contractor,200,Engineer\n\
                A3,Cy,cy@example.com,employee,300,Engineer\n";
    let file = write_roster(&env, "hr.csv", text);
    let out = import(&env, &file, &[]);
    assert_eq!(out.code(), 0, "{}", describe(&out.out));
    assert_eq!(out.events(), pairs(&[("hire", 3)]));
    // One of three leaves (33%) is under this config's 50%.
    let file = write_roster(
        &env,
        "hr2.csv",
        &text.lines().take(3).collect::<Vec<_>>().join("\n"),
    );
    let out = import(&env, &file, &[]);
    assert_eq!(out.code(), 0, "{}", describe(&out.out));
    assert_eq!(out.events(), pairs(&[("leave", 1)]));

    // A header without the mapped id column is refused before anything happens.
    let file = write_roster(&env, "wrong.csv", &csv(&people(1..=3)));
    let out = env.cli(&[
        "import",
        &file.display().to_string(),
        "--config",
        &env.config.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`Employee ID` (id)"), "{stderr}");
}

#[tokio::test]
async fn url_imports_into_a_running_tenure() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let server = env.start().await;
    let url = server.base.clone();
    let run = |file: &Path, extra: &[&str]| -> Import {
        let file = file.display().to_string();
        let config = env.config.display().to_string();
        let mut cmd = std::process::Command::new(BIN);
        cmd.args([
            "import", &file, "--config", &config, "--json", "--url", &url,
        ])
        .args(extra)
        .env("TENURE_TOKEN", TOKEN)
        .env("RUST_LOG", "warn");
        parse(cmd.output().expect("running tenure import"))
    };

    let file = write_roster(&env, "roster.csv", &csv(&people(1..=40)));
    let first = run(&file, &[]);
    assert_eq!(first.code(), 0, "{}", describe(&first.out));
    assert_eq!(first.summary()["accepted"]["hire"], 40);
    settle(&server).await;
    let again = run(&file, &[]);
    assert_eq!(again.events(), vec![], "{}", describe(&again.out));

    // Changes: E001 promoted, E002 becomes a contractor with an end date, E003 moves to
    // Support and starts later (both kinds), E040 leaves, E041 joins.
    let mut rows = people(1..=39);
    rows[0][5] = "Staff Engineer".into();
    rows[1][3] = "contractor".into();
    rows[1][9] = "2027-06-30".into();
    rows[2][4] = "Support".into();
    rows[2][8] = "2024-02-01".into();
    rows.push(row(41));
    let changed = write_roster(&env, "changed.csv", &csv(&rows));
    let dry = run(&changed, &["--dry-run"]);
    assert_eq!(dry.code(), 0, "{}", describe(&dry.out));
    let want = vec![
        ("leave", "E040", json!({})),
        (
            "hire",
            "E041",
            json!({"name": "Person 41", "email": "e041@example.com", "worker_type": "employee",
                   "department": "Sales", "title": "Engineer", "location": "London",
                   "manager": "E001", "start_date": "2024-01-15"}),
        ),
        ("transfer", "E001", json!({"title": "Staff Engineer"})),
        ("transfer", "E003", json!({"department": "Support"})),
        (
            "contract_change",
            "E002",
            json!({"worker_type": "contractor", "end_date": "2027-06-30"}),
        ),
        (
            "contract_change",
            "E003",
            json!({"start_date": "2024-02-01"}),
        ),
    ];
    let want: Vec<(String, String, Value)> = want
        .into_iter()
        .map(|(k, p, f)| (k.to_string(), p.to_string(), f))
        .collect();
    assert_eq!(dry.changes(), want);

    // An event the API refuses (its id is already taken by another event) is reported; the
    // others go through.
    let taken = dry
        .of_type("change")
        .iter()
        .find(|c| c["person"] == "E041")
        .unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    // (The squatter is about a known person: one about a stranger would be refused itself.)
    let squatter = json!({"id": taken, "type": "transfer", "person": {"id": "E001", "title": "x"}});
    assert_eq!(
        server.send_event(&squatter, None).await.status,
        StatusCode::ACCEPTED
    );

    let applied = run(&changed, &[]);
    assert_eq!(applied.code(), 4, "{}", describe(&applied.out));
    let refused = applied.of_type("rejected");
    assert_eq!(refused.len(), 1, "{}", describe(&applied.out));
    assert_eq!(refused[0]["person"], "E041");
    assert!(
        refused[0]["reason"].as_str().unwrap().starts_with("422"),
        "{}",
        refused[0]
    );
    let accepted = &applied.summary()["accepted"];
    assert_eq!(
        (
            accepted["leave"].as_i64(),
            accepted["transfer"].as_i64(),
            accepted["contract_change"].as_i64()
        ),
        (Some(1), Some(2), Some(2))
    );
    settle(&server).await;
    let e003 = server.person("E003").await;
    assert_eq!(e003["department"], "Support");
    assert_eq!(e003["start_date"], "2024-02-01");
    assert_eq!(server.person("E040").await["status"], "terminated");
    assert_eq!(server.person("E002").await["worker_type"], "contractor");

    // Applied: the same roster again sends only the refused hire, again refused.
    let again = run(&changed, &[]);
    assert_eq!(
        again.events(),
        pairs(&[("hire", 1)]),
        "{}",
        describe(&again.out)
    );
    assert_eq!(again.new_events(), 0);

    // Without a token, nothing is read or sent.
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["import", &changed.display().to_string(), "--url", &url])
        .env_remove("TENURE_TOKEN");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TENURE_TOKEN"));
}

#[tokio::test]
async fn a_drop_folder_imports_each_roster_in_name_order_and_files_it() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let drop = env.dir.path().join("drop");
    std::fs::create_dir(&drop).unwrap();
    // Two rosters: the first hires 40, the second (later name) has lost a quarter of them and
    // is held. A half-written file (not *.csv yet) is left alone.
    std::fs::write(drop.join("2026-11-01.csv"), csv(&people(1..=40))).unwrap();
    std::fs::write(drop.join("2026-11-02.csv"), csv(&people(1..=30))).unwrap();
    std::fs::write(drop.join("2026-11-03.csv.part"), "id,na").unwrap();
    let dir = drop.display().to_string();
    let config = env.config.display().to_string();
    let out = env.cli(&[
        "import",
        &dir,
        "--watch",
        "--once",
        "--config",
        &config,
        "--wait-secs",
        "0",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let names = |sub: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(drop.join(sub))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let done = names("done");
    let held = names("held");
    assert_eq!(done.len(), 1, "{done:?}\n{}", describe(&out));
    assert!(done[0].ends_with("-2026-11-01.csv"), "{done:?}");
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(held[0].ends_with("-2026-11-02.csv"), "{held:?}");
    assert!(names("failed").is_empty());
    assert!(drop.join("2026-11-03.csv.part").exists());
    assert!(!drop.join("2026-11-01.csv").exists());
    // The first roster went in; the held one changed nothing.
    assert_eq!(count(&env, "SELECT COUNT(*) FROM events").await, 40);
    // --watch refuses what it cannot do.
    let out = env.cli(&["import", &dir, "--watch", "--once", "--dry-run"]);
    assert!(!out.status.success());
    let file = drop.join("done").join(&done[0]).display().to_string();
    let out = env.cli(&["import", &file, "--watch", "--once"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a folder"),
        "{}",
        describe(&out)
    );
}
