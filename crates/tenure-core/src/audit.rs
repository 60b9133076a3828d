//! The audit trail's hash chain: each entry holds the hash of the one before, so altering,
//! removing or reordering any entry breaks every hash after it.

use crate::approval::Verdict;
use crate::event::EventType;
use crate::model::string_enum;
use crate::planner::Action as StepAction;
use crate::run::RunState;
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
    /// The trace (W3C Trace Context, 32 hex digits) the entry was written in, when traces are
    /// exported: the same id as in the log lines and spans of what caused it. Hashed when
    /// present, so entries written without one keep their hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

/// What the engine records in the audit trail: a closed set, written as the same text the
/// trail has always held (`grant.time_bound`, `step.grant`, `run.succeeded`, ...). Tokens, tasks
/// and the SCIM server audit actions of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// An event was stored with its run: `event.received`.
    EventReceived,
    /// A run's steps were planned: `run.planned`.
    RunPlanned,
    /// A later run of the person took over an earlier one's unstarted steps: `run.superseded`.
    RunSuperseded,
    /// An operator asked to cancel a run: `run.cancel_requested`.
    RunCancelRequested,
    /// A cancelled run's done steps are being undone: `run.compensating`.
    RunCompensating,
    /// An operator retried a run's failed steps: `run.retried`.
    RunRetried,
    /// A run ended in this state: `run.succeeded`, `run.failed`, ...
    RunEnded(RunState),
    /// A step's call did its work: `step.<action>` (`step.grant`, `step.create_account`, ...).
    StepDone(StepAction),
    /// A step waits for a person or a remote system: `step.waiting`.
    StepWaiting,
    /// A step failed and is tried again later: `step.retry_scheduled`.
    StepRetryScheduled,
    /// A step failed for good: `step.failed`.
    StepFailed,
    /// A grant was made time-bound: `grant.time_bound`.
    GrantTimeBound,
    /// Time-bound access ended and is revoked: `grant.expired`.
    GrantExpired,
    /// Time-bound access ended but is now held for a standing reason: `grant.expiry_superseded`.
    GrantExpirySuperseded,
    /// An approval was opened: `approval.opened`.
    ApprovalOpened,
    /// An approver decided a stage: `approval.approve` or `approval.deny`.
    ApprovalDecided(Verdict),
    /// Every stage approved: `approval.approved`.
    ApprovalApproved,
    /// An approval was denied: `approval.denied`.
    ApprovalDenied,
    /// Nobody decided before the deadline: `approval.expired`.
    ApprovalExpired,
    /// A stage timed out and was escalated: `approval.escalated`.
    ApprovalEscalated,
    /// The grant is no longer wanted: `approval.withdrawn`.
    ApprovalWithdrawn,
    /// Someone delegated their approvals: `approval.delegated`.
    ApprovalDelegated,
    /// A delegation was withdrawn: `approval.delegation_revoked`.
    ApprovalDelegationRevoked,
    /// An access request was made: `request.created`.
    RequestCreated,
    /// An emergency request skipped approval: `request.break_glass`.
    RequestBreakGlass,
    /// A request was approved: `request.approved`.
    RequestApproved,
    /// A request was denied: `request.denied`.
    RequestDenied,
    /// A request went ahead despite a separation-of-duties rule: `request.sod_overridden`.
    RequestSodOverridden,
    /// Events changed a client's terms: `client.terms_changed`.
    ClientTermsChanged,
    /// The rules were replaced: `rules.reloaded`.
    RulesReloaded,
    /// `[retention]` dropped the payloads of events past their period:
    /// `retention.event_payloads_dropped`.
    EventPayloadsDropped,
    /// A person who left was forgotten (their personal data crypto-shredded), by hand or by
    /// `[retention] forget_people`: `person.forgotten`.
    PersonForgotten,
    /// A rule change gave people reconcile runs: `rules.reconcile_scheduled`.
    RulesReconcileScheduled,
    /// A notification was given up: `notification.failed`.
    NotificationFailed,
    /// A token acting as a leaver was revoked: `token.revoked`.
    TokenRevoked,
    /// Steps running at a crash were taken back: `engine.recovered`.
    EngineRecovered,
    /// A reconciliation of a system started: `reconciliation.started`.
    ReconciliationStarted,
    /// A reconciliation ended (completed, held, failed, not covered): `reconciliation.ended`.
    ReconciliationEnded,
    /// A stale account was found (a leaver's account that can sign in): `reconciliation.stale`.
    ReconciliationStale,
    /// Reconciliation corrected tenure's record of a person's access and gave them a run:
    /// `reconciliation.corrected`.
    ReconciliationCorrected,
    /// The scheduler raised an event of its own: `scheduler.leave`, `scheduler.engagement_end`.
    SchedulerRaised(EventType),
    /// An access review campaign opened with its items: `review.opened`.
    ReviewOpened,
    /// A reviewer decided an item: `review.decided`.
    ReviewDecided,
    /// A review's `revoke` became a revocation run: `review.revoked`.
    ReviewRevoked,
    /// A review's `revoke` of access a template gives back was flagged to the template's
    /// owner instead: `review.flagged`.
    ReviewFlagged,
    /// A campaign closed and its results were applied: `review.closed`.
    ReviewClosed,
    /// A reviewer left: their undecided items went to the campaign's fallback (or to admins):
    /// `review.reassigned`.
    ReviewReassigned,
}

