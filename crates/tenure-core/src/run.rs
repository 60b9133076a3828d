//! Runs and steps as state machines.
//!
//! A run is the work one event (or request) causes: an ordered set of steps over phases.
//! The engine records step outcomes; [`evaluate`] then says, from the steps alone, what the run's
//! state is and which phase may start, so the decision is the same after a crash as before it.

use crate::model::string_enum;
use crate::planner::Action;
use sha2::{Digest, Sha256};

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

/// What the engine knows of one step when evaluating its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepStatus {
    /// The step's phase.
    pub phase: u32,
    /// Its state.
    pub state: StepState,
    /// Whether it may be claimed (its phase has started).
    pub ready: bool,
    /// Whether it undoes another step of a cancelled run.
    pub compensation: bool,
}

/// What a run's steps say about the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    /// The run's state.
    pub state: RunState,
    /// A phase whose pending steps become ready now.
    pub release_phase: Option<u32>,
    /// The run was cancelled and nothing is in flight: create compensation steps now.
    pub compensate: bool,
}

/// Evaluates a run from its steps. `cancel_requested` is set once an operator cancels it.
pub fn evaluate(steps: &[StepStatus], cancel_requested: bool) -> Evaluation {
    let running = steps.iter().any(|s| s.state == StepState::Running);
    let keep = |state| Evaluation {
        state,
        release_phase: None,
        compensate: false,
    };
    if cancel_requested {
        if running {
            return keep(RunState::Running);
        }
        let comp: Vec<_> = steps.iter().filter(|s| s.compensation).collect();
        if comp.is_empty() {
            let anything_done = steps.iter().any(|s| s.state == StepState::Succeeded);
            return if anything_done {
                Evaluation {
                    state: RunState::Running,
                    release_phase: None,
                    compensate: true,
                }
            } else {
                keep(RunState::Cancelled)
            };
        }
        if comp.iter().any(|s| s.state == StepState::Failed) {
            return keep(RunState::Failed);
        }
        return match next_phase(comp.iter().copied()) {
            Next::Done => keep(RunState::Compensated),
            Next::Release(p) => Evaluation {
                state: RunState::Running,
                release_phase: Some(p),
                compensate: false,
            },
            Next::Busy => keep(RunState::Running),
        };
    }
    if steps.iter().any(|s| s.state == StepState::Failed) {
        return keep(if running {
            RunState::Running
        } else {
            RunState::Failed
        });
    }
    match next_phase(steps.iter()) {
        // Steps cancelled without an operator's cancel: another run (a leave) superseded this one.
        Next::Done if steps.iter().any(|s| s.state == StepState::Cancelled) => {
            keep(RunState::Cancelled)
        }
        Next::Done if steps.iter().any(|s| s.state == StepState::Denied) => keep(RunState::Denied),
        Next::Done => keep(RunState::Succeeded),
        Next::Release(p) => Evaluation {
            state: RunState::Running,
            release_phase: Some(p),
            compensate: false,
        },
        Next::Busy => {
            let waiting = steps.iter().any(|s| s.state == StepState::AwaitingApproval)
                && !steps
                    .iter()
                    .any(|s| s.ready && matches!(s.state, StepState::Pending | StepState::Running));
            keep(if waiting {
                RunState::AwaitingApproval
            } else {
                RunState::Running
            })
        }
    }
}

enum Next {
    Done,
    Release(u32),
    Busy,
}

/// The lowest phase with unfinished steps: release it if none of its steps are ready yet.
fn next_phase<'a>(steps: impl Iterator<Item = &'a StepStatus> + Clone) -> Next {
    let unfinished = |s: &&StepStatus| {
        !matches!(
            s.state,
            StepState::Succeeded
                | StepState::Cancelled
                | StepState::Compensated
                | StepState::Denied
        )
    };
    let Some(phase) = steps.clone().filter(unfinished).map(|s| s.phase).min() else {
        return Next::Done;
    };
    let blocked = steps
        .filter(|s| s.phase == phase)
        .any(|s| s.state == StepState::Pending && !s.ready);
    if blocked {
        Next::Release(phase)
    } else {
        Next::Busy
    }
}

