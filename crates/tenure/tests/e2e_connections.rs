//! Idle connections cannot take the API down: the real binary, started with the soft
//! open-file limit a service manager often gives (1,024), answers `/healthz` and an
//! authenticated call while 2,000 sockets that send nothing are open, closes a connection
//! that stays silent past `--idle-timeout-secs` (before its headers or in the middle of its
//! body), and holds connections beyond `--max-connections` back until one closes.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    // The server closes the connection (it may say 408 first).
    read_to_close(&mut c).await;
    // The server still serves others.
    let health = s.request(Method::GET, "/healthz", None, &[], None).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
}

/// Reads until the server closes the connection; what it sent first.
async fn read_to_close(c: &mut TcpStream) -> String {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(PATIENCE, c.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("still open after {:?}", start.elapsed()));
        match n {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_coming_is_refused_and_its_connection_closed() {
    let env = TestEnv::new(CONFIG, &[]).await;
    let s = env.start_with(&["--idle-timeout-secs", "1"], None).await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut c = TcpStream::connect(&addr).await.expect("connecting");
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"type\":"
    );
    c.write_all(head.as_bytes())
        .await
        .expect("sending half a request");
    let answer = read_to_close(&mut c).await;
    assert!(
        answer.is_empty() || !answer.starts_with("HTTP/1.1 2"),
        "a half-sent event was accepted: {answer}"
    );
    // Nothing was stored, and the server still serves others.
    let events = s.get("/api/v1/runs").await;
    assert_eq!(events["items"], serde_json::json!([]), "{events}");
    let health = s.request(Method::GET, "/healthz", None, &[], None).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
}

/// Sends `GET /healthz` on `c` and reads the status line of the answer (the connection stays
/// open: keep-alive).
async fn health_on(c: &mut TcpStream, addr: &str) -> String {
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    c.write_all(req.as_bytes()).await.expect("sending");
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(PATIENCE, c.read(&mut buf))
        .await
        .expect("an answer in time")
        .expect("reading");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let env = TestEnv::new(CONFIG, &[]).await;
    let s = env.start_with(&["--max-connections", "2"], None).await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut first = TcpStream::connect(&addr).await.expect("connecting");
    let mut second = TcpStream::connect(&addr).await.expect("connecting");
    assert_eq!(health_on(&mut first, &addr).await, "HTTP/1.1 200 OK");
    assert_eq!(health_on(&mut second, &addr).await, "HTTP/1.1 200 OK");
    // A third is left in the listen queue: its request gets no answer while both are open.
    let mut third = TcpStream::connect(&addr).await.expect("connecting");
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    third.write_all(req.as_bytes()).await.expect("sending");
    // (A bound that can only let a fault pass unseen, never fail a correct server.)
    let mut buf = [0u8; 1024];
    let held =
        tokio::time::timeout(std::time::Duration::from_millis(300), third.read(&mut buf)).await;
    assert!(
        held.is_err(),
        "the third connection was served beyond the limit"
    );
    // One closes: the third is taken and answered.
    drop(first);
    let n = tokio::time::timeout(PATIENCE, third.read(&mut buf))
        .await
        .expect("the waiting connection is served once one closes")
        .expect("reading");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert_eq!(health_on(&mut second, &addr).await, "HTTP/1.1 200 OK");
}
