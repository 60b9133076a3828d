//! Runs and steps as state machines.
//!
//! A run is the work one event (or request) causes: steps over phases, ordered per system.
//! The engine records step outcomes; [`evaluate`] then says, from the steps alone, what the run's
//! state is and which (system, phase) lanes may start, so the decision is the same after a crash
//! as before it.
//!
//! The ordering rule: every step acts on one system, and a step waits only for the lower phases
//! of its own system (a grant for its account, a delete for the revokes). Systems advance
//! independently, so a failing, slow or manual system holds back only its own later steps.
//! There is no step without a system and no step that depends across systems: approvals and
//! manual tasks wait inside the step of the system they concern, and notifications are sent by
//! the scheduler, outside runs. A leave's first phase (disabling every account) is released on
//! all systems in the same evaluation.

use crate::event::EventType;
use crate::model::string_enum;
use crate::planner::Action;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

string_enum!(
    /// Where a step stands.
    StepState {
        Pending => "pending",
        Running => "running",
        AwaitingApproval => "awaiting_approval",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
        Compensated => "compensated",
        /// Its approval was denied (or expired): it never runs.
        Denied => "denied",
    }
);

string_enum!(
    /// Where a run stands.
    RunState {
        Pending => "pending",
        Running => "running",
        AwaitingApproval => "awaiting_approval",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
        Compensated => "compensated",
        /// A grant it was to make was denied by its approvers; the rest of it ran.
        Denied => "denied",
    }
);

impl RunState {
    /// Whether the run will do nothing more on its own.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Succeeded
                | RunState::Cancelled
                | RunState::Compensated
                | RunState::Failed
                | RunState::Denied
        )
    }
}

impl StepState {
    /// Whether the step will do nothing more on its own.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepState::Succeeded
                | StepState::Failed
                | StepState::Cancelled
                | StepState::Compensated
                | StepState::Denied
        )
    }
}

string_enum!(
    /// What caused a run: the event type behind it, or what tenure started itself.
    RunKind {
        Hire => "hire",
        Transfer => "transfer",
        Leave => "leave",
        Rehire => "rehire",
        ContractChange => "contract_change",
        EngagementStart => "engagement_start",
        EngagementEnd => "engagement_end",
        /// An access request (no event behind it).
        Request => "request",
        /// Time-bound access reached its end: one revoke step.
        Expiry => "expiry",
        /// A rule change: the person's access brought to what the new rules say.
        Reconcile => "reconcile",
        /// Reconciliation found a target system disagreeing with tenure's records and corrected
        /// them: the person's access brought to what the rules say again.
        Remediate => "remediate",
        /// An access review decided the access goes: one revoke step per item.
        Review => "review",
    }
);

impl From<EventType> for RunKind {
    fn from(t: EventType) -> RunKind {
        match t {
            EventType::Hire => RunKind::Hire,
            EventType::Transfer => RunKind::Transfer,
            EventType::Leave => RunKind::Leave,
            EventType::Rehire => RunKind::Rehire,
            EventType::ContractChange => RunKind::ContractChange,
            EventType::EngagementStart => RunKind::EngagementStart,
            EventType::EngagementEnd => RunKind::EngagementEnd,
        }
    }
}

impl RunKind {
    /// The event type a run of this kind is for, if an event is behind it.
    pub fn event_type(self) -> Option<EventType> {
        Some(match self {
            RunKind::Hire => EventType::Hire,
            RunKind::Transfer => EventType::Transfer,
            RunKind::Leave => EventType::Leave,
            RunKind::Rehire => EventType::Rehire,
            RunKind::ContractChange => EventType::ContractChange,
            RunKind::EngagementStart => EventType::EngagementStart,
            RunKind::EngagementEnd => EventType::EngagementEnd,
            RunKind::Request
            | RunKind::Expiry
            | RunKind::Reconcile
            | RunKind::Remediate
            | RunKind::Review => {
                return None;
            }
        })
    }
}

/// How urgent a run and its steps are: urgent work (a leaver losing access, an expiry, a
/// break-glass grant) is claimed before anything else and has in-flight capacity of its own.
/// Stored as an integer (`Urgent` 0, `Normal` 10) that the step queue orders by.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(into = "i64", try_from = "i64")]
pub enum Priority {
    /// Ahead of everything else.
    Urgent,
    /// In order of arrival.
    Normal,
}

/// A stored priority that is neither urgent (0) nor normal (10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown priority {0}, expected 0 (urgent) or 10 (normal)")]
pub struct UnknownPriority(pub i64);

impl Priority {
    /// The stored integer: lower is claimed first.
    pub fn as_i64(self) -> i64 {
        match self {
            Priority::Urgent => 0,
            Priority::Normal => 10,
        }
    }

    /// Whether this is urgent work.
    pub fn is_urgent(self) -> bool {
        self == Priority::Urgent
    }

    /// The priority of an event's run: urgent for those that take access away.
    pub fn of_event(t: EventType) -> Priority {
        if t.is_urgent() {
            Priority::Urgent
        } else {
            Priority::Normal
        }
    }
}

impl From<Priority> for i64 {
    fn from(p: Priority) -> i64 {
        p.as_i64()
    }
}

impl TryFrom<i64> for Priority {
    type Error = UnknownPriority;

    fn try_from(n: i64) -> Result<Priority, UnknownPriority> {
        match n {
            0 => Ok(Priority::Urgent),
            10 => Ok(Priority::Normal),
            other => Err(UnknownPriority(other)),
        }
    }
}

