//! Serving the API over HTTP/1.1 within bounds: at most `max_connections` connections at
//! once (more wait in the listen queue, unaccepted, so they hold no file descriptor), each
//! closed when it sends nothing for `idle_timeout` (request headers not complete, idle between
//! requests, or a request body that stops coming), and the process's open-file limit raised to
//! what the system allows.

use anyhow::Result;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// File descriptors kept back from connections: the database, connectors, logs.
const RESERVED_FILES: u64 = 256;

/// Bounds on the connections `serve` holds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a connection may send nothing (headers, between requests, or mid-body)
    /// before it is closed.
    pub idle_timeout: Duration,
}

/// Raises the soft limit on open files to the hard limit and returns the soft limit now in
/// force (`None`: unlimited). Systems often start services at 1,024, fewer than one busy
/// server's connections; the hard limit is what the administrator allows.
#[cfg(unix)]
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    if now.current.is_some() && now.current != now.maximum {
        let raised = Rlimit {
            current: now.maximum,
            maximum: now.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => return now.maximum,
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
    }
    now.current
}

/// Without a soft limit to raise, the connection limit stands as given.
#[cfg(not(unix))]
pub fn raise_open_file_limit() -> Option<u64> {
    None
}

impl Limits {
    /// These limits, with `max_connections` lowered to what `open_files` leaves after
    /// [`RESERVED_FILES`] (at least one).
    pub fn within(mut self, open_files: Option<u64>) -> Limits {
        if let Some(files) = open_files {
            let room = files.saturating_sub(RESERVED_FILES).max(1) as usize;
            if room < self.max_connections {
                tracing::warn!(
                    open_files = files,
                    max_connections = room,
                    "the open-file limit allows fewer connections than --max-connections; raise the hard limit (ulimit -Hn, LimitNOFILE=) to serve more"
                );
                self.max_connections = room;
            }
        }
        self
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, lets the
/// requests in flight finish and closes idle connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    // A body that stops arriving fails its request after the same silence, which ends the
    // connection (its remaining bytes are never read), so it cannot hold a slot for good.
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.idle_timeout,
    ));
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p?,
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close rather
                    // than spin.
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let conn =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Errors of one connection (reset before it was accepted), not of the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_limit_leaves_room_for_the_database() {
        let l = Limits {
            max_connections: 4096,
            idle_timeout: Duration::from_secs(30),
        };
        assert_eq!(l.within(None).max_connections, 4096);
        assert_eq!(l.within(Some(100_000)).max_connections, 4096);
        assert_eq!(l.within(Some(1024)).max_connections, 768);
        assert_eq!(l.within(Some(10)).max_connections, 1);
    }
}
