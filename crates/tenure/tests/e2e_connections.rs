//! Idle connections cannot take the API down: the real binary, started with the soft
//! open-file limit a service manager often gives (1,024), answers `/healthz` and an
//! authenticated call while 2,000 sockets that send nothing are open, and closes a
//! connection that stays silent past `--idle-timeout-secs`.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use std::time::Instant;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const CONFIG: &str = r#"
[[systems]]
id = "directory"
connector = "sandbox"
"#;

const IDLE: usize = 2_000;

/// This test process needs a descriptor per idle socket: raise its own soft limit.
fn raise_own_open_file_limit(need: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    if now.current.is_some_and(|c| c < need) {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: now.maximum,
                maximum: now.maximum,
            },
        )
        .expect("raising this test's open-file limit");
    }
    let after = getrlimit(Resource::Nofile).current;
    assert!(
        after.is_none_or(|c| c >= need),
        "this test needs {need} open files; the hard limit allows {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_while_two_thousand_idle_connections_are_open() {
    raise_own_open_file_limit(IDLE as u64 + 256);
    let env = TestEnv::new(CONFIG, &[]).await;
    let s = env
        .start_with(&["--idle-timeout-secs", "600"], Some(1024))
        .await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let c = TcpStream::connect(&addr)
            .await
            .unwrap_or_else(|e| panic!("idle connection {i}: {e}"));
        idle.push(c);
    }
    // The harness's client gives each request at most 60 s.
    let health = s.request(Method::GET, "/healthz", None, &[], None).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    let people = s.get("/api/v1/people").await;
    assert!(people["items"].is_array(), "{people}");
    // The idle sockets were all still open meanwhile: none was closed or answered.
    let mut buf = [0u8; 1];
    for (i, c) in idle.iter().enumerate() {
        match c.try_read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("idle connection {i} was closed or answered: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let env = TestEnv::new(CONFIG, &[]).await;
    let s = env.start_with(&["--idle-timeout-secs", "1"], None).await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut c = TcpStream::connect(&addr).await.expect("connecting");
    let start = Instant::now();
    let mut buf = [0u8; 256];
    // Read until the server closes the connection (it may say 408 first).
    loop {
        let n = tokio::time::timeout(PATIENCE, c.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("still open after {:?}", start.elapsed()));
        match n {
            Ok(0) | Err(_) => break,
            Ok(_) => continue,
        }
    }
    // The server still serves others.
    let health = s.request(Method::GET, "/healthz", None, &[], None).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
}
