//! SCIM PATCH (RFC 7644 §3.5.2): the operation `path` parser and the request body model.
//!
//! A `path` is `attrPath / valuePath [subAttr]`:
//! `members`, `name.familyName`, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber`,
//! `members[value eq "2819c223"]`, `emails[type eq "work"].value`. The value filter inside the
//! brackets follows the filter grammar of [`crate::filter`]. The path must span the whole
//! string: no surrounding whitespace.
//!
//! [`PatchRequest`] tolerates what real provisioning clients send:
//!
//! - **`Operations` or `operations`**: the RFC spells the key `Operations`; some clients send
//!   `operations`. Both are accepted; serialization always writes `Operations`.
//! - **`op` in any case**: Entra ID sends `"Add"`, `"Replace"`, `"Remove"`; the RFC uses
//!   lowercase. Any ASCII case is accepted; serialization writes lowercase.
//! - **booleans as strings**: Entra ID sends `{"op":"Replace","path":"active","value":"False"}`.
//!   `value` is kept as raw JSON (`"False"` stays a string) and is coerced later, by the code
//!   that knows from the schema that `active` is a boolean.
//! - **`value` shapes**: a path-less `add`/`replace` carries an object whose keys are attribute
//!   paths (Entra ID writes keys such as `"name.givenName"` or a full extension URN path);
//!   `remove` may carry a `value` (Entra ID removes group members with
//!   `{"op":"Remove","path":"members","value":[{"value":"<id>"}]}`). All are kept as sent.
//! - **unknown members** (an `id` inside an operation, vendor extras) are ignored.
//! - **missing `schemas`** deserializes to an empty list; [`PatchRequest::validate`] reports it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ScimError, ScimType};
use crate::filter::{AttrPath, Filter, ParseError, Parser};

/// The schema URN of a PATCH request body.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A parsed PATCH operation `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchPath {
    /// `attr`, `attr.sub` or `urn:…:attr[.sub]`.
    Attribute(AttrPath),
    /// `attr[filter]` or `attr[filter].sub`: the values of `attr` matching `filter`, or their
    /// `sub` sub-attribute.
    ValuePath {
        /// The multi-valued attribute, without sub-attribute.
        attr: AttrPath,
        /// The value filter; its attribute paths are plain sub-attribute names of `attr`.
        filter: Filter,
        /// The sub-attribute after `].`, if any.
        sub_attr: Option<String>,
    },
}

impl PatchPath {
    /// Parses a PATCH `path` value.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let mut p = Parser::new(input);
        let attr = p.parse_attr_path()?;
        match p.peek() {
            None => return Ok(PatchPath::Attribute(attr)),
            Some(b'[') => {}
            Some(_) => return Err(ParseError::new(p.pos, "expected '[' or end of path")),
        }
        if attr.sub_attr.is_some() {
            return Err(ParseError::new(
                p.pos,
                "a value filter must follow a top-level attribute, not a sub-attribute",
            ));
        }
        let filter = p.parse_value_filter(0)?;
        let sub_attr = match p.peek() {
            None => None,
            Some(b'.') => {
                p.pos += 1;
                Some(p.parse_sub_attr_name()?)
            }
            Some(_) => {
                return Err(ParseError::new(
                    p.pos,
                    "expected '.' or end of path after ']'",
                ));
            }
        };
        if !p.at_end() {
            return Err(ParseError::new(p.pos, "expected end of path"));
        }
        Ok(PatchPath::ValuePath {
            attr,
            filter,
            sub_attr,
        })
    }

    /// The attribute the path starts from (`members` in `members[value eq "x"].display`).
    pub fn attr(&self) -> &AttrPath {
        match self {
            PatchPath::Attribute(attr) | PatchPath::ValuePath { attr, .. } => attr,
        }
    }

    /// The attribute paths referenced, resolved as in [`Filter::attribute_paths`]; for
    /// `emails[type eq "work"].value`: `emails`, `emails.type`, `emails.value`.
    pub fn attribute_paths(&self) -> Vec<AttrPath> {
        match self {
            PatchPath::Attribute(attr) => vec![attr.clone()],
            PatchPath::ValuePath {
                attr,
                filter,
                sub_attr,
            } => {
                let mut out = Filter::ValuePath {
                    attr: attr.clone(),
                    filter: Box::new(filter.clone()),
                }
                .attribute_paths();
                if let Some(sub) = sub_attr {
                    out.push(AttrPath {
                        schema: attr.schema.clone(),
                        attr: attr.attr.clone(),
                        sub_attr: Some(sub.clone()),
                    });
                }
                out
            }
        }
    }
}

