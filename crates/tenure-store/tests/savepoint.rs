//! Savepoints inside one write transaction: a change rolled back to its savepoint leaves the
//! changes before and after it, and takes its audit entries with it. On SQLite, and on
//! PostgreSQL with `TENURE_TEST_DATABASE_URL`.

mod support;

use tenure_store::{NewAudit, ScimUserRow, Store, Tx};

fn user(id: &str, name: &str) -> ScimUserRow {
    ScimUserRow {
        id: id.into(),
        user_name_ci: name.into(),
        lifecycle: "none".into(),
        version: 1,
        created_at: 1,
        updated_at: 1,
        doc: "{}".into(),
    }
}

async fn put_audited(tx: &mut Tx, u: &ScimUserRow) -> tenure_store::Result<bool> {
    tx.audit(NewAudit {
        at_ms: 1,
        actor: "savepoint-test".into(),
        action: "scim.user.created".into(),
        person_id: Some(u.id.clone()),
        reason: "test".into(),
        ..Default::default()
    });
    tenure_store::put_scim_user(tx.conn(), u, None, &[]).await
}

async fn check(store: Store) {
    let run = uuid::Uuid::new_v4().to_string();
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|x| format!("{run}-{x}"));
    let mut tx = store.begin().await.unwrap();
    let sp = tx.savepoint().await.unwrap();
    assert!(put_audited(&mut tx, &user(&a, &a)).await.unwrap());
    tx.release(sp).await.unwrap();

    let sp = tx.savepoint().await.unwrap();
    assert!(put_audited(&mut tx, &user(&b, &b)).await.unwrap());
    let taken = put_audited(&mut tx, &user(&c, &a)).await;
    assert!(taken.is_err(), "userName of a is taken");
    tx.rollback_to(sp).await.unwrap();

    let sp = tx.savepoint().await.unwrap();
    assert!(put_audited(&mut tx, &user(&d, &d)).await.unwrap());
    tx.release(sp).await.unwrap();
    tx.commit().await.unwrap();

    let mut conn = store.reader().await.unwrap();
    for (id, kept) in [(&a, true), (&b, false), (&c, false), (&d, true)] {
        let stored = tenure_store::scim_user(&mut conn, id).await.unwrap();
        assert_eq!(stored.is_some(), kept, "{id}");
        let audited = tenure_store::audit_page(&mut conn, 0, Some(id), 10)
            .await
            .unwrap();
        assert_eq!(audited.len(), usize::from(kept), "audit of {id}");
    }
}

#[tokio::test]
async fn a_change_rolled_back_to_its_savepoint_leaves_the_others() {
    support::on_each_database("savepoint", check).await;
}
