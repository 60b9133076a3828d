//! The server's own watch over the audit chain: [`tenure_core::audit::ChainWatch`] advanced a
//! bounded page at a time by a background task (`tenure serve` runs [`watch_audit_chain`]),
//! and what it found, as `GET /api/v1/audit/verification`, a gauge at `/metrics` and a line
//! on the console's audit page. Reading the result costs nothing: it is kept in memory, so no
//! page or scrape ever waits for a pass over the chain.

use crate::auth::{Principal, Scope};
use crate::bodies::ChainVerification;
use crate::openapi::{Forbidden, Internal, Unauthorized};
use crate::query::Query;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use std::time::Duration;
use tenure_core::audit::{ChainPass, ChainReport, ChainState, ChainWatch};
use tokio::sync::{Mutex, watch};
use utoipa::IntoParams;

/// How many entries one step reads and verifies: one query, a few milliseconds of hashing.
pub(crate) const BATCH: i64 = 5_000;

/// How many steps one round of the background task takes at most to follow the chain to its
/// head (100,000 entries): a database restored with millions of entries is caught up over a
/// few rounds rather than in one long one.
const FOLLOW_STEPS: usize = 20;

/// How often `tenure serve` runs a round.
pub const CHAIN_CHECK_EVERY: Duration = Duration::from_secs(30);

/// The watch and its latest report.
pub(crate) struct ChainWatcher {
    /// Held for a whole step, so two steps (the background round and an admin's refresh)
    /// never verify the same page twice or out of order.
    watch: Mutex<ChainWatch>,
    /// What the last step found, for readers that must not wait for a step.
    report: watch::Sender<ChainReport>,
}

impl Default for ChainWatcher {
    fn default() -> Self {
        let watch = ChainWatch::default();
        let (report, _) = watch::channel(watch.report());
        ChainWatcher {
            watch: Mutex::new(watch),
            report,
        }
    }
}

impl ChainWatcher {
    /// What the last step found.
    pub(crate) fn report(&self) -> ChainReport {
        self.report.borrow().clone()
    }

    /// One step of `pass`: reads the head, then at most [`BATCH`] entries after where the pass
    /// stands, and verifies them. Returns whether the pass reached the head.
    async fn step(
        &self,
        s: &AppState,
        watch: &mut ChainWatch,
        pass: ChainPass,
    ) -> Result<bool, ApiError> {
        let Some(after) = watch.after(pass) else {
            return Ok(false);
        };
        let mut c = s.store().reader().await?;
        // The head first: every entry up to it is committed before the page is read.
        let (head_seq, head_hash) = tenure_store::audit_head(&mut c).await?;
        let page = tenure_store::audit_page(&mut c, after, None, BATCH).await?;
        drop(c);
        let full = page.len() as i64 == BATCH;
        let now = s.engine().clock().now_ms();
        let reached = watch.advance(pass, (head_seq, &head_hash), &page, full, now);
        let report = watch.report();
        if report.state == ChainState::Broken && self.report.borrow().state != ChainState::Broken {
            tracing::error!(
                problem = report.problem.as_deref().unwrap_or_default(),
                verified_through = report.verified_through,
                "the audit chain is broken; `tenure audit verify` names every break"
            );
        }
        self.report.send_replace(report);
        Ok(reached)
    }

    /// A round: follows the chain towards its head (at most `follow_steps` steps), then checks
    /// one page again from the start of the chain.
    pub(crate) async fn round(&self, s: &AppState, follow_steps: usize) -> Result<(), ApiError> {
        let mut watch = self.watch.lock().await;
        for _ in 0..follow_steps {
            if self.step(s, &mut watch, ChainPass::Follow).await? {
                break;
            }
            if watch.after(ChainPass::Follow).is_none() {
                return Ok(());
            }
        }
        self.step(s, &mut watch, ChainPass::Recheck).await?;
        Ok(())
    }
}

/// Verifies the audit chain in the background: a round at once, then every `every`, until
/// `stop` says so (or its sender is gone). A round that fails (the database does not answer) is
/// logged and tried again at the next.
pub async fn watch_audit_chain(state: AppState, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            break;
        }
        if let Err(e) = state.chain().round(&state, FOLLOW_STEPS).await {
            tracing::error!(error = %e.message, "checking the audit chain failed; will try again");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct VerificationQuery {
    /// Check further before answering: one page following the chain's end and one page
    /// checked again from its start (at most 5,000 entries each). Requires `admin`.
    refresh: Option<bool>,
}

/// How the server's check of the audit chain stands.
///
/// The server verifies the hash chain in the background, a page at a time, every 30 seconds:
/// it follows the chain's end, and goes over it again from the start, so an entry altered after
/// it was verified is found too, within one whole pass. `tenure audit verify` checks the whole
/// chain at once, and checkpoints too. Requires `read`; `refresh=true` requires `admin`.
#[utoipa::path(
    get,
    path = "/api/v1/audit/verification",
    tag = "audit",
    security(("bearerAuth" = ["read"])),
    params(VerificationQuery),
    responses(
        (status = 200, description = "Where the check stands.", body = ChainVerification),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
pub(crate) async fn audit_verification(
    State(s): State<AppState>,
    p: Principal,
    Query(q): Query<VerificationQuery>,
) -> Result<Json<ChainVerification>, ApiError> {
    p.require(Scope::Read)?;
    if q.refresh == Some(true) {
        // A bounded step on demand, for an operator after an incident and for tests, which
        // must not wait for the 30 s round (nor sleep): two pages at most, so no request can
        // make the server read the whole chain. The round's own lock keeps the steps in order.
        p.require(Scope::Admin)?;
        s.chain().round(&s, 1).await?;
    }
    Ok(Json(ChainVerification::from(s.chain().report())))
}
