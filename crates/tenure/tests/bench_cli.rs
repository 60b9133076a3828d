//! `tenure bench`'s modes on small loads: they run to the end and report what they promise.
//! The figures themselves are not checked: timings never go into tests.

mod common;

use serde_json::Value;
use std::process::Command;

fn bench(args: &[&str]) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::describe(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Under injected failures every run still ends as it should, and the checks the benchmark
/// reports (nothing done twice, tenure's record and the systems agree, every circuit closed
/// at the end) hold.
#[test]
fn the_fault_benchmark_converges_with_nothing_done_twice() {
    let o = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args([
            "bench", "--faults", "--hires", "60", "--leaves", "6", "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::describe(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["runs_not_converged"], 0, "{v}");
    let f = &v["faults"];
    assert!(f["injected_failures"].as_i64().unwrap() > 0, "{v}");
    for check in [
        "steps_audited_twice",
        "granted_not_held",
        "leavers_still_holding",
        "uncertain",
    ] {
        assert_eq!(f[check], 0, "{check}: {v}");
    }
    let circuits = f["circuits"].as_array().unwrap();
    assert_eq!(circuits.len(), 4, "{v}");
    for c in circuits {
        assert_eq!(c["closed_now"], true, "{c}");
        assert_eq!(
            c["opened"], c["closed"],
            "every opening was followed by a closing: {c}"
        );
    }
}

/// The engine's limits, the leavers' lane and the systems' concurrency are the bench's to
/// set, and reported with its figures; a limit out of range stops it with a message naming it.
#[test]
fn the_benchmark_takes_and_reports_its_limits() {
    let v = bench(&[
        "--hires",
        "40",
        "--leaves",
        "4",
        "--max-in-flight",
        "16",
        "--claim-batch",
        "4",
        "--max-urgent-in-flight",
        "8",
        "--system-concurrency",
        "2",
        "--urgent-lane",
        "shared",
    ]);
    assert_eq!(v["runs_not_converged"], 0, "{v}");
    assert_eq!(
        v["limits"],
        serde_json::json!({
            "max_in_flight": 16,
            "max_urgent_in_flight": 8,
            "claim_batch": 4,
            "system_concurrency": 2,
            "urgent_lane": "shared",
        })
    );
    let o = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args([
            "bench",
            "--hires",
            "1",
            "--leaves",
            "0",
            "--claim-batch",
            "600",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", common::describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("claim_batch: 600 is more than max_in_flight (512)"),
        "{}",
        common::describe(&o)
    );
}

/// Each phase of a leave, from the audit trail: the first step done no later than the last,
/// at the median and at p99, and each phase's last step no later than the next one's.
fn phases_in_order(v: &serde_json::Value) {
    let mut before = 0.0;
    for phase in ["disable_account", "revoke", "delete_account"] {
        let p = &v["revoke_phases_ms"][phase];
        let ms = |k: &str| p[k].as_f64().unwrap_or_else(|| panic!("{phase} {k}: {v}"));
        assert!(
            0.0 <= ms("first") && ms("first") <= ms("last"),
            "{phase}: {v}"
        );
        assert!(ms("first_p99") <= ms("last_p99"), "{phase}: {v}");
        assert!(ms("first") <= ms("first_p99"), "{phase}: {v}");
        assert!(
            before <= ms("last"),
            "{phase} ends before the phase ahead of it: {v}"
        );
        before = ms("last");
    }
}

/// The idle-leave benchmark sends each leave once the one before has ended, and reports every
/// one of them.
#[test]
fn the_idle_benchmark_times_each_leave() {
    let v = bench(&["--idle", "--leaves", "3"]);
    assert_eq!(v["leaves"], 3, "{v}");
    for figure in ["revoke_p50_ms", "revoke_p99_ms", "revoke_max_ms"] {
        assert!(
            v[figure].as_f64().is_some_and(|ms| ms >= 0.0),
            "{figure}: {v}"
        );
    }
    phases_in_order(&v);
    // A refused count is a clear error, not a run of nothing.
    let o = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["bench", "--idle", "--leaves", "0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--leaves"),
        "{}",
        common::describe(&o)
    );
}

/// The reconciliation benchmark finds the drift it seeds, one in a hundred of each kind.
#[test]
fn the_reconciliation_benchmark_finds_the_drift_it_seeds() {
    let v = bench(&["--reconcile", "--accounts", "300", "--memberships", "2"]);
    assert_eq!(v["accounts"], 303, "{v}");
    assert_eq!(
        v["counts"],
        serde_json::json!({"orphan": 3, "stale": 3, "unlinked": 3, "excess": 3, "missing": 3,
                           "expected": 294}),
        "{v}"
    );
    assert_eq!(v["connector"], "sandbox", "{v}");
}
