//! Reconciliation's records: one running reconciliation per system, findings that persist
//! across passes until a complete one no longer sees them, and the corrections' writes. On
//! SQLite, and on PostgreSQL with `TENURE_TEST_DATABASE_URL`.

mod support;

use std::collections::BTreeMap;
use tenure_core::drift::{Remedy, Situation};
use tenure_core::{AccountState, Person, PersonStatus};
use tenure_store::{FindingFilter, FindingRow, ReconRow, ReconState, ReconTrigger, Store};

fn recon(id: &str, system: &str, at: i64) -> ReconRow {
    ReconRow {
        id: id.into(),
        system: system.into(),
        trigger: ReconTrigger::Request,
        requested_by: Some("test".into()),
        dry_run: false,
        state: ReconState::Running,
        started_at: at,
        heartbeat_at: at,
        ended_at: None,
        accounts: 0,
        counts: BTreeMap::new(),
        corrected: 0,
        runs: 0,
        message: None,
    }
}

fn finding(id: &str, system: &str, key: &str, run: &str, at: i64) -> FindingRow {
    FindingRow {
        id: format!("{system}-{id}"),
        system: system.into(),
        situation: Situation::Orphan,
        account_key: key.into(),
        entitlement: None,
        person_id: None,
        detail: "no person matches the account".into(),
        remedy: Remedy::Report,
        first_seen: at,
        last_seen: at,
        first_run: run.into(),
        last_run: run.into(),
        resolved_at: None,
        resolved_by: None,
    }
}

fn person(id: &str, email: &str) -> Person {
    Person::new(id, id, email)
}

