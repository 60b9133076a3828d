//! The dashboard: how fast access arrives and goes (the service-level report of the API, and
//! the same day by day), what waits in the queue, leavers not yet fully revoked, breaches, and
//! each system's error rate. Everything comes from the API's own functions, with `read`.
//!
//! The service-level figures of the default view (the last 30 days, and each of the last seven
//! days) read every run of those periods with its steps: about a second at 100,000 runs. So they
//! are kept as a snapshot, worked out again at most once a minute, in the background, while the
//! page answers from the last one and says how old it is. A period someone asks for
//! (`since`, `until`) is worked out for them, live. Queue, leavers and systems are always live.

use super::pages::{Nav, Params, or_page};
use super::session::Session;
use super::{PageResult, render};
use crate::query::{Query, parse};
use crate::{ApiError, AppState, routes, views};
use askama::Template;
use axum::Json;
use axum::extract::{RawQuery, State};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tenure_core::run::{Priority, RunKind, RunState};
use tenure_core::sla::{Breach, Figures, SlaReport};

/// Days the "day by day" table covers, today included.
const DAYS: i64 = 7;
const DAY_MS: i64 = 86_400_000;
/// The widest bar, in pixels.
const BAR: i64 = 160;
/// Breaches and open leaves listed at most.
const LISTED: usize = 20;

/// A duration for people: `850 ms`, `4.2 s`, `3 min`, `5.5 h`, `2 d`.
pub(crate) fn human_ms(ms: i64) -> String {
    let s = ms as f64 / 1000.0;
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{s:.1} s")
    } else if ms < 3_600_000 {
        format!("{:.0} min", s / 60.0)
    } else if ms < 172_800_000 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.0} d", s / 86_400.0)
    }
}

/// A bar's width for `value` on a scale whose end is `scale` (at least one pixel when there is
/// a value, none without).
fn width(value: Option<i64>, scale: i64) -> i64 {
    match value {
        Some(v) if scale > 0 => (v.max(0) * BAR / scale).clamp(1, BAR),
        _ => 0,
    }
}

/// One line of a direction's table: a system (or all of a run's systems) and its figures.
pub(crate) struct Line {
    pub(crate) system: String,
    pub(crate) runs: u64,
    pub(crate) done: u64,
    pub(crate) p50: String,
    pub(crate) p95: String,
    pub(crate) p99: String,
    pub(crate) max: String,
    pub(crate) target: String,
    pub(crate) breaches: u64,
    /// Bar widths of p50, p95 and p99, and where the target falls (pixels).
    pub(crate) bars: [i64; 3],
    pub(crate) target_at: Option<i64>,
}

fn lines(figures: &[Figures]) -> Vec<Line> {
    let scale = figures
        .iter()
        .flat_map(|f| [f.p99_ms, f.target_ms])
        .flatten()
        .max()
        .unwrap_or(0);
    let text = |v: Option<i64>| v.map(human_ms).unwrap_or_else(|| "-".into());
    figures
        .iter()
        .map(|f| Line {
            system: f.system.clone().unwrap_or_else(|| "whole runs".into()),
            runs: f.runs,
            done: f.done,
            p50: text(f.p50_ms),
            p95: text(f.p95_ms),
            p99: text(f.p99_ms),
            max: text(f.max_ms),
            target: text(f.target_ms),
            breaches: f.breaches,
            bars: [f.p50_ms, f.p95_ms, f.p99_ms].map(|v| width(v, scale)),
            target_at: f.target_ms.map(|t| width(Some(t), scale)),
        })
        .collect()
}

/// One day of the day-by-day table: the whole runs' p99 each way.
pub(crate) struct Day {
    pub(crate) day: String,
    pub(crate) provision: String,
    pub(crate) provision_runs: u64,
    pub(crate) provision_bar: i64,
    pub(crate) revoke: String,
    pub(crate) revoke_runs: u64,
    pub(crate) revoke_bar: i64,
}

/// A queue line: steps due and unclaimed of one priority, and the longest wait.
pub(crate) struct Waiting {
    pub(crate) priority: &'static str,
    pub(crate) steps: i64,
    pub(crate) oldest: String,
}

