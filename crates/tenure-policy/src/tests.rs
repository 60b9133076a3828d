use super::*;
use tenure_core::model::{PersonStatus, Risk, WorkerType};

fn file(path: &str, text: &str) -> SourceFile {
    SourceFile {
        path: path.into(),
        text: text.into(),
    }
}

const MAIN: &str = r#"
[[systems]]
id = "directory"
connector = "sandbox"
[[systems]]
id = "crm"
connector = "sandbox"

[[clients]]
id = "acme"
[clients.attributes]
data_region = "eu"
nda_required = true
[[clients]]
id = "globex"
[clients.attributes]
data_region = "us"
tier = 2

[[entitlements]]
id = "directory:staff"
system = "directory"
[[entitlements]]
id = "directory:admins"
system = "directory"
risk = "privileged"
owner = "it-ops"
[[entitlements]]
id = "crm:export"
system = "crm"
risk = "high"
owner = "head-of-sales"
[[entitlements]]
id = "crm:acme"
system = "crm"
client = "acme"
[[entitlements]]
id = "crm:globex"
system = "crm"
client = "globex"
"#;

const BASE: &str = "@id(\"base\")\npermit (principal is Person, action == Action::\"grant\", resource is Entitlement);\n";

const CONTRACTORS: &str = r#"// Contractors never get privileged entitlements.
@id("no-privileged-contractors")
forbid (principal is Person, action == Action::"grant", resource is Entitlement)
when { principal.worker_type == "contractor" && resource.risk == "privileged" };
"#;

const EU: &str = r#"@id("eu-only")
forbid (principal is Person, action == Action::"grant", resource is Entitlement)
when { resource has client && resource.client has data_region && resource.client.data_region == "eu" }
unless { principal has location && ["Berlin", "Paris"].contains(principal.location) };
"#;

const APPROVAL: &str = r#"@id("high-risk-owner")
@approval("owner")
permit (principal is Person, action == Action::"grant", resource is Entitlement)
when { resource.risk == "high" || resource.risk == "privileged" };
"#;

fn config() -> Config {
    Config::parse(&file("tenure.toml", MAIN), &[]).unwrap()
}

fn engine(files: &[(&str, &str)]) -> PolicyEngine {
    let files: Vec<_> = files.iter().map(|(p, t)| file(p, t)).collect();
    PolicyEngine::load(&config(), None, &files)
        .unwrap_or_else(|e| panic!("{e}"))
        .engine
}

fn errors(files: &[(&str, &str)]) -> Vec<ConfigError> {
    let files: Vec<_> = files.iter().map(|(p, t)| file(p, t)).collect();
    PolicyEngine::load(&config(), None, &files).unwrap_err().0
}

fn person(worker_type: WorkerType, location: Option<&str>) -> Person {
    Person {
        id: "p1".into(),
        name: "Ada".into(),
        email: "ada@example.com".into(),
        worker_type,
        department: Some("Engineering".into()),
        title: None,
        location: location.map(Into::into),
        manager: Some("m1".into()),
        start_date: None,
        end_date: None,
        status: PersonStatus::Active,
        attributes: Default::default(),
    }
}

const CTX: GrantContext<'static> = GrantContext {
    source: GrantSource::Birthright,
    source_ref: "all",
};

fn ask(e: &PolicyEngine, p: &Person, ent: &str) -> Decision {
    let c = config();
    let ent = &c.entitlements[ent];
    let client = ent.client.as_ref().and_then(|id| c.clients.get(id));
    e.authorize(p, ent, client, CTX)
}

#[test]
fn without_policy_files_everything_is_allowed() {
    let e = engine(&[]);
    assert!(!e.is_enforcing());
    let d = ask(
        &e,
        &person(WorkerType::Contractor, None),
        "directory:admins",
    );
    assert!(d.allowed && d.reasons.is_empty() && d.approvals.is_empty());
    let d = PolicyEngine::allow_all().authorize(
        &person(WorkerType::Employee, None),
        &config().entitlements["crm:acme"],
        None,
        CTX,
    );
    assert!(d.allowed);
}

#[test]
fn policy_files_turn_on_default_deny() {
    let e = engine(&[("policies/forbid-only.cedar", CONTRACTORS)]);
    let d = ask(&e, &person(WorkerType::Employee, None), "directory:staff");
    assert!(!d.allowed);
    assert!(d.reasons.is_empty());
    assert_eq!(d.explain(), "no permit policy applies");
    let d = ask(
        &engine(&[("policies/base.cedar", BASE)]),
        &person(WorkerType::Employee, None),
        "directory:staff",
    );
    assert!(d.allowed, "{d:?}");
    assert_eq!(d.reasons, vec!["base"]);
}

