//! The pure domain core of tenure.
//!
//! Everything in this crate is plain data and plain functions: the canonical model of people,
//! clients, engagements, systems, accounts, entitlements and grants; the configuration and its
//! validation; the planner that turns desired access minus current access into ordered steps;
//! the run and step state machines; retry backoff, the circuit breaker, system health and the
//! audit hash chain.
//!
//! Invariant: this crate does no I/O and reads no clock. Time and randomness come in as
//! arguments, so every decision here is deterministic and easy to test.

pub mod approval;
pub mod audit;
pub mod breaker;
pub mod checkpoint;
pub mod config;
pub mod drift;
pub mod event;
pub mod evidence;
pub mod health;
pub mod hr;
pub mod known;
pub mod model;
pub mod outcome;
pub mod planner;
pub mod privacy;
pub mod retry;
pub mod review;
pub mod roster;
pub mod run;
pub mod scope;
pub mod sla;
pub mod sod;
pub mod text;
pub mod timer;
pub mod webhook;
pub mod wire;

pub use model::*;
pub use scope::Scope;
