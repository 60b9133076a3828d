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

/// The most one indexing transaction holds the store's writer. It ends sooner when a leaver's
/// transaction waits for the writer (on SQLite): a leave takes the writer about seven times,
/// and each would otherwise wait for the rest of the batch.
const HOLD: Duration = Duration::from_millis(50);
/// People indexed between two looks at the clock and at who waits: about 2 ms of the writer
/// under `tenure bench`'s backlog (some 60 microseconds a person with 10,000 stored).
const CHUNK: i64 = 32;
/// How often the queue is looked at.
const EVERY: Duration = Duration::from_millis(500);

/// Whether a transaction that has held the writer for `held` and found a full chunk of people
/// still queued indexes another chunk before it commits.
fn go_on(held: Duration, urgent_waiting: bool) -> bool {
    held < HOLD && !urgent_waiting
}

/// Indexes everyone queued now, many people per transaction; returns how many.
pub(crate) async fn pass(inner: &Inner) -> Result<usize> {
    let mut done = 0;
    loop {
        let mut c = inner.store.reader().await?;
        let queued = tenure_store::any_person_queued_for_search(&mut c).await?;
        drop(c);
        if !queued {
            return Ok(done);
        }
        let mut tx = inner.store.begin().await?;
        // Held from here: the wait for the writer is not the batch's.
        let started = Instant::now();
        let more = loop {
            let n = tenure_store::index_pending_people(tx.conn(), CHUNK).await?;
            done += n;
            if (n as i64) < CHUNK {
                break false;
            }
            if !go_on(started.elapsed(), inner.store.urgent_waiting()) {
                break true;
            }
        };
        tx.commit().await?;
        if !more {
            return Ok(done);
        }
    }
}

pub(crate) async fn run(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        if *shutdown.borrow() {
            break;
        }
        match pass(&inner).await {
            Ok(n) if n > 0 => tracing::debug!(people = n, "search index written"),
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
    fn a_batch_goes_on_until_its_time_is_up_or_a_leaver_waits() {
        assert!(go_on(Duration::from_millis(3), false));
        assert!(!go_on(Duration::from_millis(3), true), "a leaver waits");
        assert!(!go_on(HOLD, false), "its time is up");
    }
}
