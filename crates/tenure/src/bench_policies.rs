//! Policies for the policy benchmarks (`tenure policy bench`, the what-if bench).

/// Policies shaped like real ones (attribute tests on person, entitlement, client and context),
/// to pad the demo's set to `n`.
pub fn generated_policies(n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        let p = match i % 5 {
            0 => format!(
                "@id(\"gen-{i}\")\nforbid (principal is Person, action == Action::\"grant\", resource is Entitlement)\nwhen {{ principal has department && principal.department == \"Dept{i}\" && resource.system == \"crm\" }};\n"
            ),
            1 => format!(
                "@id(\"gen-{i}\")\npermit (principal is Person, action == Action::\"grant\", resource is Entitlement)\nwhen {{ resource.kind == \"kind{i}\" && context.source == \"request\" }};\n"
            ),
            2 => format!(
                "@id(\"gen-{i}\")\nforbid (principal is Person, action == Action::\"grant\", resource is Entitlement)\nwhen {{ resource has client && resource.client has nda_required && resource.client.nda_required && principal has title && principal.title == \"Intern{i}\" }};\n"
            ),
            3 => format!(
                "@id(\"gen-{i}\")\n@approval(\"manager\")\npermit (principal is Person, action == Action::\"grant\", resource == Entitlement::\"sys{i}:admin\");\n"
            ),
            _ => format!(
                "@id(\"gen-{i}\")\nforbid (principal is Person, action == Action::\"grant\", resource is Entitlement)\nwhen {{ principal.status == \"leaving\" && resource has owner && resource.owner == \"team{i}\" }};\n"
            ),
        };
        out.push_str(&p);
    }
    out
}
