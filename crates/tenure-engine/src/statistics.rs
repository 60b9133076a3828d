//! On PostgreSQL, the planner's statistics of the tables the engine fills fastest, kept fresh
//! while they grow (see [`tenure_store::refresh_planner_statistics`]).

use crate::context::Inner;
use std::sync::Arc;
use std::time::Duration;

/// How often the tables' changes are looked at.
const EVERY: Duration = Duration::from_secs(2);

/// Looks every [`EVERY`] until shutdown; on SQLite, returns at once.
pub(crate) async fn run(inner: Arc<Inner>) {
    if inner.store.backend() != tenure_store::Backend::Postgres {
        return;
    }
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        match tenure_store::refresh_planner_statistics(&inner.store).await {
            Ok(tables) if !tables.is_empty() => {
                tracing::debug!(?tables, "planner statistics refreshed")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "refreshing planner statistics failed; will try again")
            }
        }
    }
}
