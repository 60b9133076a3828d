//! The SCIM 2.0 protocol layer of tenure (RFC 7643 core schema, RFC 7644 protocol).
//!
//! - [`filter`]: a complete parser for the filter grammar of RFC 7644 §3.4.2.2 into an AST, and
//!   a canonical printer whose output re-parses to the same AST.
//! - [`patch`]: the PATCH operation `path` parser (RFC 7644 §3.5.2) and a `PatchRequest`
//!   model that tolerates the quirks of real provisioning clients (Entra ID, Okta).
//! - [`error`]: the SCIM error response body and the `scimType` keywords with their HTTP status.
//! - [`schema`]: the schemas tenure serves, as one table of attribute definitions that
//!   validation, filtering, PATCH and the discovery documents all read.
//! - [`resource`]: resources as JSON documents checked against that table: cleaning input
//!   (with the identity providers' quirks), the value index, filters resolved against the
//!   schema, attribute projection, and PATCH.
//! - [`query`]: what a list or search request asks for (filter, sorting, paging, attributes)
//!   and the `ListResponse` that answers it.
//! - [`render`]: users and groups as served (`schemas`, `meta`, tenure's read-only view),
//!   and the ETags of their versions.
//! - [`index`]: the value index in plain terms (rows, conditions, sort keys) and the
//!   reference evaluator of a condition.
//! - [`bulk`]: bulk requests checked and read, and `bulkId` references resolved.
//! - [`group`]: a pushed group as plain data: POST/PUT bodies and PATCH in the forms Entra ID
//!   and Okta send.
//! - [`lifecycle`]: which lifecycle event (hire, transfer, leave, rehire) a change to a user
//!   makes, as a `tenure_core` event.
//!
//! Invariant: this crate does no I/O and never panics on untrusted input. It knows nothing of
//! HTTP or of a database: filters are translated into [`index::Cond`] trees here, after their
//! attribute paths have been validated against the schema (see [`Filter::attribute_paths`]),
//! and a store runs those.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bulk;
pub mod error;
pub mod filter;
pub mod group;
pub mod index;
pub mod lifecycle;
pub mod patch;
pub mod query;
pub mod render;
pub mod resource;
pub mod schema;

pub use error::{ERROR_SCHEMA, ScimError, ScimType};
pub use filter::{AttrPath, CompValue, CompareOp, Filter, MAX_DEPTH, MAX_TERMS, ParseError};
pub use patch::{PATCH_OP_SCHEMA, PatchOp, PatchOperation, PatchPath, PatchRequest};