/// A leave still under way, and for how long.
pub(crate) struct OpenLeave {
    pub(crate) run: views::Run,
    pub(crate) age: String,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
pub(crate) struct Dashboard {
    nav: Nav,
    since: String,
    until: String,
    report: SlaReport,
    provision: Vec<Line>,
    revoke: Vec<Line>,
    days: Vec<Day>,
    queue: Vec<Waiting>,
    leaves: Vec<OpenLeave>,
    breaches: Vec<(Breach, String, String)>,
    breaches_shown: u64,
    has_targets: bool,
    systems: Vec<views::System>,
    /// When the figures were worked out, when they are the default view's snapshot.
    as_of: Option<String>,
}

/// How long a snapshot of the default view's figures is shown before it is worked out again.
pub(crate) const SNAPSHOT_MS: i64 = 60_000;

/// The service-level reports a dashboard shows: its period's, and each of the last [`DAYS`]
/// days' (from the start of each UTC day), as worked out at `at`.
#[derive(Clone)]
pub(crate) struct Reports {
    at: i64,
    period: SlaReport,
    days: Vec<(i64, SlaReport)>,
}

/// The default view's last [`Reports`], shared by every request (part of `AppState`).
#[derive(Default)]
pub(crate) struct Snapshot {
    last: Mutex<Option<Arc<Reports>>>,
    refreshing: AtomicBool,
}

/// What a snapshot taken at `at` is worth at `now`.
#[derive(Debug, PartialEq, Eq)]
enum Age {
    /// None yet (or from a clock that went back): work it out now.
    Missing,
    /// Young enough to show as it is.
    Fresh,
    /// Show it, and work out the next in the background.
    Stale,
}

fn age(at: Option<i64>, now: i64) -> Age {
    match at {
        Some(at) if at <= now && now - at < SNAPSHOT_MS => Age::Fresh,
        Some(at) if at <= now => Age::Stale,
        _ => Age::Missing,
    }
}

/// Works out the reports of the period `q` names and of the last [`DAYS`] days, through the
/// API's own report (and its `read` check), as `p`.
async fn reports(
    s: &AppState,
    p: &crate::auth::Principal,
    q: Query<routes::SlaQuery>,
) -> Result<Reports, ApiError> {
    let at = s.engine().clock().now_ms();
    let Json(period) = routes::sla_report(State(s.clone()), p.clone(), q).await?;
    let today = at - at.rem_euclid(DAY_MS);
    let mut days = Vec::new();
    for d in 0..DAYS {
        let from = today - d * DAY_MS;
        let one = format!(
            "since={}&until={}",
            form_urlencoded::byte_serialize(views::time(from).as_bytes()).collect::<String>(),
            form_urlencoded::byte_serialize(views::time(from + DAY_MS).as_bytes())
                .collect::<String>()
        );
        let Json(r) =
            routes::sla_report(State(s.clone()), p.clone(), parse(&one).map(Query)?).await?;
        days.push((from, r));
    }
    Ok(Reports { at, period, days })
}

/// Lowers the "being worked out" flag when dropped.
struct Refreshed<'a>(&'a AtomicBool);

impl Drop for Refreshed<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Snapshot {
    /// The default view's reports: the last snapshot when young enough; when stale, the last
    /// one while the next is worked out in the background; when there is none, worked out now.
    async fn get(
        &self,
        s: &AppState,
        p: &crate::auth::Principal,
    ) -> Result<Arc<Reports>, ApiError> {
        // The snapshot is everyone's: who reads it must hold `read`, as the report asks.
        p.require(crate::auth::Scope::Read)?;
        let now = s.engine().clock().now_ms();
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match age(last.as_ref().map(|r| r.at), now) {
            Age::Fresh => Ok(last.expect("a fresh snapshot exists")),
            Age::Stale => {
                if !self.refreshing.swap(true, Ordering::AcqRel) {
                    let (s, p) = (s.clone(), p.clone());
                    tokio::spawn(async move {
                        let snap = s.dashboard();
                        // Whatever happens to this task, the next stale read may try again.
                        let _done = Refreshed(&snap.refreshing);
                        let next = async { reports(&s, &p, parse("").map(Query)?).await }.await;
                        match next {
                            Ok(r) => {
                                snap.keep(r);
                            }
                            Err(e) => tracing::warn!(
                                error = %e.message,
                                "the dashboard's figures could not be worked out"
                            ),
                        }
                    });
                }
                Ok(last.expect("a stale snapshot exists"))
            }
            Age::Missing => {
                let r = reports(s, p, parse("").map(Query)?).await?;
                Ok(self.keep(r))
            }
        }
    }

    fn keep(&self, r: Reports) -> Arc<Reports> {
        let r = Arc::new(r);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(r.clone());
        r
    }
}

/// The whole runs' line of a report's figures.
fn whole(figures: &[Figures]) -> Option<&Figures> {
    figures.iter().find(|f| f.system.is_none())
}

