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
    }
}

/// A short random suffix that keeps cluster-wide names of parallel tests apart.
pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}
