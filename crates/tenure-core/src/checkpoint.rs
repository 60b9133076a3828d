//! Signed checkpoints of the audit trail: the chain's head (sequence number, hash, time) signed
//! with an Ed25519 key that the database does not hold, and kept outside it too. Whoever can
//! write the database can cut the chain's tail and rewrite `audit_head` so that the chain still
//! verifies on its own; a checkpoint past the new end, or one whose hash no longer matches the
//! entry at its sequence number, shows it.
//!
//! Pure: what is signed (canonical bytes), the key formats, signing and checking one checkpoint,
//! when the next one is due, and checking a chain read in order against a set of checkpoints.

use crate::audit::{AuditEntry, ChainBreak, GENESIS, entry_hash};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use ed25519_dalek::{SigningKey as PrivateKey, VerifyingKey as PublicKey};

/// How a public key is written: `ed25519:` and the 32 key bytes in hex.
pub const PUBLIC_PREFIX: &str = "ed25519:";
/// How a private key is written: `ed25519-private:` and the 32 seed bytes in hex.
pub const PRIVATE_PREFIX: &str = "ed25519-private:";
/// What the signed bytes start with, so a checkpoint signature means nothing else.
pub const DOMAIN: &str = "tenure audit checkpoint v1";

/// A key that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not `ed25519:<64 hex digits>` (public) or `ed25519-private:<64 hex digits>` (private).
    #[error("expected `{expected}` followed by 64 hex digits")]
    Format {
        /// The prefix expected.
        expected: &'static str,
    },
    /// The bytes are not a point on the curve.
    #[error("the public key is not a valid Ed25519 key")]
    NotAKey,
}

/// Reads a private key written by [`private_key_text`] (surrounding whitespace allowed).
pub fn parse_private_key(text: &str) -> Result<SigningKey, KeyError> {
    let seed = hex32(text, PRIVATE_PREFIX)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads a public key written by [`public_key_text`] (surrounding whitespace allowed).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let bytes = hex32(text, PUBLIC_PREFIX)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::NotAKey)
}

fn hex32(text: &str, prefix: &'static str) -> Result<[u8; 32], KeyError> {
    let bad = KeyError::Format { expected: prefix };
    let digits = text.trim().strip_prefix(prefix).ok_or(bad.clone())?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out).map_err(|_| bad)?;
    Ok(out)
}

/// A private key as its file holds it (one line, no newline).
pub fn private_key_text(key: &SigningKey) -> String {
    format!("{PRIVATE_PREFIX}{}", hex::encode(key.to_bytes()))
}

/// A public key as text (one line, no newline).
pub fn public_key_text(key: &VerifyingKey) -> String {
    format!("{PUBLIC_PREFIX}{}", hex::encode(key.to_bytes()))
}

/// One signed checkpoint: the chain's head at a moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The sequence number of the last entry of the chain then.
    pub seq: i64,
    /// That entry's hash.
    pub hash: String,
    /// When it was signed (epoch ms).
    pub at_ms: i64,
    /// The public key that signed it ([`public_key_text`]): says which key to check it with,
    /// proves nothing by itself.
    pub key: String,
    /// The Ed25519 signature of [`signed_bytes`], hex.
    pub signature: String,
}

/// The bytes a checkpoint's signature covers: the domain line, then the sequence number, the
/// hash and the time (decimal epoch ms), each on a line of its own.
pub fn signed_bytes(seq: i64, hash: &str, at_ms: i64) -> Vec<u8> {
    format!("{DOMAIN}\n{seq}\n{hash}\n{at_ms}\n").into_bytes()
}

/// Signs the head `(seq, hash)` at `at_ms`.
pub fn sign(key: &SigningKey, seq: i64, hash: &str, at_ms: i64) -> Checkpoint {
    let signature = key.sign(&signed_bytes(seq, hash, at_ms));
    Checkpoint {
        seq,
        hash: hash.to_string(),
        at_ms,
        key: public_key_text(&key.verifying_key()),
        signature: hex::encode(signature.to_bytes()),
    }
}

