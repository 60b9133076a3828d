//! Personal data sealed under a key per person: stored sealed, read back opened, found by text
//! and by email, unreadable under another master key, erased by forgetting, and sealed in
//! place when a database stored in clear is given a key. On SQLite, and on a scratch
//! PostgreSQL database with `TENURE_TEST_DATABASE_URL`.

use tenure_core::{Person, PersonStatus};
use tenure_store::vault::generate_master_key;
use tenure_store::{EventRow, PeopleFilter, Store, StoreError, Vault};

fn ada() -> Person {
    let mut p = Person::new("p-ada", "Ada Lovelace", "Ada.Lovelace@Example.com");
    p.department = Some("Engineering".into());
    p
}

fn hire_event(id: &str, person: &str) -> EventRow {
    EventRow {
        id: id.into(),
        idem_key: id.into(),
        source_id: None,
        body_hash: "h".into(),
        kind: "hire".into(),
        person_id: person.into(),
        source: None,
        body:
            r#"{"type":"hire","person":{"name":"Ada Lovelace","email":"Ada.Lovelace@Example.com"}}"#
                .into(),
        effective_at: 1,
        received_at: 1,
        actor: "hr".into(),
        run_id: format!("run-{id}"),
        payload_dropped_at: None,
    }
}

/// Stores Ada and her hire event.
async fn hire_ada(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    tenure_store::upsert_person(tx.conn(), &ada(), 10)
        .await
        .unwrap();
    tenure_store::insert_event(tx.conn(), &hire_event("e1", "p-ada"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// Writes the search index entries of everyone queued, `limit` people a transaction; returns
/// how many people each transaction took.
async fn index_queued(store: &Store, limit: i64) -> Vec<usize> {
    let mut passes = Vec::new();
    loop {
        let mut tx = store.begin().await.unwrap();
        let n = tenure_store::index_pending_people(tx.conn(), limit)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        if n == 0 {
            return passes;
        }
        passes.push(n);
    }
}

/// Every stored text of `sql`'s rows, joined: what someone reading the database sees.
async fn raw(store: &Store, sql: &str) -> String {
    let mut c = store.reader().await.unwrap();
    let rows = tenure_store::db::query(tenure_store::db::AssertSqlSafe(sql.to_string()))
        .fetch_all(&mut c)
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.get::<Option<String>, _>(0).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The people the list's text filter finds for `text` (a page of a hundred).
async fn matching(c: &mut tenure_store::Conn, text: &str) -> Vec<Person> {
    tenure_store::people_matching(
        c,
        &PeopleFilter {
            text: Some(text),
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// The database at `url`, sealing personal data under a fresh master key.
async fn sealed(url: &str) -> Store {
    Store::connect(url)
        .await
        .unwrap()
        .with_vault(Vault::from_base64(&generate_master_key()).unwrap())
}

async fn check(url: &str) {
    let store = sealed(url).await;
    hire_ada(&store).await;
    // Queued for the search index, and found by a search meanwhile.
    assert_eq!(
        raw(&store, "SELECT token FROM people_search_tokens").await,
        ""
    );
    assert_eq!(
        raw(&store, "SELECT person_id FROM people_search_pending").await,
        "p-ada"
    );
    let mut c = store.reader().await.unwrap();
    assert_eq!(matching(&mut c, "lovel").await, [ada()]);
    assert!(matching(&mut c, "grace").await.is_empty());
    drop(c);
    assert_eq!(index_queued(&store, 10).await, [1]);
    assert_eq!(
        raw(&store, "SELECT person_id FROM people_search_pending").await,
        ""
    );
    assert!(
        !raw(&store, "SELECT token FROM people_search_tokens")
            .await
            .is_empty()
    );

    // Nothing of Ada is stored in clear.
    for sql in [
        "SELECT data FROM people",
        "SELECT search FROM people",
        "SELECT email_index FROM people",
        "SELECT body FROM events",
        "SELECT wrapped FROM person_keys",
        "SELECT token FROM people_search_tokens",
    ] {
        let stored = raw(&store, sql).await.to_lowercase();
        assert!(
            // "lovelace" is in Ada's name and email; a shorter word (her first name) would
            // turn up by chance in random ciphertext or a hex index now and then.
            !stored.contains("lovelace"),
            "{sql}: {stored}"
        );
    }

    // Read back opened, and found by name, by email, by department.
    let mut c = store.reader().await.unwrap();
    assert_eq!(
        tenure_store::get_person(&mut c, "p-ada").await.unwrap(),
        Some(ada())
    );
    let body = tenure_store::get_event(&mut c, "e1")
        .await
        .unwrap()
        .unwrap()
        .body;
    assert!(body.contains("Ada Lovelace"), "{body}");
    for text in ["LOVEL", "ada.lovelace@", "Ada Lovelace"] {
        assert_eq!(matching(&mut c, text).await, [ada()], "{text}");
    }
    // The blind index matches beginnings of words, as the opened record decides.
    for text in ["grace", "velace", "ada grace"] {
        let none = matching(&mut c, text).await;
        assert!(none.is_empty(), "{text}: {none:?}");
    }
    let by_email =
        tenure_store::people_by_emails(&mut c, &["ada.lovelace@example.COM".to_string()])
            .await
            .unwrap();
    assert_eq!(
        by_email,
        [(
            "ada.lovelace@example.com".to_string(),
            "p-ada".to_string(),
            "Ada.Lovelace@Example.com".to_string()
        )]
    );
    drop(c);

    // Under another master key nothing opens: an error says so, nothing reads as someone else.
    let other = store
        .clone()
        .with_vault(Vault::from_base64(&generate_master_key()).unwrap());
    let mut c = other.reader().await.unwrap();
    let err = tenure_store::get_person(&mut c, "p-ada").await.unwrap_err();
    assert!(matches!(err, StoreError::Vault(_)), "{err}");
    let err = tenure_store::check_keys(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("does not open"), "{err}");
    let mut mine = store.reader().await.unwrap();
    tenure_store::check_keys(&mut mine).await.unwrap();
    drop(mine);
    drop(c);

    // Forgetting: refused facts first, then the key goes and a tombstone stays.
    let mut c = store.reader().await.unwrap();
    let facts = tenure_store::forget_facts(&mut c, "p-ada").await.unwrap();
    assert_eq!(facts.status, Some(PersonStatus::Active));
    assert!(tenure_core::privacy::may_forget("p-ada", facts).is_err());
    drop(c);
    let mut gone = ada();
    gone.status = PersonStatus::Terminated;
    let mut tx = store.begin().await.unwrap();
    tenure_store::upsert_person(tx.conn(), &gone, 20)
        .await
        .unwrap();
    let facts = tenure_store::forget_facts(tx.conn(), "p-ada")
        .await
        .unwrap();
    assert_eq!(tenure_core::privacy::may_forget("p-ada", facts), Ok(()));
    let erased = tenure_store::forget_person(tx.conn(), "p-ada", 30)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(erased.key);
    assert_eq!(erased.event_payloads, 1);

    let mut c = store.reader().await.unwrap();
    assert_eq!(
        tenure_store::get_person(&mut c, "p-ada").await.unwrap(),
        Some(Person::forgotten("p-ada"))
    );
    assert_eq!(
        tenure_store::forgotten_at(&mut c, "p-ada").await.unwrap(),
        Some(30)
    );
    assert_eq!(
        tenure_store::forgotten_people(&mut c).await.unwrap(),
        ["p-ada"]
    );
    let event = tenure_store::get_event(&mut c, "e1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (event.body.as_str(), event.payload_dropped_at),
        ("null", Some(30))
    );
    assert!(
        tenure_store::people_by_emails(&mut c, &["ada.lovelace@example.com".to_string()])
            .await
            .unwrap()
            .is_empty()
    );
    let facts = tenure_store::forget_facts(&mut c, "p-ada").await.unwrap();
    assert!(
        tenure_core::privacy::may_forget("p-ada", facts)
            .unwrap_err()
            .to_string()
            .contains("forgotten already")
    );
    assert_eq!(raw(&store, "SELECT wrapped FROM person_keys").await, "");
    assert_eq!(
        raw(&store, "SELECT token FROM people_search_tokens").await,
        "",
        "a forgotten person leaves nothing in the search index"
    );
    assert_eq!(
        raw(&store, "SELECT person_id FROM people_search_pending").await,
        "",
        "nor in its queue"
    );
    drop(c);

    // A run that read the tombstone and writes it back leaves it forgotten, with no new key.
    let mut tx = store.begin().await.unwrap();
    tenure_store::upsert_person(tx.conn(), &Person::forgotten("p-ada"), 40)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut c = store.reader().await.unwrap();
    assert_eq!(
        tenure_store::forgotten_at(&mut c, "p-ada").await.unwrap(),
        Some(30)
    );
    assert_eq!(raw(&store, "SELECT wrapped FROM person_keys").await, "");
    drop(c);
    store.close().await;
}

/// A database that stored people in clear gets them sealed and indexed once given a key.
async fn check_sealing_in_place(url: &str) {
    let plain = Store::connect(url).await.unwrap();
    hire_ada(&plain).await;
    assert!(raw(&plain, "SELECT data FROM people").await.contains("Ada"));
    plain.close().await;

    let store = sealed(url).await;
    // Stored in clear, it reads as it is until sealed.
    let mut c = store.reader().await.unwrap();
    assert_eq!(
        tenure_store::get_person(&mut c, "p-ada").await.unwrap(),
        Some(ada())
    );
    drop(c);
    let mut sealed = 0;
    loop {
        let mut tx = store.begin().await.unwrap();
        let n = tenure_store::seal_existing(tx.conn(), 1, 20).await.unwrap();
        tx.commit().await.unwrap();
        if n == 0 {
            break;
        }
        sealed += n;
    }
    assert_eq!(sealed, 2, "one person and one event");
    // People sealed before the search index existed are indexed the same way.
    let mut tx = store.begin().await.unwrap();
    tenure_store::db::query("DELETE FROM people_search_tokens")
        .execute(tx.conn())
        .await
        .unwrap();
    assert_eq!(
        tenure_store::seal_existing(tx.conn(), 10, 20)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        tenure_store::seal_existing(tx.conn(), 10, 20)
            .await
            .unwrap(),
        0
    );
    tx.commit().await.unwrap();
    let mut c = store.reader().await.unwrap();
    assert_eq!(matching(&mut c, "lovel").await, [ada()]);
    drop(c);
    for sql in [
        "SELECT data FROM people",
        "SELECT body FROM events",
        "SELECT search FROM people",
    ] {
        assert!(!raw(&store, sql).await.contains("Lovelace"), "{sql}");
    }
    let mut c = store.reader().await.unwrap();
    assert_eq!(
        tenure_store::get_person(&mut c, "p-ada").await.unwrap(),
        Some(ada())
    );
    assert!(
        tenure_store::get_event(&mut c, "e1")
            .await
            .unwrap()
            .unwrap()
            .body
            .contains("Ada")
    );
    assert_eq!(
        tenure_store::people_by_emails(&mut c, &["ada.lovelace@example.com".to_string()])
            .await
            .unwrap()
            .len(),
        1
    );
    drop(c);
    store.close().await;
}

async fn scratch(name: &str) -> Option<String> {
    let url = std::env::var("TENURE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    let name = format!("tenure_{name}_{}", uuid::Uuid::new_v4().simple());
    Some(
        tenure_store::create_scratch_database(&url, &name)
            .await
            .unwrap(),
    )
}

/// Runs `check` on a fresh SQLite file, then on a scratch PostgreSQL database named after
/// `name` when one is configured.
async fn on_both_backends<F, Fut>(name: &str, check: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = std::env::temp_dir().join(format!("tenure-privacy-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    check(format!("sqlite://{}?mode=rwc", dir.join("t.db").display())).await;
    std::fs::remove_dir_all(&dir).unwrap();
    if let Some(url) = scratch(name).await {
        check(url).await;
    }
}

#[tokio::test]
async fn personal_data_is_sealed_per_person_and_forgetting_erases_it() {
    on_both_backends("privacy", |url| async move { check(&url).await }).await;
}

#[tokio::test]
async fn a_database_stored_in_clear_is_sealed_in_place_once_given_a_key() {
    on_both_backends("sealing", |url| async move {
        check_sealing_in_place(&url).await
    })
    .await;
}

/// Where each of Ada's search index entries is stored (SQLite's rowid, PostgreSQL's ctid): an
/// entry deleted and written again is stored somewhere else.
async fn index_places(store: &Store) -> String {
    let place = match store.backend() {
        tenure_store::Backend::Sqlite => "CAST(rowid AS TEXT)",
        tenure_store::Backend::Postgres => "ctid::text",
    };
    raw(
        store,
        &format!(
            "SELECT {place} FROM people_search_tokens WHERE person_id = 'p-ada' ORDER BY token"
        ),
    )
    .await
}

async fn check_reindexing(url: &str) {
    let store = sealed(url).await;
    hire_ada(&store).await;
    assert_eq!(index_queued(&store, 10).await, [1]);
    // Someone indexed after Ada: entries of hers written again could not take back the
    // places they had.
    let mut tx = store.begin().await.unwrap();
    let grace = Person::new("p-grace", "Grace Hopper", "grace@example.com");
    tenure_store::upsert_person(tx.conn(), &grace, 15)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(index_queued(&store, 10).await, [1]);
    let places = index_places(&store).await;
    assert!(!places.is_empty());

    // Leaving: the same name and email, so the index stays as it was written.
    let mut leaving = ada();
    leaving.status = PersonStatus::Leaving;
    let mut tx = store.begin().await.unwrap();
    tenure_store::upsert_person_after(tx.conn(), &leaving, Some(&ada()), 20)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(index_places(&store).await, places);
    assert_eq!(
        raw(&store, "SELECT person_id FROM people_search_pending").await,
        "",
        "nothing to index again"
    );
    let mut c = store.reader().await.unwrap();
    assert_eq!(matching(&mut c, "lovelace").await, [leaving.clone()]);
    drop(c);

    // Renamed: the index follows the new name and email, and the old ones no longer find her.
    let mut renamed = leaving.clone();
    renamed.name = "Ada Byron".into();
    renamed.email = "ada.byron@example.com".into();
    let mut tx = store.begin().await.unwrap();
    tenure_store::upsert_person_after(tx.conn(), &renamed, Some(&leaving), 30)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Found by the new name and not the old one, while queued (her old entries still in the
    // index) and once indexed again.
    for indexed in [false, true] {
        if indexed {
            assert_eq!(index_queued(&store, 10).await, [1]);
        }
        let mut c = store.reader().await.unwrap();
        assert_eq!(matching(&mut c, "byron").await, [renamed.clone()]);
        assert_eq!(matching(&mut c, "ada byr").await, [renamed.clone()]);
        assert!(matching(&mut c, "lovelace").await.is_empty());
        assert_eq!(
            matching(&mut c, "hopper").await,
            std::slice::from_ref(&grace)
        );
    }

    // Without `before`, the index is written again (someone indexed after her first, as
    // above).
    let places = index_places(&store).await;
    let mut tx = store.begin().await.unwrap();
    let linus = Person::new("p-linus", "Linus Pauling", "linus@example.com");
    tenure_store::upsert_person(tx.conn(), &linus, 40)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(index_queued(&store, 10).await, [1]);
    let mut tx = store.begin().await.unwrap();
    tenure_store::upsert_person(tx.conn(), &renamed, 50)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(index_queued(&store, 10).await, [1]);
    assert_ne!(index_places(&store).await, places);
    store.close().await;
}

#[tokio::test]
async fn the_search_index_is_written_again_only_when_the_name_or_email_changes() {
    on_both_backends("reindex", |url| async move { check_reindexing(&url).await }).await;
}

/// Many people queued: indexed `limit` at a time, each once however often queued, none of
/// those forgotten meanwhile; found all along.
async fn check_index_batches(url: &str) {
    let store = sealed(url).await;
    let person = |i: usize, name: &str| {
        Person::new(
            format!("p-{i:02}"),
            format!("{name}{i} Batchley"),
            format!("p{i}@example.com"),
        )
    };
    let mut tx = store.begin().await.unwrap();
    for i in 0..25 {
        tenure_store::upsert_person(tx.conn(), &person(i, "Pat"), 10)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    // Renamed before being indexed, and one forgotten.
    let mut tx = store.begin().await.unwrap();
    tenure_store::upsert_person(tx.conn(), &person(3, "Sam"), 20)
        .await
        .unwrap();
    tenure_store::forget_person(tx.conn(), "p-05", 20)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let found = |store: Store| async move {
        let mut c = store.reader().await.unwrap();
        let all = matching(&mut c, "batchley").await;
        let sams = matching(&mut c, "sam").await;
        (
            all.len(),
            sams.into_iter().map(|p| p.id).collect::<Vec<_>>(),
        )
    };
    assert_eq!(found(store.clone()).await, (24, vec!["p-03".to_string()]));
    assert_eq!(index_queued(&store, 10).await, [10, 10, 4]);
    assert_eq!(found(store.clone()).await, (24, vec!["p-03".to_string()]));
    assert_eq!(
        raw(
            &store,
            "SELECT person_id FROM people_search_tokens WHERE person_id = 'p-05'"
        )
        .await,
        ""
    );
    // Each indexed person has their entries and the mark of being indexed, once.
    assert_eq!(
        raw(
            &store,
            "SELECT CAST(COUNT(*) AS TEXT) FROM people_search_tokens WHERE token = '-'"
        )
        .await,
        "24"
    );
    store.close().await;
}

#[tokio::test]
async fn the_search_index_is_written_in_batches_behind_the_intake() {
    on_both_backends("index_batches", |url| async move {
        check_index_batches(&url).await
    })
    .await;
}
