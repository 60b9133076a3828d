//! `tenure bench --faults` on a small load: under injected failures every run still ends as it
//! should, and the checks the benchmark reports (nothing done twice, tenure's record and the
//! systems agree, every circuit closed at the end) hold. The figures themselves are not
//! checked: timings never go into tests.

mod common;

use serde_json::Value;
use std::process::Command;

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