#[test]
fn contractors_never_get_privileged_entitlements() {
    let e = engine(&[("p/base.cedar", BASE), ("p/contractors.cedar", CONTRACTORS)]);
    let d = ask(
        &e,
        &person(WorkerType::Contractor, None),
        "directory:admins",
    );
    assert!(!d.allowed);
    assert_eq!(d.reasons, vec!["no-privileged-contractors"]);
    assert_eq!(d.explain(), "forbidden by no-privileged-contractors");
    // An employee may; a contractor may hold what is not privileged.
    assert!(ask(&e, &person(WorkerType::Employee, None), "directory:admins").allowed);
    assert!(ask(&e, &person(WorkerType::Contractor, None), "crm:export").allowed);
}

#[test]
fn eu_clients_only_for_eu_staff() {
    let e = engine(&[("p/base.cedar", BASE), ("p/eu.cedar", EU)]);
    let berlin = person(WorkerType::Employee, Some("Berlin"));
    let new_york = person(WorkerType::Employee, Some("New York"));
    let nowhere = person(WorkerType::Employee, None);
    assert!(ask(&e, &berlin, "crm:acme").allowed);
    let d = ask(&e, &new_york, "crm:acme");
    assert!(!d.allowed);
    assert_eq!(d.reasons, vec!["eu-only"]);
    assert!(!ask(&e, &nowhere, "crm:acme").allowed);
    // A US client, or no client at all: the rule does not apply.
    assert!(ask(&e, &new_york, "crm:globex").allowed);
    assert!(ask(&e, &new_york, "directory:staff").allowed);
    // An entitlement whose client is unknown is still decided (the client has no attributes).
    let mut ent = config().entitlements["crm:acme"].clone();
    ent.client = Some("initech".into());
    assert!(e.authorize(&new_york, &ent, None, CTX).allowed);
}

#[test]
fn approval_annotations_ask_for_approval() {
    let e = engine(&[
        ("p/base.cedar", BASE),
        ("p/contractors.cedar", CONTRACTORS),
        ("p/approvals.cedar", APPROVAL),
    ]);
    let d = ask(&e, &person(WorkerType::Employee, None), "crm:export");
    assert!(d.allowed && d.needs_approval(), "{d:?}");
    assert_eq!(d.reasons, vec!["base", "high-risk-owner"]);
    assert_eq!(
        d.approvals,
        vec![Approval {
            approver: Approver::Owner,
            policy: "high-risk-owner".into()
        }]
    );
    assert_eq!(
        d.explain(),
        "needs approval by owner (policy high-risk-owner)"
    );
    // Low risk: no approval. A forbid still wins over an approval permit.
    let d = ask(&e, &person(WorkerType::Employee, None), "directory:staff");
    assert!(d.allowed && !d.needs_approval());
    let d = ask(
        &e,
        &person(WorkerType::Contractor, None),
        "directory:admins",
    );
    assert!(!d.allowed && d.approvals.is_empty());
}

#[test]
fn the_grant_context_is_visible_to_policy() {
    let only_requests =
        "permit (principal, action, resource) when { context.source == \"request\" };";
    let e = engine(&[("p/requests.cedar", only_requests)]);
    let p = person(WorkerType::Employee, None);
    assert!(!ask(&e, &p, "directory:staff").allowed);
    let c = config();
    let d = e.authorize(
        &p,
        &c.entitlements["directory:staff"],
        None,
        GrantContext {
            source: GrantSource::Request,
            source_ref: "req-1",
        },
    );
    assert!(d.allowed);
    assert_eq!(d.reasons, vec!["requests#0"]);
}

#[test]
fn policy_ids_come_from_annotations_or_file_and_index() {
    let two = "permit (principal, action, resource);\n@id(\"named\")\npermit (principal, action, resource);\npermit (principal, action, resource);\n";
    let e = engine(&[("policies/multi.cedar", two)]);
    assert_eq!(e.policy_ids(), ["multi#0", "named", "multi#2"]);
    let errs = errors(&[("a.cedar", BASE), ("b.cedar", BASE)]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        (errs[0].file.as_str(), errs[0].line, errs[0].column),
        ("b.cedar", 1, 1)
    );
    assert!(
        errs[0]
            .message
            .contains("`base` is used twice (also in a.cedar)")
    );
}