/// The actions that carry nothing, with their text.
const FIXED_ACTIONS: &[(AuditAction, &str)] = &[
    (AuditAction::EventReceived, "event.received"),
    (AuditAction::RunPlanned, "run.planned"),
    (AuditAction::RunSuperseded, "run.superseded"),
    (AuditAction::RunCancelRequested, "run.cancel_requested"),
    (AuditAction::RunCompensating, "run.compensating"),
    (AuditAction::RunRetried, "run.retried"),
    (AuditAction::StepWaiting, "step.waiting"),
    (AuditAction::StepRetryScheduled, "step.retry_scheduled"),
    (AuditAction::StepFailed, "step.failed"),
    (AuditAction::GrantTimeBound, "grant.time_bound"),
    (AuditAction::GrantExpired, "grant.expired"),
    (
        AuditAction::GrantExpirySuperseded,
        "grant.expiry_superseded",
    ),
    (AuditAction::ApprovalOpened, "approval.opened"),
    (AuditAction::ApprovalApproved, "approval.approved"),
    (AuditAction::ApprovalDenied, "approval.denied"),
    (AuditAction::ApprovalExpired, "approval.expired"),
    (AuditAction::ApprovalEscalated, "approval.escalated"),
    (AuditAction::ApprovalWithdrawn, "approval.withdrawn"),
    (AuditAction::ApprovalDelegated, "approval.delegated"),
    (
        AuditAction::ApprovalDelegationRevoked,
        "approval.delegation_revoked",
    ),
    (AuditAction::RequestCreated, "request.created"),
    (AuditAction::RequestBreakGlass, "request.break_glass"),
    (AuditAction::RequestApproved, "request.approved"),
    (AuditAction::RequestDenied, "request.denied"),
    (AuditAction::RequestSodOverridden, "request.sod_overridden"),
    (AuditAction::ClientTermsChanged, "client.terms_changed"),
    (AuditAction::RulesReloaded, "rules.reloaded"),
    (
        AuditAction::EventPayloadsDropped,
        "retention.event_payloads_dropped",
    ),
    (AuditAction::PersonForgotten, "person.forgotten"),
    (
        AuditAction::RulesReconcileScheduled,
        "rules.reconcile_scheduled",
    ),
    (AuditAction::NotificationFailed, "notification.failed"),
    (AuditAction::TokenRevoked, "token.revoked"),
    (AuditAction::EngineRecovered, "engine.recovered"),
    (AuditAction::ReconciliationStarted, "reconciliation.started"),
    (AuditAction::ReconciliationEnded, "reconciliation.ended"),
    (AuditAction::ReconciliationStale, "reconciliation.stale"),
    (
        AuditAction::ReconciliationCorrected,
        "reconciliation.corrected",
    ),
    (AuditAction::ReviewOpened, "review.opened"),
    (AuditAction::ReviewDecided, "review.decided"),
    (AuditAction::ReviewRevoked, "review.revoked"),
    (AuditAction::ReviewFlagged, "review.flagged"),
    (AuditAction::ReviewClosed, "review.closed"),
    (AuditAction::ReviewReassigned, "review.reassigned"),
];

