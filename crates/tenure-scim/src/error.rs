//! SCIM error responses (RFC 7644 §3.12).
//!
//! The body is `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400",
//! "scimType":"invalidFilter","detail":"…"}`. `status` is the HTTP status code written as a
//! JSON string; on input a number is accepted too, as some service providers send one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::filter::ParseError;

/// The schema URN of an error response body.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A `scimType` detail error keyword (RFC 7644 §3.12, Table 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ScimType {
    /// The filter syntax was invalid or the filter is not supported.
    InvalidFilter,
    /// The filter yields more results than the server is willing to return.
    TooMany,
    /// A unique attribute value is already in use.
    Uniqueness,
    /// The change would modify an immutable or read-only attribute.
    Mutability,
    /// The request body could not be parsed or violates the message schema.
    InvalidSyntax,
    /// The `path` attribute is invalid or malformed.
    InvalidPath,
    /// The `path` did not yield an attribute that can be operated on.
    NoTarget,
    /// A required value is missing or a value is incompatible with the attribute type.
    InvalidValue,
    /// The specified SCIM protocol version is not supported.
    InvalidVers,
    /// Sensitive information was passed in the request URI.
    Sensitive,
}

impl ScimType {
    /// Every `scimType` keyword, in RFC order.
    pub const ALL: [ScimType; 10] = [
        ScimType::InvalidFilter,
        ScimType::TooMany,
        ScimType::Uniqueness,
        ScimType::Mutability,
        ScimType::InvalidSyntax,
        ScimType::InvalidPath,
        ScimType::NoTarget,
        ScimType::InvalidValue,
        ScimType::InvalidVers,
        ScimType::Sensitive,
    ];

    /// The keyword as written on the wire, e.g. `"invalidFilter"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
        }
    }

    /// The HTTP status that goes with the keyword: 409 for `uniqueness` (§3.3), 403 for
    /// `sensitive` (§7.5.2), 400 for the rest.
    pub fn http_status(self) -> u16 {
        match self {
            ScimType::Uniqueness => 409,
            ScimType::Sensitive => 403,
            _ => 400,
        }
    }
}

impl fmt::Display for ScimType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ScimType {
    type Err = UnknownScimType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownScimType(s.to_owned()))
    }
}

/// A string that is not a `scimType` keyword.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scimType '{0}'")]
pub struct UnknownScimType(pub String);

/// A SCIM error response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimError {
    /// Always `[ERROR_SCHEMA]` when built here.
    pub schemas: Vec<String>,
    /// The HTTP status code; serialized as a string (`"400"`).
    #[serde(with = "status_as_string")]
    pub status: u16,
    /// The detail error keyword, for the statuses that have one.
    #[serde(rename = "scimType", default, skip_serializing_if = "Option::is_none")]
    pub scim_type: Option<ScimType>,
    /// A human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ScimError {
    /// An error with a `scimType` and its HTTP status.
    pub fn new(scim_type: ScimType, detail: impl Into<String>) -> Self {
        Self {
            schemas: vec![ERROR_SCHEMA.to_owned()],
            status: scim_type.http_status(),
            scim_type: Some(scim_type),
            detail: Some(detail.into()),
        }
    }

    /// An error without `scimType`, e.g. 404 for an unknown resource or 500.
    pub fn with_status(status: u16, detail: impl Into<String>) -> Self {
        Self {
            schemas: vec![ERROR_SCHEMA.to_owned()],
            status,
            scim_type: None,
            detail: Some(detail.into()),
        }
    }

    /// `invalidFilter` (400) for a filter that did not parse.
    pub fn invalid_filter(err: &ParseError) -> Self {
        Self::new(ScimType::InvalidFilter, err.to_string())
    }

    /// `invalidPath` (400) for a PATCH path that did not parse.
    pub fn invalid_path(err: &ParseError) -> Self {
        Self::new(ScimType::InvalidPath, err.to_string())
    }
}

impl fmt::Display for ScimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SCIM error {}", self.status)?;
        if let Some(t) = self.scim_type {
            write!(f, " ({t})")?;
        }
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScimError {}

mod status_as_string {
    use super::*;

    pub(super) fn serialize<S: Serializer>(status: &u16, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(status)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u16),
            String(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(n),
            Raw::String(s) => s
                .trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("invalid HTTP status '{s}'"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_follow_the_rfc() {
        for t in ScimType::ALL {
            let expected = match t {
                ScimType::Uniqueness => 409,
                ScimType::Sensitive => 403,
                _ => 400,
            };
            assert_eq!(t.http_status(), expected, "{t}");
            assert_eq!(t.as_str().parse::<ScimType>(), Ok(t));
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
        assert_eq!(
            "InvalidFilter".parse::<ScimType>(),
            Err(UnknownScimType("InvalidFilter".into()))
        );
    }

    #[test]
    fn keywords_are_the_rfc_spelling() {
        let words: Vec<_> = ScimType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(
            words,
            [
                "invalidFilter",
                "tooMany",
                "uniqueness",
                "mutability",
                "invalidSyntax",
                "invalidPath",
                "noTarget",
                "invalidValue",
                "invalidVers",
                "sensitive"
            ]
        );
    }

    #[test]
    fn body_serializes_status_as_string() {
        let e = ScimError::new(ScimType::Uniqueness, "userName bjensen is taken");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({
                "schemas": [ERROR_SCHEMA],
                "status": "409",
                "scimType": "uniqueness",
                "detail": "userName bjensen is taken"
            })
        );
        let not_found = ScimError::with_status(404, "Resource 2819c223 not found");
        assert_eq!(
            serde_json::to_value(&not_found).unwrap(),
            json!({"schemas": [ERROR_SCHEMA], "status": "404", "detail": "Resource 2819c223 not found"})
        );
    }

    #[test]
    fn body_round_trips_and_accepts_numeric_status() {
        let e = ScimError::new(ScimType::Mutability, "id is readOnly");
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<ScimError>(&text).unwrap(), e);

        let numeric: ScimError = serde_json::from_value(
            json!({"schemas": [ERROR_SCHEMA], "status": 400, "scimType": "tooMany"}),
        )
        .unwrap();
        assert_eq!(numeric.status, 400);
        assert_eq!(numeric.scim_type, Some(ScimType::TooMany));
        assert_eq!(numeric.detail, None);

        assert!(
            serde_json::from_value::<ScimError>(json!({"schemas": [], "status": "abc"})).is_err()
        );
        assert!(
            serde_json::from_value::<ScimError>(
                json!({"schemas": [], "status": "400", "scimType": "bogus"})
            )
            .is_err()
        );
    }

    #[test]
    fn parse_errors_map_to_scim_types() {
        let err = crate::Filter::parse("userName").unwrap_err();
        let e = ScimError::invalid_filter(&err);
        assert_eq!(e.status, 400);
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter));
        assert_eq!(
            e.detail.as_deref(),
            Some("expected comparison operator after attribute path at offset 8")
        );
        assert_eq!(
            e.to_string(),
            "SCIM error 400 (invalidFilter): expected comparison operator after attribute path at offset 8"
        );
        let err = crate::PatchPath::parse("members[").unwrap_err();
        assert_eq!(
            ScimError::invalid_path(&err).scim_type,
            Some(ScimType::InvalidPath)
        );
    }
}