#[test]
fn schema_errors_carry_file_line_and_column() {
    let typo = "@id(\"x\")\nforbid (principal, action, resource)\nwhen {\n  principal.worker_typ == \"contractor\"\n};\n";
    let errs = errors(&[("policies/base.cedar", BASE), ("policies/typo.cedar", typo)]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    let e = &errs[0];
    assert_eq!(
        (e.file.as_str(), e.line, e.column),
        ("policies/typo.cedar", 4, 3),
        "{e}"
    );
    assert!(e.message.contains("worker_typ"), "{e}");

    // Optional attributes must be tested with `has` (strict validation).
    let unsafe_access = "forbid (principal, action, resource is Entitlement)\n  when { resource.client.data_region == \"eu\" };\n";
    let errs = errors(&[("p/u.cedar", unsafe_access)]);
    assert!(
        errs.iter().all(|e| e.file == "p/u.cedar" && e.line == 2),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.message.contains("client")),
        "{errs:?}"
    );

    // A type error: risk is a string.
    let ty = "permit (principal, action, resource is Entitlement)\nwhen { resource.risk > 2 };\n";
    let errs = errors(&[("p/t.cedar", ty)]);
    assert_eq!((errs[0].line, errs[0].column), (2, 8), "{errs:?}");

    // Unknown entity types and actions.
    let unknown = "\n\npermit (principal is User, action == Action::\"grant\", resource);\n";
    let errs = errors(&[("p/k.cedar", unknown)]);
    assert_eq!(errs[0].line, 3, "{errs:?}");
    assert!(errs[0].message.contains("User"), "{errs:?}");
}

#[test]
fn syntax_errors_are_located() {
    let broken =
        "// fine so far\npermit (principal, action, resource)\nwhen { principal.department == };\n";
    let errs = errors(&[("policies/broken.cedar", broken)]);
    assert!(!errs.is_empty());
    assert_eq!(errs[0].file, "policies/broken.cedar");
    assert_eq!(errs[0].line, 3, "{errs:?}");
    assert_eq!(
        errs[0].to_string().split(':').next(),
        Some("policies/broken.cedar")
    );
}

#[test]
fn approval_annotations_are_checked() {
    let bad = "@id(\"a\")\n  @approval(\"cfo\")\npermit (principal, action, resource);\n";
    let errs = errors(&[("p/a.cedar", bad)]);
    assert_eq!((errs[0].line, errs[0].column), (2, 3), "{errs:?}");
    assert!(errs[0].message.contains("unknown approver `cfo`"));
    let on_forbid = "permit (principal, action, resource);\n@approval(\"owner\")\nforbid (principal, action, resource);\n";
    let errs = errors(&[("p/f.cedar", on_forbid)]);
    assert_eq!(errs[0].line, 2, "{errs:?}");
    assert!(errs[0].message.contains("only applies to permit"));
}

#[test]
fn templates_are_refused() {
    let t = "permit (principal == ?principal, action, resource);\n";
    let errs = errors(&[("p/t.cedar", t)]);
    assert!(errs[0].message.contains("templates"), "{errs:?}");
    assert_eq!((errs[0].line, errs[0].column), (1, 22));
}

#[test]
fn client_attributes_are_typed_from_the_config() {
    let text = schema_text(&config());
    assert!(text.contains("\"data_region\"?: String"), "{text}");
    assert!(text.contains("\"nda_required\"?: Bool"), "{text}");
    assert!(text.contains("\"tier\"?: Long"), "{text}");
    // A policy may compare the Long attribute once it tests for it.
    let tiers = "permit (principal, action, resource is Entitlement) when { resource has client && resource.client has tier && resource.client.tier >= 2 };";
    let e = engine(&[("p/tiers.cedar", tiers)]);
    let p = person(WorkerType::Employee, None);
    assert!(ask(&e, &p, "crm:globex").allowed);
    assert!(!ask(&e, &p, "crm:acme").allowed);
}

