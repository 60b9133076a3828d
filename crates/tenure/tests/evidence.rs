//! Evidence that does not rest on trusting the database: `tenure serve` signs checkpoints of
//! the audit chain into a file outside it; `tenure audit verify --public-key` catches a cut
//! tail with a rewritten head, a rewritten head alone, a tampered entry (even with the chain
//! re-hashed after it), and a forged checkpoint; `tenure audit export` writes a file that
//! `tenure audit verify --export` checks with no database, and a changed line fails it;
//! `tenure backup` copies a live SQLite database that `tenure restore` puts back. On SQLite,
//! and on PostgreSQL with `TENURE_TEST_DATABASE_URL`.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Output;
use tenure_core::audit::entry_hash;
use tenure_core::checkpoint::{Checkpoint, PrivateKey, sign};

const CONFIG: &str = r#"
[[systems]]
id = "directory"
connector = "sandbox"

[[entitlements]]
id = "directory:staff"
system = "directory"

[audit.checkpoints]
key_file = "checkpoint.key"
every_entries = 1000000
sink = "file:checkpoints.jsonl"
"#;

const TEMPLATES: &[(&str, &str)] = &[("all", "entitlements = [\"directory:staff\"]\n")];

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Asserts the command failed and said `says`.
fn fails_saying(out: &Output, says: &str) {
    assert!(
        !out.status.success() && text(out).contains(says),
        "expected a failure saying {says:?}: {}",
        describe(out)
    );
}

/// Asserts the command succeeded and said `says`.
fn passes_saying(out: &Output, says: &str) {
    assert!(
        out.status.success() && text(out).contains(says),
        "expected success saying {says:?}: {}",
        describe(out)
    );
}

fn sink(env: &TestEnv) -> PathBuf {
    env.dir.path().join("checkpoints.jsonl")
}

fn checkpoints(path: &Path) -> Vec<Checkpoint> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `tenure audit verify` with the public key and the sink file, on the test's database.
fn verify(env: &TestEnv, public: &str, file: Option<&Path>) -> Output {
    let mut args = vec!["audit", "verify", "--public-key", public];
    let file = file.map(|f| f.display().to_string());
    if let Some(f) = &file {
        args.extend(["--checkpoints", f.as_str()]);
    }
    env.cli(&args)
}

/// Runs the binary with no database anywhere: a fresh, empty working folder.
fn offline(args: &[&str]) -> Output {
    let nowhere = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(BIN);
    cmd.current_dir(nowhere.path())
        .env_remove("TENURE_DATA_DIR")
        .env_remove("TENURE_DATABASE_URL")
        .args(args);
    let out = cmd.output().unwrap();
    assert!(
        std::fs::read_dir(nowhere.path()).unwrap().next().is_none(),
        "verifying an export created files (a database?)"
    );
    out
}

/// `tenure audit verify --export FILE --public-key KEY`, with no database.
fn verify_export(file: &Path, public: &str) -> Output {
    offline(&[
        "audit",
        "verify",
        "--export",
        &show(file),
        "--public-key",
        public,
    ])
}

async fn entries(url: &str) -> Vec<tenure_core::audit::AuditEntry> {
    let store = tenure_store::Store::connect(url).await.unwrap();
    let mut c = store.reader().await.unwrap();
    let all = tenure_store::audit_page(&mut c, 0, None, 100_000)
        .await
        .unwrap();
    drop(c);
    store.close().await;
    all
}

