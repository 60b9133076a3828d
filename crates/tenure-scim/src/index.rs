//! The value index filters run on, in plain terms: the rows a resource is indexed as
//! ([`IndexedValue`]), a filter resolved against the schema into a condition over those rows
//! ([`Cond`]), a sort key ([`SortKey`]), and [`eval`], the reference semantics of a condition.
//!
//! Names and values here are already normalized (attribute names lowercased, extension
//! attributes prefixed with their schema URN, values lowercased unless case-exact, times in
//! UTC with milliseconds), so a store can compare them as plain text. The store has types of
//! the same shape; the API maps these onto them, so this crate stays free of any database.

use crate::filter::CompareOp;

/// One indexed value of a resource: `attr` (lowercase, extension attributes prefixed with
/// their schema URN), `idx` (the position in a multi-valued attribute, else 0), `sub`
/// (lowercase sub-attribute name, or empty) and the normalized value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedValue {
    /// Attribute name, normalized.
    pub attr: String,
    /// Position within a multi-valued attribute.
    pub idx: i64,
    /// Sub-attribute name, normalized, or empty.
    pub sub: String,
    /// The value, normalized.
    pub val: String,
}

/// A filter over the value index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// Some value at `attr`/`sub` compares true with `val`.
    Cmp {
        /// Attribute.
        attr: String,
        /// Sub-attribute or empty.
        sub: String,
        /// Comparison (`ne` also holds when the attribute has no value).
        op: CompareOp,
        /// Normalized value.
        val: String,
    },
    /// Some value at `attr`/`sub` exists.
    Present {
        /// Attribute.
        attr: String,
        /// Sub-attribute or empty.
        sub: String,
    },
    /// All hold.
    And(Vec<Cond>),
    /// One holds.
    Or(Vec<Cond>),
    /// Does not hold.
    Not(Box<Cond>),
    /// One element of the multi-valued `attr` satisfies `cond`, whose `Cmp`/`Present` name
    /// sub-attributes of that same element (their `attr` is ignored).
    Element {
        /// The multi-valued attribute.
        attr: String,
        /// The condition on one element.
        cond: Box<Cond>,
    },
}

impl Cond {
    /// Whether the condition reads the (normalized) attribute `attr` anywhere, so a caller can
    /// leave out of the rows it indexes what no condition looks at.
    pub fn reads(&self, attr: &str) -> bool {
        match self {
            Cond::Cmp { attr: a, .. } | Cond::Present { attr: a, .. } => a == attr,
            Cond::And(cs) | Cond::Or(cs) => cs.iter().any(|c| c.reads(attr)),
            Cond::Not(c) => c.reads(attr),
            Cond::Element { attr: a, .. } => a == attr,
        }
    }
}

/// How to order a listing: by the smallest value of `attr`/`sub`, then by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// Attribute.
    pub attr: String,
    /// Sub-attribute or empty.
    pub sub: String,
    /// Descending.
    pub descending: bool,
}

pub(crate) fn compare_text(op: CompareOp, have: &str, want: &str) -> bool {
    match op {
        CompareOp::Eq => have == want,
        CompareOp::Ne => have != want,
        CompareOp::Co => have.contains(want),
        CompareOp::Sw => have.starts_with(want),
        CompareOp::Ew => have.ends_with(want),
        CompareOp::Gt => have > want,
        CompareOp::Ge => have >= want,
        CompareOp::Lt => have < want,
        CompareOp::Le => have <= want,
    }
}