impl AuditAction {
    /// Every action, the parametrised ones with each of their values.
    pub fn all() -> Vec<AuditAction> {
        let mut all: Vec<AuditAction> = FIXED_ACTIONS.iter().map(|(a, _)| *a).collect();
        all.extend(RunState::ALL.iter().map(|s| AuditAction::RunEnded(*s)));
        all.extend(StepAction::ALL.iter().map(|a| AuditAction::StepDone(*a)));
        all.extend(
            Verdict::ALL
                .iter()
                .map(|v| AuditAction::ApprovalDecided(*v)),
        );
        all.extend(
            EventType::ALL
                .iter()
                .map(|t| AuditAction::SchedulerRaised(*t)),
        );
        all
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditAction::RunEnded(s) => write!(f, "run.{s}"),
            AuditAction::StepDone(a) => write!(f, "step.{a}"),
            AuditAction::ApprovalDecided(v) => write!(f, "approval.{v}"),
            AuditAction::SchedulerRaised(t) => write!(f, "scheduler.{t}"),
            fixed => {
                let (_, text) = FIXED_ACTIONS
                    .iter()
                    .find(|(a, _)| a == fixed)
                    .expect("every other action is in the table");
                f.write_str(text)
            }
        }
    }
}

impl From<AuditAction> for String {
    fn from(a: AuditAction) -> String {
        a.to_string()
    }
}

/// Text that names no audit action of the engine's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audit action `{0}`")]
pub struct UnknownAuditAction(pub String);

impl std::str::FromStr for AuditAction {
    type Err = UnknownAuditAction;

    fn from_str(s: &str) -> Result<AuditAction, UnknownAuditAction> {
        if let Some((a, _)) = FIXED_ACTIONS.iter().find(|(_, text)| *text == s) {
            return Ok(*a);
        }
        let unknown = || UnknownAuditAction(s.to_string());
        let (group, rest) = s.split_once('.').ok_or_else(unknown)?;
        let parsed = match group {
            "run" => rest.parse().map(AuditAction::RunEnded).ok(),
            "step" => rest.parse().map(AuditAction::StepDone).ok(),
            "approval" => rest.parse().map(AuditAction::ApprovalDecided).ok(),
            "scheduler" => rest.parse().map(AuditAction::SchedulerRaised).ok(),
            _ => None,
        };
        parsed.ok_or_else(unknown)
    }
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
    if let Some(t) = &e.trace_id {
        field(format!("trace_id:{t}").as_bytes());
    }
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
    /// The recorded head names an entry at or before the chain's end, with another hash: the
    /// head was rewritten (or entries were added past it without moving it).
    #[error(
        "the chain head (audit_head) records entry {head} with hash {head_hash}, but the chain ends at entry {last} with hash {last_hash}: the head was rewritten"
    )]
    HeadMismatch {
        /// The last entry present.
        last: i64,
        /// Its hash.
        last_hash: String,
        /// The head's sequence number.
        head: i64,
        /// The head's hash.
        head_hash: String,
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
        if head_seq <= self.prev_seq && (head_seq != self.prev_seq || head_hash != self.prev_hash) {
            return Err(ChainBreak::HeadMismatch {
                last: self.prev_seq,
                last_hash: self.prev_hash.clone(),
                head: head_seq,
                head_hash: head_hash.to_string(),
            });
        }
        if head_seq != self.prev_seq || head_hash != self.prev_hash {
            return Err(ChainBreak::Truncated {
                last: self.prev_seq,
                head: head_seq,
            });
        }
        Ok(self.prev_seq)
    }

    /// The last entry that verified (0 before the first).
    pub fn last_seq(&self) -> i64 {
        self.prev_seq
    }
}

string_enum!(
    /// Where a [`ChainWatch`] stands.
    ChainState {
        /// Not yet through to the chain's head: what was verified so far is intact.
        Checking => "checking",
        /// Verified through the head as last read.
        Intact => "intact",
        /// A break was found; it stays until the watch starts over.
        Broken => "broken",
    }
);

