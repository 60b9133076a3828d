//! The service-level report: over a period, how long access took to arrive (hires, rehires)
//! and to go (leaves) on each system, against the targets of `[sla]`, with every breach and
//! what caused it.
//!
//! Pure: the caller reads the period's runs with their steps and feeds them to a
//! [`Collector`] a page at a time, so a period of any size is reported in bounded memory.

use crate::config::SlaSettings;
use crate::planner::Action;
use crate::run::{RunKind, RunState, StepState};
use serde::Serialize;
use std::collections::BTreeMap;

/// Breaches listed in a report; more are counted, not listed.
pub const MAX_BREACHES_LISTED: usize = 1_000;

/// The period a report covers when none is given: the 30 days before its end.
pub const DEFAULT_PERIOD_MS: i64 = 30 * 24 * 3_600_000;

/// The period of a report from the bounds given (epoch ms): `until` defaults to `now`,
/// `since` to [`DEFAULT_PERIOD_MS`] before `until`. `None` when it would end before it starts.
pub fn period(since: Option<i64>, until: Option<i64>, now: i64) -> Option<(i64, i64)> {
    let until = until.unwrap_or(now);
    let since = since.unwrap_or(until.saturating_sub(DEFAULT_PERIOD_MS));
    (since < until).then_some((since, until))
}

/// What a run's steps on one system came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTiming {
    /// The system.
    pub system: String,
    /// What the step does.
    pub action: Action,
    /// Where it stands.
    pub state: StepState,
    /// When it ended (epoch ms), if it has.
    pub finished_at: Option<i64>,
    /// Calls made.
    pub attempts: i64,
    /// The last error or wait it showed.
    pub last_error: Option<String>,
}

/// A run to report on, with its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunTiming {
    /// The run.
    pub run_id: String,
    /// Whose.
    pub person_id: String,
    /// What caused it.
    pub kind: RunKind,
    /// Where it stands.
    pub state: RunState,
    /// When its access was due to change: the later of receipt and effect (epoch ms).
    pub due_at: i64,
    /// Its steps.
    pub steps: Vec<StepTiming>,
}

/// Which way access moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Access arrives: hires and rehires, against `provision`.
    Provision,
    /// Access goes: leaves, against `revoke`.
    Revoke,
}

impl Direction {
    /// Both directions.
    pub const ALL: [Direction; 2] = [Direction::Provision, Direction::Revoke];

    /// The direction of a run of `kind`, if the report covers it.
    pub fn of(kind: RunKind) -> Option<Direction> {
        Direction::ALL
            .into_iter()
            .find(|d| d.kinds().contains(&kind))
    }

    /// The kinds of run that move access this way.
    pub fn kinds(self) -> &'static [RunKind] {
        match self {
            Direction::Provision => &[RunKind::Hire, RunKind::Rehire],
            Direction::Revoke => &[RunKind::Leave],
        }
    }

    /// Its name, as the report and the metrics label it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Provision => "provision",
            Direction::Revoke => "revoke",
        }
    }

    /// The target of `system` (its own, else the global one), or of whole runs (`None`).
    pub fn target(self, sla: &SlaSettings, system: Option<&str>) -> Option<i64> {
        match (self, system) {
            (Direction::Provision, Some(s)) => sla.provision_for(s),
            (Direction::Provision, None) => sla.provision_ms,
            (Direction::Revoke, Some(s)) => sla.revoke_for(s),
            (Direction::Revoke, None) => sla.revoke_ms,
        }
    }
}

/// The figures of one system (or of whole runs, `system` absent) in one direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Figures {
    /// The system; absent for whole runs (all their systems done).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Runs with steps here.
    pub runs: u64,
    /// Of those, done (every step here succeeded or was denied).
    pub done: u64,
    /// Time taken by the done ones, from due to the last step done (ms), by nearest rank.
    pub p50_ms: Option<i64>,
    /// 95th percentile.
    pub p95_ms: Option<i64>,
    /// 99th percentile.
    pub p99_ms: Option<i64>,
    /// The longest.
    pub max_ms: Option<i64>,
    /// The target, when `[sla]` sets one.
    pub target_ms: Option<i64>,
    /// Runs that missed it: done late, or not done and past it.
    pub breaches: u64,
}