/// What the engine knows of one step when evaluating its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepStatus {
    /// The system the step acts on: its lane.
    pub system: String,
    /// The step's phase within its system's lane.
    pub phase: u32,
    /// Its state.
    pub state: StepState,
    /// Whether it may be claimed (its phase has started).
    pub ready: bool,
    /// Whether it undoes another step of a cancelled run.
    pub compensation: bool,
}

/// One phase of one system's steps in a run: the unit in which steps are released.
///
/// Each system is a lane that advances on its own: a phase of a system starts once that
/// system's lower phases are finished, whatever the other systems are doing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lane {
    /// The system.
    pub system: String,
    /// The phase whose pending steps become ready.
    pub phase: u32,
}

/// What a run's steps say about the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The run's state.
    pub state: RunState,
    /// The lanes whose pending steps become ready now, at most one phase per system.
    pub release: Vec<Lane>,
    /// The run was cancelled and nothing is in flight: create compensation steps now.
    pub compensate: bool,
    /// The run was cancelled, and some of its own steps are queued again: a call in flight at
    /// the cancel came back to be retried, or a lease ran out and the step was taken back.
    /// Cancel them (as the cancel did the steps queued then) before anything is undone.
    pub cancel_queued: bool,
}

/// Evaluates a run from its steps. `cancel_requested` is set once an operator cancels it.
///
/// Steps are ordered per system only (see [`Lane`]): a failed, slow or waiting system holds
/// back its own later steps and nothing else. The run is `running` while any step can still
/// move on its own, `awaiting_approval` when only approvals can move it, `failed` when a step
/// failed for good and nothing else can move, and otherwise ends as its steps say.
pub fn evaluate(steps: &[StepStatus], cancel_requested: bool) -> Evaluation {
    let running = steps.iter().any(|s| s.state == StepState::Running);
    let keep = |state| Evaluation {
        state,
        release: Vec::new(),
        compensate: false,
        cancel_queued: false,
    };
    if cancel_requested {
        // Nothing is undone while a call is in flight: its outcome decides what there is to undo.
        if running {
            return keep(RunState::Running);
        }
        if steps.iter().any(|s| {
            !s.compensation && matches!(s.state, StepState::Pending | StepState::AwaitingApproval)
        }) {
            return Evaluation {
                cancel_queued: true,
                ..keep(RunState::Running)
            };
        }
        let comp: Vec<&StepStatus> = steps.iter().filter(|s| s.compensation).collect();
        if comp.is_empty() {
            let anything_done = steps.iter().any(|s| s.state == StepState::Succeeded);
            return if anything_done {
                Evaluation {
                    compensate: true,
                    ..keep(RunState::Running)
                }
            } else {
                keep(RunState::Cancelled)
            };
        }
        let p = progress(comp.iter().copied());
        let state = if p.can_move() {
            RunState::Running
        } else if p.failed {
            RunState::Failed
        } else {
            RunState::Compensated
        };
        return Evaluation {
            release: p.release,
            ..keep(state)
        };
    }
    let p = progress(steps.iter());
    let state = if p.can_move() {
        RunState::Running
    } else if p.awaiting_approval {
        // An approver can still move it, even if another system failed.
        RunState::AwaitingApproval
    } else if p.failed {
        RunState::Failed
    } else if !p.finished {
        // Unreachable from consistent steps (an unfinished lane is movable, waiting or
        // failed); kept running rather than ended on a guess.
        RunState::Running
    } else if steps.iter().any(|s| s.state == StepState::Cancelled) {
        // Steps cancelled without an operator's cancel: another run (a leave) superseded this one.
        RunState::Cancelled
    } else if steps.iter().any(|s| s.state == StepState::Denied) {
        RunState::Denied
    } else {
        RunState::Succeeded
    };
    Evaluation {
        release: p.release,
        ..keep(state)
    }
}

/// Whether a step is finished for the purpose of ordering: nothing more will happen to it
/// unless an operator retries the run (a failed step is not finished: it holds its lane).
fn finished(state: StepState) -> bool {
    matches!(
        state,
        StepState::Succeeded | StepState::Cancelled | StepState::Compensated | StepState::Denied
    )
}

/// Where the lanes of a set of steps stand.
#[derive(Debug, Default)]
struct Progress {
    /// Lanes to release now.
    release: Vec<Lane>,
    /// A step is running, or released and pending (queued, retrying or waiting for a task).
    in_flight: bool,
    /// A step failed for good.
    failed: bool,
    /// A step waits for an approval.
    awaiting_approval: bool,
    /// Every step is finished.
    finished: bool,
}

impl Progress {
    fn can_move(&self) -> bool {
        self.in_flight || !self.release.is_empty()
    }
}

fn progress<'a>(steps: impl Iterator<Item = &'a StepStatus>) -> Progress {
    let mut lanes: BTreeMap<&str, Vec<&StepStatus>> = BTreeMap::new();
    for s in steps {
        lanes.entry(s.system.as_str()).or_default().push(s);
    }
    let mut p = Progress {
        finished: true,
        ..Progress::default()
    };
    for (system, steps) in lanes {
        p.in_flight |= steps
            .iter()
            .any(|s| s.state == StepState::Running || (s.state == StepState::Pending && s.ready));
        p.failed |= steps.iter().any(|s| s.state == StepState::Failed);
        p.awaiting_approval |= steps.iter().any(|s| s.state == StepState::AwaitingApproval);
        let Some(phase) = steps
            .iter()
            .filter(|s| !finished(s.state))
            .map(|s| s.phase)
            .min()
        else {
            continue;
        };
        p.finished = false;
        let blocked = steps
            .iter()
            .any(|s| s.phase == phase && s.state == StepState::Pending && !s.ready);
        if blocked {
            p.release.push(Lane {
                system: system.to_string(),
                phase,
            });
        }
    }
    p
}