async fn set_head(url: &str, seq: i64, hash: &str) {
    tamper(
        url,
        "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
        &[Bind::Int(seq), Bind::Text(hash)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_catch_what_the_chain_alone_cannot() {
    let env = TestEnv::new(CONFIG, TEMPLATES).await;
    let dir = env.dir.path();
    let key_file = dir.join("checkpoint.key");
    let pub_file = dir.join("checkpoint.pub");

    // The key pair: the private key readable by its owner only, never overwritten.
    let out = env
        .command()
        .args(["keys", "generate", "--out"])
        .arg(&key_file)
        .arg("--public-out")
        .arg(&pub_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let public = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(public.starts_with("ed25519:"), "{public}");
    assert_eq!(std::fs::read_to_string(&pub_file).unwrap().trim(), public);
    let private = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        !text(&out).contains(private.trim()),
        "the private key was printed"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A key others can read is refused at start.
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = env
            .command()
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&env.config)
            .args(env.db_args())
            .output()
            .unwrap();
        fails_saying(&out, "chmod 600");
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let again = env
        .command()
        .args(["keys", "generate", "--out"])
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(!again.status.success() && text(&again).contains("already exists"));
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), private);

    // Two runs of the server; each signs the head when it stops.
    let mut s = env.start().await;
    s.apply_ok(&hire("a1", "Engineering")).await;
    s.apply_ok(&hire("a2", "Sales")).await;
    s.stop();
    let mut s = env.start().await;
    s.apply_ok(&json!({"type": "leave", "person": {"id": "a1"}}))
        .await;
    s.stop();
    assert!(
        !s.log_text().contains(private.trim()),
        "the private key was logged"
    );

    let url = env.database_url();
    let chain = entries(&url).await;
    let head = chain.last().unwrap().seq;
    let sent = checkpoints(&sink(&env));
    assert_eq!(sent.last().map(|c| c.seq), Some(head), "{sent:?}");
    let h1 = sent
        .iter()
        .rev()
        .map(|c| c.seq)
        .find(|s| *s < head)
        .expect("the first run's last checkpoint");
    assert!(h1 > 3, "the first run wrote entries: {h1}");

    // Intact: the chain and every checkpoint, the database's and the file's.
    let out = verify(&env, &public, Some(&sink(&env)));
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        text(&out).contains(&format!("audit trail intact: {head} entries"))
            && text(&out).contains(&format!("checkpoints: {} verified", sent.len())),
        "{}",
        describe(&out)
    );
    // The public key may be given as its file too.
    let out = verify(&env, &pub_file.display().to_string(), None);
    assert!(out.status.success(), "{}", describe(&out));

    // Export the whole trail; verify it with no database.
    let export = dir.join("export.jsonl");
    let out = env.cli(&["audit", "export", "--out", &show(&export)]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = verify_export(&export, &public);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        text(&out).contains(&format!("entries 1 to {head}"))
            && text(&out).contains(&format!("vouch for every entry up to {head}")),
        "{}",
        describe(&out)
    );
    // A changed line fails it, naming the entry.
    let lines: Vec<String> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let (i, victim) = lines
        .iter()
        .enumerate()
        .find(|(_, l)| l.contains("\"type\":\"entry\"") && l.contains("\"actor\":\"engine\""))
        .unwrap();
    let seq = serde_json::from_str::<serde_json::Value>(victim).unwrap()["seq"]
        .as_i64()
        .unwrap();
    let mut changed = lines.clone();
    changed[i] = victim.replace("\"actor\":\"engine\"", "\"actor\":\"mallory\"");
    let bad = dir.join("export-changed.jsonl");
    std::fs::write(&bad, changed.join("\n") + "\n").unwrap();
    let out = verify_export(&bad, &public);
    fails_saying(&out, &format!("audit entry {seq} was altered"));
    // A range by sequence numbers starts after genesis and says so.
    let part = dir.join("export-part.jsonl");
    let out = env.cli(&[
        "audit",
        "export",
        "--from",
        "3",
        "--to",
        &h1.to_string(),
        "--out",
        &show(&part),
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = verify_export(&part, &public);
    passes_saying(&out, "starts after entry 2");
    // One person's entries, linked to a checkpoint by the entries between.
    let person = dir.join("export-a1.jsonl");
    let out = env.cli(&["audit", "export", "--person", "a1", "--out", &show(&person)]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = verify_export(&person, &public);
    passes_saying(&out, "entries of person a1 in full");

    // A forged checkpoint: signed by another key naming itself, or claiming the trusted key.
    let other = PrivateKey::from_bytes(&[7; 32]);
    let forged = sign(&other, head, &chain.last().unwrap().hash, 1);
    let mut claimed = forged.clone();
    claimed.key = public.clone();
    for (cp, says) in [
        (forged, "was not signed by a trusted key"),
        (claimed, "signature that does not match"),
    ] {
        let file = dir.join("forged.jsonl");
        let mut body = std::fs::read_to_string(sink(&env)).unwrap();
        body.push_str(&serde_json::to_string(&cp).unwrap());
        body.push('\n');
        std::fs::write(&file, body).unwrap();
        let out = verify(&env, &public, Some(&file));
        fails_saying(&out, &format!("checkpoint at sequence {head}"));
        fails_saying(&out, says);
    }

    // The head rewritten alone.
    set_head(&url, head - 1, &chain[chain.len() - 1].hash).await;
    let out = verify(&env, &public, None);
    fails_saying(&out, "the head was rewritten");
    set_head(&url, head, &chain[chain.len() - 1].hash).await;

    // The tail cut after k and the head rewritten to match: the chain alone still verifies;
    // the checkpoint past the new end does not.
    let k = h1 + 1;
    tamper(
        &url,
        "DELETE FROM audit_log WHERE seq > $1",
        &[Bind::Int(k)],
    )
    .await;
    set_head(&url, k, &chain[k as usize - 1].hash).await;
    let out = env.cli(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "the chain alone cannot tell: {}",
        describe(&out)
    );
    assert!(
        text(&out).contains("not checked: give --public-key"),
        "{}",
        describe(&out)
    );
    let out = verify(&env, &public, Some(&sink(&env)));
    fails_saying(
        &out,
        &format!(
            "checkpoint at sequence {head} is past the end of the chain (last entry {k}): entries {} to {head} were removed",
            k + 1
        ),
    );

    // An entry rewritten and every hash after it recomputed, head included: the chain verifies
    // again, the checkpoint at h1 no longer matches.
    let mut rewritten: Vec<_> = chain[..k as usize].to_vec();
    rewritten[1].actor = "mallory".into();
    for i in 1..rewritten.len() {
        let prev = rewritten[i - 1].hash.clone();
        rewritten[i].prev_hash = prev.clone();
        rewritten[i].hash = entry_hash(&rewritten[i], &prev);
    }
    for e in &rewritten[1..] {
        tamper(
            &url,
            "UPDATE audit_log SET actor = $1, prev_hash = $2, hash = $3 WHERE seq = $4",
            &[
                Bind::Text(&e.actor),
                Bind::Text(&e.prev_hash),
                Bind::Text(&e.hash),
                Bind::Int(e.seq),
            ],
        )
        .await;
    }
    set_head(&url, k, &rewritten[k as usize - 1].hash).await;
    // And the database's checkpoints deleted: only the file outside it still tells.
    tamper(&url, "DELETE FROM audit_checkpoints", &[]).await;
    let out = verify(&env, &public, None);
    assert!(
        out.status.success(),
        "the database alone cannot tell: {}",
        describe(&out)
    );
    let out = verify(&env, &public, Some(&sink(&env)));
    fails_saying(
        &out,
        &format!("the entry at sequence {h1} does not match the checkpoint signed for it"),
    );

    // A plain edit, chain not re-hashed: named as before.
    tamper(
        &url,
        "UPDATE audit_log SET reason = 'nothing happened' WHERE seq = 3",
        &[],
    )
    .await;
    let out = verify(&env, &public, Some(&sink(&env)));
    fails_saying(&out, "audit entry 3 was altered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_live_database_restores_and_verifies() {
    let plain = CONFIG.split("[audit.checkpoints]").next().unwrap();
    let env = TestEnv::new(plain, TEMPLATES).await;
    let copy = env.dir.path().join("backup.db");
    let mut s = env.start().await;
    s.apply_ok(&hire("b1", "Engineering")).await;
    let out = env.cli(&["backup", &show(&copy)]);
    if env.pg.is_some() {
        fails_saying(&out, "pg_dump");
        return;
    }
    // Taken while the server runs.
    assert!(out.status.success(), "{}", describe(&out));
    let at_backup = entries(&env.database_url()).await.len();
    // More work after the backup, which the restore will take back.
    s.apply_ok(&hire("b2", "Sales")).await;
    let again = env.cli(&["backup", &show(&copy)]);
    assert!(
        text(&again).contains("already exists"),
        "{}",
        describe(&again)
    );
    // The database in use is never replaced.
    let out = env.cli(&["restore", &show(&copy), "--force"]);
    fails_saying(&out, "is in use");
    s.stop();
    let out = env.cli(&["restore", &show(&copy)]);
    fails_saying(&out, "--force");
    let out = env.cli(&["restore", &show(&copy), "--force"]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = env.cli(&["audit", "verify"]);
    passes_saying(&out, &format!("audit trail intact: {at_backup} entries"));
    // And it serves: the person hired before the backup is there, the one after is not.
    let s = env.start().await;
    assert_eq!(s.person("b1").await["status"], "active");
    let missing = s
        .request(
            reqwest::Method::GET,
            "/api/v1/people/b2",
            Some(TOKEN),
            &[],
            None,
        )
        .await;
    assert_eq!(missing.status, reqwest::StatusCode::NOT_FOUND);
}

const LEAVER_CONFIG: &str = r#"
[[systems]]
id = "directory"
connector = "sandbox"

[[systems]]
id = "git"
connector = "sandbox"
retention = "keep"

[[entitlements]]
id = "directory:staff"
system = "directory"

[[entitlements]]
id = "git:write"
system = "git"

[sla]
revoke = "15m"

[sla.systems.git]
revoke = "5m"
"#;

const LEAVER_TEMPLATES: &[(&str, &str)] = &[(
    "all",
    "entitlements = [\"directory:staff\", \"git:write\"]\n",
)];

/// The evidence of a leave, from the API and from `tenure evidence`: each system's disable,
/// revoke and (where accounts are deleted) delete, each citing the audit entry that records
/// it; nothing left held; the targets of `[sla]` met. A person who has not left answers 409,
/// an unknown one 404.
#[tokio::test]
async fn a_leavers_evidence_cites_the_audit_entry_of_each_removal() {
    let env = TestEnv::new(LEAVER_CONFIG, LEAVER_TEMPLATES).await;
    let s = env.start().await;
    s.apply_ok(&hire("p1", "Engineering")).await;
    s.apply_ok(&hire("p2", "Sales")).await;
    s.apply_ok(&json!({"type": "leave", "person": {"id": "p1"}}))
        .await;

    let e = s.get("/api/v1/people/p1/evidence").await;
    assert_eq!(e["person_id"], "p1", "{e:#}");
    assert_eq!(e["status"], "terminated");
    assert_eq!(e["complete"], true, "{e:#}");
    assert_eq!(e["sla"]["target_ms"], 900_000);
    assert_eq!(e["sla"]["met"], true, "{e:#}");
    let audit = s.items("/api/v1/audit?person=p1").await;
    let by_seq = |seq: &Value| -> Value {
        audit
            .iter()
            .find(|a| a["seq"] == *seq)
            .unwrap_or_else(|| panic!("no audit entry {seq}"))
            .clone()
    };
    let received = by_seq(&e["leave"]["audit_seq"]);
    assert_eq!(received["action"], "event.received");
    let systems = e["systems"].as_array().unwrap();
    let names: Vec<&str> = systems
        .iter()
        .map(|s| s["system"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["directory", "git"]);
    for sys in systems {
        let name = sys["system"].as_str().unwrap();
        // Every line is its audit entry: same action, system and entitlement.
        let cited: Vec<&Value> = [&sys["disabled"], &sys["deleted"]]
            .into_iter()
            .filter(|c| !c.is_null())
            .chain(sys["revoked"].as_array().unwrap())
            .collect();
        for c in &cited {
            let a = by_seq(&c["audit_seq"]);
            assert_eq!(a["action"], c["action"], "{name}: {c:#} against {a:#}");
            assert_eq!(a["system"], name, "{a:#}");
            assert_eq!(
                a["entitlement"],
                c.get("entitlement").cloned().unwrap_or(Value::Null)
            );
            assert!(
                c["audit_seq"].as_i64() > received["seq"].as_i64(),
                "removals come after the leave's receipt"
            );
            assert!(c["op_id"].is_string(), "{c:#}");
        }
        assert_eq!(sys["disabled"]["action"], "step.disable_account");
        assert_eq!(
            sys["revoked"][0]["entitlement"],
            format!("{name}:{}", if name == "git" { "write" } else { "staff" })
        );
        assert!(sys["still_held"].as_array().unwrap().is_empty());
        assert_eq!(sys["sla"]["met"], true, "{sys:#}");
        assert!(sys["sla"]["took_ms"].as_i64().unwrap() >= 0);
    }
    // git keeps disabled accounts; directory deletes them.
    assert_eq!(systems[0]["deleted"]["action"], "step.delete_account");
    assert!(systems[1]["deleted"].is_null());
    assert_eq!(systems[1]["sla"]["target_ms"], 300_000);

    let not_left = s
        .request(
            Method::GET,
            "/api/v1/people/p2/evidence",
            Some(TOKEN),
            &[],
            None,
        )
        .await;
    assert_eq!(not_left.status, StatusCode::CONFLICT, "{}", not_left.body);
    assert_eq!(not_left.body["error"]["code"], "conflict");
    assert!(
        not_left.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has not left")
    );
    // Evidence and reports need `read`: a token that only sends events is refused.
    let sender = token(&env, "sender", &["events:write"], None);
    for path in ["/api/v1/people/p1/evidence", "/api/v1/reports/sla"] {
        let refused = s.request(Method::GET, path, Some(&sender), &[], None).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            refused.body
        );
    }
    let nobody = s
        .request(
            Method::GET,
            "/api/v1/people/nobody/evidence",
            Some(TOKEN),
            &[],
            None,
        )
        .await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND, "{}", nobody.body);

    // The command line gives the same evidence, and a printable page of it.
    let config = show(&env.config);
    let out = env.cli(&["evidence", "p1", "--config", &config]);
    assert!(out.status.success(), "{}", describe(&out));
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli, e);
    let page = env.cli(&["evidence", "p1", "--html"]);
    assert!(page.status.success(), "{}", describe(&page));
    let html = String::from_utf8_lossy(&page.stdout);
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains("Leave evidence: p1"), "{html}");
    let revoke_seq = systems[1]["revoked"][0]["audit_seq"].to_string();
    assert!(html.contains(&format!("<td>{revoke_seq}</td>")), "{html}");
    assert!(
        html.contains("no target set"),
        "without --config nothing is judged: {html}"
    );
    fails_saying(&env.cli(&["evidence", "p2"]), "has not left");
    fails_saying(&env.cli(&["evidence", "nobody"]), "no person `nobody`");
}

/// [`down_config`] with service-level targets: `down` has one of its own.
fn sla_config() -> String {
    format!(
        "{}\n[sla]\nprovision = \"1h\"\nrevoke = \"15m\"\n\n[sla.systems.down]\nprovision = \"30m\"\n",
        down_config(4, 1.0)
    )
}

/// The service-level report: a hire whose `down` system fails is done on `directory` and not
/// done on `down`; it breaches nothing while within its targets, and once judged past them
/// (`--at`) it breaches `down`'s own target and the overall one, each naming the failed step.
/// A period that ends before it starts is refused. The overdue gauge is exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_level_report_counts_each_system_and_names_each_breach() {
    let env = TestEnv::new(&sla_config(), DOWN_TEMPLATES).await;
    let s = env.start().await;
    let run_id = s.accept(&hire("h1", "Engineering")).await;
    let run = s.wait_run(&run_id).await;
    assert_eq!(run["state"], "failed", "{run:#}");

    let r = s.get("/api/v1/reports/sla").await;
    let provision = r["provision"].as_array().unwrap();
    let figures = |system: Option<&str>| -> Value {
        provision
            .iter()
            .find(|f| f["system"].as_str() == system)
            .unwrap_or_else(|| panic!("no figures for {system:?}: {r:#}"))
            .clone()
    };
    let whole = figures(None);
    assert_eq!(
        (whole["runs"].clone(), whole["done"].clone()),
        (json!(1), json!(0)),
        "{r:#}"
    );
    assert_eq!(whole["target_ms"], 3_600_000);
    let directory = figures(Some("directory"));
    assert_eq!(directory["done"], 1, "{r:#}");
    assert!(directory["p99_ms"].as_i64().unwrap() >= 0);
    let down = figures(Some("down"));
    assert_eq!(
        (down["done"].clone(), down["target_ms"].clone()),
        (json!(0), json!(1_800_000))
    );
    assert_eq!(r["breaches_total"], 0, "within its targets: {r:#}");
    assert!(r["revoke"].as_array().unwrap().is_empty());

    // Judged two hours on, `down` and the run as a whole are past their targets.
    let config = show(&env.config);
    let later = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let out = env.cli(&["report", "sla", "--config", &config, "--at", &later]);
    assert!(out.status.success(), "{}", describe(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["breaches_total"], 2, "{r:#}");
    let breaches = r["breaches"].as_array().unwrap();
    let on_down = breaches.iter().find(|b| b["system"] == "down").unwrap();
    assert_eq!(on_down["run_id"], run_id.as_str());
    assert_eq!(on_down["target_ms"], 1_800_000);
    assert!(on_down["took_ms"].is_null());
    assert!(
        on_down["cause"]
            .as_str()
            .unwrap()
            .starts_with("create_account failed"),
        "{on_down:#}"
    );
    let whole = breaches.iter().find(|b| b.get("system").is_none()).unwrap();
    assert!(
        whole["cause"]
            .as_str()
            .unwrap()
            .starts_with("down: create_account failed"),
        "{whole:#}"
    );
    // Without --config no target is judged.
    let out = env.cli(&["report", "sla", "--at", &later]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["breaches_total"], 0, "{r:#}");

    let backwards = s
        .request(
            Method::GET,
            "/api/v1/reports/sla?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
            Some(TOKEN),
            &[],
            None,
        )
        .await;
    assert_eq!(
        backwards.status,
        StatusCode::BAD_REQUEST,
        "{}",
        backwards.body
    );
    assert_eq!(backwards.body["error"]["field"], "since");
    fails_saying(
        &env.cli(&[
            "report",
            "sla",
            "--since",
            "2026-02-01T00:00:00Z",
            "--until",
            "2026-01-01T00:00:00Z",
        ]),
        "--since must be before --until",
    );

    let metrics = s
        .request(Method::GET, "/metrics", Some(TOKEN), &[], None)
        .await;
    let text = metrics.body.as_str().unwrap_or_default().to_string();
    assert!(
        text.contains("tenure_sla_overdue_runs{direction=\"provision\"} 0"),
        "{text}"
    );
}

/// The first column of each row `sql` returns, as text.
async fn texts(url: &str, sql: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(url).await.unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(&mut c)
        .await
        .unwrap();
    let _ = c.close().await;
    rows.iter().map(|r| r.get::<String, _>(0)).collect()
}

/// Whether `needle` is anywhere in the SQLite database's files (the database and its
/// write-ahead log): what someone holding the disk could read.
fn on_disk(env: &TestEnv, needle: &str) -> bool {
    ["tenure.db", "tenure.db-wal"].iter().any(|f| {
        std::fs::read(env.data_dir().join(f))
            .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
    })
}

/// Personal data is sealed at rest under a key per person; `POST /api/v1/people/{id}/forget`
/// (and `tenure forget`) deletes a leaver's key, leaves a tombstone and keeps the audit chain
/// verifying; it is refused for someone still working, someone unknown, or without `admin`;
/// a backup from before the forget, restored over the database that forgot, comes back with
/// the person forgotten again.
#[tokio::test]
async fn a_forgotten_person_is_unreadable_and_stays_forgotten_through_a_restore() {
    let plain = CONFIG.split("[audit.checkpoints]").next().unwrap();
    let env = TestEnv::new(plain, TEMPLATES).await;
    let copy = env.dir.path().join("before-forget.db");
    let keys = env.dir.path().join("before-forget.keys");
    let mut s = env.start().await;
    s.apply_ok(&hire("f1", "Engineering")).await;
    s.apply_ok(&hire("f2", "Sales")).await;
    let sqlite = env.pg.is_none();
    if sqlite {
        let out = env.cli(&["backup", &show(&copy), "--keys", &show(&keys)]);
        assert!(out.status.success(), "{}", describe(&out));
        assert!(
            text(&out).contains("wrote 2 person key(s)"),
            "{}",
            describe(&out)
        );
    }
    let forget = |id: &str, token: &str| {
        let path = format!("/api/v1/people/{id}/forget");
        let token = token.to_string();
        let s = &s;
        async move {
            s.request(Method::POST, &path, Some(&token), &[], None)
                .await
        }
    };

    // Someone still working, or unknown, or asked for without `admin`: refused.
    let working = forget("f1", TOKEN).await;
    assert_eq!(working.status, StatusCode::CONFLICT, "{}", working.body);
    assert!(
        working.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is active")
    );
    let nobody = forget("nobody", TOKEN).await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND, "{}", nobody.body);
    let reader = token(&env, "reader", &["read"], None);
    let refused = forget("f1", &reader).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);

    s.apply_ok(&json!({"type": "leave", "person": {"id": "f1"}}))
        .await;
    let done = forget("f1", TOKEN).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body["person"], "f1");
    assert_eq!(done.body["key_deleted"], true, "{}", done.body);
    assert_eq!(
        done.body["event_payloads_dropped"], 2,
        "hire and leave: {}",
        done.body
    );
    let again = forget("f1", TOKEN).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert!(
        again.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("forgotten already")
    );

    let p = s.person("f1").await;
    assert_eq!(
        (p["name"].as_str(), p["email"].as_str()),
        (Some(""), Some("")),
        "{p:#}"
    );
    assert_eq!(p["status"], "terminated");
    assert!(p["forgotten_at"].is_string(), "{p:#}");
    assert_eq!(s.person("f2").await["email"], "f2@example.com");
    let audit = s.items("/api/v1/audit?person=f1").await;
    let entry = audit
        .iter()
        .find(|a| a["action"] == "person.forgotten")
        .expect("a person.forgotten entry");
    assert_eq!(entry["actor"], "bootstrap-admin", "{entry:#}");
    // The CLI refuses a person still working, with the same reason.
    fails_saying(&env.cli(&["forget", "f2"]), "is active");
    s.stop();

    passes_saying(&env.cli(&["audit", "verify"]), "audit trail intact");
    if !sqlite {
        return;
    }
    // Nothing of the forgotten person is on disk in clear: not in tenure's records, nor left
    // in free space by the account the sandbox directory deleted.
    for needle in ["f1@example.com", "Person f1"] {
        assert!(!on_disk(&env, needle), "{needle} is stored in clear");
    }
    // The working person's record and events are sealed (the sandbox directory, a target
    // system, keeps their account as a directory would).
    for sql in [
        "SELECT data FROM people WHERE id = 'f2'",
        "SELECT body FROM events WHERE person_id = 'f2'",
    ] {
        let stored = texts(&env.database_url(), sql).await;
        assert!(!stored.is_empty(), "{sql}");
        for stored in stored {
            assert!(stored.starts_with("enc1:"), "{sql}: {stored}");
        }
    }

    // The backup holds no person keys: a restore takes them from the database it replaces,
    // where f1's is gone. Restored over the database that forgot them, f1 is forgotten again
    // (the backup was made before), f2 readable, the chain intact.
    let in_copy = texts(
        &format!("sqlite://{}", show(&copy)),
        "SELECT CAST(COUNT(*) AS TEXT) FROM person_keys",
    )
    .await;
    assert_eq!(in_copy, ["0"]);
    let out = env.cli(&["restore", &show(&copy), "--force"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        text(&out).contains("forgot again 1 person"),
        "{}",
        describe(&out)
    );
    passes_saying(&env.cli(&["audit", "verify"]), "audit trail intact");
    let mut s = env.start().await;
    let p = s.person("f1").await;
    assert_eq!(p["name"], "", "{p:#}");
    assert!(p["forgotten_at"].is_string(), "{p:#}");
    assert_eq!(s.person("f2").await["name"], "Person f2");
    s.stop();

    // The database lost: the backup alone cannot be read, and says so; with the keys file
    // exported beside it, it can.
    for f in ["tenure.db", "tenure.db-wal", "tenure.db-shm"] {
        let _ = std::fs::remove_file(env.data_dir().join(f));
    }
    let out = env.cli(&["restore", &show(&copy)]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(text(&out).contains("have no key"), "{}", describe(&out));
    let serve = |env: &TestEnv| {
        env.command()
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&env.config)
            .args(env.db_args())
            .output()
            .unwrap()
    };
    // The server refuses to start on it, saying why, rather than fail request by request.
    fails_saying(&serve(&env), "key is missing");
    let out = env.cli(&["restore", &show(&copy), "--force", "--keys", &show(&keys)]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!text(&out).contains("have no key"), "{}", describe(&out));
    let mut s = env.start().await;
    assert_eq!(s.person("f2").await["name"], "Person f2");
    s.stop();

    // Another master key does not open the database: the server refuses to start.
    let key = env.data_dir().join("master.key");
    let mine = std::fs::read_to_string(&key).unwrap();
    std::fs::write(
        &key,
        format!("{}\n", tenure_store::vault::generate_master_key()),
    )
    .unwrap();
    fails_saying(&serve(&env), "does not open this database's person keys");
    std::fs::write(&key, mine).unwrap();
}