#[test]
fn untypable_client_attributes_are_left_out_with_a_located_warning() {
    let main = r#"
[[clients]]
id = "acme"
[clients.attributes]
rate = 1.5
region = "eu"
[[clients]]
id = "globex"
attributes = { region = 3, tags = ["a", "b"], empty = [] }
"#;
    let c = Config::parse(&file("tenure.toml", main), &[]).unwrap();
    let text = schema_text(&c);
    assert!(
        !text.contains("\"rate\"") && !text.contains("\"region\"") && !text.contains("\"empty\"")
    );
    assert!(text.contains("\"tags\"?: Set<String>"), "{text}");
    let loaded = PolicyEngine::load(
        &c,
        Some(&file("tenure.toml", main)),
        &[file("p/base.cedar", BASE)],
    )
    .unwrap();
    let w: Vec<_> = loaded
        .warnings
        .iter()
        .map(|w| (w.line, w.message.clone()))
        .collect();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(
        w.iter().any(|(l, m)| *l == 9 && m.contains("`empty`")),
        "{w:?}"
    );
    assert!(
        w.iter().any(|(l, m)| *l == 5 && m.contains("`rate`")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|(l, m)| *l == 9 && m.contains("`region`") && m.contains("different types")),
        "{w:?}"
    );
}

#[test]
fn a_folder_without_a_permit_is_warned_about() {
    let loaded = PolicyEngine::load(&config(), None, &[file("p/c.cedar", CONTRACTORS)]).unwrap();
    assert!(loaded.engine.is_enforcing());
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.message.contains("every grant is denied")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn entitlement_risk_and_owner_reach_policy() {
    let owned = "permit (principal, action, resource is Entitlement) when { resource has owner && resource.owner == \"it-ops\" && resource.risk == \"privileged\" && resource.system == \"directory\" && resource.kind == \"group\" };";
    let e = engine(&[("p/o.cedar", owned)]);
    let p = person(WorkerType::Employee, None);
    assert!(ask(&e, &p, "directory:admins").allowed);
    assert!(!ask(&e, &p, "crm:export").allowed);
    let _ = Risk::ALL;
}

#[test]
fn remembered_decisions_never_cross_from_one_person_to_another() {
    let p1 = person(WorkerType::Employee, Some("Berlin"));
    let p2 = Person {
        id: "p2".into(),
        ..p1.clone()
    };
    let in_london = Person {
        id: "p3".into(),
        location: Some("London".into()),
        ..p1.clone()
    };
    // Policies that read only facts: decisions are remembered, and stay right per facts.
    let e = engine(&[("base.cedar", BASE), ("eu.cedar", EU)]);
    assert!(e.memo.is_some());
    for _ in 0..2 {
        assert!(ask(&e, &p1, "crm:acme").allowed);
        assert!(ask(&e, &p2, "crm:acme").allowed);
        assert!(!ask(&e, &in_london, "crm:acme").allowed);
    }
    // A policy naming a person: nothing is remembered, p2 is not taken for p1.
    let named = r#"@id("not-p1") forbid (principal == Person::"p1", action == Action::"grant", resource is Entitlement);"#;
    let e = engine(&[("base.cedar", BASE), ("named.cedar", named)]);
    assert!(e.memo.is_none());
    assert!(!ask(&e, &p1, "directory:staff").allowed);
    assert!(ask(&e, &p2, "directory:staff").allowed);
    // Nor when a policy reads the grant's source id, different for everyone.
    let by_ref = r#"@id("not-e1") forbid (principal is Person, action == Action::"grant", resource is Entitlement) when { context.source_ref == "e1" };"#;
    let e = engine(&[("base.cedar", BASE), ("ref.cedar", by_ref)]);
    assert!(e.memo.is_none());
    let c = config();
    let ent = &c.entitlements["directory:staff"];
    let at = |r| GrantContext {
        source: GrantSource::Engagement,
        source_ref: r,
    };
    assert!(!e.authorize(&p1, ent, None, at("e1")).allowed);
    assert!(e.authorize(&p2, ent, None, at("e2")).allowed);
}

#[test]
fn policy_reads_the_identity_provider_groups_of_a_person() {
    let rule = r#"@id("no-contractor-admins")
forbid (principal is Person, action == Action::"grant", resource is Entitlement)
when { principal.groups.contains("Contractors") && resource.risk == "privileged" };
"#;
    let e = engine(&[("base.cedar", BASE), ("groups.cedar", rule)]);
    let mut p = person(WorkerType::Employee, None);
    assert!(
        ask(&e, &p, "directory:admins").allowed,
        "no groups: empty set"
    );
    p.attributes
        .insert("groups".into(), serde_json::json!(["Sales", "Contractors"]));
    let d = ask(&e, &p, "directory:admins");
    assert!(!d.allowed);
    assert_eq!(d.reasons, ["no-contractor-admins"]);
    assert!(ask(&e, &p, "directory:staff").allowed);
    p.attributes
        .insert("groups".into(), serde_json::json!(["Sales"]));
    assert!(ask(&e, &p, "directory:admins").allowed);
}