/// Evaluates a condition over index rows of one resource: the reference semantics the SQL
/// translation must agree with (tests compare the two), and the evaluator of Group filters.
pub fn eval(rows: &[IndexedValue], c: &Cond) -> bool {
    match c {
        Cond::Cmp { attr, sub, op, val } => {
            let mut hits = rows.iter().filter(|r| r.attr == *attr && r.sub == *sub);
            if *op == CompareOp::Ne {
                !hits.any(|r| r.val == *val)
            } else {
                hits.any(|r| compare_text(*op, &r.val, val))
            }
        }
        Cond::Present { attr, sub } => rows.iter().any(|r| r.attr == *attr && r.sub == *sub),
        Cond::And(cs) => cs.iter().all(|c| eval(rows, c)),
        Cond::Or(cs) => cs.iter().any(|c| eval(rows, c)),
        Cond::Not(c) => !eval(rows, c),
        Cond::Element { attr, cond } => {
            let mut idxs: Vec<i64> = rows
                .iter()
                .filter(|r| r.attr == *attr)
                .map(|r| r.idx)
                .collect();
            idxs.dedup();
            idxs.into_iter().any(|i| {
                let elem: Vec<IndexedValue> = rows
                    .iter()
                    .filter(|r| r.attr == *attr && r.idx == i)
                    .cloned()
                    .collect();
                eval_element(&elem, cond)
            })
        }
    }
}

fn eval_element(elem: &[IndexedValue], c: &Cond) -> bool {
    match c {
        Cond::Cmp { sub, op, val, .. } => {
            let mut hits = elem.iter().filter(|r| r.sub == *sub);
            if *op == CompareOp::Ne {
                !hits.any(|r| r.val == *val)
            } else {
                hits.any(|r| compare_text(*op, &r.val, val))
            }
        }
        Cond::Present { sub, .. } => elem.iter().any(|r| r.sub == *sub),
        Cond::And(cs) => cs.iter().all(|c| eval_element(elem, c)),
        Cond::Or(cs) => cs.iter().any(|c| eval_element(elem, c)),
        Cond::Not(c) => !eval_element(elem, c),
        Cond::Element { cond, .. } => eval_element(elem, cond),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(attr: &str, idx: i64, sub: &str, val: &str) -> IndexedValue {
        IndexedValue {
            attr: attr.into(),
            idx,
            sub: sub.into(),
            val: val.into(),
        }
    }

    fn cmp(attr: &str, sub: &str, op: CompareOp, val: &str) -> Cond {
        Cond::Cmp {
            attr: attr.into(),
            sub: sub.into(),
            op,
            val: val.into(),
        }
    }

    #[test]
    fn element_conditions_hold_within_one_element() {
        let rows = [
            row("username", 0, "", "ada@example.com"),
            row("emails", 0, "type", "work"),
            row("emails", 0, "value", "ada@example.com"),
            row("emails", 1, "type", "home"),
            row("emails", 1, "value", "ada@home.org"),
        ];
        let both = |t: &str, v: &str| Cond::Element {
            attr: "emails".into(),
            cond: Box::new(Cond::And(vec![
                cmp("", "type", CompareOp::Eq, t),
                cmp("", "value", CompareOp::Ew, v),
            ])),
        };
        assert!(eval(&rows, &both("work", "example.com")));
        // Each half holds on some element, but not both on the same one.
        assert!(!eval(&rows, &both("work", "home.org")));
        assert!(eval(&rows, &cmp("username", "", CompareOp::Sw, "ada")));
        // `ne` holds when no value equals, including when there is none.
        assert!(eval(&rows, &cmp("title", "", CompareOp::Ne, "x")));
        assert!(!eval(&rows, &cmp("emails", "type", CompareOp::Ne, "home")));
        let absent = Cond::Not(Box::new(Cond::Present {
            attr: "title".into(),
            sub: String::new(),
        }));
        assert!(eval(&rows, &absent));
    }

    #[test]
    fn reads_finds_an_attribute_anywhere_in_the_tree() {
        let c = Cond::Or(vec![
            cmp("displayname", "", CompareOp::Eq, "x"),
            Cond::Not(Box::new(Cond::Element {
                attr: "members".into(),
                cond: Box::new(cmp("", "value", CompareOp::Eq, "u1")),
            })),
        ]);
        assert!(c.reads("members"));
        assert!(c.reads("displayname"));
        assert!(!c.reads("externalid"));
    }
}
