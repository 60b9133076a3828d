//! What the outcome of one step's call does: to the step (done, retried when, waiting, failed),
//! to the person's access as tenure records it, and to the audit trail. The worker calls the
//! connector, hands the result here with the step's facts, and records the [`StepDecision`]
//! in its batch; retry and backoff are decided here, without I/O. What a step cancelled before
//! it ended leaves of the person's access is decided here too ([`cancelled`]).

use crate::audit::AuditAction;
use crate::config::EngineSettings;
use crate::planner::Action;
use crate::retry::backoff_ms;
use crate::run::StepState;
use crate::{AccountState, GrantState};
use rand::Rng;
use serde_json::json;

/// What came of trying a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutcome {
    /// The system's circuit is open until this time: no call was made.
    Deferred(i64),
    /// The system did it.
    Succeeded,
    /// The system accepted it and will finish it later (a person's task, a callback): look
    /// again after `recheck_after_ms`.
    Waiting {
        /// What it waits for.
        message: String,
        /// When to look again.
        recheck_after_ms: u64,
    },
    /// The call failed.
    Failed {
        /// The error.
        message: String,
        /// `Some` when it may pass if tried again, with the least delay the system asked for
        /// (0 when it named none); `None` when trying again cannot help.
        retry_after_ms: Option<u64>,
        /// The call went out and no answer came: the system may have done it.
        unanswered: bool,
    },
}

/// The step, as the decision needs it.
#[derive(Debug, Clone, Copy)]
pub struct StepFacts<'a> {
    /// What the step does.
    pub action: Action,
    /// Calls made before this one.
    pub attempts: i64,
    /// The step of the run this one undoes, for a compensation.
    pub compensation_of: Option<i64>,
    /// The error or wait recorded last, if any.
    pub last_error: Option<&'a str>,
    /// An earlier call of the step went unanswered: the system may have done it.
    pub maybe_applied: bool,
    /// The step's operation id (sent with every call of it).
    pub op_id: &'a str,
    /// Why the step exists, for the audit trail.
    pub why: &'a str,
}

/// What the step's outcome changes in tenure's record of the person's access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessChange {
    /// The account on the step's system is now in this state.
    Account(AccountState),
    /// The step's entitlement is now in this state.
    Grant(GrantState),
    /// The account planned on the step's system was never made: forget it.
    ForgetPendingAccount,
    /// The grant planned for the step's entitlement was never made: forget it.
    ForgetPendingGrant,
}

/// Which way the outcome went, as the `tenure_step_outcomes_total` metric labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// Put back until the circuit closes.
    Deferred,
    /// Done.
    Succeeded,
    /// Waiting on the system.
    Waiting,
    /// Failed, tried again later.
    Retried,
    /// Failed for good.
    Failed,
}

impl OutcomeKind {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Deferred => "deferred",
            OutcomeKind::Succeeded => "succeeded",
            OutcomeKind::Waiting => "waiting",
            OutcomeKind::Retried => "retried",
            OutcomeKind::Failed => "failed",
        }
    }
}

/// An audit entry the outcome calls for (its actor, person, system and run are the step's).
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeAudit {
    /// The action.
    pub action: AuditAction,
    /// The reason shown.
    pub reason: String,
    /// The details.
    pub details: serde_json::Value,
}

/// What to record for one step's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct StepDecision {
    /// The step's new state.
    pub state: StepState,
    /// Calls made, this one included when a call was made and counts.
    pub attempts: i64,
    /// The error or wait to show on the step.
    pub last_error: Option<String>,
    /// When the step is next due, when it stays pending.
    pub available_at: Option<i64>,
    /// A call of the step, this one or an earlier, went unanswered: the system may have done
    /// it (kept on the step, so its final failure knows).
    pub maybe_applied: bool,
    /// The change to the person's access, if any.
    pub access: Option<AccessChange>,
    /// The step of the run this outcome has now undone (a compensation that succeeded).
    pub compensated: Option<i64>,
    /// The audit entry, if any.
    pub audit: Option<OutcomeAudit>,
    /// Which way it went.
    pub kind: OutcomeKind,
}

