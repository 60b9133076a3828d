//! The README's walkthrough, run as written against the real binary started with
//! `serve --demo`: the `sh` blocks of its quickstart, its access-request example and its
//! what-if, in order, in one bash session (curl and jq, as a reader would).
//!
//! A run of `# ` comment lines directly after a command (no blank line between) is the output
//! the README promises for that command: the last lines the commands before it printed must be
//! exactly these. An explanatory comment goes after a blank line. So the test breaks as soon as
//! the README and the behaviour drift apart, in either direction.
//!
//! In the blocks, `cargo run ... -- ARGS` and `tenure ARGS` run the binary under test on the
//! test's database, and `http://127.0.0.1:8080` is the test server's address.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The README sections whose `sh` blocks are run, in the README's order.
const SECTIONS: &[&str] = &[
    "Quickstart with curl",
    "Access requests and approvals",
    "Policy, separation of duties and what-if",
];

/// One fenced `sh` block: the heading it sits under, its first line in README.md and its text.
struct Block {
    section: String,
    line: usize,
    text: String,
}

/// The `sh` blocks of README.md, with the heading each sits under.
fn sh_blocks(readme: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut section = String::new();
    let mut open: Option<Block> = None;
    for (i, line) in readme.lines().enumerate() {
        match &mut open {
            Some(b) if line.trim_start().starts_with("```") => {
                blocks.push(std::mem::replace(
                    b,
                    Block {
                        section: String::new(),
                        line: 0,
                        text: String::new(),
                    },
                ));
                open = None;
            }
            Some(b) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            None if line.trim_start().starts_with("```") => {
                let lang = line.trim_start().trim_start_matches('`').trim();
                // Blocks of other languages are skipped, but still fenced.
                open = Some(Block {
                    section: if lang == "sh" {
                        section.clone()
                    } else {
                        String::new()
                    },
                    line: i + 1,
                    text: String::new(),
                });
            }
            None if line.starts_with('#') => {
                section = line.trim_start_matches('#').trim().to_string();
            }
            None => {}
        }
    }
    assert!(open.is_none(), "README.md ends inside a fenced block");
    blocks.retain(|b| !b.section.is_empty());
    blocks
}

/// What one command of the README promises to print.
struct Expectation {
    /// README.md line of the first promised line.
    line: usize,
    /// The promised lines.
    lines: Vec<String>,
}

/// Turns the blocks into one bash script: a mark after each command with a promised output,
/// so the output can be cut at those points.
fn script(blocks: &[&Block], base: &str) -> (String, Vec<Expectation>) {
    let mut out = String::from(
        r#"set -euo pipefail
cargo() {
  if [ "${1:-}" != run ]; then echo "the README runs 'cargo $*' here" >&2; return 1; fi
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do shift; done
  shift
  "$TENURE_BIN" "$@"
}
tenure() { "$TENURE_BIN" "$@"; }
__readme_mark() { printf '\n@@readme %s@@\n' "$1"; }
"#,
    );
    let mut expectations = Vec::new();
    for b in blocks {
        let text = b.text.replace("http://127.0.0.1:8080", base);
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let after_command = i > 0 && {
                let prev = lines[i - 1].trim();
                !prev.is_empty() && !prev.starts_with('#')
            };
            if after_command && line.starts_with("# ") {
                let first = i;
                let mut promised = Vec::new();
                while i < lines.len() && lines[i].starts_with("# ") {
                    promised.push(lines[i]["# ".len()..].trim_end().to_string());
                    i += 1;
                }
                out.push_str(&format!("__readme_mark {}\n", expectations.len()));
                expectations.push(Expectation {
                    line: b.line + 1 + first,
                    lines: promised,
                });
                continue;
            }
            out.push_str(line);
            out.push('\n');
            i += 1;
        }
    }
    out.push_str(&format!("__readme_mark {}\n", expectations.len()));
    (out, expectations)
}

/// The output printed before each mark, by mark number.
fn cut(stdout: &str, marks: usize) -> Vec<Vec<String>> {
    let mut parts = vec![Vec::new()];
    for line in stdout.lines() {
        if line.starts_with("@@readme ") && line.ends_with("@@") {
            parts.push(Vec::new());
        } else if !line.trim().is_empty() {
            parts.last_mut().expect("a part").push(line.to_string());
        }
    }
    assert_eq!(
        parts.len(),
        marks + 2,
        "the walkthrough stopped early; output:\n{stdout}"
    );
    parts
}

