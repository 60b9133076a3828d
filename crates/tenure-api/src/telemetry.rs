//! What the API tells operators: a log line and metrics for every request, each request under
//! an id (`X-Request-Id`) that follows it into the events it sends, and the gauges set when
//! `/metrics` is scraped (circuits, system health, the step queue, the audit chain's check).

use crate::{ApiError, AppState};
use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use std::convert::Infallible;
use std::time::Instant;
use tenure_core::audit::ChainState;
use tenure_core::breaker::CircuitState;
use tenure_core::health::Health;
use tenure_core::run::Priority;
use tracing::Instrument;

/// The header a request id comes and goes in.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The W3C Trace Context header a client's trace comes in.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// The longest request id accepted from a client.
pub const MAX_REQUEST_ID: usize = 128;

/// The id of the request being served: the client's `X-Request-Id` when it is fit to log
/// (1 to [`MAX_REQUEST_ID`] printable ASCII characters, no spaces), else a fresh UUIDv7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The client's id if acceptable, else a new one.
    pub fn from_header(given: Option<&HeaderValue>) -> RequestId {
        given
            .map(HeaderValue::as_bytes)
            .filter(|b| {
                (1..=MAX_REQUEST_ID).contains(&b.len()) && b.iter().all(u8::is_ascii_graphic)
            })
            .and_then(|b| std::str::from_utf8(b).ok())
            .map_or_else(
                || RequestId(uuid::Uuid::now_v7().to_string()),
                |s| RequestId(s.to_string()),
            )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // The middleware below puts one on every request the router serves.
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId::from_header(parts.headers.get(REQUEST_ID_HEADER))))
    }
}

/// The route label of a request: the matched route template (`/api/v1/runs/{id}`), never the
/// path itself, so the number of series stays that of the routes.
fn route_of(req: &Request) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string()
}

/// The method label: the standard methods, everything else `other`.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Serves a request inside a span carrying its id, method and route (handlers add the event
/// and run they created), then logs it at `info` with its status and time, counts it, and
/// returns the id in `X-Request-Id`. When traces are exported the span continues the trace of
/// a W3C `traceparent` header the client sent, and carries its trace id.
pub(crate) async fn observe(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = RequestId::from_header(req.headers().get(REQUEST_ID_HEADER));
    let route = route_of(&req);
    let method = method_label(req.method());
    req.extensions_mut().insert(id.clone());
    let span = tracing::info_span!(
        "request",
        request_id = %id.0,
        method = %method,
        route = %route,
        event_id = tracing::field::Empty,
        run_id = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    let traceparent = req
        .headers()
        .get(TRACEPARENT_HEADER)
        .and_then(|v| v.to_str().ok());
    tenure_store::trace::set_parent(&span, traceparent);
    tenure_store::trace::record_trace_id(&span);
    let mut res = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    span.in_scope(|| {
        tracing::info!(
            status,
            // Milliseconds to the microsecond.
            elapsed_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3,
            "request served"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&id.0) {
        res.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("tenure_http_requests_total", &labels).increment(1);
    metrics::histogram!("tenure_http_request_duration_seconds", &labels)
        .record(elapsed.as_secs_f64());
    res
}

/// Sets the gauges read at scrape time: each system's circuit (`tenure_circuit_state`) and
/// health (`tenure_system_health`), one series per state set to 1 for the current one; and
/// per step priority, the steps due and unclaimed (`tenure_queue_depth`) and how long the
/// oldest of them has waited (`tenure_queue_oldest_age_seconds`); and how the audit chain's
/// check stands (`tenure_audit_chain_state`, one series per state, and
/// `tenure_audit_chain_verified_seq`), from the watch's last step.
pub(crate) async fn record_gauges(s: &AppState) -> Result<(), ApiError> {
    let chain = s.chain().report();
    for state in ChainState::ALL {
        metrics::gauge!("tenure_audit_chain_state", "state" => state.as_str())
            .set(f64::from(u8::from(*state == chain.state)));
    }
    metrics::gauge!("tenure_audit_chain_verified_seq").set(chain.verified_through as f64);
    for sys in s.engine().circuits() {
        let current = match sys.circuit {
            CircuitState::Closed { .. } => "closed",
            CircuitState::Open { .. } => "open",
            CircuitState::HalfOpen => "half_open",
        };
        for state in ["closed", "open", "half_open"] {
            metrics::gauge!("tenure_circuit_state", "system" => sys.id.clone(), "state" => state)
                .set(f64::from(u8::from(state == current)));
        }
        for h in Health::ALL {
            metrics::gauge!("tenure_system_health", "system" => sys.id.clone(), "health" => h.as_str())
                .set(f64::from(u8::from(h == sys.health.health)));
        }
    }
    let now = s.engine().clock().now_ms();
    let mut c = s.store().reader().await?;
    let depth = tenure_store::queue_depth(&mut c, now).await?;
    let (open, overdue) = tenure_store::review_gauges(&mut c, now).await?;
    metrics::gauge!("tenure_review_items_open").set(open as f64);
    metrics::gauge!("tenure_review_items_overdue").set(overdue as f64);
    // Every priority always has a value (labelled with its stored number: 0 for leavers, 10
    // for everyone else), so an emptied queue reads 0.
    for p in [Priority::Urgent, Priority::Normal] {
        let d = depth.iter().find(|d| d.priority == p);
        let (steps, age) = d.map_or((0, 0), |d| (d.steps, (now - d.oldest_due_at).max(0)));
        let label = p.as_i64().to_string();
        metrics::gauge!("tenure_queue_depth", "priority" => label.clone()).set(steps as f64);
        metrics::gauge!("tenure_queue_oldest_age_seconds", "priority" => label)
            .set(age as f64 / 1000.0);
    }
    // Runs past their `[sla]` target and not done, per direction with a target.
    let sla = s.engine().rules().config.sla.clone();
    for dir in tenure_core::sla::Direction::ALL {
        if let Some(t) = dir.target(&sla, None) {
            let n = tenure_store::overdue_runs(&mut c, dir.kinds(), now - t).await?;
            metrics::gauge!("tenure_sla_overdue_runs", "direction" => dir.as_str()).set(n as f64);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(raw: &[u8]) -> String {
        RequestId::from_header(Some(&HeaderValue::from_bytes(raw).unwrap())).0
    }

    #[test]
    fn a_fit_request_id_is_kept_and_anything_else_replaced() {
        assert_eq!(id(b"abc-123_x.y:z"), "abc-123_x.y:z");
        let longest = "r".repeat(MAX_REQUEST_ID);
        assert_eq!(id(longest.as_bytes()), longest);
        for bad in [
            "r".repeat(MAX_REQUEST_ID + 1).into_bytes(),
            b"with space".to_vec(),
            b"tab\there".to_vec(),
            "caf\u{e9}".as_bytes().to_vec(),
            b"\x80\x81".to_vec(),
            Vec::new(),
        ] {
            let got = id(&bad);
            assert_ne!(got.as_bytes(), bad.as_slice());
            assert!(uuid::Uuid::parse_str(&got).is_ok(), "{got}");
        }
        let fresh = RequestId::from_header(None).0;
        assert!(uuid::Uuid::parse_str(&fresh).is_ok());
        assert_ne!(fresh, RequestId::from_header(None).0, "a new one each time");
    }
}
