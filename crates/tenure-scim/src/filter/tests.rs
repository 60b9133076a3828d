use super::*;
use proptest::prelude::*;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn at(attr: &str) -> AttrPath {
    AttrPath::new(attr)
}

fn sub(attr: &str, sub_attr: &str) -> AttrPath {
    AttrPath::with_sub(attr, sub_attr)
}

fn s(v: &str) -> CompValue {
    CompValue::String(v.to_owned())
}

fn cmp(path: AttrPath, op: CompareOp, value: CompValue) -> Filter {
    Filter::Compare { path, op, value }
}

fn pr(path: AttrPath) -> Filter {
    Filter::Present(path)
}

fn vp(attr: &str, filter: Filter) -> Filter {
    Filter::ValuePath {
        attr: at(attr),
        filter: Box::new(filter),
    }
}

fn parse(input: &str) -> Filter {
    match Filter::parse(input) {
        Ok(f) => f,
        Err(e) => panic!("{input:?} should parse: {e}"),
    }
}

/// Parses, checks the AST, and checks that the canonical form re-parses to the same AST.
fn check(input: &str, expected: Filter) {
    let parsed = parse(input);
    assert_eq!(parsed, expected, "AST of {input:?}");
    let printed = parsed.to_string();
    assert_eq!(parse(&printed), expected, "re-parse of {printed:?}");
}

fn check_err(input: &str, offset: usize, message: &str) {
    match Filter::parse(input) {
        Ok(f) => panic!("{input:?} should not parse, got {f:?}"),
        Err(e) => {
            assert_eq!(
                (e.offset(), e.message()),
                (offset, message),
                "error for {input:?}"
            );
            assert_eq!(e.to_string(), format!("{message} at offset {offset}"));
        }
    }
}

// ---- RFC 7644 §3.4.2.2 example filters -----------------------------------------------------

#[test]
fn rfc_username_eq() {
    check(
        r#"userName eq "bjensen""#,
        cmp(at("userName"), CompareOp::Eq, s("bjensen")),
    );
}

#[test]
fn rfc_family_name_co() {
    check(
        r#"name.familyName co "O'Malley""#,
        cmp(sub("name", "familyName"), CompareOp::Co, s("O'Malley")),
    );
}

#[test]
fn rfc_username_sw() {
    check(
        r#"userName sw "J""#,
        cmp(at("userName"), CompareOp::Sw, s("J")),
    );
}

#[test]
fn rfc_urn_username_sw() {
    check(
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
        cmp(at("userName").in_schema(USER), CompareOp::Sw, s("J")),
    );
}

#[test]
fn rfc_title_pr() {
    check("title pr", pr(at("title")));
}