/// The phase at which compensation steps start: above every phase the planner uses.
pub const COMPENSATION_PHASE: u32 = 100;

/// What compensation planning knows of one step of a cancelled run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoneStep {
    /// The step's phase.
    pub phase: u32,
    /// What it did.
    pub action: Action,
    /// Its state.
    pub state: StepState,
    /// Whether it is itself a compensation step.
    pub compensation: bool,
}

/// A step that undoes a done step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undo {
    /// The position, in the slice given to [`compensation`], of the step it undoes.
    pub of: usize,
    /// Its phase: later phases of a system are undone first.
    pub phase: u32,
    /// The action that undoes it.
    pub action: Action,
}

/// The steps that undo what a cancelled run did: one for every succeeded step whose action
/// can be undone (updates and deletes cannot), latest first. Phases run in reverse within each
/// system's lane, so an account is deleted only after its grants are revoked.
pub fn compensation(steps: &[DoneStep]) -> Vec<Undo> {
    let max_phase = steps.iter().map(|s| s.phase).max().unwrap_or(0);
    steps
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, s)| s.state == StepState::Succeeded && !s.compensation)
        .filter_map(|(of, s)| {
            Some(Undo {
                of,
                phase: COMPENSATION_PHASE + (max_phase - s.phase),
                action: s.action.compensation()?,
            })
        })
        .collect()
}

string_enum!(
    /// How one system's part of a run stands.
    SystemState {
        /// Every step of the system is finished.
        Done => "done",
        /// Steps are in flight or queued (retries with backoff included).
        Running => "running",
        /// Only a person can move it: a step waits for an approval or a manual task.
        Waiting => "waiting",
        /// A step failed for good; the system's later steps are held until the run is retried.
        Failed => "failed",
        /// Its steps wait for nothing the run will do: the run ended (or is being cancelled)
        /// with them unreleased.
        Blocked => "blocked",
    }
);

/// What the per-system summary knows of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepFacts<'a> {
    /// The step's system.
    pub system: &'a str,
    /// Its state.
    pub state: StepState,
    /// Whether it was released.
    pub ready: bool,
    /// Whether it waits for a person to finish a manual task.
    pub task_open: bool,
    /// Its last error, if any.
    pub last_error: Option<&'a str>,
}

/// One system's part of a run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SystemProgress {
    /// The system.
    pub system: String,
    /// Where it stands.
    pub state: SystemState,
    /// Its steps in the run.
    pub steps: u32,
    /// Of those, finished (succeeded, cancelled, compensated or denied).
    pub done: u32,
    /// Of those, failed for good.
    pub failed: u32,
    /// Of those, waiting for a person (an approval or a manual task).
    pub waiting: u32,
    /// Of those, pending and not yet released.
    pub held: u32,
    /// The error of a failed step, else the latest word of an unfinished one.
    pub last_error: Option<String>,
}

/// Summarises a run's steps per system, in system order. `run` is the run's own state: the
/// steps of a run that will do nothing more on its own are `blocked` rather than `running`.
pub fn systems_progress(steps: &[StepFacts<'_>], run: RunState) -> Vec<SystemProgress> {
    let mut by_system: BTreeMap<&str, Vec<&StepFacts<'_>>> = BTreeMap::new();
    for s in steps {
        by_system.entry(s.system).or_default().push(s);
    }
    by_system
        .into_iter()
        .map(|(system, steps)| {
            let count =
                |f: &dyn Fn(&StepFacts<'_>) -> bool| steps.iter().filter(|s| f(s)).count() as u32;
            let waits = |s: &StepFacts<'_>| {
                s.state == StepState::AwaitingApproval
                    || (s.state == StepState::Pending && s.ready && s.task_open)
            };
            let moving = |s: &StepFacts<'_>| {
                s.state == StepState::Running
                    || (s.state == StepState::Pending && s.ready && !s.task_open)
            };
            let done = count(&|s| finished(s.state));
            let failed = count(&|s| s.state == StepState::Failed);
            let waiting = count(&waits);
            let held = count(&|s| s.state == StepState::Pending && !s.ready);
            let state = if failed > 0 {
                SystemState::Failed
            } else if done == steps.len() as u32 {
                SystemState::Done
            } else if count(&moving) > 0 {
                SystemState::Running
            } else if waiting > 0 {
                SystemState::Waiting
            } else if run.is_terminal() {
                SystemState::Blocked
            } else {
                // About to be released by the run's next evaluation.
                SystemState::Running
            };
            let error_of = |f: &dyn Fn(&StepFacts<'_>) -> bool| {
                steps
                    .iter()
                    .rev()
                    .filter(|s| f(s))
                    .find_map(|s| s.last_error.map(str::to_string))
            };
            let last_error = error_of(&|s| s.state == StepState::Failed)
                .or_else(|| error_of(&|s| !finished(s.state)));
            SystemProgress {
                system: system.to_string(),
                state,
                steps: steps.len() as u32,
                done,
                failed,
                waiting,
                held,
                last_error,
            }
        })
        .collect()
}

