//! A target system's health, as `GET /api/v1/systems` reports it: `ok`, `degraded` or `down`,
//! since when, and the last error, decided from the system's circuit breaker and its recent
//! calls. Plain data over times passed in (epoch ms), like the breaker.
//!
//! - **down**: the circuit is open (or half-open, its trial call still out), or the
//!   connector's own health check fails: calls are not getting through.
//! - **degraded**: calls get through, but most of the recent ones failed (at least
//!   [`MIN_CALLS`] of the last [`RECENT_CALLS`], more than half of them failures).
//! - **ok**: otherwise.
//!
//! A circuit that closes again after being open starts a fresh count: the failures that opened
//! it already said `down`, and the trial call that closed it says the system is back.

use crate::breaker::CircuitState;
use serde::Serialize;
use std::collections::VecDeque;

/// How many of a system's latest calls the error rate looks at.
pub const RECENT_CALLS: usize = 20;
/// Fewer recent calls than this say nothing about the error rate.
pub const MIN_CALLS: usize = 3;
/// The longest last error kept, in characters (longer ones are cut).
pub const MAX_ERROR_CHARS: usize = 300;

/// How a system is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Calls get through and mostly succeed.
    Ok,
    /// Calls get through, but most recent ones failed.
    Degraded,
    /// Calls are held back (circuit open) or the system's health check fails.
    Down,
}

impl Health {
    /// The name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }

    /// Every value, for metrics that list each one.
    pub const ALL: [Health; 3] = [Health::Ok, Health::Degraded, Health::Down];
}

/// The health a system's state adds up to: the circuit first, then its health check, then how
/// many of its `calls` recent calls were `failures`.
pub fn judge(circuit: CircuitState, probe_failed: bool, failures: usize, calls: usize) -> Health {
    if !matches!(circuit, CircuitState::Closed { .. }) || probe_failed {
        Health::Down
    } else if calls >= MIN_CALLS && failures * 2 > calls {
        Health::Degraded
    } else {
        Health::Ok
    }
}

/// The last failure seen on a system, with secrets taken out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastError {
    /// When (epoch ms).
    pub at_ms: i64,
    /// What went wrong (see [`redact`]).
    pub message: String,
}

/// A system's health as it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthStatus {
    /// Ok, degraded or down.
    pub health: Health,
    /// Since when (epoch ms): the engine's start, or the last change of `health`.
    pub since_ms: i64,
    /// The last failed call or health check, if any.
    pub last_error: Option<LastError>,
    /// Recent calls counted (at most [`RECENT_CALLS`]).
    pub recent_calls: usize,
    /// How many of them failed.
    pub recent_failures: usize,
}

/// The recent calls of one system and the health they add up to.
#[derive(Debug, Clone)]
pub struct SystemHealth {
    /// Newest last; `true` for a failure.
    recent: VecDeque<bool>,
    circuit_open: bool,
    probe_failed: bool,
    health: Health,
    since_ms: i64,
    last_error: Option<LastError>,
}

impl SystemHealth {
    /// A system nothing is known against yet: ok since `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        SystemHealth {
            recent: VecDeque::with_capacity(RECENT_CALLS),
            circuit_open: false,
            probe_failed: false,
            health: Health::Ok,
            since_ms: now_ms,
            last_error: None,
        }
    }

    /// Records a connector call's outcome (`Err` with its message for a failure), with the
    /// circuit as the breaker left it after hearing of the call.
    pub fn on_call(&mut self, now_ms: i64, result: Result<(), &str>, circuit: CircuitState) {
        let open = !matches!(circuit, CircuitState::Closed { .. });
        if self.circuit_open && !open {
            self.recent.clear();
        }
        if self.recent.len() == RECENT_CALLS {
            self.recent.pop_front();
        }
        self.recent.push_back(result.is_err());
        if let Err(message) = result {
            self.last_error = Some(LastError {
                at_ms: now_ms,
                message: redact(message),
            });
        }
        self.settle(now_ms, circuit);
    }

    /// Records the outcome of the connector's health check, with the circuit as it stands.
    pub fn on_probe(&mut self, now_ms: i64, result: Result<(), &str>, circuit: CircuitState) {
        self.probe_failed = result.is_err();
        if let Err(message) = result {
            self.last_error = Some(LastError {
                at_ms: now_ms,
                message: redact(&format!("health check: {message}")),
            });
        }
        self.settle(now_ms, circuit);
    }

    /// Looks at the circuit as it stands now (it may have opened or half-opened since the last
    /// call was recorded).
    pub fn on_circuit(&mut self, now_ms: i64, circuit: CircuitState) {
        self.settle(now_ms, circuit);
    }

    fn settle(&mut self, now_ms: i64, circuit: CircuitState) {
        self.circuit_open = !matches!(circuit, CircuitState::Closed { .. });
        let failures = self.recent.iter().filter(|f| **f).count();
        let health = judge(circuit, self.probe_failed, failures, self.recent.len());
        if health != self.health {
            self.health = health;
            self.since_ms = now_ms;
        }
    }

    /// Where the system stands.
    pub fn status(&self) -> HealthStatus {
        HealthStatus {
            health: self.health,
            since_ms: self.since_ms,
            last_error: self.last_error.clone(),
            recent_calls: self.recent.len(),
            recent_failures: self.recent.iter().filter(|f| **f).count(),
        }
    }
}