#[test]
fn rfc_last_modified_comparisons() {
    for (word, op) in [
        ("gt", CompareOp::Gt),
        ("ge", CompareOp::Ge),
        ("lt", CompareOp::Lt),
        ("le", CompareOp::Le),
    ] {
        check(
            &format!(r#"meta.lastModified {word} "2011-05-13T04:42:34Z""#),
            cmp(sub("meta", "lastModified"), op, s("2011-05-13T04:42:34Z")),
        );
    }
}

#[test]
fn rfc_title_pr_and_user_type() {
    check(
        r#"title pr and userType eq "Employee""#,
        Filter::And(vec![
            pr(at("title")),
            cmp(at("userType"), CompareOp::Eq, s("Employee")),
        ]),
    );
}

#[test]
fn rfc_title_pr_or_user_type() {
    check(
        r#"title pr or userType eq "Intern""#,
        Filter::Or(vec![
            pr(at("title")),
            cmp(at("userType"), CompareOp::Eq, s("Intern")),
        ]),
    );
}

#[test]
fn rfc_schemas_eq_urn() {
    check(
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        cmp(at("schemas"), CompareOp::Eq, s(ENTERPRISE)),
    );
}

#[test]
fn rfc_and_grouped_or() {
    check(
        "userType eq \"Employee\" and (emails co \"example.com\" or\n  emails.value co \"example.org\")",
        Filter::And(vec![
            cmp(at("userType"), CompareOp::Eq, s("Employee")),
            Filter::Or(vec![
                cmp(at("emails"), CompareOp::Co, s("example.com")),
                cmp(sub("emails", "value"), CompareOp::Co, s("example.org")),
            ]),
        ]),
    );
}

#[test]
fn rfc_and_not_grouped_or() {
    check(
        "userType ne \"Employee\" and not (emails co \"example.com\" or\n  emails.value co \"example.org\")",
        Filter::And(vec![
            cmp(at("userType"), CompareOp::Ne, s("Employee")),
            Filter::Not(Box::new(Filter::Or(vec![
                cmp(at("emails"), CompareOp::Co, s("example.com")),
                cmp(sub("emails", "value"), CompareOp::Co, s("example.org")),
            ]))),
        ]),
    );
}

#[test]
fn rfc_and_grouped_single() {
    check(
        r#"userType eq "Employee" and (emails.type eq "work")"#,
        Filter::And(vec![
            cmp(at("userType"), CompareOp::Eq, s("Employee")),
            cmp(sub("emails", "type"), CompareOp::Eq, s("work")),
        ]),
    );
}

#[test]
fn rfc_and_value_path() {
    check(
        "userType eq \"Employee\" and emails[type eq \"work\" and\n  value co \"@example.com\"]",
        Filter::And(vec![
            cmp(at("userType"), CompareOp::Eq, s("Employee")),
            vp(
                "emails",
                Filter::And(vec![
                    cmp(at("type"), CompareOp::Eq, s("work")),
                    cmp(at("value"), CompareOp::Co, s("@example.com")),
                ]),
            ),
        ]),
    );
}

#[test]
fn rfc_value_path_or_value_path() {
    check(
        "emails[type eq \"work\" and value co \"@example.com\"] or\n  ims[type eq \"xmpp\" and value co \"@foo.com\"]",
        Filter::Or(vec![
            vp(
                "emails",
                Filter::And(vec![
                    cmp(at("type"), CompareOp::Eq, s("work")),
                    cmp(at("value"), CompareOp::Co, s("@example.com")),
                ]),
            ),
            vp(
                "ims",
                Filter::And(vec![
                    cmp(at("type"), CompareOp::Eq, s("xmpp")),
                    cmp(at("value"), CompareOp::Co, s("@foo.com")),
                ]),
            ),
        ]),
    );
}

// ---- other accepted syntax ------------------------------------------------------------------

#[test]
fn enterprise_extension_path() {
    check(
        &format!("{ENTERPRISE}:employeeNumber eq \"701984\""),
        cmp(
            at("employeeNumber").in_schema(ENTERPRISE),
            CompareOp::Eq,
            s("701984"),
        ),
    );
    check(
        &format!("{ENTERPRISE}:manager.value pr"),
        pr(sub("manager", "value").in_schema(ENTERPRISE)),
    );
}

#[test]
fn keywords_are_case_insensitive_and_paths_keep_case() {
    check(
        r#"UserName EQ "john" AND NOT (Title PR) Or x Ne 1"#,
        Filter::Or(vec![
            Filter::And(vec![
                cmp(at("UserName"), CompareOp::Eq, s("john")),
                Filter::Not(Box::new(pr(at("Title")))),
            ]),
            cmp(at("x"), CompareOp::Ne, CompValue::Number(1.into())),
        ]),
    );
    for op in CompareOp::ALL {
        let upper = op.as_str().to_ascii_uppercase();
        check(&format!("a {upper} \"x\""), cmp(at("a"), op, s("x")));
    }
}

#[test]
fn precedence_not_over_and_over_or() {
    let (a, b, c, d) = (pr(at("a")), pr(at("b")), pr(at("c")), pr(at("d")));
    check(
        "a pr or b pr and c pr or d pr",
        Filter::Or(vec![
            a.clone(),
            Filter::And(vec![b.clone(), c.clone()]),
            d.clone(),
        ]),
    );
    check(
        "a pr and b pr or c pr and d pr",
        Filter::Or(vec![
            Filter::And(vec![a.clone(), b.clone()]),
            Filter::And(vec![c.clone(), d.clone()]),
        ]),
    );
    check(
        "not (a pr) and b pr",
        Filter::And(vec![Filter::Not(Box::new(a.clone())), b.clone()]),
    );
    check(
        "(a pr or b pr) and c pr",
        Filter::And(vec![Filter::Or(vec![a.clone(), b.clone()]), c.clone()]),
    );
}

#[test]
fn chains_and_redundant_groups_flatten() {
    let (a, b, c) = (pr(at("a")), pr(at("b")), pr(at("c")));
    let flat = Filter::And(vec![a.clone(), b.clone(), c.clone()]);
    check("a pr and b pr and c pr", flat.clone());
    check("(a pr and b pr) and c pr", flat.clone());
    check("a pr and (b pr and c pr)", flat.clone());
    check("((a pr)) and (((b pr) and (c pr)))", flat);
    check(
        "(a pr or b pr) or c pr",
        Filter::Or(vec![a.clone(), b.clone(), c.clone()]),
    );
    assert_eq!(
        a.clone().and(b.clone()).and(c.clone().and(a.clone())),
        Filter::And(vec![a.clone(), b.clone(), c.clone(), a.clone()])
    );
    assert_eq!(
        a.clone().or(b.clone().and(c.clone())),
        Filter::Or(vec![a.clone(), Filter::And(vec![b, c])])
    );
    assert_eq!(a.clone().negate(), Filter::Not(Box::new(a)));
}

#[test]
fn values_json_scalars() {
    let v = |input: &str| match parse(&format!("a eq {input}")) {
        Filter::Compare { value, .. } => value,
        other => panic!("{other:?}"),
    };
    assert_eq!(v("true"), CompValue::Bool(true));
    assert_eq!(v("False"), CompValue::Bool(false));
    assert_eq!(v("NULL"), CompValue::Null);
    assert_eq!(v("0"), CompValue::Number(0.into()));
    assert_eq!(v("-12"), CompValue::Number((-12).into()));
    assert_eq!(
        v("18446744073709551615"),
        CompValue::Number(u64::MAX.into())
    );
    assert_eq!(
        v("1.5e3"),
        CompValue::Number(Number::from_f64(1500.0).unwrap())
    );
    assert_eq!(
        v("-0.25E-2"),
        CompValue::Number(Number::from_f64(-0.0025).unwrap())
    );
    // Entra ID booleans-as-strings stay strings.
    assert_eq!(v(r#""True""#), s("True"));
    assert_eq!(v(r#""False""#), s("False"));
}

#[test]
fn strings_unescape_json() {
    let v = |input: &str| match parse(&format!("a eq {input}")) {
        Filter::Compare { value, .. } => value,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        v(r#""q\" b\\ s\/ \b\f\n\r\t""#),
        s("q\" b\\ s/ \u{8}\u{c}\n\r\t")
    );
    assert_eq!(v(r#""\u00e9\u4E2D""#), s("é中"));
    assert_eq!(v(r#""\ud83d\ude00""#), s("😀"));
    assert_eq!(v(r#""héllo ] ) [ (""#), s("héllo ] ) [ ("));
    assert_eq!(v("\"raw\ttab\""), s("raw\ttab"));
    // Escapes print canonically and survive a round trip.
    let f = parse(r#"a eq "x\u0001\"\\y""#);
    assert_eq!(f.to_string(), r#"a eq "x\u0001\"\\y""#);
}

#[test]
fn lenient_whitespace() {
    let expected = Filter::Or(vec![
        pr(at("a")),
        vp("members", cmp(at("value"), CompareOp::Eq, s("x"))),
    ]);
    check("(a pr)or members[value eq\"x\"]", expected.clone());
    check(" \t a  pr \r\n OR\tmembers[ value   eq  \"x\" ] ", expected);
    check("not(a pr)", Filter::Not(Box::new(pr(at("a")))));
}

#[test]
fn attributes_named_like_keywords() {
    check("not pr", pr(at("not")));
    check("and eq \"x\"", cmp(at("and"), CompareOp::Eq, s("x")));
    check(
        "or pr and and pr",
        Filter::And(vec![pr(at("or")), pr(at("and"))]),
    );
    check(
        "note pr and nothing[x pr]",
        Filter::And(vec![pr(at("note")), vp("nothing", pr(at("x")))]),
    );
    check("members.$ref pr", pr(sub("members", "$ref")));
}

#[test]
fn value_path_with_not_and_groups_inside() {
    check(
        r#"emails[not (type eq "work") and (value ew ".org" or primary eq true)]"#,
        vp(
            "emails",
            Filter::And(vec![
                Filter::Not(Box::new(cmp(at("type"), CompareOp::Eq, s("work")))),
                Filter::Or(vec![
                    cmp(at("value"), CompareOp::Ew, s(".org")),
                    cmp(at("primary"), CompareOp::Eq, CompValue::Bool(true)),
                ]),
            ]),
        ),
    );
}

#[test]
fn canonical_printing() {
    let cases = [
        (
            "USERNAME Eq \"a\"   AND  (B pr Or c PR)",
            "USERNAME eq \"a\" and (B pr or c pr)",
        ),
        ("not(not (a pr))", "not (not (a pr))"),
        ("(a pr and b pr) or c pr", "a pr and b pr or c pr"),
        ("x[y pr]", "x[y pr]"),
        ("a eq 1.0E2", "a eq 100.0"),
        ("a eq TRUE or b eq Null", "a eq true or b eq null"),
    ];
    for (input, canonical) in cases {
        assert_eq!(parse(input).to_string(), canonical, "{input:?}");
    }
}

#[test]
fn attribute_paths_are_listed_and_resolved() {
    let f = parse(&format!(
        r#"userType eq "Employee" and not (emails[type eq "work" or value pr]) or {USER}:name.familyName pr or {ENTERPRISE}:x[y pr]"#
    ));
    assert_eq!(
        f.attribute_paths(),
        vec![
            at("userType"),
            at("emails"),
            sub("emails", "type"),
            sub("emails", "value"),
            sub("name", "familyName").in_schema(USER),
            at("x").in_schema(ENTERPRISE),
            sub("x", "y").in_schema(ENTERPRISE),
        ]
    );
    assert_eq!(
        parse("a pr and a pr").attribute_paths(),
        vec![at("a"), at("a")]
    );
}

#[test]
fn attr_path_parse_and_display() {
    let p: AttrPath = format!("{USER}:name.givenName").parse().unwrap();
    assert_eq!(p, sub("name", "givenName").in_schema(USER));
    assert_eq!(p.to_string(), format!("{USER}:name.givenName"));
    assert_eq!(
        AttrPath::parse("a b").unwrap_err(),
        ParseError::new(1, "expected end of attribute path")
    );
}

#[test]
fn nesting_up_to_max_depth_is_accepted() {
    let input = format!("{}a pr{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(parse(&input), pr(at("a")));
    let nots = format!("{}a pr{}", "not (".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    let mut f = parse(&nots);
    for _ in 0..MAX_DEPTH {
        f = match f {
            Filter::Not(inner) => *inner,
            other => panic!("{other:?}"),
        };
    }
    assert_eq!(f, pr(at("a")));
    let deep_vp = format!(
        "{}x[a pr]{}",
        "(".repeat(MAX_DEPTH - 1),
        ")".repeat(MAX_DEPTH - 1)
    );
    assert_eq!(parse(&deep_vp), vp("x", pr(at("a"))));
}

#[test]
fn long_chains_do_not_nest() {
    let input = vec!["a pr"; MAX_TERMS].join(" and ");
    match parse(&input) {
        Filter::And(terms) => assert_eq!(terms.len(), MAX_TERMS),
        other => panic!("{other:?}"),
    }
}

#[test]
fn filters_beyond_max_terms_are_an_error() {
    let msg = "filter has more than the maximum of 100 attribute expressions";
    // The first expression past the bound is named, wherever it sits.
    let chain = vec!["a pr"; MAX_TERMS + 1].join(" or ");
    check_err(&chain, MAX_TERMS * "a pr or ".len(), msg);
    let compare = vec![r#"userName eq "x""#; MAX_TERMS + 1].join(" and ");
    check_err(&compare, MAX_TERMS * r#"userName eq "x" and "#.len(), msg);
    // The filter from the report: about a thousand terms.
    let big = (0..1_000)
        .map(|i| format!("userName eq \"u{i}\""))
        .collect::<Vec<_>>()
        .join(" or ");
    assert_eq!(Filter::parse(&big).unwrap_err().message(), msg);
    // Terms inside value filters and groups count the same.
    let inside = format!("emails[{}]", vec!["type pr"; MAX_TERMS + 1].join(" or "));
    assert_eq!(Filter::parse(&inside).unwrap_err().message(), msg);
    let groups = vec!["(a pr and not (b pr))"; MAX_TERMS / 2 + 1].join(" or ");
    assert_eq!(Filter::parse(&groups).unwrap_err().message(), msg);
    let at_bound = vec!["(a pr and not (b pr))"; MAX_TERMS / 2].join(" or ");
    assert_eq!(parse(&at_bound).terms(), MAX_TERMS);
}

#[test]
fn nul_characters_in_strings_are_an_error() {
    let msg = "a NUL character cannot appear in a filter string";
    check_err(r#"userName eq "a\u0000b""#, 14, msg);
    check_err("userName eq \"ab\0\"", 15, msg);
    check_err("userName eq \"\0\"", 13, msg);
    // Other control characters stay accepted, escaped or raw.
    assert_eq!(
        parse(r#"userName eq "a\u0001b""#),
        cmp(
            at("userName"),
            CompareOp::Eq,
            CompValue::String("a\u{1}b".into())
        )
    );
}

// ---- errors -----------------------------------------------------------------------------

#[test]
fn error_offsets() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, "expected attribute path"),
        ("   ", 3, "expected attribute path"),
        (
            "userName",
            8,
            "expected comparison operator after attribute path",
        ),
        (
            "userName ",
            9,
            "expected comparison operator after attribute path",
        ),
        (
            "userName \"bjensen\"",
            9,
            "expected comparison operator after attribute path",
        ),
        (
            "userName xx \"bjensen\"",
            9,
            "unknown comparison operator 'xx'",
        ),
        ("userName eqq \"x\"", 9, "unknown comparison operator 'eqq'"),
        ("title prand b pr", 6, "unknown comparison operator 'prand'"),
        ("userName eq", 11, "expected comparison value"),
        ("userName eq )", 12, "expected comparison value"),
        (
            "userName eq bjensen",
            12,
            "invalid comparison value 'bjensen' (strings must be double-quoted)",
        ),
        (
            "a eq 01",
            5,
            "invalid comparison value '01' (strings must be double-quoted)",
        ),
        (
            "a eq 1.",
            5,
            "invalid comparison value '1.' (strings must be double-quoted)",
        ),
        (
            "a eq +1",
            5,
            "invalid comparison value '+1' (strings must be double-quoted)",
        ),
        (
            "a eq 1and b pr",
            5,
            "invalid comparison value '1and' (strings must be double-quoted)",
        ),
        ("a eq 1e999", 5, "number out of range"),
        ("userName eq \"bjensen", 12, "unterminated string"),
        ("userName eq \"bj\\", 12, "unterminated string"),
        ("userName eq \"a\\qb\"", 14, "invalid escape sequence '\\q'"),
        ("a eq \"\\é\"", 6, "invalid escape sequence '\\é'"),
        (
            "a eq \"\\u12\"",
            6,
            "invalid unicode escape: expected four hex digits",
        ),
        (
            "a eq \"\\uD800\"",
            6,
            "invalid unicode escape: unpaired surrogate",
        ),
        (
            "a eq \"\\uDC00\"",
            6,
            "invalid unicode escape: unpaired surrogate",
        ),
        (
            "a eq \"\\uD800\\u0041\"",
            6,
            "invalid unicode escape: unpaired surrogate",
        ),
        ("userName eq \"x\" and", 19, "expected attribute path"),
        ("userName eq \"x\" or ", 19, "expected attribute path"),
        (
            "userName eq \"x\" xor b pr",
            16,
            "expected 'and', 'or' or end of filter",
        ),
        ("a pr andb pr", 5, "expected 'and', 'or' or end of filter"),
        ("a pr \"x\"", 5, "expected 'and', 'or' or end of filter"),
        ("a pr)", 4, "unmatched ')'"),
        ("a pr]", 4, "unmatched ']'"),
        ("(userName pr", 12, "expected 'and', 'or' or ')'"),
        ("(a pr or)", 8, "expected attribute path"),
        ("()", 1, "expected attribute path"),
        ("not (a pr", 9, "expected 'and', 'or' or ')'"),
        ("not userName pr", 4, "expected '(' after 'not'"),
        ("not", 3, "expected '(' after 'not'"),
        ("a pr and not b eq \"x\"", 13, "expected '(' after 'not'"),
        ("emails[type eq \"work\"", 21, "expected 'and', 'or' or ']'"),
        (
            "emails[type eq \"work\")",
            21,
            "expected 'and', 'or' or ']'",
        ),
        ("emails[]", 7, "expected attribute path"),
        (
            "emails[type[value pr] pr]",
            11,
            "value filters cannot be nested",
        ),
        (
            "emails[name.x pr]",
            7,
            "attribute paths inside a value filter must be plain sub-attribute names",
        ),
        (
            "emails[urn:x:type pr]",
            7,
            "attribute paths inside a value filter must be plain sub-attribute names",
        ),
        (
            "emails.type[value pr]",
            11,
            "a value filter must follow a top-level attribute, not a sub-attribute",
        ),
        (
            "emails[type eq \"work\"].value eq \"x\"",
            22,
            "a sub-attribute after a value filter is only allowed in PATCH paths",
        ),
        (
            "name.familyName.x pr",
            15,
            "attribute path has more than one sub-attribute level",
        ),
        ("name. pr", 5, "expected sub-attribute name after '.'"),
        ("name..x pr", 5, "expected sub-attribute name after '.'"),
        (".name pr", 0, "expected attribute name"),
        ("1abc pr", 0, "attribute name must start with a letter"),
        (
            "name.2x pr",
            5,
            "sub-attribute name must start with a letter",
        ),
        ("$ pr", 1, "attribute name must start with a letter"),
        ("a$b pr", 1, "invalid character '$' in attribute name"),
        ("-a pr", 0, "attribute name must start with a letter"),
        ("urn:foo: pr", 8, "expected attribute name after schema URN"),
        (":userName pr", 0, "expected schema URN before ':'"),
        ("é pr", 0, "expected attribute path"),
        ("a pr and é pr", 9, "expected attribute path"),
        ("a pr andé", 5, "expected 'and', 'or' or end of filter"),
        (
            "userName eq \"é\" é",
            17,
            "expected 'and', 'or' or end of filter",
        ),
        ("[a pr]", 0, "expected attribute path"),
    ];
    for &(input, offset, message) in cases {
        check_err(input, offset, message);
    }
}

#[test]
fn nesting_beyond_max_depth_is_an_error() {
    let msg = "filter nesting exceeds the maximum depth of 64";
    let parens = format!(
        "{}a pr{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    check_err(&parens, MAX_DEPTH, msg);
    let nots = format!(
        "{}a pr{}",
        "not (".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    check_err(&nots, MAX_DEPTH * 5 + 4, msg);
    let vp = format!("{}x[a pr]{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    check_err(&vp, MAX_DEPTH + 1, msg);
    // Far deeper inputs fail fast instead of overflowing the stack.
    check_err(&"(".repeat(1_000_000), MAX_DEPTH, msg);
    check_err(&"not (".repeat(200_000), MAX_DEPTH * 5 + 4, msg);
}

#[test]
fn json_number_grammar() {
    for ok in ["0", "-0", "12", "1.5", "-1.5e10", "1E+2", "1e-2", "0.0"] {
        assert!(is_json_number(ok.as_bytes()), "{ok}");
    }
    for bad in [
        "", "-", "01", "1.", ".5", "+1", "1e", "1e+", "0x1", "1.2.3", "NaN", "--1",
    ] {
        assert!(!is_json_number(bad.as_bytes()), "{bad}");
    }
}

// ---- properties -------------------------------------------------------------------------

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[A-Za-z][A-Za-z0-9_-]{0,7}",
        1 => Just("$ref".to_owned()),
        1 => prop::sample::select(vec!["not", "and", "or", "pr", "eq", "true", "NOT"])
            .prop_map(str::to_owned),
    ]
}

fn schema() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(USER.to_owned()),
        Just(ENTERPRISE.to_owned()),
        "urn:[a-z]{1,6}(:[A-Za-z0-9.]{1,6}){0,3}",
    ]
}

fn attr_path() -> impl Strategy<Value = AttrPath> {
    (
        prop::option::weighted(0.2, schema()),
        name(),
        prop::option::of(name()),
    )
        .prop_map(|(schema, attr, sub_attr)| AttrPath {
            schema,
            attr,
            sub_attr,
        })
}

fn comp_value() -> impl Strategy<Value = CompValue> {
    prop_oneof![
        Just(CompValue::Null),
        any::<bool>().prop_map(CompValue::Bool),
        any::<i64>().prop_map(|n| CompValue::Number(n.into())),
        any::<u64>().prop_map(|n| CompValue::Number(n.into())),
        any::<f64>()
            .prop_filter_map("finite", Number::from_f64)
            .prop_map(CompValue::Number),
        any::<String>().prop_map(|s| CompValue::String(s.replace('\0', ""))),
        prop::sample::select(vec!["True", "False", "", "a\"b\\c", "]) or (x pr"])
            .prop_map(|v| CompValue::String(v.to_owned())),
    ]
}

fn leaf(path: BoxedStrategy<AttrPath>) -> impl Strategy<Value = Filter> {
    prop_oneof![
        path.clone().prop_map(Filter::Present),
        (
            path,
            prop::sample::select(CompareOp::ALL.to_vec()),
            comp_value()
        )
            .prop_map(|(path, op, value)| Filter::Compare { path, op, value }),
    ]
}

/// Normalized trees over `base`: `and`/`or` built with the flattening constructors.
fn tree(base: BoxedStrategy<Filter>) -> impl Strategy<Value = Filter> {
    base.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..5)
                .prop_map(|v| v.into_iter().reduce(Filter::and).unwrap()),
            prop::collection::vec(inner.clone(), 2..5)
                .prop_map(|v| v.into_iter().reduce(Filter::or).unwrap()),
            inner.prop_map(Filter::negate),
        ]
    })
}

fn value_filter() -> impl Strategy<Value = Filter> {
    tree(leaf(name().prop_map(AttrPath::new).boxed()).boxed())
}

fn filter() -> impl Strategy<Value = Filter> {
    unbounded_filter().prop_filter("within MAX_TERMS", |f| f.terms() <= MAX_TERMS)
}

fn unbounded_filter() -> impl Strategy<Value = Filter> {
    let top_attr =
        (prop::option::weighted(0.2, schema()), name()).prop_map(|(schema, attr)| AttrPath {
            schema,
            attr,
            sub_attr: None,
        });
    let value_path = (top_attr, value_filter()).prop_map(|(attr, filter)| Filter::ValuePath {
        attr,
        filter: Box::new(filter),
    });
    tree(prop_oneof![3 => leaf(attr_path().boxed()), 1 => value_path].boxed())
}

pub(crate) fn arb_attr_path() -> impl Strategy<Value = AttrPath> {
    attr_path()
}

pub(crate) fn arb_value_filter() -> impl Strategy<Value = Filter> {
    value_filter().prop_filter("within MAX_TERMS", |f| f.terms() <= MAX_TERMS)
}

pub(crate) fn arb_name() -> impl Strategy<Value = String> {
    name()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn printed_ast_reparses_to_itself(f in filter()) {
        let printed = f.to_string();
        let reparsed = Filter::parse(&printed);
        prop_assert_eq!(reparsed.as_ref(), Ok(&f), "printed: {}", printed);
        prop_assert_eq!(reparsed.unwrap().to_string(), printed);
    }

    #[test]
    fn arbitrary_strings_never_panic(input in any::<String>()) {
        let _ = Filter::parse(&input);
    }

    #[test]
    fn filter_like_strings_never_panic_and_round_trip(
        input in r#"[a-zA-Z0-9 ."\\:\[\]()$_\-é\t]{0,60}"#
    ) {
        if let Ok(f) = Filter::parse(&input) {
            let printed = f.to_string();
            prop_assert_eq!(Filter::parse(&printed), Ok(f), "printed: {}", printed);
        }
    }

    #[test]
    fn mutated_filters_never_panic(
        f in filter(),
        cut in any::<prop::sample::Index>(),
        insert in any::<char>(),
    ) {
        let printed = f.to_string();
        let mut chars: Vec<char> = printed.chars().collect();
        let i = cut.index(chars.len() + 1);
        chars.insert(i, insert);
        let mutated: String = chars.iter().collect();
        if let Ok(g) = Filter::parse(&mutated) {
            prop_assert_eq!(Filter::parse(&g.to_string()), Ok(g));
        }
        let truncated: String = printed.chars().take(i).collect();
        let _ = Filter::parse(&truncated);
    }

    #[test]
    fn error_offsets_are_char_boundaries_within_input(input in any::<String>()) {
        if let Err(e) = Filter::parse(&input) {
            prop_assert!(e.offset() <= input.len());
            prop_assert!(input.is_char_boundary(e.offset()));
        }
    }
}