/// A run that missed its target on a system (or as a whole).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Breach {
    /// Which way.
    pub direction: Direction,
    /// The run.
    pub run_id: String,
    /// Whose.
    pub person_id: String,
    /// The system; absent when the run as a whole missed the overall target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// When it was due (epoch ms).
    pub due_at: i64,
    /// How long it took; absent while not done.
    pub took_ms: Option<i64>,
    /// The target it missed.
    pub target_ms: i64,
    /// What held it: a failure, a wait, retries, an approval, or the slowest step.
    pub cause: String,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SlaReport {
    /// Runs received from (epoch ms, inclusive).
    pub from: i64,
    /// Runs received until (epoch ms, exclusive).
    pub to: i64,
    /// When the report was made: runs not done count as breaches once past their target.
    pub at: i64,
    /// Access arriving, whole runs first, then per system.
    pub provision: Vec<Figures>,
    /// Access going, whole runs first, then per system.
    pub revoke: Vec<Figures>,
    /// Breaches, oldest due first, at most [`MAX_BREACHES_LISTED`].
    pub breaches: Vec<Breach>,
    /// Every breach, listed or not.
    pub breaches_total: u64,
}

#[derive(Default)]
struct Acc {
    runs: u64,
    took: Vec<i64>,
    breaches: u64,
}

/// Gathers runs into a report.
pub struct Collector<'a> {
    sla: &'a SlaSettings,
    from: i64,
    to: i64,
    now: i64,
    figures: BTreeMap<(Direction, Option<String>), Acc>,
    breaches: Vec<Breach>,
    breaches_total: u64,
}

/// How a run stands on one system.
struct Standing {
    /// The last step done, when every step is done.
    done_at: Option<i64>,
    /// Done: no step left to do.
    done: bool,
    /// What holds it, or held it longest.
    cause: String,
}

fn standing(steps: &[&StepTiming]) -> Option<Standing> {
    // Denied steps never run; a system with nothing else has nothing to measure.
    let counted: Vec<&&StepTiming> = steps
        .iter()
        .filter(|s| s.state != StepState::Denied)
        .collect();
    if counted.is_empty() {
        return None;
    }
    // What holds the system: a failure first, then an approval, then a step showing an error
    // or a wait, then any step not done (later phases wait behind the first).
    let open = counted
        .iter()
        .filter(|s| s.state != StepState::Succeeded)
        .min_by_key(|s| match s.state {
            StepState::Failed => 0,
            StepState::AwaitingApproval => 1,
            _ if s.last_error.is_some() => 2,
            _ => 3,
        });
    if let Some(s) = open {
        let why = s.last_error.as_deref().unwrap_or("");
        let cause = match s.state {
            StepState::Failed => format!("{} failed: {why}", s.action),
            StepState::AwaitingApproval => format!("{} waits for an approval", s.action),
            _ if s.attempts > 1 => format!("{} retried {} times: {why}", s.action, s.attempts),
            _ if !why.is_empty() => format!("{} waiting: {why}", s.action),
            _ => format!("{} not done yet", s.action),
        };
        return Some(Standing {
            done_at: None,
            done: false,
            cause,
        });
    }
    let last = counted
        .iter()
        .max_by_key(|s| s.finished_at.unwrap_or(i64::MIN))
        .expect("at least one step");
    let retried = counted.iter().map(|s| s.attempts).max().unwrap_or(0);
    let cause = if retried > 1 {
        format!(
            "slowest step {}; a step needed {retried} calls",
            last.action
        )
    } else {
        format!("slowest step {}", last.action)
    };
    Some(Standing {
        done_at: counted.iter().filter_map(|s| s.finished_at).max(),
        done: true,
        cause,
    })
}

impl<'a> Collector<'a> {
    /// A report of runs received from `from` until `to`, judged at `now`.
    pub fn new(sla: &'a SlaSettings, from: i64, to: i64, now: i64) -> Self {
        Collector {
            sla,
            from,
            to,
            now,
            figures: BTreeMap::new(),
            breaches: Vec::new(),
            breaches_total: 0,
        }
    }

