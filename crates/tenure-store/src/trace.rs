//! Trace context across the engine's hand-offs. A request's span (or a W3C `traceparent` a
//! client sent) becomes the parent of the run it creates; the run's own span context is stored
//! with it (`runs.traceparent`), so the steps that run later, on other tasks and perhaps after
//! a restart, continue the same trace; audit entries carry its trace id.
//!
//! Everything here does nothing, and answers `None`, until [`enable`] is called, which the
//! binary does when it installs the OpenTelemetry layer (OTLP export configured). Without it
//! spans have no trace context, and no run pays for one.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns trace context on: call once the OpenTelemetry layer is installed.
pub fn enable() {
    ENABLED.store(true, Ordering::Release);
}

/// Whether trace context is on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// The trace context of `span`, if trace context is on and the span has a valid one.
fn span_context(span: &tracing::Span) -> Option<SpanContext> {
    if !enabled() {
        return None;
    }
    let sc = span.context().span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// The W3C `traceparent` of `span` (`00-<trace id>-<span id>-<flags>`), if it has a valid
/// trace context.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    span_context(span).map(|sc| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8() & TraceFlags::SAMPLED.to_u8()
        )
    })
}

/// The trace id of `span` (32 hex digits), if it has a valid trace context.
pub fn trace_id_of(span: &tracing::Span) -> Option<String> {
    span_context(span).map(|sc| sc.trace_id().to_string())
}

/// The `traceparent` of the current span: what an outgoing call sends.
pub fn current() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// The trace id of the current span (32 hex digits), for an audit entry.
pub fn current_trace_id() -> Option<String> {
    trace_id_of(&tracing::Span::current())
}

/// The trace id inside a well-formed `traceparent`.
pub fn trace_id(traceparent: &str) -> Option<String> {
    parse(traceparent).map(|sc| sc.trace_id().to_string())
}

/// Whether `tp` has the exact shape of a version-00 `traceparent`: `00-`, 32 lowercase hex
/// digits, `-`, 16, `-`, 2 (the propagator alone would take a short id and pad it).
fn well_formed(tp: &str) -> bool {
    let b = tp.as_bytes();
    b.len() == 55
        && b.starts_with(b"00-")
        && b.iter().enumerate().all(|(i, c)| match i {
            2 | 35 | 52 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

fn parse(traceparent: &str) -> Option<SpanContext> {
    if !well_formed(traceparent) {
        return None;
    }
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// Makes `span` the child of the span `traceparent` names (a run's stored context, or a
/// client's header). A missing or malformed one leaves `span` where it is: under the current
/// span, or a new trace. Call it before the span is entered.
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    if !enabled() {
        return;
    }
    let Some(sc) = traceparent.and_then(parse) else {
        return;
    };
    let cx = opentelemetry::Context::new().with_remote_span_context(sc);
    // Fails only when the span is disabled or already started: then it keeps its own parent.
    let _ = span.set_parent(cx);
}

/// Records `span`'s trace id in its `trace_id` field (declared `Empty` when the span is made),
/// so log lines inside it name the trace.
pub fn record_trace_id(span: &tracing::Span) {
    if let Some(id) = trace_id_of(span) {
        span.record("trace_id", id);
    }
}

/// The span a run is created under, child of `parent` if given (else of the current span),
/// and the `traceparent` to store with the run so its steps join the same trace. `None` while
/// trace context is off.
pub fn run_context(run_id: &str, kind: &str, parent: Option<&str>) -> Option<String> {
    if !enabled() {
        return None;
    }
    let span = tracing::info_span!(target: "tenure::run", "run", run_id = %run_id, kind = %kind);
    set_parent(&span, parent);
    traceparent_of(&span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_id_is_read_from_a_well_formed_traceparent_only() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_id(tp).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "not a traceparent",
        ] {
            assert_eq!(trace_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn off_it_gives_no_context() {
        // Nothing in this test binary enables trace context.
        let span = tracing::info_span!("x");
        assert_eq!(traceparent_of(&span), None);
        assert_eq!(run_context("r1", "hire", None), None);
    }
}