async fn check(store: Store) {
    let sys = format!("s{}", uuid::Uuid::new_v4().simple());
    let run = |n: u8| format!("{sys}-r{n}");

    // One running at a time; one that stopped making progress is taken over as interrupted.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tenure_store::start_reconciliation(tx.conn(), &recon(&run(1), &sys, 1_000), 0)
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(
        tenure_store::start_reconciliation(tx.conn(), &recon(&run(2), &sys, 2_000), 500)
            .await
            .unwrap(),
        Err(run(1))
    );
    assert_eq!(
        tenure_store::start_reconciliation(tx.conn(), &recon(&run(2), &sys, 2_000), 1_500)
            .await
            .unwrap(),
        Ok(())
    );
    tx.commit().await.unwrap();
    // Two running at once cannot be stored, however they race.
    let mut tx = store.begin().await.unwrap();
    let second = tenure_store::db::query(
        "INSERT INTO reconciliations (id, system, trigger_kind, dry_run, state, started_at,
           heartbeat_at, accounts, counts, corrected, runs)
         VALUES ($1, $2, 'request', 0, 'running', 1, 1, 0, '{}', 0, 0)",
    )
    .bind(run(9))
    .bind(sys.clone())
    .execute(tx.conn())
    .await
    .unwrap_err();
    assert!(second.is_unique_violation(), "{second}");
    drop(tx);
    let mut r = store.reader().await.unwrap();
    let first = tenure_store::get_reconciliation(&mut r, &run(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.state, ReconState::Interrupted);
    let listed = tenure_store::list_reconciliations(&mut r, Some(&sys), None, 10)
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        [run(2), run(1)]
    );
    drop(r);

    // Findings: seen again keeps id and first sighting; not seen by a complete pass resolves;
    // seen after being resolved opens anew.
    let mut tx = store.begin().await.unwrap();
    let c = tx.conn();
    tenure_store::record_findings(
        c,
        &[
            finding("f1", &sys, "a", &run(2), 2_000),
            finding("f2", &sys, "b", &run(2), 2_000),
        ],
    )
    .await
    .unwrap();
    tenure_store::record_findings(c, &[finding("f3", &sys, "a", &run(3), 3_000)])
        .await
        .unwrap();
    assert_eq!(
        tenure_store::resolve_unseen_findings(c, &sys, &run(3), 3_000)
            .await
            .unwrap(),
        1
    );
    tenure_store::record_findings(c, &[finding("f4", &sys, "b", &run(4), 4_000)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut r = store.reader().await.unwrap();
    let all = |open| FindingFilter {
        system: Some(&sys),
        open,
        limit: 10,
        ..Default::default()
    };
    let open = tenure_store::list_findings(&mut r, all(true))
        .await
        .unwrap();
    let view: Vec<_> = open
        .iter()
        .map(|f| {
            (
                f.id.as_str(),
                f.account_key.as_str(),
                f.first_seen,
                f.last_seen,
            )
        })
        .collect();
    let id = |f: &str| format!("{sys}-{f}");
    assert_eq!(
        view,
        [
            (id("f1").as_str(), "a", 2_000, 3_000),
            (id("f4").as_str(), "b", 4_000, 4_000)
        ]
    );
    assert_eq!(open[0].first_run, run(2));
    assert_eq!(open[0].last_run, run(3));
    let situation = FindingFilter {
        situation: Some(Situation::Stale),
        ..all(false)
    };
    assert!(
        tenure_store::list_findings(&mut r, situation)
            .await
            .unwrap()
            .is_empty()
    );
    let counts = tenure_store::open_finding_counts(&mut r).await.unwrap();
    assert!(
        counts.contains(&(sys.clone(), Situation::Orphan, 2)),
        "{counts:?}"
    );
    drop(r);

    // Corrections: an account tenure deleted and found again is discovered; one it holds
    // keeps what it was; a grant it never gave is recorded as discovered and uncertain.
    let p = format!("{sys}-p");
    let mut tx = store.begin().await.unwrap();
    let c = tx.conn();
    let email = format!("Mixed.Case.{sys}@Example.com");
    tenure_store::upsert_person(c, &person(&p, &email), 1)
        .await
        .unwrap();
    tenure_store::set_account(c, &p, &sys, AccountState::Deleted, 1)
        .await
        .unwrap();
    tenure_store::mark_account_uncertain(c, &p, &sys, true, 2)
        .await
        .unwrap();
    let other = format!("{sys}-other");
    tenure_store::set_account(c, &p, &other, AccountState::Active, 1)
        .await
        .unwrap();
    tenure_store::mark_account_uncertain(c, &p, &other, true, 2)
        .await
        .unwrap();
    tenure_store::mark_grant_uncertain(c, &p, "vpn", &sys, &run(4), 2)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut r = store.reader().await.unwrap();
    let held = tenure_store::held_on_system(&mut r, &sys, std::slice::from_ref(&p))
        .await
        .unwrap();
    let acc = &held.accounts[&p];
    assert_eq!((acc.state, acc.discovered), (AccountState::Uncertain, true));
    let g = &held.grants[&p][0];
    assert_eq!(
        (g.entitlement.as_str(), g.state),
        ("vpn", tenure_core::GrantState::Uncertain)
    );
    let (g, system) = &tenure_store::grants_of(&mut r, &p).await.unwrap()[0];
    assert_eq!(
        (g.source, g.source_ref.as_str(), system.as_str()),
        (
            tenure_core::GrantSource::Discovered,
            run(4).as_str(),
            sys.as_str()
        )
    );
    assert_eq!(held.status[&p], PersonStatus::Active);
    let held = tenure_store::held_on_system(&mut r, &other, std::slice::from_ref(&p))
        .await
        .unwrap();
    assert!(!held.accounts[&p].discovered);
    // Emails match whatever their case; the stored one comes back as written.
    let asked = format!("mixed.case.{sys}@example.COM");
    let found = tenure_store::people_by_emails(&mut r, &[asked])
        .await
        .unwrap();
    assert_eq!(found, [(email.to_lowercase(), p.clone(), email.clone())]);
}

#[tokio::test]
async fn reconciliation_records_hold_across_passes() {
    support::on_each_database("drift", check).await;
}