impl FromStr for PatchPath {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatchPath::Attribute(attr) => write!(f, "{attr}"),
            PatchPath::ValuePath {
                attr,
                filter,
                sub_attr,
            } => {
                write!(f, "{attr}[{filter}]")?;
                if let Some(sub) = sub_attr {
                    write!(f, ".{sub}")?;
                }
                Ok(())
            }
        }
    }
}

/// A PATCH operation kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchOp {
    /// `add`.
    Add,
    /// `remove`.
    Remove,
    /// `replace`.
    Replace,
}

impl PatchOp {
    /// The lowercase keyword, as the RFC writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            PatchOp::Add => "add",
            PatchOp::Remove => "remove",
            PatchOp::Replace => "replace",
        }
    }

    /// The op for a keyword in any ASCII case (`"Replace"` → `Replace`).
    pub fn from_keyword(keyword: &str) -> Option<Self> {
        [PatchOp::Add, PatchOp::Remove, PatchOp::Replace]
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(keyword))
    }
}

impl fmt::Display for PatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for PatchOp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PatchOp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let keyword = String::deserialize(deserializer)?;
        PatchOp::from_keyword(&keyword).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown PATCH op '{keyword}', expected add, remove or replace"
            ))
        })
    }
}

/// One entry of `Operations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchOperation {
    /// The operation kind.
    pub op: PatchOp,
    /// The target path as sent; parse it with [`PatchOperation::parsed_path`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The value as sent, uncoerced (`"False"` stays a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

impl PatchOperation {
    /// The parsed `path`, or `None` when the operation has no path.
    pub fn parsed_path(&self) -> Result<Option<PatchPath>, ParseError> {
        self.path.as_deref().map(PatchPath::parse).transpose()
    }
}

/// A PATCH request body (`urn:ietf:params:scim:api:messages:2.0:PatchOp`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchRequest {
    /// Declared schemas; must contain [`PATCH_OP_SCHEMA`].
    #[serde(default)]
    pub schemas: Vec<String>,
    /// The operations, applied in order (`Operations` or `operations` on input).
    #[serde(rename = "Operations", alias = "operations")]
    pub operations: Vec<PatchOperation>,
}

impl PatchRequest {
    /// A request with the PatchOp schema and the given operations.
    pub fn new(operations: Vec<PatchOperation>) -> Self {
        Self {
            schemas: vec![PATCH_OP_SCHEMA.to_owned()],
            operations,
        }
    }

    /// Checks the request against RFC 7644 §3.5.2 and returns each operation's parsed path.
    ///
    /// Errors, first one wins: no PatchOp schema or no operations → `invalidSyntax`; a path
    /// that does not parse → `invalidPath`; `remove` without path → `noTarget`; `add` or
    /// `replace` without value, or path-less with a value that is not an object →
    /// `invalidValue`. Values are not type-checked here.
    pub fn validate(&self) -> Result<Vec<Option<PatchPath>>, ScimError> {
        if !self
            .schemas
            .iter()
            .any(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
        {
            return Err(ScimError::new(
                ScimType::InvalidSyntax,
                format!("PATCH request must declare schema {PATCH_OP_SCHEMA}"),
            ));
        }
        if self.operations.is_empty() {
            return Err(ScimError::new(
                ScimType::InvalidSyntax,
                "PATCH request has no Operations",
            ));
        }
        self.operations
            .iter()
            .enumerate()
            .map(|(i, op)| {
                let path = op.parsed_path().map_err(|e| {
                    ScimError::new(
                        ScimType::InvalidPath,
                        format!("Operations[{i}]: invalid path: {e}"),
                    )
                })?;
                match (op.op, &path, &op.value) {
                    (PatchOp::Remove, None, _) => Err(ScimError::new(
                        ScimType::NoTarget,
                        format!("Operations[{i}]: remove requires a path"),
                    )),
                    (PatchOp::Add | PatchOp::Replace, _, None) => Err(ScimError::new(
                        ScimType::InvalidValue,
                        format!("Operations[{i}]: {} requires a value", op.op),
                    )),
                    (PatchOp::Add | PatchOp::Replace, None, Some(v)) if !v.is_object() => {
                        Err(ScimError::new(
                            ScimType::InvalidValue,
                            format!(
                                "Operations[{i}]: {} without path requires an object value",
                                op.op
                            ),
                        ))
                    }
                    _ => Ok(path),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
