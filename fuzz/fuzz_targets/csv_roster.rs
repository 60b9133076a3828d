//! Fuzzes the roster import: arbitrary bytes through the CSV row parser and the diff. No input
//! may panic; every event the diff makes must pass the API's validation; and applying the
//! events, then diffing the same roster again, must give no events (imports are idempotent).
#![no_main]

use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use tenure_core::event::{apply_event, validate_event};
use tenure_core::roster::{ColumnMap, Field, diff, parse_roster};
use tenure_core::{Person, PersonStatus, WorkerType};

const HEADER: &[u8] =
    b"id,name,email,worker_type,department,title,location,manager,start_date,end_date\n";

fn known() -> Vec<Person> {
    PersonStatus::ALL
        .iter()
        .enumerate()
        .map(|(i, status)| Person {
            id: format!("E{i}"),
            name: format!("Person {i}"),
            email: format!("e{i}@example.com"),
            worker_type: WorkerType::Employee,
            department: Some("Engineering".into()),
            title: None,
            location: None,
            manager: None,
            start_date: NaiveDate::from_ymd_opt(2024, 1, 1),
            end_date: None,
            status: *status,
            attributes: Default::default(),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // Mostly rows under the default header; sometimes the bytes are the whole file, or the
    // header is mapped differently.
    let mut map = ColumnMap::default();
    let input = match mode % 4 {
        0 => rest.to_vec(),
        1 => {
            map.set(Field::Id, "ID");
            map.set(Field::Title, "Job Title");
            [b"Job Title,ID,name,email,worker_type\n".as_slice(), rest].concat()
        }
        _ => [HEADER, rest].concat(),
    };
    let Ok(roster) = parse_roster(&input, &map) else {
        return;
    };
    for row in roster.rows.iter().flatten() {
        assert!(row.line >= 2, "row line {}", row.line);
    }
    let current = known();
    let first = diff(&current, &roster, "fuzz");
    for c in &first.changes {
        validate_event(&c.event).unwrap_or_else(|e| panic!("invalid event {:?}: {e}", c.event));
        let _ = c.to_string();
    }
    let _ = first.plan.hold(0.05);
    let today = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let mut state: BTreeMap<String, Person> =
        current.into_iter().map(|p| (p.id.clone(), p)).collect();
    for c in &first.changes {
        let applied = apply_event(&c.event, state.get(&c.event.person.id), &[], today)
            .unwrap_or_else(|e| panic!("{:?} does not apply: {e}", c.event));
        state.insert(applied.person.id.clone(), applied.person);
    }
    let second = diff(state.values(), &roster, "fuzz");
    assert!(
        second.changes.is_empty(),
        "a second import of the same roster changed: {:?}",
        second
            .changes
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
    );
});
