//! Separation of duties: combinations of entitlements nobody may hold together.
//!
//! A rule names a set of entitlements (`[[separation_of_duties]]` in `tenure.toml`). A grant
//! that would give a person the *last* entitlement of a set they otherwise hold (or are about
//! to hold) completes the combination: the rule's effect then applies to that grant, either a
//! denial or an exception approval by a named approver. Entitlements already held are never
//! revoked by a rule: separation of duties decides what may be added.
//!
//! A rule written with `{client}` (`"crm:{client}:admin"`) stands for one rule per client whose
//! entitlements all exist, so "nobody both administers a client's CRM and approves its
//! invoices" is written once. The expansion happens when the configuration is validated; what
//! reaches [`completed_by`] are concrete sets.

use std::collections::BTreeSet;

/// What a completed combination does to the grant that completes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SodEffect {
    /// The grant is denied.
    Deny,
    /// The grant waits for an exception approval by `approver` (`manager`, `owner` or
    /// `client_owner`, as in policy `@approval` annotations).
    Approval {
        /// Who may grant the exception.
        approver: String,
    },
}

/// One toxic combination, with its client already filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SodRule {
    /// The rule's id as written in the configuration.
    pub id: String,
    /// The client this instance of the rule is for, when written with `{client}`.
    pub client: Option<String>,
    /// The entitlements that must not all be held by one person (at least two).
    pub entitlements: BTreeSet<String>,
    /// What happens to a grant that completes the set.
    pub effect: SodEffect,
    /// Why the rule exists, for people reading a denial.
    pub description: String,
}

impl SodRule {
    /// The id decisions and audit entries cite: `sod:<id>`, with `/<client>` for a rule
    /// expanded per client.
    pub fn reason_id(&self) -> String {
        match &self.client {
            Some(c) => format!("sod:{}/{c}", self.id),
            None => format!("sod:{}", self.id),
        }
    }
}

/// The rules a grant of `adding` would violate, given everything the person holds or is about
/// to hold (`holding`, which need not contain `adding`).
pub fn completed_by<'a>(
    rules: &'a [SodRule],
    holding: &BTreeSet<String>,
    adding: &str,
) -> Vec<&'a SodRule> {
    rules
        .iter()
        .filter(|r| r.entitlements.contains(adding))
        .filter(|r| {
            r.entitlements
                .iter()
                .all(|e| e == adding || holding.contains(e))
        })
        .collect()
}

/// Expands an entitlement pattern for `client`: `{client}` is replaced by its id.
pub fn expand(pattern: &str, client: &str) -> String {
    pattern.replace("{client}", client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(id: &str, ents: &[&str]) -> SodRule {
        SodRule {
            id: id.into(),
            client: None,
            entitlements: ents.iter().map(|e| e.to_string()).collect(),
            effect: SodEffect::Deny,
            description: String::new(),
        }
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn the_last_entitlement_of_a_set_completes_it() {
        let rules = [rule("pay", &["erp:vendors", "erp:payments"])];
        assert!(completed_by(&rules, &set(&[]), "erp:payments").is_empty());
        assert!(completed_by(&rules, &set(&["crm"]), "erp:payments").is_empty());
        let hit = completed_by(&rules, &set(&["erp:vendors"]), "erp:payments");
        assert_eq!(hit.len(), 1);
        assert_eq!(hit[0].reason_id(), "sod:pay");
        // An entitlement outside the set never completes it.
        assert!(completed_by(&rules, &set(&["erp:vendors", "erp:payments"]), "crm").is_empty());
    }

    #[test]
    fn sets_of_three_need_all_three() {
        let rules = [rule("trio", &["a", "b", "c"])];
        assert!(completed_by(&rules, &set(&["a"]), "c").is_empty());
        assert_eq!(completed_by(&rules, &set(&["a", "b"]), "c").len(), 1);
    }

    #[test]
    fn a_client_rule_cites_its_client() {
        let mut r = rule("crm-billing", &["crm:acme:admin", "billing:acme"]);
        r.client = Some("acme".into());
        assert_eq!(r.reason_id(), "sod:crm-billing/acme");
        assert_eq!(expand("crm:{client}:admin", "acme"), "crm:acme:admin");
    }

    proptest! {
        /// Adding entitlements one at a time, in any order, and refusing each grant that
        /// completes a rule, never ends with a person holding every entitlement of a rule.
        #[test]
        fn refusing_completing_grants_never_holds_a_full_set(
            order in proptest::sample::subsequence(vec!["a", "b", "c", "d", "e"], 0..=5)
                .prop_shuffle(),
        ) {
            let rules = [rule("ab", &["a", "b"]), rule("cde", &["c", "d", "e"])];
            let mut holding = BTreeSet::new();
            for e in order {
                if completed_by(&rules, &holding, e).is_empty() {
                    holding.insert(e.to_string());
                }
            }
            for r in &rules {
                prop_assert!(!r.entitlements.is_subset(&holding), "{holding:?} holds {}", r.id);
            }
        }
    }
}
