//! A database made before the people list's filter columns existed gets them, filled from each
//! person's document, when it is opened; the filters then find its people. On SQLite, and on a
//! scratch PostgreSQL database with `TENURE_TEST_DATABASE_URL`.

use sqlx::{Connection, Executor};
use tenure_core::{Person, PersonStatus, WorkerType};
use tenure_store::{PeopleFilter, Store};

fn ada() -> Person {
    Person {
        id: "p1".into(),
        name: "Ada Lovelace".into(),
        email: "ada@example.com".into(),
        worker_type: WorkerType::Contractor,
        department: Some("Engineering".into()),
        title: None,
        location: None,
        manager: Some("m1".into()),
        start_date: None,
        end_date: None,
        status: PersonStatus::Active,
        attributes: Default::default(),
    }
}

/// Writes the `people` table as earlier versions made it, with one person in it.
async fn old_database(url: &str) {
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(url).await.unwrap();
    c.execute(
        "CREATE TABLE people (id TEXT PRIMARY KEY, status TEXT NOT NULL, data TEXT NOT NULL, updated_at BIGINT NOT NULL)",
    )
    .await
    .unwrap();
    sqlx::query("INSERT INTO people (id, status, data, updated_at) VALUES ($1, $2, $3, 1)")
        .bind("p1")
        .bind("active")
        .bind(serde_json::to_string(&ada()).unwrap())
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
}

async fn check(url: &str) {
    old_database(url).await;
    let store = Store::connect(url).await.unwrap();
    let mut c = store.reader().await.unwrap();
    let find = |f: PeopleFilter<'static>| PeopleFilter { limit: 10, ..f };
    for filter in [
        find(PeopleFilter {
            department: Some("Engineering"),
            ..Default::default()
        }),
        find(PeopleFilter {
            worker_type: Some(WorkerType::Contractor),
            ..Default::default()
        }),
        find(PeopleFilter {
            manager: Some("m1"),
            ..Default::default()
        }),
        find(PeopleFilter {
            text: Some("LOVELACE"),
            ..Default::default()
        }),
    ] {
        let found = tenure_store::people_matching(&mut c, &filter)
            .await
            .unwrap();
        assert_eq!(found, vec![ada()], "{filter:?}");
    }
    let none = find(PeopleFilter {
        department: Some("Sales"),
        ..Default::default()
    });
    assert!(
        tenure_store::people_matching(&mut c, &none)
            .await
            .unwrap()
            .is_empty()
    );
    drop(c);
    store.close().await;
    // Opening it again changes nothing.
    let store = Store::connect(url).await.unwrap();
    let mut c = store.reader().await.unwrap();
    assert_eq!(
        tenure_store::list_people(&mut c, None, 10).await.unwrap(),
        vec![ada()]
    );
}

#[tokio::test]
async fn an_older_database_gets_the_filter_columns_filled_when_opened() {
    let dir = std::env::temp_dir().join(format!("tenure-people-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    check(&format!("sqlite://{}?mode=rwc", dir.join("t.db").display())).await;
    std::fs::remove_dir_all(&dir).unwrap();
    if let Some(url) = std::env::var("TENURE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        let name = format!("tenure_people_{}", uuid::Uuid::new_v4().simple());
        let scratch = tenure_store::create_scratch_database(&url, &name)
            .await
            .unwrap();
        check(&scratch).await;
    }
}
