//! The first day with the binary: what the command line says when something is off (no
//! database where a command looked, a busy port, a bootstrap token that is not used), that its
//! errors are one line and never a backtrace, and that its help names every command and scope.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use std::process::{Command, Output};
use tenure_api::Scope;

/// The binary with no `TENURE_*` setting from the caller and backtraces asked for everywhere:
/// an error must still be one line.
fn tenure() -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "TENURE_DATA_DIR",
        "TENURE_DATABASE_URL",
        "TENURE_CONFIG",
        "TENURE_LISTEN",
        "TENURE_BOOTSTRAP_TOKEN",
        "TENURE_TOKEN",
        "TENURE_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_BACKTRACE", "full")
        .env("RUST_LIB_BACKTRACE", "1");
    cmd
}

/// Asserts the command failed with exactly one line on standard error, `error: ...`, and
/// nothing on standard output; returns that line.
fn one_line_error(o: &Output) -> String {
    assert!(!o.status.success(), "{}", describe(o));
    assert_eq!(o.status.code(), Some(1), "{}", describe(o));
    assert!(o.stdout.is_empty(), "{}", describe(o));
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line, no backtrace: {}", describe(o));
    assert!(lines[0].starts_with("error: "), "{}", describe(o));
    assert!(!err.to_lowercase().contains("backtrace"), "{}", describe(o));
    lines[0].to_string()
}

#[test]
fn token_create_where_there_is_no_database_says_where_it_looked_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("tenure-data");
    for args in [
        &["token", "create", "--name", "ops", "--scope", "admin"][..],
        &["token", "list"],
        &["token", "revoke", "tok_x"],
        &["audit", "verify"],
    ] {
        let o = tenure()
            .args(args)
            .arg("--data-dir")
            .arg(&nowhere)
            .output()
            .unwrap();
        let line = one_line_error(&o);
        let looked = nowhere.join("tenure.db");
        assert!(
            line.starts_with(&format!(
                "error: no tenure database at {}",
                looked.display()
            )),
            "{args:?}: {line}"
        );
        assert!(line.contains("--data-dir"), "{line}");
        assert!(!nowhere.exists(), "{args:?} created {}", nowhere.display());
    }
    // The default folder is relative: the message names where that was.
    let o = tenure()
        .current_dir(dir.path())
        .args(["token", "create", "--name", "ops", "--scope", "read"])
        .output()
        .unwrap();
    let line = one_line_error(&o);
    assert!(
        line.contains(&format!(
            "{}",
            dir.path().join("tenure-data").join("tenure.db").display()
        )),
        "{line}"
    );
    assert!(!dir.path().join("tenure-data").exists());
}

#[test]
fn cli_errors_are_one_line_with_their_causes_whatever_rust_backtrace_says() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing").join("tenure.toml");
    let o = tenure()
        .args(["check", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    let line = one_line_error(&o);
    // The context, then its cause after a colon.
    assert!(
        line.starts_with(&format!("error: reading {}: ", missing.display())),
        "{line}"
    );
    let o = tenure()
        .args([
            "plan",
            "--url",
            "http://127.0.0.1:9",
            "--remove",
            "templates/x.toml",
        ])
        .output()
        .unwrap();
    let line = one_line_error(&o);
    assert!(line.contains("TENURE_TOKEN"), "{line}");
}

#[test]
fn help_lists_every_command_and_token_create_every_scope() {
    let o = tenure().arg("--help").output().unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    let help = String::from_utf8_lossy(&o.stdout);
    let commands = [
        "serve",
        "token",
        "audit",
        "check",
        "bench",
        "policy",
        "import",
        "plan",
        "approvals",
        "requests",
        "delegations",
        "tasks",
        "init",
    ];
    for command in commands {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "`{command}` missing from tenure --help:\n{help}"
        );
    }

    // The summary above the list names no commands, or all of them: never a stale few.
    let summary = help.lines().next().unwrap_or_default();
    let named = commands
        .iter()
        .filter(|c| {
            summary
                .split(|ch: char| !ch.is_alphanumeric())
                .any(|w| w == **c)
        })
        .count();
    assert!(named == 0 || named == commands.len(), "{summary}");

    let o = tenure()
        .args(["token", "create", "--help"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    let help = String::from_utf8_lossy(&o.stdout);
    for scope in Scope::ALL {
        assert!(
            help.contains(scope.as_str()),
            "scope {scope} missing from token create --help:\n{help}"
        );
    }
    // A scope that does not exist is refused before any database is opened, naming them all.
    let o = tenure()
        .args(["token", "create", "--name", "x", "--scope", "root"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    for scope in Scope::ALL {
        assert!(err.contains(scope.as_str()), "{scope} not named: {err}");
    }
}

#[test]
fn the_release_profile_ships_no_debug_information() {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let cargo: toml::Table = toml::from_str(&text).unwrap();
    let release = &cargo["profile"]["release"];
    // Line tables made the binary 195 MB; panics name file and line without them.
    assert_eq!(
        release.get("debug").and_then(|d| d.as_bool()),
        Some(false),
        "{release}"
    );
    assert_eq!(
        release.get("strip").and_then(|s| s.as_str()),
        Some("debuginfo"),
        "{release}"
    );
}

/// `tenure serve` on this test's database, without a bootstrap token unless `token` is given.
fn serve(env: &TestEnv, listen: &str, token: Option<&str>) -> Command {
    let mut cmd = env.command();
    cmd.env_remove("TENURE_BOOTSTRAP_TOKEN");
    if let Some(t) = token {
        cmd.env("TENURE_BOOTSTRAP_TOKEN", t);
    }
    cmd.args(["serve", "--listen", listen, "--config"])
        .arg(&env.config)
        .args(env.db_args());
    cmd
}

#[tokio::test]
async fn a_busy_port_loses_no_admin_token_and_an_unused_bootstrap_token_is_announced() {
    let env = TestEnv::new(
        "[[systems]]\nid = \"directory\"\nconnector = \"sandbox\"\n",
        &[],
    )
    .await;

    // The port is taken: the start fails, and no admin token was made or shown.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let o = serve(&env, &addr, None)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", describe(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!stdout.contains("admin token"), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with(&format!("error: binding {addr}: "))),
        "{}",
        describe(&o)
    );
    drop(busy);

    // The next start makes the admin token and shows it, with the server listening.
    let mut s = spawn(serve(&env, "127.0.0.1:0", None)).await;
    let logs = s.log_text();
    let secret = logs
        .lines()
        .find_map(|l| l.strip_prefix("admin token (shown once, store it now): "))
        .unwrap_or_else(|| panic!("no admin token shown:\n{logs}"))
        .trim()
        .to_string();
    let a = s
        .request(Method::GET, "/api/v1/people", Some(&secret), &[], None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    s.stop();

    // A TENURE_BOOTSTRAP_TOKEN given to a database that has tokens is not made: start says so.
    let mut s = spawn(serve(&env, "127.0.0.1:0", Some(TOKEN))).await;
    let logs = s.log_text();
    assert!(
        logs.contains("TENURE_BOOTSTRAP_TOKEN is ignored: this database already has tokens"),
        "{logs}"
    );
    assert!(!logs.contains("admin token"), "{logs}");
    let a = s
        .request(Method::GET, "/api/v1/people", Some(TOKEN), &[], None)
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    s.stop();
}
