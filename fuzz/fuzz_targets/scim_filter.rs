//! Fuzzes the SCIM filter parser: no input may panic, errors point inside the input at a char
//! boundary, every accepted filter stays within the bounds (at most `MAX_TERMS` attribute
//! expressions, no NUL in a string) and prints to a canonical form that re-parses to the same
//! AST.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure_scim::{CompValue, Filter, MAX_TERMS};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    match Filter::parse(input) {
        Ok(filter) => {
            assert!(
                filter.terms() <= MAX_TERMS,
                "accepted {} attribute expressions",
                filter.terms()
            );
            assert!(!has_nul(&filter), "accepted a NUL in {input:?}");
            let printed = filter.to_string();
            let reparsed = Filter::parse(&printed)
                .unwrap_or_else(|e| panic!("canonical form {printed:?} does not re-parse: {e}"));
            assert_eq!(reparsed, filter, "round trip changed the AST of {printed:?}");
            assert_eq!(reparsed.to_string(), printed, "canonical form is not stable");
            let _ = filter.attribute_paths();
        }
        Err(e) => assert!(
            input.is_char_boundary(e.offset()),
            "offset {} of {e} is not a char boundary",
            e.offset()
        ),
    }
});

/// Whether a comparison string anywhere in the filter holds a NUL.
fn has_nul(f: &Filter) -> bool {
    match f {
        Filter::Compare {
            value: CompValue::String(s),
            ..
        } => s.contains('\0'),
        Filter::Compare { .. } | Filter::Present(_) => false,
        Filter::And(terms) | Filter::Or(terms) => terms.iter().any(has_nul),
        Filter::Not(inner) => has_nul(inner),
        Filter::ValuePath { filter, .. } => has_nul(filter),
    }
}
