//! `[retention]`: dropping what tenure no longer needs once its period is over. Today that is
//! events' raw payloads (`retention.event_payloads`): the body as received, with names and
//! emails, dropped once the event is older than the period and its run has ended. The event's
//! record stays (its id, type, person, times, sender and body hash), and so does everything the
//! run did: audit entries name ids, not payloads.
//!
//! A pass runs at start and every hour, in transactions of [`BATCH`] events, each with one
//! audit entry listing the events it dropped, so the purge itself is evidence.

use crate::context::Inner;
use crate::error::Result;
use std::sync::Arc;
use std::time::Duration;
use tenure_core::audit::AuditAction;
use tenure_store::NewAudit;

/// Events dropped per transaction (and listed per audit entry).
const BATCH: i64 = 500;
/// How often a pass runs.
const EVERY: Duration = Duration::from_secs(3600);

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPass {
    /// Events whose payloads were dropped.
    pub event_payloads_dropped: usize,
}

/// One pass over everything past its period, now (by the engine's clock).
pub(crate) async fn pass(inner: &Inner) -> Result<RetentionPass> {
    let mut done = RetentionPass::default();
    let Some(period) = inner.rules().config.retention.event_payloads_ms else {
        return Ok(done);
    };
    loop {
        let mut tx = inner.store.begin().await?;
        let now = inner.clock.now_ms();
        let before = now - period;
        let ids = tenure_store::drop_event_payloads(tx.conn(), before, now, BATCH).await?;
        if ids.is_empty() {
            tx.rollback().await?;
            break;
        }
        tx.audit(NewAudit {
            at_ms: now,
            actor: "retention".into(),
            action: AuditAction::EventPayloadsDropped.into(),
            reason: format!(
                "retention.event_payloads: {} events received before the period of {} days, their runs ended",
                ids.len(),
                period / 86_400_000
            ),
            details: serde_json::json!({
                "received_before": before,
                "period_ms": period,
                "events": ids,
            }),
            ..Default::default()
        });
        tx.commit().await?;
        done.event_payloads_dropped += ids.len();
        metrics::counter!("tenure_retention_dropped_total", "kind" => "event_payloads")
            .increment(ids.len() as u64);
        if (ids.len() as i64) < BATCH {
            break;
        }
    }
    Ok(done)
}

/// Runs a pass at start, then every hour, until shutdown.
pub(crate) async fn run(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        if *shutdown.borrow() {
            break;
        }
        match pass(&inner).await {
            Ok(p) if p.event_payloads_dropped > 0 => tracing::info!(
                event_payloads = p.event_payloads_dropped,
                "retention: payloads past their period dropped"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "retention pass failed; will try again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    }
}
