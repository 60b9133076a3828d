//! Helpers shared by the connector integration tests.
#![allow(dead_code)]

use tenure_connectors::Op;
use tenure_core::{Entitlement, Person, PersonStatus, Risk, WorkerType};

/// Whether this run is CI, where a missing test server is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (prints why) outside CI, fails in CI.
pub fn unavailable(what: &str) {
    if in_ci() {
        panic!("{what} is required in CI (CI=true) but is not available");
    }
    eprintln!("SKIPPED: {what} is not available here; this test did not run");
}

pub mod slapd;

pub fn person(id: &str) -> Person {
    Person {
        id: id.into(),
        name: format!("Person {id}"),
        email: format!("{id}@example.com"),
        worker_type: WorkerType::Employee,
        department: Some("Engineering".into()),
        title: Some("Engineer".into()),
        location: Some("Berlin".into()),
        manager: None,
        start_date: None,
        end_date: None,
        status: PersonStatus::Active,
        attributes: Default::default(),
    }
}

pub fn entitlement(id: &str, system: &str, name: &str) -> Entitlement {
    Entitlement {
        id: id.into(),
        system: system.into(),
        kind: "group".into(),
        name: name.into(),
        risk: Risk::Low,
        owner: None,
        client: None,
    }
}

pub fn op(id: &str) -> Op {
    Op {
        id: id.into(),
        attempt: 1,
        priority: tenure_core::run::Priority::Normal,
    }
}

/// A short random suffix that keeps cluster-wide names of parallel tests apart.
pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

/// Reads a connector's whole inventory `page_size` at a time: the size of each page and every
/// account, after checking that the last page stays the last.
pub async fn read_inventory(
    connector: &dyn tenure_connectors::Connector,
    page_size: usize,
) -> (Vec<usize>, Vec<tenure_connectors::InventoryAccount>) {
    let tenure_connectors::Inventory::Pages(mut pages) =
        connector.inventory(page_size).await.unwrap()
    else {
        panic!("the connector lists its accounts");
    };
    let mut sizes = Vec::new();
    let mut got = Vec::new();
    while let Some(page) = pages.next_page().await.unwrap() {
        sizes.push(page.len());
        got.extend(page);
    }
    assert_eq!(pages.next_page().await.unwrap(), None);
    (sizes, got)
}