/// Something wrong with a checkpoint or with the chain it vouches for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointProblem {
    /// Signed, if at all, by a key other than those trusted.
    #[error(
        "checkpoint at sequence {seq} was not signed by a trusted key (it names {key}): it is forged or comes from another instance"
    )]
    ForeignKey {
        /// The checkpoint's sequence number.
        seq: i64,
        /// The key it names.
        key: String,
    },
    /// The signature does not match the checkpoint's contents.
    #[error(
        "checkpoint at sequence {seq} has a signature that does not match its contents: it was forged or altered"
    )]
    BadSignature {
        /// The checkpoint's sequence number.
        seq: i64,
    },
    /// The chain ends before the checkpoint: its tail was cut.
    #[error(
        "checkpoint at sequence {seq} is past the end of the chain (last entry {last}): entries {from} to {seq} were removed and the head rewritten"
    , from = .last + 1)]
    PastEnd {
        /// The checkpoint's sequence number.
        seq: i64,
        /// The chain's last entry.
        last: i64,
    },
    /// The entry at the checkpoint's sequence number has another hash: it, or an entry before
    /// it, was rewritten since.
    #[error(
        "the entry at sequence {seq} does not match the checkpoint signed for it: entry {seq} or an entry before it was rewritten"
    )]
    Mismatch {
        /// The checkpoint's sequence number.
        seq: i64,
    },
    /// Two checkpoints at one sequence number disagree.
    #[error("two checkpoints at sequence {seq} disagree")]
    Conflict {
        /// The sequence number.
        seq: i64,
    },
}

/// Checks one checkpoint's signature with the key it names, which must be one of `trusted`
/// (several after a key was replaced: the old one for the checkpoints it signed).
pub fn check_signature(cp: &Checkpoint, trusted: &[VerifyingKey]) -> Result<(), CheckpointProblem> {
    let named = parse_public_key(&cp.key).ok();
    let Some(key) = trusted.iter().find(|k| Some(*k) == named.as_ref()) else {
        return Err(CheckpointProblem::ForeignKey {
            seq: cp.seq,
            key: cp.key.clone(),
        });
    };
    let mut sig = [0u8; 64];
    hex::decode_to_slice(&cp.signature, &mut sig)
        .map_err(|_| CheckpointProblem::BadSignature { seq: cp.seq })?;
    key.verify_strict(
        &signed_bytes(cp.seq, &cp.hash, cp.at_ms),
        &Signature::from_bytes(&sig),
    )
    .map_err(|_| CheckpointProblem::BadSignature { seq: cp.seq })
}

/// What the checkpoint writer should do, given the last checkpoint and the chain's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Sign the head now.
    Now,
    /// Nothing to do yet.
    NotYet,
    /// The head is behind the last checkpoint: the chain was cut; never sign over that.
    Behind {
        /// The head's sequence number.
        head: i64,
        /// The last checkpoint's.
        last: i64,
    },
}

/// When checkpoints are made: after this many new entries, or once this long has passed since
/// the last one and there are new entries, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// New entries that make a checkpoint due.
    pub every_entries: Option<i64>,
    /// Time (ms) after which new entries make a checkpoint due.
    pub every_ms: Option<i64>,
}

impl Cadence {
    /// Whether a checkpoint of `head_seq` is due at `now_ms`, the last one being `last`
    /// (`(seq, at_ms)`).
    pub fn due(&self, last: Option<(i64, i64)>, head_seq: i64, now_ms: i64) -> Due {
        let Some((last_seq, last_at)) = last else {
            return if head_seq > 0 { Due::Now } else { Due::NotYet };
        };
        if head_seq < last_seq {
            return Due::Behind {
                head: head_seq,
                last: last_seq,
            };
        }
        if head_seq == last_seq {
            return Due::NotYet;
        }
        let by_count = self.every_entries.is_some_and(|n| head_seq - last_seq >= n);
        let by_time = self.every_ms.is_some_and(|ms| now_ms - last_at >= ms);
        if by_count || by_time {
            Due::Now
        } else {
            Due::NotYet
        }
    }
}

/// Checks a chain, read in sequence order, against checkpoints whose signatures were checked:
/// each checkpoint's hash must be the hash of the entry at its sequence number, and none may
/// lie past the chain's end. Keeps only the checkpoints in memory.
#[derive(Debug, Clone, Default)]
pub struct CheckpointChecker {
    pending: BTreeMap<i64, Checkpoint>,
    problems: Vec<CheckpointProblem>,
    matched: usize,
}

