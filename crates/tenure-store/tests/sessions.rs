//! Console sessions and sign-ins through OpenID Connect: a sign-in under way is taken once and
//! lapses; ending a session revokes its token only when the token was made for it, and so does
//! its expiry. On SQLite, and on PostgreSQL with `TENURE_TEST_DATABASE_URL`.

mod support;

use tenure_store::{OidcLogin, SessionRow, SignInMethod, Store, TokenRow};

/// A live token of this run's own (ids are unique, so PostgreSQL's shared database is fine).
async fn token(store: &Store, id: &str) {
    let t = TokenRow {
        id: id.into(),
        name: format!("name-{id}"),
        scopes: "read".into(),
        created_at: 0,
        revoked_at: None,
        person_id: None,
    };
    let mut tx = store.begin().await.unwrap();
    tenure_store::insert_token(tx.conn(), &t, &format!("hash-{id}"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn revoked(store: &Store, id: &str) -> bool {
    let mut c = store.reader().await.unwrap();
    let all = tenure_store::list_tokens(&mut c).await.unwrap();
    all.iter()
        .find(|t| t.id == id)
        .expect("the token exists")
        .revoked_at
        .is_some()
}

async fn open(store: &Store, id_hash: &str, token_id: &str, sign_in: SignInMethod, now: i64) {
    let row = SessionRow {
        token_id: token_id.into(),
        sign_in,
        csrf: "c".repeat(64),
        created_at: now,
        expires_at: now + 1_000,
    };
    let mut tx = store.begin().await.unwrap();
    tenure_store::insert_session(tx.conn(), id_hash, &row, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn check(store: Store) {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let key = |k: &str| format!("{k}-{run}");
    // A far-off clock of this run's own: other runs' rows on a shared database lapse long
    // before it, and none of this run's lapse before its own `now`.
    let now = 4_000_000_000_000 + (rand_ms(&run) % 1_000_000);

    // A sign-in under way: taken once, with what was stored.
    let login = OidcLogin {
        state: "st".into(),
        nonce: "no".into(),
        verifier: "ve".into(),
        next: "/console/runs".into(),
        expires_at: now + 600_000,
    };
    let mut tx = store.begin().await.unwrap();
    assert!(
        tenure_store::insert_oidc_login(tx.conn(), &key("login"), &login, now)
            .await
            .unwrap()
    );
    let lapsing = OidcLogin {
        expires_at: now + 10,
        ..login.clone()
    };
    assert!(
        tenure_store::insert_oidc_login(tx.conn(), &key("lapsing"), &lapsing, now)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let taken = tenure_store::take_oidc_login(tx.conn(), &key("login"), now + 1)
        .await
        .unwrap();
    assert_eq!(taken, Some(login));
    assert_eq!(
        tenure_store::take_oidc_login(tx.conn(), &key("login"), now + 1)
            .await
            .unwrap(),
        None,
        "used once"
    );
    assert_eq!(
        tenure_store::take_oidc_login(tx.conn(), &key("lapsing"), now + 10)
            .await
            .unwrap(),
        None,
        "lapsed"
    );
    tx.commit().await.unwrap();

    // Sign-out: a token session leaves its token live; an OpenID Connect one revokes its own.
    token(&store, &key("kept")).await;
    token(&store, &key("made")).await;
    open(&store, &key("s1"), &key("kept"), SignInMethod::Token, now).await;
    open(&store, &key("s2"), &key("made"), SignInMethod::Oidc, now).await;
    let mut c = store.reader().await.unwrap();
    let (row, _) = tenure_store::session_by_hash(&mut c, &key("s2"), now)
        .await
        .unwrap()
        .expect("live session");
    assert_eq!(row.sign_in, SignInMethod::Oidc);
    drop(c);
    for s in ["s1", "s2"] {
        let mut tx = store.begin().await.unwrap();
        assert!(
            tenure_store::delete_session(tx.conn(), &key(s), now)
                .await
                .unwrap()
        );
        assert!(
            !tenure_store::delete_session(tx.conn(), &key(s), now)
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
    }
    assert!(!revoked(&store, &key("kept")).await);
    assert!(revoked(&store, &key("made")).await);

    // Expiry: the next sign-in sweeps lapsed sessions, revoking the tokens made for them.
    token(&store, &key("lapsed")).await;
    token(&store, &key("next")).await;
    open(&store, &key("s3"), &key("lapsed"), SignInMethod::Oidc, now).await;
    open(
        &store,
        &key("s4"),
        &key("next"),
        SignInMethod::Oidc,
        now + 1_000,
    )
    .await;
    assert!(revoked(&store, &key("lapsed")).await);
    assert!(!revoked(&store, &key("next")).await);
}

/// A number from the run's id, so two runs on one database use different clocks.
fn rand_ms(run: &str) -> i64 {
    i64::from_str_radix(&run[..8], 16).unwrap()
}

#[tokio::test]
async fn sign_ins_are_taken_once_and_sessions_revoke_the_tokens_made_for_them() {
    support::on_each_database("sessions", check).await;
}