    /// Adds one run: ignored unless a hire, rehire or leave that was not cancelled.
    pub fn add(&mut self, run: &RunTiming) {
        let Some(dir) = Direction::of(run.kind) else {
            return;
        };
        if matches!(run.state, RunState::Cancelled | RunState::Compensated) {
            return;
        }
        let mut by_system: BTreeMap<&str, Vec<&StepTiming>> = BTreeMap::new();
        for s in &run.steps {
            by_system.entry(&s.system).or_default().push(s);
        }
        let mut whole_done = true;
        let mut whole_last: Option<i64> = None;
        let mut whole_cause: Option<(i64, String)> = None;
        let mut any = false;
        for (system, steps) in by_system {
            let Some(st) = standing(&steps) else {
                continue;
            };
            any = true;
            let took = st.done_at.map(|at| (at - run.due_at).max(0));
            whole_done &= st.done;
            whole_last = whole_last.max(st.done_at);
            // The whole run's cause: what holds it, else its slowest system.
            let weight = if st.done { took.unwrap_or(0) } else { i64::MAX };
            if whole_cause.as_ref().is_none_or(|(w, _)| weight > *w) {
                whole_cause = Some((weight, format!("{system}: {}", st.cause)));
            }
            self.count(dir, Some(system), run, st.done, took, st.cause);
        }
        if any {
            let took = whole_done.then(|| whole_last.map_or(0, |at| (at - run.due_at).max(0)));
            let cause = whole_cause.map(|(_, c)| c).unwrap_or_default();
            self.count(dir, None, run, whole_done, took, cause);
        }
    }

    fn count(
        &mut self,
        dir: Direction,
        system: Option<&str>,
        run: &RunTiming,
        done: bool,
        took: Option<i64>,
        cause: String,
    ) {
        let target = dir.target(self.sla, system);
        let acc = self
            .figures
            .entry((dir, system.map(str::to_string)))
            .or_default();
        acc.runs += 1;
        if let (true, Some(t)) = (done, took) {
            acc.took.push(t);
        }
        let Some(target) = target else {
            return;
        };
        let missed = match took {
            Some(t) => t > target,
            None => self.now - run.due_at > target,
        };
        if !missed {
            return;
        }
        acc.breaches += 1;
        self.breaches_total += 1;
        if self.breaches.len() < MAX_BREACHES_LISTED {
            self.breaches.push(Breach {
                direction: dir,
                run_id: run.run_id.clone(),
                person_id: run.person_id.clone(),
                system: system.map(str::to_string),
                due_at: run.due_at,
                took_ms: took,
                target_ms: target,
                cause,
            });
        }
    }