impl CheckpointChecker {
    /// Checks every checkpoint's signature against the `trusted` keys and keeps the sound ones
    /// to compare with the chain. Identical copies (the database's and the sink's) count once.
    pub fn new(
        checkpoints: impl IntoIterator<Item = Checkpoint>,
        trusted: &[VerifyingKey],
    ) -> Self {
        let mut me = Self::default();
        for cp in checkpoints {
            if let Err(p) = check_signature(&cp, trusted) {
                me.problems.push(p);
                continue;
            }
            match me.pending.get(&cp.seq) {
                Some(known) if *known != cp => me
                    .problems
                    .push(CheckpointProblem::Conflict { seq: cp.seq }),
                Some(_) => {}
                None => {
                    me.pending.insert(cp.seq, cp);
                }
            }
        }
        me
    }

    /// How many checkpoints are to be compared with the chain.
    pub fn len(&self) -> usize {
        self.pending.len() + self.matched
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lowest and highest sequence numbers of the checkpoints still to be compared.
    pub fn pending_range(&self) -> Option<(i64, i64)> {
        Some((
            *self.pending.keys().next()?,
            *self.pending.keys().next_back()?,
        ))
    }

    /// Compares the entry at `seq`, whose hash is `hash`, with the checkpoint there, if any.
    pub fn observe(&mut self, seq: i64, hash: &str) {
        if let Some(cp) = self.pending.remove(&seq) {
            if cp.hash == hash {
                self.matched += 1;
            } else {
                self.problems.push(CheckpointProblem::Mismatch { seq });
            }
        }
    }

    /// Ends the check at the chain's last entry `last`: a checkpoint not yet compared and past
    /// `last` means the tail was cut; returns the checkpoints that matched and every problem,
    /// in sequence order. Checkpoints before the first entry observed stay unchecked (see
    /// [`CheckpointChecker::unchecked`]).
    pub fn finish(mut self, last: i64) -> (usize, Vec<CheckpointProblem>) {
        for (&seq, _) in self.pending.range(last + 1..) {
            self.problems.push(CheckpointProblem::PastEnd { seq, last });
        }
        self.problems.sort_by_key(problem_seq);
        (self.matched, self.problems)
    }

    /// Sequence numbers of checkpoints not compared with any entry, at or below `last`.
    pub fn unchecked(&self, last: i64) -> Vec<i64> {
        self.pending.range(..=last).map(|(s, _)| *s).collect()
    }
}

fn problem_seq(p: &CheckpointProblem) -> i64 {
    match p {
        CheckpointProblem::ForeignKey { seq, .. }
        | CheckpointProblem::BadSignature { seq }
        | CheckpointProblem::PastEnd { seq, .. }
        | CheckpointProblem::Mismatch { seq }
        | CheckpointProblem::Conflict { seq } => *seq,
    }
}

// ---------------------------------------------------------------- exports

/// The format an export's header names.
pub const EXPORT_FORMAT: &str = "tenure-audit-export/1";

/// The first line of an export: what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportHeader {
    /// [`EXPORT_FORMAT`].
    pub format: String,
    /// The first sequence number asked for.
    pub from_seq: i64,
    /// The last sequence number asked for.
    pub to_seq: i64,
    /// Only this person's entries in full, the others as links.
    pub person: Option<String>,
    /// When the export was written (epoch ms).
    pub exported_at_ms: i64,
}

/// An entry left out of a person-filtered export: only its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// Its sequence number.
    pub seq: i64,
    /// Its predecessor's hash.
    pub prev_hash: String,
    /// Its hash, as the exporter read it (it cannot be recomputed without the entry).
    pub hash: String,
}

/// One line of an export (JSON, tagged by `type`): the header, then the checkpoints, then the
/// entries and links in sequence order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportLine {
    /// The first line.
    Header(ExportHeader),
    /// A signed checkpoint.
    Checkpoint(Checkpoint),
    /// An entry, in full (boxed: it is much larger than the other lines).
    Entry(Box<AuditEntry>),
    /// An entry left out (person-filtered exports only).
    Link(Link),
}

