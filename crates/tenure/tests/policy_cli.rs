//! The policy commands of the real binary: `tenure init`, `tenure policy check`, and
//! `tenure serve` refusing a configuration whose policies are invalid.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tenure");

fn tenure(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TENURE_CONFIG")
        .env_remove("TENURE_DATA_DIR")
        .env_remove("TENURE_DATABASE_URL")
        .env_remove("TENURE_LISTEN")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("running tenure")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn init(dir: &Path) -> String {
    let o = tenure(&["init", dir.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "init failed: {out}{err}");
    dir.join("tenure.toml").display().to_string()
}

#[test]
fn init_then_check_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let config = init(&dir.path().join("acme-corp"));
    for f in [
        "tenure.toml",
        "templates/all-staff.toml",
        "policies/base.cedar",
        "policies/contractors.cedar",
        "policies/data-residency.cedar",
        "policies/approvals.cedar",
    ] {
        assert!(
            dir.path().join("acme-corp").join(f).is_file(),
            "{f} missing"
        );
    }
    let base = std::fs::read_to_string(dir.path().join("acme-corp/policies/base.cedar")).unwrap();
    assert!(base.starts_with("// "), "policies keep their comments");

    let o = tenure(&["policy", "check", "--config", &config]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains(": ok ("), "{out}");
    assert!(out.contains("4 policies in 4 files"), "{out}");
    assert!(out.contains("contractors-never-privileged"), "{out}");
    assert!(err.is_empty(), "no warnings expected: {err}");
    // The general check reads the policies too.
    assert!(tenure(&["check", "--config", &config]).status.success());

    // init does not overwrite what is there, unless told to.
    let again = tenure(&["init", dir.path().join("acme-corp").to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(text(&again).1.contains("--force"));
    let forced = tenure(&[
        "init",
        "--force",
        dir.path().join("acme-corp").to_str().unwrap(),
    ]);
    assert!(forced.status.success());
}

#[test]
fn check_names_file_line_and_column_of_a_broken_policy() {
    let dir = tempfile::tempdir().unwrap();
    let config = init(dir.path());
    let broken = dir.path().join("policies").join("broken.cedar");
    std::fs::write(
        &broken,
        "// A typo in an attribute name.\n@id(\"typo\")\nforbid (principal, action, resource)\nwhen { principal.worker_typ == \"contractor\" };\n",
    )
    .unwrap();
    let o = tenure(&["policy", "check", "--config", &config]);
    let (out, err) = text(&o);
    assert!(!o.status.success(), "{out}{err}");
    let want = format!("{}:4:8:", broken.display());
    assert!(err.contains(&want), "expected {want} in:\n{err}");
    assert!(err.contains("worker_typ"), "{err}");

    // A syntax error is located too.
    std::fs::write(
        &broken,
        "permit (principal, action, resource)\nwhen { principal.department == };\n",
    )
    .unwrap();
    let o = tenure(&["policy", "check", "--config", &config]);
    let err = text(&o).1;
    assert!(!o.status.success());
    assert!(err.contains(&format!("{}:2:", broken.display())), "{err}");
}

#[test]
fn serve_refuses_to_start_on_invalid_policy() {
    let dir = tempfile::tempdir().unwrap();
    let config = init(dir.path());
    std::fs::write(
        dir.path().join("policies").join("bad.cedar"),
        "@approval(\"cfo\")\npermit (principal, action, resource);\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            &config,
            "--data-dir",
        ])
        .arg(&data)
        .env("RUST_BACKTRACE", "0")
        .env(
            "TENURE_BOOTSTRAP_TOKEN",
            "tnr_policy_cli_0123456789abcdef0123",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting tenure serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tenure serve started despite an invalid policy");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!status.success());
    assert!(err.contains("bad.cedar:1:1:"), "{err}");
    assert!(err.contains("unknown approver `cfo`"), "{err}");
}

#[test]
fn policy_bench_prints_microseconds_per_decision() {
    let o = tenure(&["policy", "bench", "--decisions", "200"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("200 decisions with 50 policies"), "{out}");
    assert!(out.contains("µs/decision"), "{out}");
}

#[test]
fn policy_schema_prints_the_generated_schema() {
    let o = tenure(&["policy", "schema"]);
    let out = text(&o).0;
    assert!(o.status.success());
    assert!(out.contains("entity Person"), "{out}");
    assert!(out.contains("\"data_region\"?: String"), "{out}");
    assert!(out.contains("action \"grant\""), "{out}");
}