/// The deterministic operation id a connector call carries: the same step always sends the
/// same id, so a target system (or connector) can recognise a retry after a crash.
///
/// It is `op_` and 32 hex digits. When the run id is a UUIDv7, as every run id tenure makes
/// is, the first 12 digits are its creation time in milliseconds and the other 20 a hash of
/// the step; otherwise all 32 are the hash. Time first, the ids of a moment's steps sit
/// together in every index of operation ids (the steps', a target system's record of what it
/// did), so storing them touches a few pages at the end of the index, not one page anywhere
/// in it per step.
pub fn operation_id(
    run_id: &str,
    step_index: u32,
    action: Action,
    system: &str,
    entitlement: Option<&str>,
) -> String {
    let mut h = Sha256::new();
    for part in [
        run_id,
        &step_index.to_string(),
        action.as_str(),
        system,
        entitlement.unwrap_or(""),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    let hash = hex::encode(h.finalize());
    match uuid::Uuid::try_parse(run_id) {
        Ok(id) if id.get_version_num() == 7 => {
            let time = &id.simple().to_string()[..12];
            format!("op_{time}{}", &hash[..20])
        }
        _ => format!("op_{}", &hash[..32]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StepState::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn on(system: &str, phase: u32, state: StepState, ready: bool) -> StepStatus {
        StepStatus {
            system: system.to_string(),
            phase,
            state,
            ready,
            compensation: false,
        }
    }

    fn s(phase: u32, state: StepState, ready: bool) -> StepStatus {
        on("crm", phase, state, ready)
    }

    fn lane(system: &str, phase: u32) -> Lane {
        Lane {
            system: system.to_string(),
            phase,
        }
    }

    #[test]
    fn phases_release_in_order() {
        let steps = [s(0, Pending, false), s(1, Pending, false)];
        assert_eq!(evaluate(&steps, false).release, vec![lane("crm", 0)]);
        let steps = [s(0, Succeeded, true), s(1, Pending, false)];
        assert_eq!(evaluate(&steps, false).release, vec![lane("crm", 1)]);
        let steps = [s(0, Succeeded, true), s(1, Running, true)];
        assert_eq!(
            evaluate(&steps, false),
            Evaluation {
                state: RunState::Running,
                release: vec![],
                compensate: false,
                cancel_queued: false,
            }
        );
        let steps = [s(0, Succeeded, true), s(1, Succeeded, true)];
        assert_eq!(evaluate(&steps, false).state, RunState::Succeeded);
        assert_eq!(evaluate(&[], false).state, RunState::Succeeded);
    }

    #[test]
    fn each_system_advances_on_its_own() {
        // The directory's account is done, the CRM's is still being made: the directory's
        // grants start now.
        let steps = [
            on("crm", 0, Running, true),
            on("crm", 1, Pending, false),
            on("dir", 0, Succeeded, true),
            on("dir", 1, Pending, false),
        ];
        let e = evaluate(&steps, false);
        assert_eq!(e.release, vec![lane("dir", 1)]);
        assert_eq!(e.state, RunState::Running);
        // A leave: every system's first phase (the disables) starts in the same evaluation.
        let steps = [
            on("crm", 0, Pending, false),
            on("crm", 2, Pending, false),
            on("dir", 0, Pending, false),
            on("vpn", 0, Pending, false),
            on("vpn", 1, Pending, false),
        ];
        assert_eq!(
            evaluate(&steps, false).release,
            vec![lane("crm", 0), lane("dir", 0), lane("vpn", 0)]
        );
    }

    #[test]
    fn a_failed_system_holds_back_only_its_own_steps() {
        let steps = [
            on("crm", 0, Failed, true),
            on("crm", 1, Pending, false),
            on("dir", 0, Succeeded, true),
            on("dir", 1, Pending, false),
        ];
        let e = evaluate(&steps, false);
        assert_eq!(e.release, vec![lane("dir", 1)]);
        assert_eq!(e.state, RunState::Running);
        // Once the other systems are done, the run has failed: nothing more can move.
        let steps = [
            on("crm", 0, Failed, true),
            on("crm", 1, Pending, false),
            on("dir", 0, Succeeded, true),
            on("dir", 1, Succeeded, true),
        ];
        assert_eq!(
            evaluate(&steps, false),
            Evaluation {
                state: RunState::Failed,
                release: vec![],
                compensate: false,
                cancel_queued: false,
            }
        );
    }

    #[test]
    fn a_failed_step_fails_the_run_once_nothing_runs() {
        let steps = [
            s(0, Failed, true),
            s(0, Running, true),
            s(1, Pending, false),
        ];
        assert_eq!(evaluate(&steps, false).state, RunState::Running);
        let steps = [
            s(0, Failed, true),
            s(0, Succeeded, true),
            s(1, Pending, false),
        ];
        assert_eq!(
            evaluate(&steps, false),
            Evaluation {
                state: RunState::Failed,
                release: vec![],
                compensate: false,
                cancel_queued: false,
            }
        );
    }

    #[test]
    fn a_waiting_task_keeps_the_run_running_without_holding_others() {
        // A manual step waits (pending, released) for its task; the other system goes on.
        let steps = [
            on("vpn", 0, Pending, true),
            on("vpn", 1, Pending, false),
            on("dir", 0, Succeeded, true),
            on("dir", 1, Succeeded, true),
        ];
        let e = evaluate(&steps, false);
        assert_eq!(e.state, RunState::Running);
        assert!(e.release.is_empty());
    }

    #[test]
    fn an_approval_outranks_a_failure_while_it_can_still_move_the_run() {
        let steps = [
            on("crm", 0, Failed, true),
            on("dir", 0, Succeeded, true),
            on("dir", 1, AwaitingApproval, false),
        ];
        assert_eq!(evaluate(&steps, false).state, RunState::AwaitingApproval);
        let steps = [
            on("crm", 0, Failed, true),
            on("dir", 0, Succeeded, true),
            on("dir", 1, Denied, false),
        ];
        assert_eq!(evaluate(&steps, false).state, RunState::Failed);
    }

    #[test]
    fn cancel_compensates_what_was_done() {
        let steps = [s(0, Succeeded, true), s(1, Cancelled, false)];
        assert!(evaluate(&steps, true).compensate);
        let steps = [s(0, Cancelled, true), s(1, Cancelled, false)];
        assert_eq!(evaluate(&steps, true).state, RunState::Cancelled);
        let steps = [s(0, Running, true), s(1, Cancelled, false)];
        assert!(!evaluate(&steps, true).compensate);
        // The call in flight at the cancel came back to be retried: its step is cancelled
        // before anything is undone or the run ends.
        let steps = [
            s(0, Succeeded, true),
            s(0, Pending, true),
            s(1, Cancelled, false),
        ];
        let e = evaluate(&steps, true);
        assert!(e.cancel_queued && !e.compensate);
        assert_eq!(e.state, RunState::Running);
        let steps = [s(0, Pending, true), s(1, Cancelled, false)];
        assert!(evaluate(&steps, true).cancel_queued);
        let comp = StepStatus {
            compensation: true,
            ..s(10, Pending, false)
        };
        let steps = [s(0, Succeeded, true), comp.clone()];
        assert_eq!(evaluate(&steps, true).release, vec![lane("crm", 10)]);
        let done = StepStatus {
            state: Succeeded,
            ready: true,
            ..comp.clone()
        };
        assert_eq!(
            evaluate(&[s(0, Compensated, true), done], true).state,
            RunState::Compensated
        );
        // A compensation that failed on one system does not stop the others'.
        let failed = StepStatus {
            state: Failed,
            ready: true,
            ..comp.clone()
        };
        let other = StepStatus {
            system: "dir".into(),
            ..comp
        };
        let e = evaluate(&[failed.clone(), other.clone()], true);
        assert_eq!(
            (e.state, e.release),
            (RunState::Running, vec![lane("dir", 10)])
        );
        let other = StepStatus {
            state: Succeeded,
            ready: true,
            ..other
        };
        assert_eq!(evaluate(&[failed, other], true).state, RunState::Failed);
    }

    #[test]
    fn compensation_undoes_done_steps_in_reverse() {
        let done = |phase, action, state| DoneStep {
            phase,
            action,
            state,
            compensation: false,
        };
        let steps = [
            done(0, Action::CreateAccount, Succeeded),
            done(0, Action::UpdateAccount, Succeeded),
            done(1, Action::Grant, Succeeded),
            done(1, Action::Grant, Failed),
            done(2, Action::DeleteAccount, Succeeded),
        ];
        assert_eq!(
            compensation(&steps),
            vec![
                Undo {
                    of: 2,
                    phase: COMPENSATION_PHASE + 1,
                    action: Action::Revoke
                },
                Undo {
                    of: 0,
                    phase: COMPENSATION_PHASE + 2,
                    action: Action::DeleteAccount
                },
            ]
        );
    }

    #[test]
    fn a_denied_grant_ends_the_run_denied_once_the_rest_is_done() {
        let steps = [s(0, Succeeded, true), s(1, AwaitingApproval, false)];
        assert_eq!(evaluate(&steps, false).state, RunState::AwaitingApproval);
        let steps = [s(0, Succeeded, true), s(1, Denied, false)];
        assert_eq!(evaluate(&steps, false).state, RunState::Denied);
        let steps = [
            s(0, Succeeded, true),
            s(1, Denied, false),
            s(1, Pending, false),
        ];
        assert_eq!(evaluate(&steps, false).release, vec![lane("crm", 1)]);
    }

    fn facts<'a>(system: &'a str, state: StepState, ready: bool) -> StepFacts<'a> {
        StepFacts {
            system,
            state,
            ready,
            task_open: false,
            last_error: None,
        }
    }

    #[test]
    fn systems_are_summarised_one_by_one() {
        let steps = [
            StepFacts {
                last_error: Some("down: unavailable"),
                ..facts("crm", Failed, true)
            },
            facts("crm", Pending, false),
            facts("dir", Succeeded, true),
            facts("dir", Succeeded, true),
            StepFacts {
                task_open: true,
                last_error: Some("task open for it-desk"),
                ..facts("vpn", Pending, true)
            },
            facts("vpn", Pending, false),
            facts("wiki", Running, true),
            facts("wiki", AwaitingApproval, false),
        ];
        let p = systems_progress(&steps, RunState::Running);
        let states: Vec<_> = p.iter().map(|p| (p.system.as_str(), p.state)).collect();
        assert_eq!(
            states,
            vec![
                ("crm", SystemState::Failed),
                ("dir", SystemState::Done),
                ("vpn", SystemState::Waiting),
                ("wiki", SystemState::Running),
            ]
        );
        assert_eq!(
            p[0],
            SystemProgress {
                system: "crm".into(),
                state: SystemState::Failed,
                steps: 2,
                done: 0,
                failed: 1,
                waiting: 0,
                held: 1,
                last_error: Some("down: unavailable".into()),
            }
        );
        assert_eq!(p[1].last_error, None);
        assert_eq!(p[2].last_error.as_deref(), Some("task open for it-desk"));
        assert_eq!((p[3].waiting, p[2].held), (1, 1));
        // Unreleased steps of a run that ended are blocked, not running.
        let steps = [facts("crm", Cancelled, false), facts("crm", Pending, false)];
        assert_eq!(
            systems_progress(&steps, RunState::Cancelled)[0].state,
            SystemState::Blocked
        );
    }

    #[test]
    fn operation_ids_are_stable_and_distinct() {
        let a = operation_id("r1", 0, Action::Grant, "crm", Some("crm:acme"));
        assert_eq!(
            a,
            operation_id("r1", 0, Action::Grant, "crm", Some("crm:acme"))
        );
        assert_ne!(
            a,
            operation_id("r1", 1, Action::Grant, "crm", Some("crm:acme"))
        );
        assert_ne!(
            operation_id("r1", 0, Action::Grant, "ab", Some("c")),
            operation_id("r1", 0, Action::Grant, "a", Some("bc"))
        );
    }

    #[test]
    fn operation_ids_of_a_uuid_v7_run_start_with_its_time() {
        let earlier = uuid::Uuid::now_v7().to_string();
        let later =
            uuid::Uuid::new_v7(uuid::Timestamp::from_unix_time(4_000_000_000, 0, 0, 0)).to_string();
        let a = operation_id(&earlier, 7, Action::Revoke, "crm", Some("crm:acme"));
        let b = operation_id(&later, 0, Action::Grant, "crm", Some("crm:acme"));
        for id in [&a, &b] {
            assert_eq!(id.len(), 35, "{id}");
            assert!(id[3..].bytes().all(|c| c.is_ascii_hexdigit()), "{id}");
        }
        assert_eq!(&a[3..15], &earlier.replace('-', "")[..12]);
        assert!(a < b, "{a} sorts before {b}");
        assert_eq!(
            a,
            operation_id(&earlier, 7, Action::Revoke, "crm", Some("crm:acme"))
        );
        assert_ne!(
            a,
            operation_id(&earlier, 8, Action::Revoke, "crm", Some("crm:acme"))
        );
        // Any other run id: the whole hash, as before.
        let v4 = "0b9f6a3e-2c4d-4e8f-9a1b-3c5d7e9f1a2b";
        let c = operation_id(v4, 0, Action::Grant, "crm", None);
        assert_eq!(c.len(), 35);
        assert_ne!(&c[3..15], "0b9f6a3e2c4d");
    }

    fn arb_state() -> impl Strategy<Value = StepState> {
        prop::sample::select(StepState::ALL.to_vec())
    }

    fn arb_system() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["crm", "dir", "vpn"]).prop_map(str::to_string)
    }

    /// How a simulated step's calls go.
    #[derive(Debug, Clone, Copy)]
    enum Outcome {
        Succeed,
        /// Fails for good.
        Fail,
        /// A manual task: waits this many claims, then succeeds.
        Wait(u8),
        /// A grant waiting for an approval, decided after this many rounds.
        Approval {
            after: u8,
            approved: bool,
        },
    }

    fn arb_outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            4 => Just(Outcome::Succeed),
            1 => Just(Outcome::Fail),
            1 => (1u8..4).prop_map(Outcome::Wait),
            1 => (0u8..4, any::<bool>()).prop_map(|(after, approved)| Outcome::Approval { after, approved }),
        ]
    }

    #[derive(Debug, Clone)]
    struct Sim {
        status: StepStatus,
        action: Action,
        outcome: Outcome,
        /// For a compensation step, the position of the step it undoes.
        undoes: Option<usize>,
    }

    fn arb_run() -> impl Strategy<Value = Vec<Sim>> {
        let action = prop::sample::select(Action::ALL.to_vec());
        prop::collection::vec((arb_system(), 0u32..3, action, arb_outcome()), 1..14).prop_map(
            |raw| {
                raw.into_iter()
                    .map(|(system, phase, action, outcome)| {
                        let outcome = match outcome {
                            Outcome::Approval { .. } if action != Action::Grant => Outcome::Succeed,
                            o => o,
                        };
                        let state = match outcome {
                            Outcome::Approval { .. } => AwaitingApproval,
                            _ => Pending,
                        };
                        Sim {
                            status: on(&system, phase, state, false),
                            action,
                            outcome,
                            undoes: None,
                        }
                    })
                    .collect()
            },
        )
    }

    /// What driving a simulated run showed.
    struct Driven {
        state: RunState,
        /// Whether the operator's cancel came before the run ended.
        cancelled: bool,
        /// The steps that had succeeded when compensation was planned.
        done_at_compensation: Option<BTreeSet<usize>>,
        /// For each compensation step (by position), the round it was released in.
        released_at: BTreeMap<usize, usize>,
    }

    /// Drives a run by the evaluator's own decisions, checking the ordering rules at every
    /// evaluation. With `cancel_at`, an operator cancels it at that round (or as soon as it
    /// has failed, if it ended earlier).
    fn drive(sims: &mut Vec<Sim>, cancel_at: Option<usize>) -> Result<Driven, TestCaseError> {
        let mut cancelled = false;
        let mut out = Driven {
            state: RunState::Running,
            cancelled: false,
            done_at_compensation: None,
            released_at: BTreeMap::new(),
        };
        for round in 0..80 {
            let statuses: Vec<StepStatus> = sims.iter().map(|s| s.status.clone()).collect();
            let e = evaluate(&statuses, cancelled);
            let comp_phase = statuses.iter().any(|s| s.compensation);
            // Never released while a lower phase of its own system is unfinished.
            for l in &e.release {
                prop_assert!(
                    statuses
                        .iter()
                        .filter(|s| s.compensation == comp_phase
                            && s.system == l.system
                            && s.phase < l.phase)
                        .all(|s| finished(s.state)),
                    "{l:?} released over an unfinished lower phase: {statuses:?}"
                );
            }
            // A system's lanes are decided by its own steps alone: no other system, failed,
            // waiting or slow, changes what it may start.
            if !cancelled {
                for sys in ["crm", "dir", "vpn"] {
                    let own: Vec<StepStatus> = statuses
                        .iter()
                        .filter(|s| s.system == sys)
                        .cloned()
                        .collect();
                    let alone = evaluate(&own, false).release;
                    let together: Vec<Lane> = e
                        .release
                        .iter()
                        .filter(|l| l.system == sys)
                        .cloned()
                        .collect();
                    prop_assert_eq!(alone, together);
                }
            }
            if e.compensate {
                let done: Vec<DoneStep> = sims
                    .iter()
                    .map(|s| DoneStep {
                        phase: s.status.phase,
                        action: s.action,
                        state: s.status.state,
                        compensation: s.status.compensation,
                    })
                    .collect();
                out.done_at_compensation = Some(
                    (0..sims.len())
                        .filter(|i| sims[*i].status.state == Succeeded)
                        .collect(),
                );
                let undo = compensation(&done);
                if undo.is_empty() {
                    // The engine records the cancel as final: nothing done can be undone.
                    out.state = RunState::Cancelled;
                    return Ok(out);
                }
                for u in undo {
                    let of = &sims[u.of];
                    sims.push(Sim {
                        status: StepStatus {
                            system: of.status.system.clone(),
                            phase: u.phase,
                            state: Pending,
                            ready: false,
                            compensation: true,
                        },
                        action: u.action,
                        outcome: Outcome::Succeed,
                        undoes: Some(u.of),
                    });
                }
                continue;
            }
            if e.cancel_queued {
                // The engine cancels them as the operator's cancel did those queued then.
                for s in sims.iter_mut().filter(|s| !s.status.compensation) {
                    if matches!(s.status.state, Pending | AwaitingApproval) {
                        s.status.state = Cancelled;
                    }
                }
                continue;
            }
            out.state = e.state;
            if e.state.is_terminal() && cancelled {
                // Nothing of the run's own is left to happen once it has ended.
                prop_assert!(
                    sims.iter().all(|s| s.status.compensation
                        || !matches!(s.status.state, Pending | Running | AwaitingApproval)),
                    "the cancelled run ended {:?} with steps left: {sims:?}",
                    e.state
                );
            }
            if e.state.is_terminal() {
                if e.state == RunState::Failed && cancel_at.is_some() && !cancelled {
                    // A failed run can still be cancelled (and what it did undone).
                } else {
                    return Ok(out);
                }
            }
            if cancel_at.is_some_and(|c| round >= c) && !cancelled {
                cancelled = true;
                out.cancelled = true;
                for s in sims.iter_mut() {
                    match (s.status.state, s.status.ready, &s.outcome) {
                        // A call in flight when the cancel comes: it cannot be cancelled, and
                        // its outcome (below) puts the step back in the queue, to be retried.
                        (Pending, true, Outcome::Wait(n)) if *n > 0 => s.status.state = Running,
                        (Pending | AwaitingApproval, _, _) => s.status.state = Cancelled,
                        _ => {}
                    }
                }
                continue;
            }
            for l in &e.release {
                for (i, s) in sims.iter_mut().enumerate() {
                    if s.status.system == l.system
                        && s.status.phase == l.phase
                        && s.status.state == Pending
                    {
                        s.status.ready = true;
                        if s.status.compensation {
                            out.released_at.entry(i).or_insert(round);
                        }
                    }
                }
            }
            let mut compensated = Vec::new();
            for s in sims.iter_mut() {
                match (s.status.state, s.status.ready, &mut s.outcome) {
                    (Pending, true, Outcome::Succeed | Outcome::Approval { .. }) => {
                        s.status.state = Succeeded;
                        compensated.extend(s.undoes);
                    }
                    (Pending, true, Outcome::Fail) => s.status.state = Failed,
                    // The call in flight at the cancel failed and is to be tried again.
                    (Running, _, _) => s.status.state = Pending,
                    (Pending, true, Outcome::Wait(n)) => {
                        if *n == 0 {
                            s.status.state = Succeeded;
                        } else {
                            *n -= 1;
                        }
                    }
                    (AwaitingApproval, _, Outcome::Approval { after, approved }) => {
                        if *after == 0 {
                            s.status.state = if *approved { Pending } else { Denied };
                        } else {
                            *after -= 1;
                        }
                    }
                    _ => {}
                }
            }
            for i in compensated {
                sims[i].status.state = Compensated;
            }
        }
        Err(TestCaseError::fail(format!(
            "the run did not end: {sims:?}"
        )))
    }

    proptest! {
        /// Driving any run (several systems and phases, steps that succeed, fail for good,
        /// wait for a task or for an approval) terminates; a system with no failure is done
        /// whatever the others did; and the run ends as its steps say.
        #[test]
        fn driving_a_run_terminates_and_failures_stay_in_their_lane(mut sims in arb_run()) {
            let driven = drive(&mut sims, None)?;
            let failed: BTreeSet<&str> = sims.iter()
                .filter(|s| s.status.state == Failed).map(|s| s.status.system.as_str()).collect();
            for s in &sims {
                if !failed.contains(s.status.system.as_str()) {
                    prop_assert!(matches!(s.status.state, Succeeded | Denied), "{s:?} held back: {sims:?}");
                }
            }
            let expected = if !failed.is_empty() {
                RunState::Failed
            } else if sims.iter().any(|s| s.status.state == Denied) {
                RunState::Denied
            } else {
                RunState::Succeeded
            };
            prop_assert_eq!(driven.state, expected);
        }

        /// Cancelled at any moment, a run undoes exactly the steps it had done (those that can
        /// be undone), each system's in reverse phase order, and ends compensated or cancelled.
        #[test]
        fn compensation_undoes_exactly_the_done_steps(mut sims in arb_run(), cancel_at in 0usize..8) {
            let original = sims.len();
            let driven = drive(&mut sims, Some(cancel_at))?;
            if !driven.cancelled {
                // It succeeded (or was denied) before the operator's cancel came.
                prop_assert!(matches!(driven.state, RunState::Succeeded | RunState::Denied));
                return Ok(());
            }
            let undone: BTreeSet<usize> = sims.iter().filter_map(|s| s.undoes).collect();
            let done = driven.done_at_compensation.clone().unwrap_or_default();
            let undoable: BTreeSet<usize> = done.iter().copied()
                .filter(|i| sims[*i].action.compensation().is_some()).collect();
            prop_assert_eq!(&undone, &undoable);
            for (i, s) in sims.iter().enumerate().take(original) {
                prop_assert_eq!(s.status.state == Compensated, undoable.contains(&i), "step {}: {:?}", i, s);
            }
            // Per system, a later phase is undone before an earlier one is started.
            for (a, ra) in &driven.released_at {
                for (b, rb) in &driven.released_at {
                    let (oa, ob) = (sims[*a].undoes.unwrap(), sims[*b].undoes.unwrap());
                    if sims[oa].status.system == sims[ob].status.system && sims[oa].status.phase > sims[ob].status.phase {
                        prop_assert!(ra < rb, "undo of {} released at {}, of {} at {}", oa, ra, ob, rb);
                    }
                }
            }
            let expected = if undoable.is_empty() { RunState::Cancelled } else { RunState::Compensated };
            prop_assert_eq!(driven.state, expected);
        }

        /// Evaluation never panics, releases at most one phase per system, and never releases a
        /// lane in which no step waits to be released.
        #[test]
        fn evaluate_is_total(raw in prop::collection::vec((arb_system(), 0u32..4, arb_state(), any::<bool>(), any::<bool>()), 0..12), cancel in any::<bool>()) {
            let steps: Vec<_> = raw.into_iter().map(|(system, phase, state, ready, compensation)| StepStatus { system, phase, state, ready, compensation }).collect();
            let e = evaluate(&steps, cancel);
            let systems: BTreeSet<&str> = e.release.iter().map(|l| l.system.as_str()).collect();
            prop_assert_eq!(systems.len(), e.release.len());
            for l in &e.release {
                prop_assert!(steps.iter().any(|s| s.system == l.system && s.phase == l.phase && s.state == Pending && !s.ready));
            }
        }
    }

    #[test]
    fn run_kinds_read_back_and_name_their_event_type() {
        for k in RunKind::ALL {
            assert_eq!(k.as_str().parse::<RunKind>().unwrap(), *k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            if let Some(t) = k.event_type() {
                assert_eq!(RunKind::from(t), *k);
                assert_eq!(t.as_str(), k.as_str());
            }
        }
        for t in EventType::ALL {
            assert_eq!(RunKind::from(*t).event_type(), Some(*t));
        }
        assert_eq!(RunKind::Expiry.event_type(), None);
        let e = "renewal".parse::<RunKind>().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("unknown RunKind `renewal`, expected one of: hire,"),
            "{e}"
        );
    }

    #[test]
    fn priorities_are_stored_as_today_and_order_urgent_first() {
        for p in [Priority::Urgent, Priority::Normal] {
            assert_eq!(Priority::try_from(p.as_i64()), Ok(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_i64());
        }
        assert_eq!(Priority::Urgent.as_i64(), 0);
        assert_eq!(Priority::Normal.as_i64(), 10);
        assert!(Priority::Urgent < Priority::Normal);
        assert!(Priority::Urgent.is_urgent() && !Priority::Normal.is_urgent());
        assert_eq!(Priority::of_event(EventType::Leave), Priority::Urgent);
        assert_eq!(
            Priority::of_event(EventType::EngagementEnd),
            Priority::Urgent
        );
        assert_eq!(Priority::of_event(EventType::Hire), Priority::Normal);
        assert_eq!(Priority::try_from(5), Err(UnknownPriority(5)));
        assert_eq!(
            UnknownPriority(5).to_string(),
            "unknown priority 5, expected 0 (urgent) or 10 (normal)"
        );
        assert!(serde_json::from_value::<Priority>(serde_json::json!(1)).is_err());
    }
}
