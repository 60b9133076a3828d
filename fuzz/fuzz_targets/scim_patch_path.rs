//! Fuzzes the SCIM PATCH path parser (round trip, as for filters) and the PATCH request model:
//! no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure_scim::{MAX_TERMS, PatchPath, PatchRequest};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<PatchRequest>(data) {
        let _ = request.validate();
    }
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    match PatchPath::parse(input) {
        Ok(path) => {
            if let PatchPath::ValuePath { filter, .. } = &path {
                assert!(filter.terms() <= MAX_TERMS, "accepted {} terms", filter.terms());
            }
            let printed = path.to_string();
            let reparsed = PatchPath::parse(&printed)
                .unwrap_or_else(|e| panic!("canonical form {printed:?} does not re-parse: {e}"));
            assert_eq!(reparsed, path, "round trip changed the AST of {printed:?}");
            let _ = path.attribute_paths();
        }
        Err(e) => assert!(
            input.is_char_boundary(e.offset()),
            "offset {} of {e} is not a char boundary",
            e.offset()
        ),
    }
});