/// The deterministic operation id a connector call carries: the same step always sends the
/// same id, so a target system (or connector) can recognise a retry after a crash.
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
    format!("op_{}", &hex::encode(h.finalize())[..32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use StepState::*;
    use proptest::prelude::*;

    fn s(phase: u32, state: StepState, ready: bool) -> StepStatus {
        StepStatus {
            phase,
            state,
            ready,
            compensation: false,
        }
    }

    #[test]
    fn phases_release_in_order() {
        let steps = [s(0, Pending, false), s(1, Pending, false)];
        assert_eq!(evaluate(&steps, false).release_phase, Some(0));
        let steps = [s(0, Succeeded, true), s(1, Pending, false)];
        assert_eq!(evaluate(&steps, false).release_phase, Some(1));
        let steps = [s(0, Succeeded, true), s(1, Running, true)];
        assert_eq!(
            evaluate(&steps, false),
            Evaluation {
                state: RunState::Running,
                release_phase: None,
                compensate: false
            }
        );
        let steps = [s(0, Succeeded, true), s(1, Succeeded, true)];
        assert_eq!(evaluate(&steps, false).state, RunState::Succeeded);
        assert_eq!(evaluate(&[], false).state, RunState::Succeeded);
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
                release_phase: None,
                compensate: false
            }
        );
    }

    #[test]
    fn cancel_compensates_what_was_done() {
        let steps = [s(0, Succeeded, true), s(1, Cancelled, false)];
        assert!(evaluate(&steps, true).compensate);
        let steps = [s(0, Cancelled, true), s(1, Cancelled, false)];
        assert_eq!(evaluate(&steps, true).state, RunState::Cancelled);
        let steps = [s(0, Running, true), s(1, Cancelled, false)];
        assert!(!evaluate(&steps, true).compensate);
        let comp = StepStatus {
            phase: 10,
            state: Pending,
            ready: false,
            compensation: true,
        };
        let steps = [s(0, Succeeded, true), comp];
        assert_eq!(evaluate(&steps, true).release_phase, Some(10));
        let done = StepStatus {
            state: Succeeded,
            ready: true,
            ..comp
        };
        assert_eq!(
            evaluate(&[s(0, Compensated, true), done], true).state,
            RunState::Compensated
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
        assert_eq!(evaluate(&steps, false).release_phase, Some(1));
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

    fn arb_state() -> impl Strategy<Value = StepState> {
        prop::sample::select(StepState::ALL.to_vec())
    }

    proptest! {
        /// Driving any run by the evaluator's own decisions (release phase, steps succeed)
        /// always ends in `succeeded`, never releases a phase while a lower one is unfinished,
        /// and takes no more rounds than there are phases.
        #[test]
        fn driving_a_run_terminates(phases in prop::collection::vec(1usize..4, 1..5)) {
            let mut steps: Vec<StepStatus> = phases.iter().enumerate()
                .flat_map(|(p, n)| (0..*n).map(move |_| s(p as u32, Pending, false))).collect();
            for _round in 0..=phases.len() {
                let e = evaluate(&steps, false);
                if e.state == RunState::Succeeded { return Ok(()); }
                let p = e.release_phase.expect("a run with pending work releases a phase");
                prop_assert!(steps.iter().filter(|s| s.phase < p).all(|s| s.state == Succeeded));
                for st in steps.iter_mut().filter(|s| s.phase == p) { st.ready = true; st.state = Succeeded; }
            }
            prop_assert!(false, "did not finish");
        }

        /// Evaluation never panics and never releases a phase in which a step is already ready.
        #[test]
        fn evaluate_is_total(raw in prop::collection::vec((0u32..4, arb_state(), any::<bool>(), any::<bool>()), 0..12), cancel in any::<bool>()) {
            let steps: Vec<_> = raw.into_iter().map(|(phase, state, ready, compensation)| StepStatus { phase, state, ready, compensation }).collect();
            let e = evaluate(&steps, cancel);
            if let Some(p) = e.release_phase {
                prop_assert!(steps.iter().any(|s| s.phase == p && s.state == Pending && !s.ready));
            }
        }
    }
}
