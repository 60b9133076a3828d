//! Leavers' work on a thread of its own.
//!
//! On SQLite a transaction's statements run on the thread that awaits them (see [`crate::db`]),
//! and under a backlog of hires every worker thread of the runtime is most of the time inside
//! one, or inside a batch's planning. A leaver's transaction that SQLite's writer takes first
//! (see [`crate::turns`]) still waits for a worker to come free before its first statement
//! runs; so do its connector calls and the recording of their outcomes. With
//! [`crate::Store::with_urgent_thread`] the store runs the tasks spawned in the urgent lane
//! ([`crate::Store::spawn`]) on a current-thread runtime in a thread of its own, which nothing
//! else keeps busy: a leaver waits only for the writer, never for a thread.
//!
//! The thread lives as long as the store and its clones: when the last one is dropped it
//! stops, and the tasks still on it are dropped, as when a process stops (a claimed step's
//! lease hands it back).

use crate::{Result, StoreError};
use std::future::Future;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The thread urgent tasks run on, and the handle they are spawned through.
pub(crate) struct UrgentThread {
    handle: Handle,
    /// Dropped with the last store, which ends the thread's runtime.
    _stop: oneshot::Sender<()>,
}

/// The name the thread shows in `top -H`, a debugger and panics.
pub const URGENT_THREAD_NAME: &str = "tenure-urgent";

impl UrgentThread {
    pub(crate) fn start() -> Result<UrgentThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Corrupt(format!("building the urgent runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(URGENT_THREAD_NAME.into())
            .spawn(move || {
                // A current-thread runtime runs its spawned tasks while `block_on` waits; it
                // waits until the sender is dropped, then the runtime drops what is left.
                runtime.block_on(async move {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| StoreError::Corrupt(format!("starting the urgent thread: {e}")))?;
        Ok(UrgentThread {
            handle,
            _stop: stop,
        })
    }

    pub(crate) fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }
}

impl std::fmt::Debug for UrgentThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrgentThread")
    }
}
