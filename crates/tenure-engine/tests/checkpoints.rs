//! The checkpoint writer against a real database (SQLite, or PostgreSQL with
//! `TENURE_TEST_DATABASE_URL`): it signs the head when a checkpoint is due by count or by time
//! (an injected clock, no sleeping), stores it, appends it to the sink file, and keeps a
//! checkpoint the sink could not take until the sink can.

use std::sync::Arc;
use tenure_core::checkpoint::{Cadence, Checkpoint, CheckpointChecker, PrivateKey};
use tenure_engine::{CheckpointWriter, Clock, ManualClock, Sink};
use tenure_store::{NewAudit, Store};

async fn store(dir: &std::path::Path) -> Store {
    match std::env::var("TENURE_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let name = format!("tenure_ckpt_{}", uuid::Uuid::new_v4().simple());
            let url = tenure_store::create_scratch_database(&url, &name)
                .await
                .unwrap();
            Store::connect(&url).await.unwrap()
        }
        _ => Store::open_sqlite(&dir.join("t.db")).await.unwrap(),
    }
}

async fn write_entries(store: &Store, n: usize, at_ms: i64) {
    let mut tx = store.begin().await.unwrap();
    for i in 0..n {
        tx.audit(NewAudit {
            at_ms,
            actor: "test".into(),
            action: "event.received".into(),
            reason: format!("entry {i}"),
            details: serde_json::json!({}),
            ..Default::default()
        });
    }
    tx.commit().await.unwrap();
}

fn sink_lines(path: &std::path::Path) -> Vec<Checkpoint> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn checkpoints_are_signed_when_due_stored_and_sent_outside_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let clock = Arc::new(ManualClock::new(1_780_000_000_000));
    let key = PrivateKey::from_bytes(&[9; 32]);
    // The sink's folder does not exist yet: sending fails until it does.
    let sink_path = dir.path().join("sink").join("checkpoints.jsonl");
    let writer = CheckpointWriter::new(
        store.clone(),
        clock.clone(),
        key.clone(),
        Cadence {
            every_entries: Some(10),
            every_ms: Some(60_000),
        },
        Sink::File(sink_path.clone()),
    );

    // An empty chain: nothing to sign.
    let r = writer.round(false).await.unwrap();
    assert_eq!((r.signed, r.sent), (None, 0));

    write_entries(&store, 3, clock.now_ms()).await;
    // The first checkpoint is due at once; the sink cannot take it yet.
    let e = writer.round(false).await.unwrap_err();
    assert!(e.to_string().contains("checkpoint sink"), "{e}");
    std::fs::create_dir_all(sink_path.parent().unwrap()).unwrap();
    let r = writer.round(false).await.unwrap();
    assert_eq!(r.signed, None, "already signed: nothing new since");
    assert_eq!(r.sent, 1, "the queued checkpoint reaches the sink");
    assert_eq!(
        sink_lines(&sink_path)
            .iter()
            .map(|c| c.seq)
            .collect::<Vec<_>>(),
        [3]
    );

    // Five more entries: neither ten new nor a minute passed.
    write_entries(&store, 5, clock.now_ms()).await;
    let r = writer.round(false).await.unwrap();
    assert_eq!((r.signed, r.sent), (None, 0));
    // A minute later it is due by time.
    clock.advance(60_000);
    let r = writer.round(false).await.unwrap();
    assert_eq!(r.signed.as_ref().map(|c| c.seq), Some(8));
    assert_eq!(r.sent, 1);
    // Ten more entries make one due by count, whatever the clock says.
    write_entries(&store, 10, clock.now_ms()).await;
    let r = writer.round(false).await.unwrap();
    assert_eq!(r.signed.as_ref().map(|c| c.seq), Some(18));
    // Forced (at shutdown): only if the head moved.
    assert_eq!(writer.round(true).await.unwrap().signed, None);
    write_entries(&store, 1, clock.now_ms()).await;
    assert_eq!(
        writer.round(true).await.unwrap().signed.map(|c| c.seq),
        Some(19)
    );

    // The sink holds every checkpoint once, each as stored, each matching the chain.
    let sent = sink_lines(&sink_path);
    assert_eq!(
        sent.iter().map(|c| c.seq).collect::<Vec<_>>(),
        [3, 8, 18, 19]
    );
    let mut c = store.reader().await.unwrap();
    let stored = tenure_store::checkpoints_between(&mut c, 0, i64::MAX, 100)
        .await
        .unwrap();
    assert_eq!(stored, sent);
    let mut checker = CheckpointChecker::new(sent, &[key.verifying_key()]);
    for e in tenure_store::audit_page(&mut c, 0, None, 100)
        .await
        .unwrap()
    {
        checker.observe(e.seq, &e.hash);
    }
    assert_eq!(checker.finish(19), (4, vec![]));

    // A head cut below the last checkpoint is never signed over.
    drop(c);
    let mut tx = store.begin().await.unwrap();
    tenure_store::db::query("UPDATE audit_head SET seq = 5 WHERE id = 1")
        .execute(tx.conn())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(writer.round(true).await.unwrap().signed, None);
}

/// What a webhook sink receives: each call's headers and body, the first one refused.
type Calls = Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>;

#[tokio::test]
async fn a_webhook_sink_gets_each_checkpoint_signed_and_again_after_a_refusal() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let calls = Calls::default();
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/in",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let mut c = seen.lock().unwrap();
                c.push((headers, body));
                if c.len() == 1 {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/in", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let clock = Arc::new(ManualClock::new(1_780_000_000_000));
    let key = PrivateKey::from_bytes(&[3; 32]);
    let writer = CheckpointWriter::new(
        store.clone(),
        clock.clone(),
        key.clone(),
        Cadence {
            every_entries: Some(1),
            every_ms: None,
        },
        Sink::webhook(&url, SECRET).unwrap(),
    );
    write_entries(&store, 2, clock.now_ms()).await;
    let e = writer.round(false).await.unwrap_err();
    assert!(e.to_string().contains("503"), "{e}");
    assert_eq!(writer.round(false).await.unwrap().sent, 1, "sent again");

    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    let (headers, body) = &calls[1];
    let cp: Checkpoint = serde_json::from_str(body).unwrap();
    assert_eq!(cp.seq, 2);
    tenure_core::checkpoint::check_signature(&cp, &[key.verifying_key()]).unwrap();
    let header = |n: &str| headers[n].to_str().unwrap().to_string();
    assert_eq!(header("webhook-id"), "ckpt_2");
    let ts: i64 = header("webhook-timestamp").parse().unwrap();
    let secret = tenure_core::webhook::secret_key(SECRET).unwrap();
    assert!(tenure_core::webhook::verify(
        &secret,
        "ckpt_2",
        ts,
        body.as_bytes(),
        &header("webhook-signature"),
        clock.now_ms() / 1000
    ));
}