/// Something wrong with an export, by line number (from 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportProblem {
    /// The line is not one of the export's records.
    #[error("line {line}: not a record of a tenure audit export: {message}")]
    Unreadable {
        /// The line.
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// The records are not in the order the format says.
    #[error("line {line}: {message}")]
    OutOfPlace {
        /// The line.
        line: usize,
        /// What is out of place.
        message: String,
    },
    /// The chain inside the export is broken.
    #[error("line {line}: {broken}")]
    Chain {
        /// The line.
        line: usize,
        /// How.
        broken: ChainBreak,
    },
    /// A checkpoint is unsound or does not match the export.
    #[error("{0}")]
    Checkpoint(CheckpointProblem),
}

/// What a sound export proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// The header.
    pub header: ExportHeader,
    /// Entries in full.
    pub entries: usize,
    /// Entries present as links only.
    pub links: usize,
    /// First and last sequence numbers present (entries or links).
    pub range: Option<(i64, i64)>,
    /// Whether the first record starts the chain (its predecessor is the genesis hash).
    pub from_genesis: bool,
    /// Checkpoints that matched a record of the export.
    pub anchored_by: Vec<i64>,
    /// The last sequence number a matched checkpoint vouches for: everything up to it is
    /// anchored, what follows is chained only.
    pub anchored_to: Option<i64>,
    /// Checkpoints in the export outside its records (not compared).
    pub outside: Vec<i64>,
}

/// Verifies an export line by line, in constant memory but for its checkpoints.
#[derive(Debug)]
pub struct ExportVerifier {
    trusted: Vec<VerifyingKey>,
    line: usize,
    header: Option<ExportHeader>,
    checkpoints: Vec<Checkpoint>,
    checker: Option<CheckpointChecker>,
    prev: Option<(i64, String)>,
    first: Option<(i64, String)>,
    entries: usize,
    links: usize,
    problems: Vec<ExportProblem>,
    anchored_by: Vec<i64>,
}

impl ExportVerifier {
    /// Starts with the keys checkpoints may be signed with.
    pub fn new(trusted: Vec<VerifyingKey>) -> Self {
        Self {
            trusted,
            line: 0,
            header: None,
            checkpoints: Vec::new(),
            checker: None,
            prev: None,
            first: None,
            entries: 0,
            links: 0,
            problems: Vec::new(),
            anchored_by: Vec::new(),
        }
    }