/// `GET /console/dashboard`: the period is the service-level report's (`since`, `until`;
/// the last 30 days by default).
pub(crate) async fn dashboard(
    State(s): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> PageResult {
    let p = &session.principal;
    let (params, _) = Params::new(raw.as_deref(), &[]);
    let q = or_page(&session, params.query())?;
    // A period asked for is worked out now; the default view is the snapshot's.
    let asked = !params.get("since").is_empty() || !params.get("until").is_empty();
    let (figures, as_of) = if asked {
        (Arc::new(or_page(&session, reports(&s, p, q).await)?), None)
    } else {
        let r = or_page(&session, s.dashboard().get(&s, p).await)?;
        let at = views::time(r.at);
        (r, Some(at))
    };
    let report = figures.period.clone();
    let reports = &figures.days;
    let now = s.engine().clock().now_ms();
    let scale = reports
        .iter()
        .flat_map(|(_, r)| [whole(&r.provision), whole(&r.revoke)])
        .flatten()
        .filter_map(|f| f.p99_ms)
        .max()
        .unwrap_or(0);
    let text = |f: Option<&Figures>| {
        f.and_then(|f| f.p99_ms)
            .map(human_ms)
            .unwrap_or_else(|| "-".into())
    };
    let days = reports
        .iter()
        .map(|(from, r)| {
            let (pv, rv) = (whole(&r.provision), whole(&r.revoke));
            Day {
                day: views::time(*from)[..10].to_string(),
                provision: text(pv),
                provision_runs: pv.map_or(0, |f| f.runs),
                provision_bar: width(pv.and_then(|f| f.p99_ms), scale),
                revoke: text(rv),
                revoke_runs: rv.map_or(0, |f| f.runs),
                revoke_bar: width(rv.and_then(|f| f.p99_ms), scale),
            }
        })
        .collect();

    // The queue, leavers under way, systems.
    let mut c = or_page(&session, s.store().reader().await.map_err(ApiError::from))?;
    let depth = or_page(
        &session,
        tenure_store::queue_depth(&mut c, now)
            .await
            .map_err(ApiError::from),
    )?;
    drop(c);
    let queue = [
        (Priority::Urgent, "leavers and revocations first"),
        (Priority::Normal, "everything else"),
    ]
    .into_iter()
    .map(|(prio, label)| {
        let d = depth.iter().find(|d| d.priority == prio);
        Waiting {
            priority: label,
            steps: d.map_or(0, |d| d.steps),
            oldest: d
                .map(|d| human_ms((now - d.oldest_due_at).max(0)))
                .unwrap_or_else(|| "-".into()),
        }
    })
    .collect();
    let mut leaves = Vec::new();
    for state in [
        RunState::Pending,
        RunState::Running,
        RunState::AwaitingApproval,
    ] {
        let open = format!("kind={}&state={state}&limit={LISTED}", RunKind::Leave);
        let q = or_page(&session, parse(&open).map(Query))?;
        let Json(page) = or_page(
            &session,
            routes::list_runs(State(s.clone()), p.clone(), q).await,
        )?;
        leaves.extend(page.items);
    }
    leaves.sort_by(|a, b| a.effective_at.cmp(&b.effective_at));
    leaves.truncate(LISTED);
    let leaves = leaves
        .into_iter()
        .map(|run| {
            let since = chrono::DateTime::parse_from_rfc3339(&run.effective_at)
                .map(|t| t.timestamp_millis())
                .unwrap_or(now);
            OpenLeave {
                age: human_ms((now - since).max(0)),
                run,
            }
        })
        .collect();
    let q = or_page(&session, parse("").map(Query))?;
    let Json(systems) = or_page(
        &session,
        routes::list_systems(State(s.clone()), p.clone(), q).await,
    )?;

    let breaches = report
        .breaches
        .iter()
        .take(LISTED)
        .map(|b| {
            (
                b.clone(),
                views::time(b.due_at),
                b.took_ms.map(human_ms).unwrap_or_else(|| "not done".into()),
            )
        })
        .collect::<Vec<_>>();
    let has_targets = [&report.provision, &report.revoke]
        .into_iter()
        .flatten()
        .any(|f| f.target_ms.is_some());
    render(&Dashboard {
        breaches_shown: breaches.len() as u64,
        has_targets,
        nav: Nav::of(Some(&session), "dashboard"),
        since: views::time(report.from),
        until: views::time(report.to),
        provision: lines(&report.provision),
        revoke: lines(&report.revoke),
        days,
        queue,
        leaves,
        breaches,
        systems: systems.items,
        report,
        as_of,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_shown_for_a_minute_then_shown_while_the_next_is_worked_out() {
        assert_eq!(age(None, 1_000), Age::Missing);
        assert_eq!(age(Some(1_000), 1_000), Age::Fresh);
        assert_eq!(age(Some(1_000), 1_000 + SNAPSHOT_MS - 1), Age::Fresh);
        assert_eq!(age(Some(1_000), 1_000 + SNAPSHOT_MS), Age::Stale);
        // A clock that went back does not keep a snapshot young: it is worked out again.
        assert_eq!(age(Some(1_000), 999), Age::Missing);
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human_ms(850), "850 ms");
        assert_eq!(human_ms(4_200), "4.2 s");
        assert_eq!(human_ms(180_000), "3 min");
        assert_eq!(human_ms(5 * 3_600_000 + 1_800_000), "5.5 h");
        assert_eq!(human_ms(3 * 86_400_000), "3 d");
    }

    #[test]
    fn bars_scale_to_the_longest_and_never_vanish() {
        assert_eq!(width(Some(50), 100), BAR / 2);
        assert_eq!(width(Some(1), 1_000_000), 1);
        assert_eq!(width(Some(500), 100), BAR);
        assert_eq!(width(None, 100), 0);
        assert_eq!(width(Some(5), 0), 0);
    }
}