/// An error message fit to show and log: control characters become spaces, credentials in URLs
/// (`scheme://user:password@host`), values of secret-looking keys (`password=`, `token:`, ...)
/// and bearer or basic credentials become `***`, and it is cut to [`MAX_ERROR_CHARS`].
/// Connectors do not put secrets in their errors; this holds even when a library they call does.
pub fn redact(message: &str) -> String {
    let clean: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = redact_values(&redact_userinfo(&clean));
    match clean.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean,
    }
}

fn redact_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Keys whose value is a secret when followed by `=` or `:`.
const SECRET_KEYS: [&str; 8] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
];

/// Authorization schemes whose next word is a credential.
const SCHEMES: [&str; 2] = ["bearer", "basic"];

fn redact_values(s: &str) -> String {
    // ASCII lowercasing keeps byte offsets, so positions found in `lower` hold in `s`.
    let lower = s.to_ascii_lowercase();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let value_at = SECRET_KEYS
            .iter()
            .filter(|k| lower[i..].starts_with(*k))
            .find_map(|k| {
                // A quoted key (`"token": ...`) has its closing quote before the separator.
                let mut after = i + k.len();
                if matches!(s[after..].chars().next(), Some('"' | '\'')) {
                    after += 1;
                }
                let skip = s[after..].len() - s[after..].trim_start().len();
                let sep = after + skip;
                matches!(s[sep..].chars().next(), Some('=' | ':')).then(|| {
                    let v = sep + 1;
                    (v + s[v..].len() - s[v..].trim_start().len(), sep + 1)
                })
            })
            .or_else(|| {
                SCHEMES
                    .iter()
                    .filter(|k| lower[i..].starts_with(*k))
                    .find_map(|k| {
                        let after = i + k.len();
                        let rest = &s[after..];
                        let trimmed = rest.trim_start();
                        (trimmed.len() < rest.len() && !trimmed.is_empty())
                            .then(|| (after + rest.len() - trimmed.len(), after))
                    })
            });
        match value_at {
            Some((value, key_end)) => {
                out.push_str(&s[i..key_end]);
                out.push_str(&s[key_end..value]);
                let end = value_end(s, value);
                out.push_str("***");
                i = end;
            }
            None => {
                let c = s[i..].chars().next().expect("i is inside s");
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

/// Where a secret value starting at `start` ends: its closing quote when quoted, else the first
/// separator.
fn value_end(s: &str, start: usize) -> usize {
    let rest = &s[start..];
    match rest.chars().next() {
        Some(q @ ('"' | '\'')) => rest[1..]
            .find(q)
            .map_or(s.len(), |close| start + 1 + close + 1),
        _ => {
            start
                + rest
                    .find(|c: char| {
                        c.is_whitespace()
                            || matches!(c, '&' | ',' | ';' | '"' | '\'' | ')' | '}' | ']')
                    })
                    .unwrap_or(rest.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::Breaker;

    const CLOSED: CircuitState = CircuitState::Closed { failures: 0 };

    #[test]
    fn the_circuit_and_the_health_check_decide_down_first() {
        assert_eq!(
            judge(CircuitState::Open { until_ms: 5 }, false, 0, 0),
            Health::Down
        );
        assert_eq!(judge(CircuitState::HalfOpen, false, 0, 20), Health::Down);
        assert_eq!(judge(CLOSED, true, 0, 20), Health::Down);
        assert_eq!(judge(CLOSED, false, 0, 20), Health::Ok);
    }

    #[test]
    fn mostly_failing_recent_calls_are_degraded_once_there_are_enough() {
        assert_eq!(judge(CLOSED, false, 2, 3), Health::Degraded);
        assert_eq!(judge(CLOSED, false, 11, 20), Health::Degraded);
        // Half is not most.
        assert_eq!(judge(CLOSED, false, 10, 20), Health::Ok);
        // Too few calls to say.
        assert_eq!(judge(CLOSED, false, 2, 2), Health::Ok);
    }

    /// Calls through a breaker as the engine makes them: the breaker hears of the call first,
    /// then the health record, with the circuit as the breaker left it.
    fn call(b: &mut Breaker, h: &mut SystemHealth, now: i64, result: Result<(), &str>) {
        b.try_acquire(now)
            .expect("the circuit lets the call through");
        match result {
            Ok(()) => b.on_success(),
            Err(_) => b.on_failure(now),
        };
        h.on_call(now, result, b.state());
    }

    #[test]
    fn a_system_failing_every_call_is_down_then_ok_again_after_its_trial_succeeds() {
        let mut b = Breaker::new(3, 1_000);
        let mut h = SystemHealth::new(0);
        assert_eq!(h.status().health, Health::Ok);
        assert_eq!(h.status().since_ms, 0);

        call(&mut b, &mut h, 10, Err("503 Service Unavailable"));
        call(&mut b, &mut h, 20, Err("503 Service Unavailable"));
        assert_eq!(h.status().health, Health::Ok, "two calls say nothing yet");
        call(&mut b, &mut h, 30, Err("connection refused"));
        let s = h.status();
        assert_eq!(
            s.health,
            Health::Down,
            "the third failure opened the circuit"
        );
        assert_eq!(s.since_ms, 30);
        assert_eq!(
            s.last_error,
            Some(LastError {
                at_ms: 30,
                message: "connection refused".into()
            })
        );
        assert_eq!((s.recent_calls, s.recent_failures), (3, 3));

        // Held back, then a failed trial: still down, since the same moment.
        assert!(b.try_acquire(500).is_err());
        h.on_circuit(500, b.state());
        call(&mut b, &mut h, 1_030, Err("connection refused"));
        assert_eq!(h.status().health, Health::Down);
        assert_eq!(h.status().since_ms, 30);

        // The next trial succeeds: the circuit closes and the count starts afresh.
        call(&mut b, &mut h, 2_030, Ok(()));
        let s = h.status();
        assert_eq!(s.health, Health::Ok);
        assert_eq!(s.since_ms, 2_030);
        assert_eq!((s.recent_calls, s.recent_failures), (1, 0));
        assert_eq!(
            s.last_error.map(|e| e.at_ms),
            Some(1_030),
            "the last error stays for whoever looks later"
        );
    }

    #[test]
    fn a_system_failing_most_calls_with_its_circuit_closed_is_degraded() {
        // Failures never come 8 in a row, so the circuit stays closed.
        let mut b = Breaker::new(8, 1_000);
        let mut h = SystemHealth::new(0);
        let mut now = 0;
        for _ in 0..4 {
            now += 10;
            call(&mut b, &mut h, now, Err("timeout"));
            now += 10;
            call(&mut b, &mut h, now, Err("timeout"));
            now += 10;
            call(&mut b, &mut h, now, Ok(()));
        }
        assert!(matches!(b.state(), CircuitState::Closed { .. }));
        let s = h.status();
        assert_eq!(s.health, Health::Degraded, "{s:?}");
        assert_eq!((s.recent_calls, s.recent_failures), (12, 8));
        let since = s.since_ms;
        // Successes bring the share to half and below: ok again.
        while h.status().health == Health::Degraded {
            now += 10;
            call(&mut b, &mut h, now, Ok(()));
        }
        assert_eq!(h.status().health, Health::Ok);
        assert!(h.status().since_ms > since);
        assert_eq!(h.status().recent_failures * 2, h.status().recent_calls);
    }

    #[test]
    fn only_the_latest_calls_count() {
        let mut h = SystemHealth::new(0);
        for t in 0..RECENT_CALLS as i64 {
            h.on_call(t, Err("x"), CLOSED);
        }
        assert_eq!(h.status().health, Health::Degraded);
        for t in 0..RECENT_CALLS as i64 {
            h.on_call(100 + t, Ok(()), CLOSED);
        }
        let s = h.status();
        assert_eq!((s.recent_calls, s.recent_failures), (RECENT_CALLS, 0));
        assert_eq!(s.health, Health::Ok);
    }

    #[test]
    fn a_failing_health_check_is_down_until_it_passes() {
        let mut h = SystemHealth::new(0);
        h.on_probe(5, Err("connection refused"), CLOSED);
        let s = h.status();
        assert_eq!((s.health, s.since_ms), (Health::Down, 5));
        assert_eq!(
            s.last_error.unwrap().message,
            "health check: connection refused"
        );
        h.on_probe(9, Ok(()), CLOSED);
        assert_eq!((h.status().health, h.status().since_ms), (Health::Ok, 9));
    }

    #[test]
    fn secrets_are_taken_out_of_errors() {
        assert_eq!(
            redact("error connecting to postgres://admin:hunter2@db.internal:5432/x: refused"),
            "error connecting to postgres://***@db.internal:5432/x: refused"
        );
        assert_eq!(
            redact("POST https://api.example.com/users?x=1 failed"),
            "POST https://api.example.com/users?x=1 failed",
            "nothing to hide"
        );
        assert_eq!(
            redact("bind failed: password=s3cr3t; user=cn=admin"),
            "bind failed: password=***; user=cn=admin"
        );
        assert_eq!(
            redact("refused: {\"token\": \"abc def\", \"code\": 7}"),
            "refused: {\"token\": ***, \"code\": 7}"
        );
        assert_eq!(
            redact("sent Authorization: Bearer eyJhbGci.x.y and got 401"),
            "sent Authorization: Bearer *** and got 401"
        );
        assert_eq!(redact("API_KEY:xyz"), "API_KEY:***");
        assert_eq!(redact("line one\nline two"), "line one line two");
        assert_eq!(
            redact("the token expired"),
            "the token expired",
            "a word is not a key"
        );
        let long = "é".repeat(MAX_ERROR_CHARS + 5);
        let cut = redact(&long);
        assert_eq!(cut.chars().count(), MAX_ERROR_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
