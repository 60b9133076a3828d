//! A per-system circuit breaker as a plain state machine over an injected clock (epoch ms).
//!
//! Closed: calls go through; `threshold` consecutive retryable failures open it. Open: calls
//! are held back until `open_ms` have passed, then one trial call is let through (half-open).
//! The trial's success closes the circuit; its failure opens it again.

use serde::Serialize;

/// Where a circuit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum CircuitState {
    /// Calls go through.
    Closed {
        /// Consecutive failures so far.
        failures: u32,
    },
    /// Calls are held back until `until_ms`.
    Open {
        /// When a trial call may go.
        until_ms: i64,
    },
    /// One trial call is in flight.
    HalfOpen,
}

/// A change of a circuit worth telling operators about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A closed circuit opened: the system failed `threshold` calls in a row.
    Opened,
    /// An open (or half-open) circuit closed: the system answered again.
    Closed,
}

impl Transition {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Opened => "opened",
            Transition::Closed => "closed",
        }
    }
}

/// A circuit breaker for one system.
#[derive(Debug, Clone)]
pub struct Breaker {
    state: CircuitState,
    threshold: u32,
    open_ms: i64,
}

impl Breaker {
    /// A closed breaker that opens after `threshold` consecutive failures for `open_ms`.
    pub fn new(threshold: u32, open_ms: u64) -> Self {
        Self {
            state: CircuitState::Closed { failures: 0 },
            threshold: threshold.max(1),
            open_ms: open_ms as i64,
        }
    }

    /// The current state.
    pub fn state(&self) -> CircuitState {
        self.state
    }

    /// Asks to make a call at `now_ms`: `Ok(())` to go ahead, `Err(retry_at_ms)` to hold back.
    pub fn try_acquire(&mut self, now_ms: i64) -> Result<(), i64> {
        match self.state {
            CircuitState::Closed { .. } => Ok(()),
            CircuitState::Open { until_ms } if now_ms >= until_ms => {
                self.state = CircuitState::HalfOpen;
                Ok(())
            }
            CircuitState::Open { until_ms } => Err(until_ms),
            // The trial is still out; look again shortly.
            CircuitState::HalfOpen => Err(now_ms + (self.open_ms / 10).max(50)),
        }
    }

    /// Records a call that reached the system and got an answer (including "already done");
    /// says so when that closed the circuit.
    pub fn on_success(&mut self) -> Option<Transition> {
        let was_closed = matches!(self.state, CircuitState::Closed { .. });
        self.state = CircuitState::Closed { failures: 0 };
        (!was_closed).then_some(Transition::Closed)
    }

    /// Records a call that failed in a retryable way (unreachable, timeout, 5xx, throttled);
    /// says so when that opened a closed circuit (a failed trial, or a late failure while
    /// open, keeps it open).
    pub fn on_failure(&mut self, now_ms: i64) -> Option<Transition> {
        let was_closed = matches!(self.state, CircuitState::Closed { .. });
        self.state = match self.state {
            CircuitState::Closed { failures } if failures + 1 < self.threshold => {
                CircuitState::Closed {
                    failures: failures + 1,
                }
            }
            _ => CircuitState::Open {
                until_ms: now_ms + self.open_ms,
            },
        };
        (was_closed && matches!(self.state, CircuitState::Open { .. }))
            .then_some(Transition::Opened)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_trials_once() {
        let mut b = Breaker::new(3, 1000);
        for _ in 0..2 {
            b.try_acquire(0).unwrap();
            assert_eq!(b.on_failure(0), None);
        }
        assert_eq!(b.state(), CircuitState::Closed { failures: 2 });
        assert_eq!(b.on_failure(10), Some(Transition::Opened));
        assert_eq!(b.try_acquire(500), Err(1010));
        assert_eq!(b.try_acquire(1010), Ok(()));
        assert!(b.try_acquire(1011).is_err(), "only one trial at a time");
        assert_eq!(b.on_failure(1020), None, "a failed trial keeps it open");
        assert_eq!(b.state(), CircuitState::Open { until_ms: 2020 });
        b.try_acquire(2020).unwrap();
        assert_eq!(b.on_success(), Some(Transition::Closed));
        assert_eq!(b.state(), CircuitState::Closed { failures: 0 });
        assert_eq!(b.on_success(), None);
    }

    #[test]
    fn success_resets_the_count() {
        let mut b = Breaker::new(2, 1000);
        b.on_failure(0);
        b.on_success();
        b.on_failure(0);
        assert_eq!(b.state(), CircuitState::Closed { failures: 1 });
    }
}