/// `KEY=VALUE` words before the command, and the arguments after `--`, of the README's
/// `... cargo run --release -- serve --demo` line.
fn serve_line(text: &str) -> (Vec<(String, String)>, Vec<String>) {
    let line = text
        .lines()
        .find(|l| l.contains("serve --demo"))
        .expect("a serve --demo line");
    let words: Vec<&str> = line.split_whitespace().collect();
    let env = words
        .iter()
        .take_while(|w| w.contains('='))
        .map(|w| {
            let (k, v) = w.split_once('=').expect("KEY=VALUE");
            (k.to_string(), v.to_string())
        })
        .collect();
    let dashes = words.iter().position(|w| *w == "--").expect("cargo run --");
    let args = words[dashes + 1..].iter().map(|w| w.to_string()).collect();
    (env, args)
}

/// GET with the README's admin token; panics unless 200.
async fn get(server: &Server, token: &str, path: &str) -> Value {
    let a = server
        .request(Method::GET, path, Some(token), &[], None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "GET {path}: {}", a.body);
    a.body
}

/// Waits until every run has ended or waits for an approval (the demo's seeding, here).
async fn settle(server: &Server, token: &str) {
    let start = Instant::now();
    loop {
        let runs = get(server, token, "/api/v1/runs?limit=1000").await;
        if runs["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|r| is_terminal(r) || r["state"] == "awaiting_approval")
        {
            return;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "runs still open after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_readme_walkthrough_does_what_the_readme_says() {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&readme_path).expect("README.md");
    let blocks = sh_blocks(&readme);
    let chosen: Vec<&Block> = SECTIONS
        .iter()
        .flat_map(|s| blocks.iter().filter(move |b| b.section == *s))
        .collect();
    for s in SECTIONS {
        assert!(
            chosen.iter().any(|b| b.section == *s),
            "README.md has no sh block under `{s}`"
        );
    }

    // The first block starts the server: start it as it says, on a free port of loopback.
    let (start, walkthrough) = chosen.split_first().expect("blocks");
    let (start_env, start_args) = serve_line(&start.text);
    assert_eq!(
        start_args,
        ["serve", "--demo"],
        "README line {}",
        start.line
    );
    let env = TestEnv::new("", &[]).await;
    let mut cmd = env.command();
    for (k, v) in &start_env {
        cmd.env(k, v);
    }
    cmd.args(&start_args)
        .args(["--listen", "127.0.0.1:0"])
        .args(env.db_args());
    let server = spawn(cmd).await;
    let token = start_env
        .iter()
        .find(|(k, _)| k == "TENURE_BOOTSTRAP_TOKEN")
        .map(|(_, v)| v.clone())
        .expect("the README chooses the admin token");
    // A reader starts once the demo company is in place; so does this test.
    settle(&server, &token).await;

    let (script, expectations) = script(walkthrough, &server.base);
    let cwd = tempfile::tempdir().unwrap();
    let mut bash = Command::new("bash");
    bash.arg("-c")
        .arg(&script)
        .current_dir(cwd.path())
        .env("TENURE_BIN", BIN)
        .stdin(Stdio::null());
    for var in [
        "TENURE_TOKEN",
        "TENURE_URL",
        "TENURE_CONFIG",
        "TENURE_LISTEN",
    ] {
        bash.env_remove(var);
    }
    match &env.pg {
        Some(pg) => bash
            .env("TENURE_DATABASE_URL", &pg.url)
            .env("TENURE_MASTER_KEY", common::TEST_MASTER_KEY)
            .env_remove("TENURE_DATA_DIR"),
        None => bash
            .env("TENURE_DATA_DIR", env.data_dir())
            .env_remove("TENURE_DATABASE_URL"),
    };
    let out = tokio::task::spawn_blocking(move || bash.output())
        .await
        .unwrap()
        .expect("running bash");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the README's commands failed ({}):\n{stdout}\nstderr:\n{}\nscript:\n{script}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
    );
    let parts = cut(&stdout, expectations.len());
    for (e, printed) in expectations.iter().zip(&parts) {
        let tail = &printed[printed.len().saturating_sub(e.lines.len())..];
        assert_eq!(
            tail,
            e.lines.as_slice(),
            "README.md line {}: the command before it printed\n{}\ninstead of\n{}",
            e.line,
            tail.join("\n"),
            e.lines.join("\n")
        );
    }
    assert!(expectations.len() >= 8, "the walkthrough promises outputs");

    // What the prose says of the demo company: 40 people, half of them on a client engagement
    // whose access they hold.
    let mut engaged = 0;
    for i in 1..=40 {
        let p = get(&server, &token, &format!("/api/v1/people/E{i:03}")).await;
        if p["engagements"].as_array().is_some_and(|e| !e.is_empty()) {
            engaged += 1;
            let from_engagement: Vec<&Value> = p["grants"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|g| g["source"] == "engagement")
                .collect();
            assert!(!from_engagement.is_empty(), "{p:#}");
            for g in from_engagement {
                assert_eq!(g["state"], "granted", "{}: {g}", p["id"]);
            }
        }
    }
    assert_eq!(engaged, 20);
}
