//! Group commit for SCIM writes: one task writes the changes of many requests in one
//! transaction, each inside a savepoint of its own, and answers each request once that
//! transaction is committed.
//!
//! A change that fails (a `userName` taken, by a stored user or by an earlier change of the
//! same batch; a version that moved on; any database error) is rolled back to its savepoint
//! alone, and its request gets that answer; the others commit. Nothing is acknowledged before
//! the commit: if the commit fails, every request of the batch gets the error and nothing of it
//! is stored. Each change still carries its outbox row in the same transaction, so its event
//! reaches the engine after a crash too ([`super::drain_outbox`]).

use super::{Applied, Prepared, R, Scim, apply, take_sent};
use crate::ApiError;
use std::sync::OnceLock;
use tenure_engine::Engine;
use tokio::sync::{mpsc, oneshot};

/// Most changes in one transaction.
const BATCH: usize = 128;

struct Job {
    change: Prepared,
    reply: oneshot::Sender<R<Applied>>,
}

/// The handle requests write through; the task starts with the first write.
#[derive(Default)]
pub(crate) struct Writer {
    queue: OnceLock<mpsc::Sender<Job>>,
}

impl Writer {
    /// Writes `change` with whatever other changes are queued beside it; answers once the
    /// transaction holding it is committed (or with why it was not written).
    pub(crate) async fn write(&self, engine: &Engine, change: Prepared) -> R<Applied> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(4 * BATCH);
            tokio::spawn(run(engine.clone(), rx));
            tx
        });
        let gone = || Scim::from(ApiError::internal("the SCIM writer stopped"));
        let (reply, answer) = oneshot::channel();
        queue
            .send(Job { change, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Takes what is queued (up to [`BATCH`]) and writes it in one transaction, until every
/// handle is dropped.
async fn run(engine: Engine, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut jobs, BATCH).await > 0 {
        let batch = std::mem::take(&mut jobs);
        match write_batch(&engine, &batch).await {
            Ok(answers) => {
                for (job, answer) in batch.into_iter().zip(answers) {
                    let _ = job.reply.send(answer);
                }
            }
            Err(e) => {
                tracing::error!(error = ?e.0, changes = batch.len(), "SCIM write batch failed; none of it was stored");
                for job in batch {
                    let _ = job.reply.send(Err(Scim(e.0.clone())));
                }
            }
        }
    }
}

/// One answer per job, in order, once committed; an error when nothing was committed.
async fn write_batch(engine: &Engine, batch: &[Job]) -> R<Vec<R<Applied>>> {
    let mut tx = engine.store().begin().await?;
    let sent = take_sent();
    if !sent.is_empty() {
        tenure_store::delete_scim_outbox(tx.conn(), &sent).await?;
    }
    let mut answers = Vec::with_capacity(batch.len());
    for job in batch {
        let sp = tx.savepoint().await?;
        let answer = apply(&mut tx, &job.change).await;
        if matches!(answer, Ok(Some(_))) {
            tx.release(sp).await?;
        } else {
            tx.rollback_to(sp).await?;
        }
        answers.push(answer);
    }
    tx.commit().await?;
    Ok(answers)
}