    /// Checks the next line. Stops at the first broken link of the chain (what follows cannot
    /// be placed), but keeps reading checkpoints' problems.
    pub fn push_line(&mut self, text: &str) {
        self.line += 1;
        let line = self.line;
        let record: ExportLine = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                self.problems.push(ExportProblem::Unreadable {
                    line,
                    message: e.to_string(),
                });
                return;
            }
        };
        let out_of_place = |message: &str| ExportProblem::OutOfPlace {
            line,
            message: message.to_string(),
        };
        match record {
            ExportLine::Header(h) => {
                if line != 1 {
                    self.problems
                        .push(out_of_place("the header must be the first line"));
                } else if h.format != EXPORT_FORMAT {
                    self.problems.push(out_of_place(&format!(
                        "format `{}` is not {EXPORT_FORMAT}",
                        h.format
                    )));
                } else {
                    self.header = Some(h);
                }
            }
            _ if self.header.is_none() => {
                if line == 1 {
                    self.problems
                        .push(out_of_place("the first line must be the export's header"));
                }
            }
            ExportLine::Checkpoint(cp) => {
                if self.checker.is_some() {
                    self.problems
                        .push(out_of_place("checkpoints must come before the entries"));
                } else {
                    self.checkpoints.push(cp);
                }
            }
            ExportLine::Entry(e) => {
                if entry_hash(&e, &e.prev_hash) != e.hash {
                    self.chain_break(ChainBreak::Altered { seq: e.seq });
                    return;
                }
                if self.link(e.seq, &e.prev_hash, &e.hash) {
                    self.entries += 1;
                }
            }
            ExportLine::Link(l) => {
                if self.header.as_ref().is_some_and(|h| h.person.is_none()) {
                    self.problems.push(out_of_place(
                        "a link (an entry left out) in an export that is not filtered by person",
                    ));
                    return;
                }
                if self.link(l.seq, &l.prev_hash, &l.hash) {
                    self.links += 1;
                }
            }
        }
    }

    fn chain_break(&mut self, broken: ChainBreak) {
        let line = self.line;
        // Nothing after a break can be placed in the chain: read no further record.
        self.prev = Some((i64::MAX, String::new()));
        self.problems.push(ExportProblem::Chain { line, broken });
    }

    /// Places a record after the previous one; false (and a problem) when it does not follow.
    fn link(&mut self, seq: i64, prev_hash: &str, hash: &str) -> bool {
        if self.prev.as_ref().is_some_and(|(s, _)| *s == i64::MAX) {
            return false;
        }
        match &self.prev {
            None => {
                if seq == 1 && prev_hash != GENESIS {
                    self.chain_break(ChainBreak::Unlinked { seq, after: 0 });
                    return false;
                }
                self.first = Some((seq, prev_hash.to_string()));
            }
            Some((prev_seq, prev)) => {
                if prev != prev_hash {
                    let after = *prev_seq;
                    self.chain_break(ChainBreak::Unlinked { seq, after });
                    return false;
                }
                if seq != prev_seq + 1 {
                    self.chain_break(ChainBreak::Altered { seq });
                    return false;
                }
            }
        }
        let checker = self.checker.get_or_insert_with(|| {
            CheckpointChecker::new(std::mem::take(&mut self.checkpoints), &self.trusted)
        });
        let before = checker.matched;
        checker.observe(seq, hash);
        if checker.matched > before {
            self.anchored_by.push(seq);
        }
        self.prev = Some((seq, hash.to_string()));
        true
    }

    /// The summary of a sound export, or every problem found.
    pub fn finish(mut self) -> Result<ExportSummary, Vec<ExportProblem>> {
        let Some(header) = self.header.take() else {
            if self.problems.is_empty() {
                self.problems.push(ExportProblem::OutOfPlace {
                    line: 1,
                    message: "the export is empty".into(),
                });
            }
            return Err(self.problems);
        };
        let checker = self.checker.take().unwrap_or_else(|| {
            CheckpointChecker::new(std::mem::take(&mut self.checkpoints), &self.trusted)
        });
        let first = self.first.clone();
        let last = self
            .prev
            .as_ref()
            .map(|(s, _)| *s)
            .filter(|s| *s != i64::MAX);
        let start = first.as_ref().map_or(i64::MAX, |(s, _)| *s);
        // Checkpoints outside the records are not compared: before the first record they
        // cannot be, and past the last they say only that the chain went on.
        let mut outside: Vec<i64> = checker.unchecked(i64::MAX);
        outside.retain(|s| *s < start || last.is_none_or(|l| *s > l));
        let pending_problems = checker.problems.clone();
        self.problems
            .extend(pending_problems.into_iter().map(ExportProblem::Checkpoint));
        if !self.problems.is_empty() {
            return Err(self.problems);
        }
        Ok(ExportSummary {
            header,
            entries: self.entries,
            links: self.links,
            range: first.as_ref().zip(last).map(|((f, _), l)| (*f, l)),
            from_genesis: first.is_some_and(|(s, p)| s == 1 && p == GENESIS),
            anchored_to: self.anchored_by.last().copied(),
            anchored_by: self.anchored_by,
            outside,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::chain;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    #[test]
    fn the_signed_bytes_are_fixed() {
        assert_eq!(
            signed_bytes(42, "ab", 1_700_000_000_000),
            b"tenure audit checkpoint v1\n42\nab\n1700000000000\n".to_vec()
        );
    }

    #[test]
    fn keys_read_back_and_bad_ones_are_named() {
        let k = key(7);
        assert_eq!(
            parse_private_key(&format!(" {}\n", private_key_text(&k)))
                .unwrap()
                .to_bytes(),
            k.to_bytes()
        );
        let public = public_key_text(&k.verifying_key());
        assert!(public.starts_with("ed25519:") && public.len() == 8 + 64);
        assert_eq!(parse_public_key(&public).unwrap(), k.verifying_key());
        assert_eq!(
            parse_public_key(&private_key_text(&k)),
            Err(KeyError::Format {
                expected: PUBLIC_PREFIX
            })
        );
        assert_eq!(
            parse_private_key("ed25519-private:abcd"),
            Err(KeyError::Format {
                expected: PRIVATE_PREFIX
            })
        );
    }

    #[test]
    fn a_signature_holds_only_for_its_contents_and_key() {
        let cp = sign(&key(1), 5, "aa", 100);
        assert_eq!(check_signature(&cp, &[key(1).verifying_key()]), Ok(()));
        let mut moved = cp.clone();
        moved.seq = 6;
        assert_eq!(
            check_signature(&moved, &[key(1).verifying_key()]),
            Err(CheckpointProblem::BadSignature { seq: 6 })
        );
        // Signed by another key that names itself: refused for the key, not the signature.
        let forged = sign(&key(2), 5, "aa", 100);
        assert!(matches!(
            check_signature(&forged, &[key(1).verifying_key()]),
            Err(CheckpointProblem::ForeignKey { seq: 5, .. })
        ));
        // Signed by another key that claims to be the trusted one.
        let mut claimed = forged.clone();
        claimed.key = cp.key.clone();
        assert_eq!(
            check_signature(&claimed, &[key(1).verifying_key()]),
            Err(CheckpointProblem::BadSignature { seq: 5 })
        );
        // After a key was replaced, both are trusted: each checkpoint checks with its own.
        let both = [key(1).verifying_key(), key(2).verifying_key()];
        assert_eq!(check_signature(&cp, &both), Ok(()));
        assert_eq!(check_signature(&forged, &both), Ok(()));
        assert_eq!(
            check_signature(&claimed, &both),
            Err(CheckpointProblem::BadSignature { seq: 5 })
        );
    }

    #[test]
    fn a_checkpoint_is_due_by_count_or_by_time_and_never_over_a_cut() {
        let c = Cadence {
            every_entries: Some(10),
            every_ms: Some(60_000),
        };
        assert_eq!(c.due(None, 0, 0), Due::NotYet);
        assert_eq!(c.due(None, 1, 0), Due::Now);
        assert_eq!(c.due(Some((5, 0)), 5, 1_000_000), Due::NotYet);
        assert_eq!(c.due(Some((5, 0)), 14, 59_999), Due::NotYet);
        assert_eq!(c.due(Some((5, 0)), 15, 59_999), Due::Now);
        assert_eq!(c.due(Some((5, 0)), 6, 60_000), Due::Now);
        assert_eq!(
            c.due(Some((5, 0)), 3, 60_000),
            Due::Behind { head: 3, last: 5 }
        );
        let count_only = Cadence {
            every_entries: Some(2),
            every_ms: None,
        };
        assert_eq!(count_only.due(Some((5, 0)), 6, i64::MAX), Due::NotYet);
    }

    fn check(chain: &[AuditEntry], cps: Vec<Checkpoint>) -> (usize, Vec<CheckpointProblem>) {
        let mut c = CheckpointChecker::new(cps, &[key(1).verifying_key()]);
        for e in chain {
            c.observe(e.seq, &e.hash);
        }
        c.finish(chain.last().map_or(0, |e| e.seq))
    }

    #[test]
    fn checkpoints_catch_a_cut_tail_and_a_rewrite() {
        let c = chain(10);
        let cps = vec![
            sign(&key(1), 4, &c[3].hash, 1),
            sign(&key(1), 8, &c[7].hash, 2),
        ];
        assert_eq!(check(&c, cps.clone()), (2, vec![]));
        // Tail cut at 6 (and the head rewritten to match): the checkpoint at 8 is past the end.
        assert_eq!(
            check(&c[..6], cps.clone()),
            (1, vec![CheckpointProblem::PastEnd { seq: 8, last: 6 }])
        );
        // Entry 3 rewritten and the chain re-hashed from there on: 4 and 8 no longer match.
        let mut rewritten = c.clone();
        rewritten[2].actor = "mallory".into();
        let mut prev = rewritten[1].hash.clone();
        for e in &mut rewritten[2..] {
            e.prev_hash = prev.clone();
            e.hash = entry_hash(e, &prev);
            prev = e.hash.clone();
        }
        assert_eq!(
            check(&rewritten, cps.clone()),
            (
                0,
                vec![
                    CheckpointProblem::Mismatch { seq: 4 },
                    CheckpointProblem::Mismatch { seq: 8 }
                ]
            )
        );
        // A copy of the same checkpoint counts once; two that disagree are named.
        let mut twice = cps.clone();
        twice.push(cps[0].clone());
        twice.push(sign(&key(1), 8, &c[6].hash, 3));
        assert_eq!(
            check(&c, twice),
            (2, vec![CheckpointProblem::Conflict { seq: 8 }])
        );
    }

    fn export(lines: &[ExportLine]) -> Result<ExportSummary, Vec<ExportProblem>> {
        let mut v = ExportVerifier::new(vec![key(1).verifying_key()]);
        for l in lines {
            v.push_line(&serde_json::to_string(l).unwrap());
        }
        v.finish()
    }

    fn header(from: i64, to: i64, person: Option<&str>) -> ExportLine {
        ExportLine::Header(ExportHeader {
            format: EXPORT_FORMAT.into(),
            from_seq: from,
            to_seq: to,
            person: person.map(Into::into),
            exported_at_ms: 0,
        })
    }

    #[test]
    fn a_contiguous_export_verifies_and_any_change_is_found() {
        let c = chain(10);
        let mut lines = vec![
            header(3, 8, None),
            ExportLine::Checkpoint(sign(&key(1), 6, &c[5].hash, 1)),
            ExportLine::Checkpoint(sign(&key(1), 10, &c[9].hash, 2)),
        ];
        lines.extend(
            c[2..8]
                .iter()
                .cloned()
                .map(|e| ExportLine::Entry(Box::new(e))),
        );
        let s = export(&lines).unwrap();
        assert_eq!(
            (s.entries, s.range, s.anchored_to, s.outside.clone()),
            (6, Some((3, 8)), Some(6), vec![10])
        );
        assert!(!s.from_genesis);

        let mut altered = lines.clone();
        if let ExportLine::Entry(e) = &mut altered[5] {
            e.reason = "nothing to see".into();
        }
        assert_eq!(
            export(&altered).unwrap_err(),
            vec![ExportProblem::Chain {
                line: 6,
                broken: ChainBreak::Altered { seq: 5 }
            }]
        );
        let mut dropped = lines.clone();
        dropped.remove(5);
        assert!(matches!(
            export(&dropped).unwrap_err()[0],
            ExportProblem::Chain {
                broken: ChainBreak::Unlinked { seq: 6, after: 4 },
                ..
            }
        ));
        let mut forged = lines.clone();
        forged[1] = ExportLine::Checkpoint(sign(&key(2), 6, &c[5].hash, 1));
        assert!(matches!(
            export(&forged).unwrap_err()[..],
            [ExportProblem::Checkpoint(CheckpointProblem::ForeignKey {
                seq: 6,
                ..
            })]
        ));
    }

    #[test]
    fn a_person_export_links_the_entries_between() {
        let c = chain(6);
        let mut lines = vec![
            header(1, 6, Some("p1")),
            ExportLine::Checkpoint(sign(&key(1), 6, &c[5].hash, 1)),
        ];
        for e in &c {
            lines.push(if e.person_id.as_deref() == Some("p1") {
                ExportLine::Entry(Box::new(e.clone()))
            } else {
                ExportLine::Link(Link {
                    seq: e.seq,
                    prev_hash: e.prev_hash.clone(),
                    hash: e.hash.clone(),
                })
            });
        }
        let s = export(&lines).unwrap();
        assert_eq!((s.entries, s.links, s.anchored_to), (3, 3, Some(6)));
        assert!(s.from_genesis);
        // A link whose hash was changed no longer joins the next record.
        let mut bent = lines.clone();
        if let ExportLine::Link(l) = &mut bent[3] {
            l.hash = GENESIS.into();
        }
        assert!(export(&bent).is_err());
        // Links are refused in an export that claims to be contiguous.
        let mut unfiltered = lines.clone();
        unfiltered[0] = header(1, 6, None);
        assert!(export(&unfiltered).is_err());
    }
}