/// Decides what one step's outcome does, at `now`. A retry's delay is drawn from `rng`
/// (backoff with jitter, at least what the system asked for); a step that has used
/// `settings.max_attempts` calls, or whose error cannot pass, fails.
pub fn decide(
    step: StepFacts<'_>,
    outcome: CallOutcome,
    settings: &EngineSettings,
    now: i64,
    rng: &mut impl Rng,
) -> StepDecision {
    let attempts = step.attempts + 1;
    let maybe_applied = step.maybe_applied
        || matches!(
            outcome,
            CallOutcome::Failed {
                unanswered: true,
                ..
            }
        );
    let pending = |attempts, last_error, at, audit, kind| StepDecision {
        state: StepState::Pending,
        attempts,
        last_error,
        available_at: Some(at),
        maybe_applied,
        access: None,
        compensated: None,
        audit,
        kind,
    };
    match outcome {
        // No call was made: no attempt spent.
        CallOutcome::Deferred(until) => pending(
            step.attempts,
            Some("circuit open".into()),
            until,
            None,
            OutcomeKind::Deferred,
        ),
        CallOutcome::Succeeded => StepDecision {
            state: StepState::Succeeded,
            attempts,
            last_error: None,
            available_at: None,
            maybe_applied,
            access: match step.action {
                Action::CreateAccount | Action::EnableAccount => {
                    Some(AccessChange::Account(AccountState::Active))
                }
                Action::DisableAccount => Some(AccessChange::Account(AccountState::Disabled)),
                Action::DeleteAccount => Some(AccessChange::Account(AccountState::Deleted)),
                Action::Grant => Some(AccessChange::Grant(GrantState::Granted)),
                Action::Revoke => Some(AccessChange::Grant(GrantState::Revoked)),
                Action::UpdateAccount => None,
            },
            compensated: step.compensation_of,
            audit: Some(OutcomeAudit {
                action: AuditAction::StepDone(step.action),
                reason: step.why.to_string(),
                details: json!({ "attempts": attempts, "op_id": step.op_id }),
            }),
            kind: OutcomeKind::Succeeded,
        },
        // Accepted, finished later by a person or a callback: no attempt spent; a wait is
        // audited when it first shows, not at every look.
        CallOutcome::Waiting {
            message,
            recheck_after_ms,
        } => {
            let audit = (step.last_error != Some(message.as_str())).then(|| OutcomeAudit {
                action: AuditAction::StepWaiting,
                reason: message.clone(),
                details: json!({ "action": step.action, "recheck_after_ms": recheck_after_ms }),
            });
            pending(
                step.attempts,
                Some(message),
                now.saturating_add(recheck_after_ms.min(i64::MAX as u64) as i64),
                audit,
                OutcomeKind::Waiting,
            )
        }
        CallOutcome::Failed {
            message,
            retry_after_ms: Some(asked),
            ..
        } if attempts < i64::from(settings.max_attempts) => {
            let delay = backoff_ms(
                attempts as u32,
                settings.backoff_base_ms,
                settings.backoff_max_ms,
                rng,
            )
            .max(asked)
            .min(i64::MAX as u64) as i64;
            let audit = OutcomeAudit {
                action: AuditAction::StepRetryScheduled,
                reason: message.clone(),
                details: json!({ "attempts": attempts, "retry_in_ms": delay, "action": step.action }),
            };
            pending(
                attempts,
                Some(message),
                now.saturating_add(delay),
                Some(audit),
                OutcomeKind::Retried,
            )
        }
        CallOutcome::Failed { message, .. } => StepDecision {
            state: StepState::Failed,
            attempts,
            last_error: Some(message.clone()),
            available_at: None,
            maybe_applied,
            access: match (step.action, maybe_applied) {
                // Planned access that did not happen.
                (Action::CreateAccount, false) => Some(AccessChange::ForgetPendingAccount),
                (Action::Grant, false) => Some(AccessChange::Grant(GrantState::Failed)),
                // A change that may or may not have happened: neither state can be trusted.
                // A later run that wants the access makes it again, one that does not takes it
                // away; both are answered "already so" where there is nothing to do.
                (
                    Action::CreateAccount
                    | Action::EnableAccount
                    | Action::DisableAccount
                    | Action::DeleteAccount,
                    true,
                ) => Some(AccessChange::Account(AccountState::Uncertain)),
                (Action::Grant | Action::Revoke, true) => {
                    Some(AccessChange::Grant(GrantState::Uncertain))
                }
                _ => None,
            },
            compensated: None,
            audit: Some(OutcomeAudit {
                action: AuditAction::StepFailed,
                reason: message,
                details: json!({
                    "attempts": attempts,
                    "action": step.action,
                    "why": step.why,
                    "outcome_unknown": maybe_applied,
                }),
            }),
            kind: OutcomeKind::Failed,
        },
    }
}

