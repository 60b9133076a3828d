//! The audit trail's hash chain: each entry holds the hash of the one before, so altering,
//! removing or reordering any entry breaks every hash after it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry: who did what, to whom, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When (epoch ms).
    pub at_ms: i64,
    /// Who: a token name, `engine`, `scheduler`, a person id.
    pub actor: String,
    /// What: `event.ingested`, `run.planned`, `step.succeeded`, `token.created`, ...
    pub action: String,
    /// The person concerned.
    pub person_id: Option<String>,
    /// The entitlement concerned.
    pub entitlement: Option<String>,
    /// The system concerned.
    pub system: Option<String>,
    /// The run concerned.
    pub run_id: Option<String>,
    /// Why: the event, template or request that caused it.
    pub reason: String,
    /// Ties together everything one event caused.
    pub correlation_id: Option<String>,
    /// Further facts, as JSON text.
    pub details: String,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

/// The hash of an entry given its predecessor's: SHA-256 over every field, length-prefixed.
pub fn entry_hash(e: &AuditEntry, prev_hash: &str) -> String {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    field(prev_hash.as_bytes());
    field(&e.seq.to_be_bytes());
    field(&e.at_ms.to_be_bytes());
    field(e.actor.as_bytes());
    field(e.action.as_bytes());
    for opt in [
        &e.person_id,
        &e.entitlement,
        &e.system,
        &e.run_id,
        &e.correlation_id,
    ] {
        match opt {
            Some(v) => field(format!("1{v}").as_bytes()),
            None => field(b"0"),
        }
    }
    field(e.reason.as_bytes());
    field(e.details.as_bytes());
    hex::encode(h.finalize())
}

/// The first broken link found by [`Verifier`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The entry's contents no longer match its hash.
    #[error("audit entry {seq} was altered: its contents do not match its hash")]
    Altered {
        /// The altered entry.
        seq: i64,
    },
    /// The entry does not link to the one before it: entries between were removed, or reordered.
    #[error(
        "audit entry {seq} does not follow entry {after}: entries between them were removed, or the entries were reordered"
    )]
    Unlinked {
        /// The entry that does not link.
        seq: i64,
        /// The last entry that verified.
        after: i64,
    },
    /// The chain ends before the recorded head.
    #[error("audit entries after {last} were removed: the chain head records {head} entries")]
    Truncated {
        /// The last entry present.
        last: i64,
        /// The head's count.
        head: i64,
    },
}

/// Checks a chain entry by entry, in `seq` order, in constant memory.
#[derive(Debug, Clone)]
pub struct Verifier {
    prev_hash: String,
    prev_seq: i64,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            prev_hash: GENESIS.to_string(),
            prev_seq: 0,
        }
    }
}

impl Verifier {
    /// Checks the next entry.
    pub fn push(&mut self, e: &AuditEntry) -> Result<(), ChainBreak> {
        if entry_hash(e, &e.prev_hash) != e.hash {
            return Err(ChainBreak::Altered { seq: e.seq });
        }
        if e.prev_hash != self.prev_hash {
            return Err(ChainBreak::Unlinked {
                seq: e.seq,
                after: self.prev_seq,
            });
        }
        if e.seq != self.prev_seq + 1 {
            // Hashes link but the number is off: the seq column itself was edited.
            return Err(ChainBreak::Altered { seq: e.seq });
        }
        self.prev_hash = e.hash.clone();
        self.prev_seq = e.seq;
        Ok(())
    }

    /// Checks the end of the chain against the recorded head (`seq`, `hash`).
    pub fn finish(&self, head_seq: i64, head_hash: &str) -> Result<i64, ChainBreak> {
        if head_seq != self.prev_seq || head_hash != self.prev_hash {
            return Err(ChainBreak::Truncated {
                last: self.prev_seq,
                head: head_seq,
            });
        }
        Ok(self.prev_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let mut e = AuditEntry {
                    seq,
                    at_ms: seq * 10,
                    actor: "engine".into(),
                    action: "step.succeeded".into(),
                    person_id: Some("p1".into()),
                    entitlement: None,
                    system: Some("crm".into()),
                    run_id: None,
                    reason: "hire".into(),
                    correlation_id: None,
                    details: "{}".into(),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = entry_hash(&e, &prev);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn verify(entries: &[AuditEntry], head: (i64, &str)) -> Result<i64, ChainBreak> {
        let mut v = Verifier::default();
        for e in entries {
            v.push(e)?;
        }
        v.finish(head.0, head.1)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let c = chain(5);
        assert_eq!(verify(&c, (5, &c[4].hash)), Ok(5));
    }

    #[test]
    fn tampering_is_named() {
        let c = chain(5);
        let head = (5, c[4].hash.as_str());
        let mut altered = c.clone();
        altered[2].actor = "mallory".into();
        assert_eq!(verify(&altered, head), Err(ChainBreak::Altered { seq: 3 }));
        let mut removed = c.clone();
        removed.remove(1);
        assert_eq!(
            verify(&removed, head),
            Err(ChainBreak::Unlinked { seq: 3, after: 1 })
        );
        let mut swapped = c.clone();
        swapped.swap(1, 2);
        assert_eq!(
            verify(&swapped, head),
            Err(ChainBreak::Unlinked { seq: 3, after: 1 })
        );
        assert_eq!(
            verify(&c[..4], head),
            Err(ChainBreak::Truncated { last: 4, head: 5 })
        );
        let mut renumbered = c.clone();
        renumbered[4].seq = 9;
        assert_eq!(
            verify(&renumbered, head),
            Err(ChainBreak::Altered { seq: 9 })
        );
    }
}