/// Which of a [`ChainWatch`]'s two passes a page is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainPass {
    /// The pass that follows the chain's end: each new entry is verified soon after it is
    /// written.
    Follow,
    /// The pass that verifies the chain again from its start, a page at a time, and starts
    /// over when it reaches the head: an entry altered after it was first verified is found
    /// within one whole pass.
    Recheck,
}

/// One pass over the chain: a [`Verifier`] and how far the head was when last read.
#[derive(Debug, Clone, Default)]
struct Pass {
    verifier: Verifier,
    head: i64,
    caught_up: bool,
}

impl Pass {
    /// See [`ChainWatch::advance`]; `Ok(true)` once the pass has reached the head.
    fn advance(
        &mut self,
        head: (i64, &str),
        page: &[AuditEntry],
        full: bool,
    ) -> Result<bool, ChainBreak> {
        let (head_seq, head_hash) = head;
        self.head = head_seq;
        self.caught_up = false;
        for e in page.iter().take_while(|e| e.seq <= head_seq) {
            self.verifier.push(e)?;
        }
        // Entries past the head were written after it was read: the next page takes them.
        let past_head = page.last().is_some_and(|e| e.seq > head_seq);
        // Short of the head with nothing more to read up to it: the chain ends before the head
        // (or the head was rewritten), which `finish` names.
        if self.verifier.last_seq() >= head_seq || !full || past_head {
            self.verifier.finish(head_seq, head_hash)?;
            self.caught_up = true;
        }
        Ok(self.caught_up)
    }
}

/// The audit chain verified incrementally, for a server to watch it while it grows: a page
/// of entries at a time, never the whole chain at once. Pure: the caller reads the head, then
/// the page after [`ChainWatch::after`], and hands both to [`ChainWatch::advance`].
///
/// It keeps two passes ([`ChainPass`]): one follows the end of the chain, one verifies it again
/// from the start, so an edit to an entry already verified is found too, within a whole pass.
#[derive(Debug, Clone, Default)]
pub struct ChainWatch {
    follow: Pass,
    recheck: Pass,
    broken: Option<ChainBreak>,
    checked_at_ms: Option<i64>,
}

/// What a [`ChainWatch`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Checking, intact, or broken.
    pub state: ChainState,
    /// The last entry the following pass verified (0 before the first).
    pub verified_through: i64,
    /// The chain's head when last read (its sequence number).
    pub head: i64,
    /// When the watch last advanced (epoch ms); `None` before it first did.
    pub checked_at_ms: Option<i64>,
    /// What is broken, when broken.
    pub problem: Option<String>,
}

impl ChainWatch {
    /// The sequence number `pass`'s next page starts after; `None` once the chain is broken
    /// (there is nothing more to verify until the watch starts over).
    pub fn after(&self, pass: ChainPass) -> Option<i64> {
        if self.broken.is_some() {
            return None;
        }
        Some(self.pass(pass).verifier.last_seq())
    }

    fn pass(&self, pass: ChainPass) -> &Pass {
        match pass {
            ChainPass::Follow => &self.follow,
            ChainPass::Recheck => &self.recheck,
        }
    }

    /// Advances `pass` over `page`: the entries after [`after`](Self::after) in chain order,
    /// read after the head (`head`: its sequence number and hash) was read, and `full` when the
    /// page holds as many entries as were asked for (more may follow). `now_ms` is when.
    /// Returns whether the pass reached the head; a recheck that did starts over at the next
    /// page. A break found by either pass makes the watch broken.
    pub fn advance(
        &mut self,
        pass: ChainPass,
        head: (i64, &str),
        page: &[AuditEntry],
        full: bool,
        now_ms: i64,
    ) -> bool {
        self.checked_at_ms = Some(now_ms);
        if self.broken.is_some() {
            return false;
        }
        let p = match pass {
            ChainPass::Follow => &mut self.follow,
            ChainPass::Recheck => &mut self.recheck,
        };
        match p.advance(head, page, full) {
            Ok(true) => {
                if pass == ChainPass::Recheck {
                    self.recheck = Pass::default();
                }
                true
            }
            Ok(false) => false,
            Err(b) => {
                self.broken = Some(b);
                false
            }
        }
    }