/// A step cancelled before it ended (by an operator, by a leave that takes precedence, by a
/// grant no longer wanted), as [`cancelled`] needs it.
#[derive(Debug, Clone, Copy)]
pub struct CancelledStep<'a> {
    /// What the step did.
    pub action: Action,
    /// It was claimed before: a call went out, or may have.
    pub claimed: bool,
    /// Calls spent on it.
    pub attempts: i64,
    /// The error or wait recorded last, if any.
    pub last_error: Option<&'a str>,
}

impl CancelledStep<'_> {
    /// Whether a call of the step may have changed its system: it was claimed, and calls were
    /// spent on it or its last call was not answered (a lease that ran out mid-call). A step
    /// whose last call was answered "waiting" (a task, a callback: withdrawn with the step)
    /// or that was only deferred by an open circuit made nothing.
    pub fn may_have_acted(&self) -> bool {
        self.claimed && (self.attempts > 0 || self.last_error.is_none())
    }
}

/// What a cancelled step leaves of the person's access as tenure records it. Planning marked
/// what the step was to make `pending`; a step that may have acted leaves it `uncertain`
/// (a later run makes it again if wanted, a leave takes it away), one that cannot have acted
/// forgets it as never made. Removals leave the access as it was: still held as far as tenure
/// knows, so a later run (a leave) removes it again.
pub fn cancelled(step: CancelledStep<'_>) -> Option<AccessChange> {
    match (step.action, step.may_have_acted()) {
        (Action::CreateAccount | Action::EnableAccount, true) => {
            Some(AccessChange::Account(AccountState::Uncertain))
        }
        (Action::Grant, true) => Some(AccessChange::Grant(GrantState::Uncertain)),
        (Action::CreateAccount, false) => Some(AccessChange::ForgetPendingAccount),
        (Action::Grant, false) => Some(AccessChange::ForgetPendingGrant),
        (
            Action::EnableAccount
            | Action::UpdateAccount
            | Action::DisableAccount
            | Action::DeleteAccount
            | Action::Revoke,
            _,
        ) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const ACTIONS: [Action; 7] = [
        Action::CreateAccount,
        Action::EnableAccount,
        Action::UpdateAccount,
        Action::DisableAccount,
        Action::DeleteAccount,
        Action::Grant,
        Action::Revoke,
    ];

    const NOW: i64 = 1_000_000;

    fn facts(action: Action, attempts: i64) -> StepFacts<'static> {
        StepFacts {
            action,
            attempts,
            compensation_of: None,
            last_error: None,
            maybe_applied: false,
            op_id: "op-1",
            why: "lifecycle run r1",
        }
    }

    fn outcome() -> impl Strategy<Value = CallOutcome> {
        prop_oneof![
            // A circuit is open until a time to come.
            (NOW..2 * NOW).prop_map(CallOutcome::Deferred),
            Just(CallOutcome::Succeeded),
            ("[a-z ]{0,12}", 0u64..100_000).prop_map(|(message, recheck_after_ms)| {
                CallOutcome::Waiting {
                    message,
                    recheck_after_ms,
                }
            }),
            (
                "[a-z ]{0,12}",
                proptest::option::of(0u64..200_000),
                any::<bool>()
            )
                .prop_map(|(message, retry_after_ms, unanswered)| {
                    CallOutcome::Failed {
                        message,
                        // An unanswered call is always worth another try.
                        retry_after_ms: if unanswered {
                            Some(retry_after_ms.unwrap_or(0))
                        } else {
                            retry_after_ms
                        },
                        unanswered,
                    }
                }),
        ]
    }

    proptest! {
        /// Whatever comes back, after any number of earlier calls: a step never goes past its
        /// attempts, spends one only when a call was made, stays pending only with a time to
        /// come back, retries no sooner than the system asked nor later than the backoff's cap
        /// allows, and changes access only as its action says.
        #[test]
        fn every_outcome_keeps_the_step_within_its_rules(
            action in proptest::sample::select(ACTIONS.to_vec()),
            attempts in 0i64..8,
            outcome in outcome(),
            earlier_unanswered in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let settings = EngineSettings::default();
            let max = i64::from(settings.max_attempts);
            prop_assume!(attempts < max);
            let now = NOW;
            let step = StepFacts { maybe_applied: earlier_unanswered, ..facts(action, attempts) };
            let d = decide(step, outcome.clone(), &settings, now, &mut StdRng::seed_from_u64(seed));
            // Once a call went unanswered, the step remembers it.
            let unanswered = matches!(outcome, CallOutcome::Failed { unanswered: true, .. });
            prop_assert_eq!(d.maybe_applied, earlier_unanswered || unanswered);
            prop_assert!(d.attempts <= max);
            match &outcome {
                CallOutcome::Deferred(until) => {
                    prop_assert_eq!(d.attempts, attempts);
                    prop_assert_eq!(d.available_at, Some(*until));
                    prop_assert!(d.audit.is_none());
                }
                CallOutcome::Waiting { recheck_after_ms, .. } => {
                    prop_assert_eq!(d.attempts, attempts);
                    prop_assert_eq!(d.available_at, Some(now + *recheck_after_ms as i64));
                }
                _ => prop_assert_eq!(d.attempts, attempts + 1),
            }
            match d.state {
                StepState::Pending => prop_assert!(d.available_at.is_some_and(|t| t >= now)),
                _ => prop_assert!(d.available_at.is_none()),
            }
            if d.kind == OutcomeKind::Retried {
                let CallOutcome::Failed { retry_after_ms: Some(asked), .. } = outcome else {
                    panic!("a retry of no retryable failure")
                };
                let delay = d.available_at.unwrap() - now;
                prop_assert!(delay >= asked as i64);
                prop_assert!(delay <= settings.backoff_max_ms.max(asked) as i64);
                prop_assert!(d.attempts < max);
            }
            match d.access {
                // A failure that may have made access leaves it uncertain, never forgotten.
                Some(AccessChange::Account(AccountState::Uncertain)) => prop_assert!(
                    action != Action::UpdateAccount
                        && d.state == StepState::Failed
                        && d.maybe_applied
                ),
                Some(AccessChange::Grant(GrantState::Uncertain)) => prop_assert!(
                    matches!(action, Action::Grant | Action::Revoke)
                        && d.state == StepState::Failed
                        && d.maybe_applied
                ),
                Some(AccessChange::Account(_)) => prop_assert!(matches!(
                    action,
                    Action::CreateAccount | Action::EnableAccount | Action::DisableAccount | Action::DeleteAccount
                ) && d.state == StepState::Succeeded),
                Some(AccessChange::Grant(GrantState::Failed)) | Some(AccessChange::ForgetPendingAccount) => {
                    prop_assert!(d.state == StepState::Failed && !d.maybe_applied)
                }
                Some(AccessChange::Grant(_)) => prop_assert!(
                    matches!(action, Action::Grant | Action::Revoke) && d.state == StepState::Succeeded
                ),
                // Only a cancel forgets a planned grant; a failed one is recorded `failed`.
                Some(AccessChange::ForgetPendingGrant) => prop_assert!(false, "{:?}", d),
                None => {}
            }
        }

        /// A step failing with a passing error every time is tried exactly `max_attempts`
        /// times, each retry later than the last call, then fails once.
        #[test]
        fn a_step_that_keeps_failing_is_tried_max_attempts_times(seed in any::<u64>()) {
            let settings = EngineSettings::default();
            let mut rng = StdRng::seed_from_u64(seed);
            let (mut attempts, mut now, mut calls) = (0, 0i64, 0);
            loop {
                calls += 1;
                let d = decide(
                    facts(Action::Grant, attempts),
                    CallOutcome::Failed { message: "busy".into(), retry_after_ms: Some(0), unanswered: false },
                    &settings,
                    now,
                    &mut rng,
                );
                attempts = d.attempts;
                if d.state == StepState::Failed {
                    prop_assert_eq!(d.access, Some(AccessChange::Grant(GrantState::Failed)));
                    break;
                }
                let next = d.available_at.unwrap();
                prop_assert!(next > now);
                now = next;
            }
            prop_assert_eq!(calls, settings.max_attempts);
        }
    }

    #[test]
    fn a_wait_is_audited_when_it_first_shows_and_a_compensation_marks_what_it_undid() {
        let settings = EngineSettings::default();
        let mut rng = StdRng::seed_from_u64(1);
        let waiting = || CallOutcome::Waiting {
            message: "task t1 is open".into(),
            recheck_after_ms: 60_000,
        };
        let first = decide(facts(Action::Grant, 0), waiting(), &settings, 0, &mut rng);
        assert_eq!(first.audit.unwrap().action, AuditAction::StepWaiting);
        let again = StepFacts {
            last_error: Some("task t1 is open"),
            ..facts(Action::Grant, 0)
        };
        assert!(
            decide(again, waiting(), &settings, 0, &mut rng)
                .audit
                .is_none()
        );

        let undo = StepFacts {
            compensation_of: Some(2),
            ..facts(Action::Revoke, 0)
        };
        let d = decide(undo, CallOutcome::Succeeded, &settings, 0, &mut rng);
        assert_eq!(d.compensated, Some(2));
        assert_eq!(d.access, Some(AccessChange::Grant(GrantState::Revoked)));
        let audit = d.audit.unwrap();
        assert_eq!(audit.action, AuditAction::StepDone(Action::Revoke));
        assert_eq!(audit.details["op_id"], "op-1");

        // A failure that cannot pass fails at once, whatever attempts are left.
        let d = decide(
            facts(Action::CreateAccount, 0),
            CallOutcome::Failed {
                message: "no such group".into(),
                retry_after_ms: None,
                unanswered: false,
            },
            &settings,
            0,
            &mut rng,
        );
        assert_eq!(
            (d.state, d.access),
            (StepState::Failed, Some(AccessChange::ForgetPendingAccount))
        );
    }

    /// A create that timed out (the system may have made the account), then failed for good
    /// on a later call that was plainly refused, leaves the account uncertain: a leave
    /// disables it. The same create refused every time is forgotten as never made. Removals
    /// are uncertain the same way.
    #[test]
    fn a_step_that_failed_after_an_unanswered_call_leaves_its_access_uncertain() {
        let settings = EngineSettings {
            max_attempts: 2,
            ..EngineSettings::default()
        };
        let mut rng = StdRng::seed_from_u64(7);
        let failed = |unanswered| CallOutcome::Failed {
            message: if unanswered {
                "timed out"
            } else {
                "unavailable"
            }
            .into(),
            retry_after_ms: Some(0),
            unanswered,
        };
        for (action, uncertain) in [
            (
                Action::CreateAccount,
                AccessChange::Account(AccountState::Uncertain),
            ),
            (
                Action::EnableAccount,
                AccessChange::Account(AccountState::Uncertain),
            ),
            (Action::Grant, AccessChange::Grant(GrantState::Uncertain)),
        ] {
            let first = decide(facts(action, 0), failed(true), &settings, 0, &mut rng);
            assert_eq!(
                (first.state, first.maybe_applied),
                (StepState::Pending, true)
            );
            let last = StepFacts {
                maybe_applied: first.maybe_applied,
                ..facts(action, first.attempts)
            };
            let d = decide(last, failed(false), &settings, 1, &mut rng);
            assert_eq!((d.state, d.access), (StepState::Failed, Some(uncertain)));
            assert_eq!(d.audit.unwrap().details["outcome_unknown"], true);

            // Never unanswered: what was planned did not happen.
            let d = decide(facts(action, 1), failed(false), &settings, 1, &mut rng);
            assert_eq!(
                d.access,
                match action {
                    Action::CreateAccount => Some(AccessChange::ForgetPendingAccount),
                    Action::Grant => Some(AccessChange::Grant(GrantState::Failed)),
                    _ => None,
                }
            );
        }
        // A removal that may have happened leaves the access uncertain too: taken away again
        // if still unwanted, made again if wanted once more.
        for (action, uncertain) in [
            (
                Action::DisableAccount,
                AccessChange::Account(AccountState::Uncertain),
            ),
            (Action::Revoke, AccessChange::Grant(GrantState::Uncertain)),
        ] {
            let step = StepFacts {
                maybe_applied: true,
                ..facts(action, 1)
            };
            let d = decide(step, failed(false), &settings, 1, &mut rng);
            assert_eq!((d.state, d.access), (StepState::Failed, Some(uncertain)));
        }
        let d = decide(
            facts(Action::Revoke, 1),
            failed(false),
            &settings,
            1,
            &mut rng,
        );
        assert_eq!((d.state, d.access), (StepState::Failed, None));
    }

    proptest! {
        /// A cancelled step that cannot have acted forgets what it planned; one that may have
        /// leaves its account or grant uncertain; a removal leaves the access as recorded.
        #[test]
        fn a_cancelled_step_leaves_uncertain_only_what_it_may_have_made(
            action in proptest::sample::select(ACTIONS.to_vec()),
            claimed in any::<bool>(),
            attempts in 0i64..4,
            last_error in proptest::option::of("[a-z ]{1,8}"),
        ) {
            let step = CancelledStep { action, claimed, attempts, last_error: last_error.as_deref() };
            let acted = claimed && (attempts > 0 || last_error.is_none());
            prop_assert_eq!(step.may_have_acted(), acted);
            let change = cancelled(step);
            let uncertain = matches!(
                change,
                Some(AccessChange::Account(AccountState::Uncertain))
                    | Some(AccessChange::Grant(GrantState::Uncertain))
            );
            prop_assert_eq!(
                uncertain,
                acted && matches!(action, Action::CreateAccount | Action::EnableAccount | Action::Grant)
            );
            match action {
                Action::CreateAccount if !acted => {
                    prop_assert_eq!(change, Some(AccessChange::ForgetPendingAccount))
                }
                Action::Grant if !acted => prop_assert_eq!(change, Some(AccessChange::ForgetPendingGrant)),
                Action::UpdateAccount | Action::DisableAccount | Action::DeleteAccount | Action::Revoke => {
                    prop_assert_eq!(change, None)
                }
                _ => {}
            }
        }
    }

    /// The cases by name: a step whose lease ran out mid-call (claimed, nothing recorded) may
    /// have acted; one answered "waiting" (a task withdrawn with it) or never claimed did not.
    #[test]
    fn a_step_taken_back_mid_call_may_have_acted_and_a_waiting_one_did_not() {
        let step = |claimed, attempts, last_error| CancelledStep {
            action: Action::Grant,
            claimed,
            attempts,
            last_error,
        };
        assert_eq!(
            cancelled(step(true, 0, None)),
            Some(AccessChange::Grant(GrantState::Uncertain))
        );
        assert_eq!(
            cancelled(step(true, 0, Some("task t1 open"))),
            Some(AccessChange::ForgetPendingGrant)
        );
        assert_eq!(
            cancelled(step(true, 1, Some("timed out"))),
            Some(AccessChange::Grant(GrantState::Uncertain))
        );
        assert_eq!(
            cancelled(step(false, 0, None)),
            Some(AccessChange::ForgetPendingGrant)
        );
    }
}
