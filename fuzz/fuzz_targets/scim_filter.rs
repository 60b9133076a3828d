//! Fuzzes the SCIM filter parser: no input may panic, errors point inside the input at a char
//! boundary, and every accepted filter prints to a canonical form that re-parses to the same AST.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure_scim::Filter;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    match Filter::parse(input) {
        Ok(filter) => {
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
