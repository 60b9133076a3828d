//! Fuzzes HR webhook mappings: arbitrary payloads through a BambooHR-shaped mapping, and
//! arbitrary mapping tables over a fixed payload. No input may panic, and every event a
//! mapping yields must pass the API's validation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure_core::event::validate_event;
use tenure_core::hr::{Mapped, parse_mapping};

const MAPPING: &str = r#"
each = "/employees"
[fields]
type = { pointer = "/action", map = { Created = "hire", Updated = "transfer", Terminated = "leave" } }
id = "/changeId"
effective_at = "/when"
"person.id" = "/id"
"person.name" = "/fields/displayName/value"
"person.email" = "/fields/workEmail/value"
"person.worker_type" = { pointer = "/fields/status", map = { "Full-Time" = "employee", Contractor = "contractor" }, default = "employee" }
"person.start_date" = "/fields/hireDate/value"
"#;

const PAYLOAD: &str = r#"{"employees":[{"id":"1","action":"Created","changeId":"c","when":"2026-01-01",
 "fields":{"displayName":{"value":"A B"},"workEmail":{"value":"a@example.com"},"status":"Contractor",
 "hireDate":{"value":"2026-01-01T00:00:00Z"}}}]}"#;

fn check(mapping: &tenure_core::hr::HrMapping, payload: &serde_json::Value) {
    if let Ok(items) = mapping.map(payload) {
        for m in items {
            if let Mapped::Event(e) = m {
                validate_event(&e).unwrap_or_else(|err| panic!("invalid event {e:?}: {err}"));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let table: toml::Table = MAPPING.parse().expect("the fixed mapping parses");
        let mapping = parse_mapping("fuzz", &table).expect("the fixed mapping is valid");
        if let Ok(payload) = serde_json::from_slice::<serde_json::Value>(rest) {
            check(&mapping, &payload);
        }
    } else if let Ok(text) = std::str::from_utf8(rest)
        && let Ok(table) = text.parse::<toml::Table>()
        && let Ok(mapping) = parse_mapping("fuzz", &table)
    {
        check(&mapping, &serde_json::from_str(PAYLOAD).expect("the fixed payload parses"));
    }
});
