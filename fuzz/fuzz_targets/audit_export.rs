//! Fuzzes the offline verifier of audit exports (`tenure audit verify --export`) and the key
//! parsers. Arbitrary lines must never panic the verifier, and what it accepts must add up
//! (no more records than lines, a range in order). Each run also checks that an export built
//! from a real chain, signed with a fixed key, verifies, and that the same export with one
//! entry's reason changed by the fuzzer's bytes does not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure_core::audit::{AuditEntry, GENESIS, entry_hash};
use tenure_core::checkpoint::{
    EXPORT_FORMAT, ExportHeader, ExportLine, ExportVerifier, parse_private_key,
    parse_public_key, sign,
};

const KEY: &str = "ed25519-private:0707070707070707070707070707070707070707070707070707070707070707";

/// Three chained entries, a checkpoint over the last, as `tenure audit export` writes them.
fn export(reason_of_second: &str) -> Vec<String> {
    let key = parse_private_key(KEY).expect("the fixed key parses");
    let mut lines = vec![ExportLine::Header(ExportHeader {
        format: EXPORT_FORMAT.to_string(),
        from_seq: 1,
        to_seq: 3,
        person: None,
        exported_at_ms: 10,
    })];
    let mut prev = GENESIS.to_string();
    let mut entries = Vec::new();
    for seq in 1..=3 {
        let mut e = AuditEntry {
            seq,
            at_ms: seq,
            actor: "engine".into(),
            action: "run.planned".into(),
            person_id: Some("p1".into()),
            entitlement: None,
            system: None,
            run_id: None,
            reason: if seq == 2 { reason_of_second.into() } else { "r".into() },
            correlation_id: None,
            details: "{}".into(),
            prev_hash: prev.clone(),
            hash: String::new(),
        };
        e.hash = entry_hash(&e, &prev);
        prev = e.hash.clone();
        entries.push(e);
    }
    lines.push(ExportLine::Checkpoint(sign(&key, 3, &prev, 5)));
    lines.extend(entries.into_iter().map(ExportLine::Entry));
    lines
        .iter()
        .map(|l| serde_json::to_string(l).expect("a line serializes"))
        .collect()
}

fn verify(lines: &[String]) -> bool {
    let key = parse_private_key(KEY).expect("the fixed key parses");
    let mut v = ExportVerifier::new(vec![key.verifying_key()]);
    for l in lines {
        v.push_line(l);
    }
    v.finish().is_ok()
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_public_key(&text);
    let _ = parse_private_key(&text);

    // Arbitrary lines: no panic, and an accepted export adds up.
    let key = parse_private_key(KEY).expect("the fixed key parses");
    let mut v = ExportVerifier::new(vec![key.verifying_key()]);
    let lines: Vec<&str> = text.lines().collect();
    for l in &lines {
        v.push_line(l);
    }
    if let Ok(summary) = v.finish() {
        assert!(summary.entries + summary.links <= lines.len());
        if let Some((first, last)) = summary.range {
            assert!(first <= last, "{summary:?}");
        }
    }

    // A real export verifies; the same chain with one reason rewritten (hashes kept) does not.
    let genuine = export("r");
    assert!(verify(&genuine), "a genuine export fails");
    if text != "r" {
        let mut forged = genuine.clone();
        forged[3] = export(&text)[3].clone(); // the second entry, rehashed in its own chain
        assert!(!verify(&forged), "a rewritten entry passes: {text:?}");
    }
});
