//! The people search index, written behind the intake.
//!
//! On a sealing vault a person is found by name or email through blind index entries, about 25
//! per person, keyed hashes that land all over the index. Written by the transaction that
//! stores the person, each entry dirtied a page of its own, and the people index was the
//! largest share of what the engine's commits wrote. So that transaction only queues the
//! person (`people_search_pending`), and this loop writes the entries of everyone queued every
//! [`EVERY`], many people per transaction, where they share pages. Searches meanwhile open the
//! records of queued people, so nobody is missing from a search while queued.

use crate::context::Inner;
use crate::error::Result;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one indexing transaction should hold the store's writer: leaves wait behind it.
/// The batch is sized from the last one's time per person, which grows with the index and with
/// the load (under `tenure bench`'s backlog, 10,000 people stored, about 80 microseconds).
const HOLD: Duration = Duration::from_millis(50);
/// The fewest and the most people per transaction.
const MIN_BATCH: i64 = 50;
const MAX_BATCH: i64 = 2_000;
/// How often the queue is looked at.
const EVERY: Duration = Duration::from_millis(500);

/// People for the next transaction, after one that indexed `n` people in `took`.
fn next_batch(batch: i64, n: usize, took: Duration) -> i64 {
    if n == 0 {
        return batch;
    }
    let each = took.as_secs_f64() / n as f64;
    if each <= 0.0 {
        return MAX_BATCH;
    }
    ((HOLD.as_secs_f64() / each) as i64).clamp(MIN_BATCH, MAX_BATCH)
}

/// Indexes everyone queued now, `batch` people per transaction (resized as it goes); returns
/// how many.
pub(crate) async fn pass(inner: &Inner, batch: &mut i64) -> Result<usize> {
    let mut done = 0;
    loop {
        let mut c = inner.store.reader().await?;
        let queued = tenure_store::any_person_queued_for_search(&mut c).await?;
        drop(c);
        if !queued {
            return Ok(done);
        }
        let size = *batch;
        let mut tx = inner.store.begin().await?;
        // Held from here: the wait for the writer is not the batch's cost.
        let started = Instant::now();
        let n = tenure_store::index_pending_people(tx.conn(), size).await?;
        tx.commit().await?;
        *batch = next_batch(size, n, started.elapsed());
        done += n;
        if (n as i64) < size {
            return Ok(done);
        }
    }
}

pub(crate) async fn run(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut batch = MAX_BATCH / 4;
    loop {
        if *shutdown.borrow() {
            break;
        }
        match pass(&inner, &mut batch).await {
            Ok(n) if n > 0 => tracing::debug!(people = n, batch, "search index written"),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "writing the search index failed; will try again")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_sized_to_hold_the_writer_for_about_the_same_time() {
        // 1,000 people in 5 ms: 10,000 would take the 50 ms, so the most.
        assert_eq!(
            next_batch(1_000, 1_000, Duration::from_millis(5)),
            MAX_BATCH
        );
        // 500 in 100 ms: 250 take 50 ms.
        assert_eq!(next_batch(500, 500, Duration::from_millis(100)), 250);
        // Very slow: never under the fewest.
        assert_eq!(next_batch(100, 100, Duration::from_secs(2)), MIN_BATCH);
        // Nothing indexed tells nothing.
        assert_eq!(next_batch(300, 0, Duration::from_millis(1)), 300);
        assert_eq!(next_batch(300, 10, Duration::ZERO), MAX_BATCH);
    }
}