    /// Where the watch stands.
    pub fn report(&self) -> ChainReport {
        let state = match (&self.broken, self.follow.caught_up) {
            (Some(_), _) => ChainState::Broken,
            (None, true) => ChainState::Intact,
            (None, false) => ChainState::Checking,
        };
        ChainReport {
            state,
            verified_through: self.follow.verifier.last_seq(),
            head: self.follow.head,
            checked_at_ms: self.checked_at_ms,
            problem: self.broken.as_ref().map(ToString::to_string),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A chain of `n` entries, about `p1` (odd numbers) and `p2` (even ones).
    pub(crate) fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let mut e = AuditEntry {
                    seq,
                    at_ms: seq * 10,
                    actor: "engine".into(),
                    action: "step.succeeded".into(),
                    person_id: Some(if seq % 2 == 0 { "p2" } else { "p1" }.into()),
                    entitlement: None,
                    system: Some("crm".into()),
                    run_id: None,
                    reason: "hire".into(),
                    correlation_id: None,
                    details: "{}".into(),
                    trace_id: (seq % 3 == 0).then(|| format!("{seq:032x}")),
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
        // A trace id is part of the entry: changed, added or removed, the hash no longer fits.
        for (seq, trace) in [
            (3, None),
            (2, Some("f".repeat(32))),
            (3, Some("e".repeat(32))),
        ] {
            let mut retraced = c.clone();
            retraced[seq - 1].trace_id = trace;
            assert_eq!(
                verify(&retraced, head),
                Err(ChainBreak::Altered { seq: seq as i64 })
            );
        }
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
        assert!(matches!(
            verify(&c, (4, &c[4].hash)),
            Err(ChainBreak::HeadMismatch {
                last: 5,
                head: 4,
                ..
            })
        ));
        assert!(matches!(
            verify(&c, (5, GENESIS)),
            Err(ChainBreak::HeadMismatch {
                last: 5,
                head: 5,
                ..
            })
        ));
        let mut renumbered = c.clone();
        renumbered[4].seq = 9;
        assert_eq!(
            verify(&renumbered, head),
            Err(ChainBreak::Altered { seq: 9 })
        );
    }

    /// Advances `pass` of `w` over the entries of `chain` after where it stands, `n` at most,
    /// with the head at `head`.
    fn step(
        w: &mut ChainWatch,
        pass: ChainPass,
        chain: &[AuditEntry],
        head: usize,
        n: usize,
    ) -> bool {
        let after = w.after(pass).expect("not broken") as usize;
        let page: Vec<AuditEntry> = chain.iter().skip(after).take(n).cloned().collect();
        let head_hash = if head == 0 {
            GENESIS
        } else {
            chain[head - 1].hash.as_str()
        };
        w.advance(
            pass,
            (head as i64, head_hash),
            &page,
            page.len() == n,
            1_000 + after as i64,
        )
    }

    #[test]
    fn a_watch_follows_the_chain_a_page_at_a_time() {
        let c = chain(7);
        let mut w = ChainWatch::default();
        assert_eq!(w.report().state, ChainState::Checking);
        assert_eq!(w.report().checked_at_ms, None);
        // An empty chain is intact.
        assert!(step(&mut w, ChainPass::Follow, &c[..0], 0, 2));
        assert_eq!(w.report().state, ChainState::Intact);
        // Five entries written, two a page: checking, checking, then intact through 5.
        assert!(!step(&mut w, ChainPass::Follow, &c[..5], 5, 2));
        assert_eq!(
            w.report(),
            ChainReport {
                state: ChainState::Checking,
                verified_through: 2,
                head: 5,
                checked_at_ms: Some(1_000),
                problem: None,
            }
        );
        assert!(!step(&mut w, ChainPass::Follow, &c[..5], 5, 2));
        assert!(step(&mut w, ChainPass::Follow, &c[..5], 5, 2));
        let r = w.report();
        assert_eq!(
            (r.state, r.verified_through, r.head),
            (ChainState::Intact, 5, 5)
        );
        // Entries written after the head was read wait for the next step.
        assert!(step(&mut w, ChainPass::Follow, &c, 5, 10));
        assert_eq!(w.report().verified_through, 5);
        assert!(step(&mut w, ChainPass::Follow, &c, 7, 10));
        assert_eq!(w.report().verified_through, 7);
        // The recheck goes over it all again, and starts over once at the head.
        assert!(!step(&mut w, ChainPass::Recheck, &c, 7, 4));
        assert_eq!(w.after(ChainPass::Recheck), Some(4));
        assert!(step(&mut w, ChainPass::Recheck, &c, 7, 4));
        assert_eq!(w.after(ChainPass::Recheck), Some(0));
        assert_eq!(w.report().state, ChainState::Intact);
    }

    #[test]
    fn a_watch_finds_a_break_ahead_or_behind_it_and_stays_broken() {
        let c = chain(6);
        // Ahead: an entry altered before the following pass reached it.
        let mut altered = c.clone();
        altered[3].reason = "nothing happened".into();
        let mut w = ChainWatch::default();
        assert!(!step(&mut w, ChainPass::Follow, &altered, 6, 10));
        let r = w.report();
        assert_eq!((r.state, r.verified_through), (ChainState::Broken, 3));
        assert_eq!(
            r.problem.as_deref(),
            Some("audit entry 4 was altered: its contents do not match its hash")
        );
        assert_eq!(w.after(ChainPass::Follow), None, "nothing more to verify");
        assert!(!w.advance(ChainPass::Follow, (6, &c[5].hash), &c, false, 9));
        assert_eq!(w.report().state, ChainState::Broken);

        // Behind: altered after the following pass verified it; the recheck finds it.
        let mut w = ChainWatch::default();
        assert!(step(&mut w, ChainPass::Follow, &c, 6, 10));
        assert!(step(&mut w, ChainPass::Follow, &altered, 6, 10));
        assert_eq!(w.report().state, ChainState::Intact);
        assert!(!step(&mut w, ChainPass::Recheck, &altered, 6, 10));
        assert_eq!(w.report().state, ChainState::Broken);

        // Entries removed from the end, below the head: truncated.
        let mut w = ChainWatch::default();
        assert!(!w.advance(ChainPass::Follow, (6, &c[5].hash), &c[..4], false, 1));
        assert_eq!(
            w.report().problem.as_deref(),
            Some("audit entries after 4 were removed: the chain head records 6 entries")
        );
        // The head rewritten: named as such.
        let mut w = ChainWatch::default();
        assert!(!w.advance(ChainPass::Follow, (6, GENESIS), &c, false, 1));
        let problem = w.report().problem.unwrap_or_default();
        assert!(problem.contains("the head was rewritten"), "{problem}");
    }

    #[test]
    fn audit_actions_read_back_and_keep_their_text() {
        let all = AuditAction::all();
        let texts: std::collections::BTreeSet<String> = all.iter().map(|a| a.to_string()).collect();
        assert_eq!(texts.len(), all.len(), "two actions share a text");
        for a in &all {
            assert_eq!(a.to_string().parse::<AuditAction>(), Ok(*a));
        }
        for (a, text) in [
            (AuditAction::GrantTimeBound, "grant.time_bound"),
            (AuditAction::EngineRecovered, "engine.recovered"),
            (AuditAction::RunEnded(RunState::Succeeded), "run.succeeded"),
            (
                AuditAction::StepDone(StepAction::CreateAccount),
                "step.create_account",
            ),
            (
                AuditAction::ApprovalDecided(Verdict::Approve),
                "approval.approve",
            ),
            (
                AuditAction::SchedulerRaised(EventType::EngagementEnd),
                "scheduler.engagement_end",
            ),
        ] {
            assert_eq!(a.to_string(), text);
        }
        for unknown in ["grant.renewed", "step.teleport", "run", "token.created", ""] {
            assert_eq!(
                unknown.parse::<AuditAction>(),
                Err(UnknownAuditAction(unknown.to_string()))
            );
        }
    }
}