    /// The report.
    pub fn finish(self) -> SlaReport {
        let mut provision = Vec::new();
        let mut revoke = Vec::new();
        for ((dir, system), mut acc) in self.figures {
            acc.took.sort_unstable();
            let rank = |p: f64| -> Option<i64> {
                if acc.took.is_empty() {
                    return None;
                }
                let n = acc.took.len();
                let i = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
                Some(acc.took[i])
            };
            let f = Figures {
                target_ms: dir.target(self.sla, system.as_deref()),
                system,
                runs: acc.runs,
                done: acc.took.len() as u64,
                p50_ms: rank(0.50),
                p95_ms: rank(0.95),
                p99_ms: rank(0.99),
                max_ms: acc.took.last().copied(),
                breaches: acc.breaches,
            };
            match dir {
                Direction::Provision => provision.push(f),
                Direction::Revoke => revoke.push(f),
            }
        }
        let mut breaches = self.breaches;
        breaches.sort_by(|a, b| (a.due_at, &a.run_id).cmp(&(b.due_at, &b.run_id)));
        SlaReport {
            from: self.from,
            to: self.to,
            at: self.now,
            provision,
            revoke,
            breaches,
            breaches_total: self.breaches_total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SystemSla;

    fn step(system: &str, action: Action, state: StepState, at: Option<i64>) -> StepTiming {
        StepTiming {
            system: system.into(),
            action,
            state,
            finished_at: at,
            attempts: 1,
            last_error: None,
        }
    }

    fn run(id: &str, kind: RunKind, due: i64, steps: Vec<StepTiming>) -> RunTiming {
        RunTiming {
            run_id: id.into(),
            person_id: format!("p-{id}"),
            kind,
            state: RunState::Succeeded,
            due_at: due,
            steps,
        }
    }

    fn sla() -> SlaSettings {
        SlaSettings {
            provision_ms: Some(1_000),
            revoke_ms: Some(100),
            systems: BTreeMap::from([(
                "git".to_string(),
                SystemSla {
                    revoke_ms: Some(20),
                    provision_ms: None,
                },
            )]),
        }
    }

    /// Percentiles by nearest rank per system and for whole runs; a late system is a breach
    /// with the slowest step as its cause; other kinds and cancelled runs are left out.
    #[test]
    fn figures_per_system_and_whole_runs_with_each_breach() {
        let sla = sla();
        let mut c = Collector::new(&sla, 0, 10_000, 10_000);
        for (i, took) in [10, 20, 30, 40].into_iter().enumerate() {
            c.add(&run(
                &format!("l{i}"),
                RunKind::Leave,
                1_000,
                vec![
                    step(
                        "crm",
                        Action::DisableAccount,
                        StepState::Succeeded,
                        Some(1_005),
                    ),
                    step(
                        "git",
                        Action::DisableAccount,
                        StepState::Succeeded,
                        Some(1_000 + took),
                    ),
                    step("git", Action::Revoke, StepState::Denied, None),
                ],
            ));
        }
        let mut cancelled = run("c", RunKind::Leave, 0, vec![]);
        cancelled.state = RunState::Cancelled;
        cancelled.steps.push(step(
            "crm",
            Action::DisableAccount,
            StepState::Cancelled,
            None,
        ));
        c.add(&cancelled);
        c.add(&run(
            "t",
            RunKind::Transfer,
            0,
            vec![step("crm", Action::Grant, StepState::Failed, None)],
        ));
        let r = c.finish();
        assert!(r.provision.is_empty());
        let whole = &r.revoke[0];
        assert_eq!(whole.system, None);
        assert_eq!((whole.runs, whole.done), (4, 4));
        assert_eq!(
            (whole.p50_ms, whole.p99_ms, whole.max_ms),
            (Some(20), Some(40), Some(40))
        );
        assert_eq!((whole.target_ms, whole.breaches), (Some(100), 0));
        let git = r
            .revoke
            .iter()
            .find(|f| f.system.as_deref() == Some("git"))
            .unwrap();
        assert_eq!(git.target_ms, Some(20));
        assert_eq!(git.breaches, 2, "30 and 40 ms against 20");
        assert_eq!(r.breaches_total, 2);
        assert_eq!(r.breaches[0].took_ms, Some(30));
        assert_eq!(r.breaches[0].cause, "slowest step disable_account");
        let crm = r
            .revoke
            .iter()
            .find(|f| f.system.as_deref() == Some("crm"))
            .unwrap();
        assert_eq!((crm.p50_ms, crm.breaches), (Some(5), 0));
    }

    /// A period defaults to the 30 days before now; one that ends before it starts is none.
    #[test]
    fn a_period_defaults_to_the_thirty_days_before_its_end() {
        assert_eq!(
            period(None, None, 100 * 86_400_000),
            Some((70 * 86_400_000, 100 * 86_400_000))
        );
        assert_eq!(period(Some(5), None, 10), Some((5, 10)));
        assert_eq!(period(None, Some(7), 10), Some((7 - DEFAULT_PERIOD_MS, 7)));
        assert_eq!(period(Some(10), Some(10), 99), None);
        assert_eq!(period(Some(11), None, 10), None);
    }

    /// A run not done is a breach only once past its target, and its cause is what holds it.
    #[test]
    fn an_unfinished_run_breaches_once_its_target_passes_and_names_what_holds_it() {
        let sla = sla();
        let mut failing = step("crm", Action::Grant, StepState::Failed, None);
        failing.last_error = Some("403 forbidden".into());
        let mut retrying = step("git", Action::Grant, StepState::Pending, None);
        retrying.attempts = 3;
        retrying.last_error = Some("timeout".into());
        let hire = |state_crm: StepTiming| {
            run(
                "h",
                RunKind::Hire,
                0,
                vec![
                    state_crm,
                    retrying.clone(),
                    step("chat", Action::Grant, StepState::AwaitingApproval, None),
                ],
            )
        };
        let mut early = Collector::new(&sla, 0, 10, 500);
        early.add(&hire(failing.clone()));
        let r = early.finish();
        assert_eq!(r.breaches_total, 0, "1,000 ms have not passed: {r:#?}");
        assert_eq!(r.provision[0].done, 0);
        let mut late = Collector::new(&sla, 0, 10, 5_000);
        late.add(&hire(failing));
        let r = late.finish();
        let causes: Vec<(Option<&str>, &str)> = r
            .breaches
            .iter()
            .map(|b| (b.system.as_deref(), b.cause.as_str()))
            .collect();
        assert_eq!(
            causes,
            [
                (Some("chat"), "grant waits for an approval"),
                (Some("crm"), "grant failed: 403 forbidden"),
                (Some("git"), "grant retried 3 times: timeout"),
                (None, "chat: grant waits for an approval"),
            ]
        );
        assert!(r.breaches.iter().all(|b| b.took_ms.is_none()));
        // Without targets nothing is a breach.
        let none = SlaSettings::default();
        let mut c = Collector::new(&none, 0, 10, 1_000_000);
        c.add(&hire(step("crm", Action::Grant, StepState::Failed, None)));
        assert_eq!(c.finish().breaches_total, 0);
    }
}
