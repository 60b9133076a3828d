//! The SCIM 2.0 protocol layer of tenure (RFC 7643 core schema, RFC 7644 protocol).
//!
//! - [`filter`]: a complete parser for the filter grammar of RFC 7644 §3.4.2.2 into an AST, and
//!   a canonical printer whose output re-parses to the same AST.
//! - [`patch`]: the PATCH operation `path` parser (RFC 7644 §3.5.2) and a `PatchRequest`
//!   model that tolerates the quirks of real provisioning clients (Entra ID, Okta).
//! - [`error`]: the SCIM error response body and the `scimType` keywords with their HTTP status.
//!
//! Invariant: this crate does no I/O and never panics on untrusted input. Filters are not
//! evaluated here; they are translated to SQL elsewhere, after their attribute paths have been
//! validated against the schema (see [`Filter::attribute_paths`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod filter;
pub mod patch;

pub use error::{ERROR_SCHEMA, ScimError, ScimType};
pub use filter::{AttrPath, CompValue, CompareOp, Filter, MAX_DEPTH, MAX_TERMS, ParseError};
pub use patch::{PATCH_OP_SCHEMA, PatchOp, PatchOperation, PatchPath, PatchRequest};
