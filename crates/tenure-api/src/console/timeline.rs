//! A person's timeline: the events, runs and audit entries about them, merged newest first,
//! from what the runs and audit APIs answer (each newest first, a page of [`LIMIT`]).

use crate::views;

/// How many entries a person's timeline shows: the latest.
pub(crate) const LIMIT: usize = 50;

/// What a line of the timeline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An event about the person came in (its `event.received` audit entry).
    Event,
    /// One of the person's runs: where it ended, or stands.
    Run,
    /// Any other audit entry about the person.
    Audit,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Event => "event",
            Kind::Run => "run",
            Kind::Audit => "audit",
        }
    }
}

/// One line of a timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// When (RFC 3339 in UTC with milliseconds, as the API writes every time, so that these
    /// texts sort as the times do).
    pub(crate) at: String,
    pub(crate) kind: Kind,
    /// What happened, in one line.
    pub(crate) summary: String,
    /// The console page about it: the run's, or the audit search narrowed to the entry.
    pub(crate) href: String,
    /// Within one instant: audit entries in chain order, then a run (which ends after them).
    tie: (u8, i64),
}

/// A person's timeline, and where the rest of their trail is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Timeline {
    /// The latest [`LIMIT`] lines, newest first.
    pub(crate) entries: Vec<Entry>,
    /// The audit search for this person, newest first, from before the oldest entry shown.
    pub(crate) older: String,
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Merges a person's latest runs and audit entries (as the APIs list them, newest first) into
/// their timeline.
pub(crate) fn merge(
    person: &str,
    runs: Vec<views::Run>,
    audit: Vec<views::AuditEntry>,
) -> Timeline {
    let who = encode(person);
    let mut entries: Vec<Entry> = Vec::with_capacity(runs.len() + audit.len());
    for e in audit {
        let entry_search = format!(
            "/console/audit?person={who}&after={}&limit=1",
            e.seq.saturating_sub(1)
        );
        let (kind, summary, href) = if e.action == "event.received" {
            let href = e
                .run_id
                .as_deref()
                .map_or(entry_search, |r| format!("/console/runs/{}", encode(r)));
            (Kind::Event, e.reason, href)
        } else {
            let on = match (&e.entitlement, &e.system) {
                (Some(x), _) => format!(" {x}"),
                (None, Some(s)) => format!(" on {s}"),
                (None, None) => String::new(),
            };
            (
                Kind::Audit,
                format!("{}{on}: {}", e.action, e.reason),
                entry_search,
            )
        };
        entries.push(Entry {
            at: e.at,
            kind,
            summary,
            href,
            tie: (0, e.seq),
        });
    }
    for r in runs {
        let summary = match &r.finished_at {
            Some(_) => format!("{} run {}", r.kind, r.state),
            None => format!("{} run {} (started)", r.kind, r.state),
        };
        entries.push(Entry {
            at: r.finished_at.unwrap_or(r.created_at),
            kind: Kind::Run,
            summary,
            href: format!("/console/runs/{}", encode(&r.id)),
            tie: (1, 0),
        });
    }
    entries.sort_by(|a, b| (&b.at, b.tie).cmp(&(&a.at, a.tie)));
    entries.truncate(LIMIT);
    // From before the oldest audit entry shown; when none is, every entry of the person's trail
    // is older than what is shown.
    let older = match entries
        .iter()
        .filter(|e| e.tie.0 == 0)
        .map(|e| e.tie.1)
        .min()
    {
        Some(seq) => format!("/console/audit?person={who}&order=newest&before={seq}"),
        None => format!("/console/audit?person={who}&order=newest"),
    };
    Timeline { entries, older }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenure_core::run::RunState;

    fn run(
        id: &str,
        kind: &str,
        state: RunState,
        created: &str,
        finished: Option<&str>,
    ) -> views::Run {
        views::Run {
            id: id.into(),
            event_id: None,
            person_id: "p 1".into(),
            kind: kind.into(),
            state,
            priority: 10,
            effective_at: created.into(),
            created_at: created.into(),
            planned_at: None,
            finished_at: finished.map(str::to_string),
            cancel_requested: false,
            error: None,
            note: None,
            request_id: None,
            trace_id: None,
        }
    }

    fn entry(seq: i64, at: &str, action: &str, run: Option<&str>) -> views::AuditEntry {
        views::AuditEntry {
            seq,
            at: at.into(),
            actor: "engine".into(),
            action: action.into(),
            person_id: Some("p 1".into()),
            entitlement: None,
            system: action.starts_with("step.").then(|| "dir".into()),
            run_id: run.map(str::to_string),
            reason: format!("{action} reason"),
            correlation_id: None,
            details: serde_json::Value::Null,
            trace_id: None,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn runs_and_audit_entries_merge_newest_first_and_link_their_pages() {
        let t = |s: &str| format!("2026-01-0{s}Z");
        let runs = vec![
            run("R2", "leave", RunState::Running, &t("3T00:00:00.000"), None),
            run(
                "R1",
                "hire",
                RunState::Succeeded,
                &t("1T00:00:00.000"),
                Some(&t("1T00:00:01.000")),
            ),
        ];
        let audit = vec![
            entry(9, &t("3T00:00:00.000"), "event.received", Some("R2")),
            entry(4, &t("1T00:00:01.000"), "step.create_account", Some("R1")),
            entry(3, &t("1T00:00:00.000"), "run.planned", Some("R1")),
            entry(2, &t("1T00:00:00.000"), "event.received", Some("R1")),
        ];
        let tl = merge("p 1", runs, audit);
        let lines: Vec<(&str, &str, &str)> = tl
            .entries
            .iter()
            .map(|e| (e.kind.as_str(), e.summary.as_str(), e.href.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                // The same instant: the event first in the chain, the run after it.
                ("run", "leave run running (started)", "/console/runs/R2"),
                ("event", "event.received reason", "/console/runs/R2"),
                ("run", "hire run succeeded", "/console/runs/R1"),
                (
                    "audit",
                    "step.create_account on dir: step.create_account reason",
                    "/console/audit?person=p+1&after=3&limit=1"
                ),
                (
                    "audit",
                    "run.planned: run.planned reason",
                    "/console/audit?person=p+1&after=2&limit=1"
                ),
                ("event", "event.received reason", "/console/runs/R1"),
            ]
        );
        assert_eq!(tl.older, "/console/audit?person=p+1&order=newest&before=2");
    }

    #[test]
    fn the_timeline_is_bounded_and_points_at_the_rest() {
        let audit: Vec<views::AuditEntry> = (1..=80)
            .rev()
            .map(|seq| {
                entry(
                    seq,
                    &format!("2026-01-01T00:00:00.{seq:03}Z"),
                    "step.grant",
                    None,
                )
            })
            .collect();
        let tl = merge("p", Vec::new(), audit);
        assert_eq!(tl.entries.len(), LIMIT);
        assert_eq!(
            tl.entries[0].summary,
            "step.grant on dir: step.grant reason"
        );
        assert_eq!(tl.older, "/console/audit?person=p&order=newest&before=31");
        let empty = merge("p", Vec::new(), Vec::new());
        assert!(empty.entries.is_empty());
        assert_eq!(empty.older, "/console/audit?person=p&order=newest");
    }
}
