//! Bulk requests (RFC 7644 §3.7), as plain data: the request checked and read into
//! operations, and `bulkId` references resolved against the ids created earlier in the same
//! request. Running each operation is the server's.

use crate::schema::{BULK_REQUEST, BULK_RESPONSE, MAX_BULK_OPERATIONS};
use crate::{ScimError, ScimType};
use serde_json::{Value, json};
use std::collections::HashMap;

/// A bulk request, checked: at most [`MAX_BULK_OPERATIONS`] operations.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkRequest {
    /// The operations, in order.
    pub operations: Vec<BulkOperation>,
    /// `failOnErrors`: stop after this many failed operations.
    pub fail_on_errors: Option<u64>,
}

/// One operation of a bulk request, as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkOperation {
    /// The HTTP method, upper case (empty when not given).
    pub method: String,
    /// The client's name for the resource a `POST` creates.
    pub bulk_id: Option<String>,
    /// The resource path (`/Users`, `/Groups/{id}`, `/Users/bulkId:x`, ...).
    pub path: String,
    /// The ETag the operation expects (`If-Match`).
    pub version: Option<String>,
    /// The body (`Null` when not given).
    pub data: Value,
}

impl BulkRequest {
    /// Reads a bulk request body: it declares the bulk request schema, carries `Operations`
    /// (at most [`MAX_BULK_OPERATIONS`], else `413`) and, if any, a positive `failOnErrors`.
    pub fn parse(req: &Value) -> Result<BulkRequest, ScimError> {
        if !req["schemas"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(BULK_REQUEST)))
        {
            return Err(ScimError::new(
                ScimType::InvalidSyntax,
                format!("a bulk request declares the schema {BULK_REQUEST}"),
            ));
        }
        let ops = req
            .get("Operations")
            .or_else(|| req.get("operations"))
            .and_then(Value::as_array)
            .ok_or_else(|| {
                ScimError::new(ScimType::InvalidSyntax, "a bulk request carries Operations")
            })?;
        if ops.len() > MAX_BULK_OPERATIONS {
            return Err(ScimError::with_status(
                413,
                format!(
                    "{} operations; at most {MAX_BULK_OPERATIONS} per bulk request",
                    ops.len()
                ),
            ));
        }
        let fail_on_errors = match req.get("failOnErrors") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                ScimError::new(
                    ScimType::InvalidValue,
                    "failOnErrors must be a positive integer",
                )
            })?),
        };
        let operations = ops
            .iter()
            .map(|op| BulkOperation {
                method: op["method"].as_str().unwrap_or("").to_ascii_uppercase(),
                bulk_id: op["bulkId"].as_str().map(str::to_string),
                path: op["path"].as_str().unwrap_or("").to_string(),
                version: op["version"].as_str().map(str::to_string),
                data: op.get("data").cloned().unwrap_or(Value::Null),
            })
            .collect();
        Ok(BulkRequest {
            operations,
            fail_on_errors,
        })
    }
}

/// Replaces every `"bulkId:x"` string in `v` by the id created for `x`; errors on one not
/// (yet) created.
pub fn resolve_bulk_ids(v: &mut Value, ids: &HashMap<String, String>) -> Result<(), String> {
    match v {
        Value::String(s) => {
            if let Some(b) = s.strip_prefix("bulkId:") {
                *s = ids
                    .get(b)
                    .cloned()
                    .ok_or_else(|| format!("bulkId `{b}` is not (yet) created"))?;
            }
        }
        Value::Array(a) => {
            for x in a {
                resolve_bulk_ids(x, ids)?;
            }
        }
        Value::Object(o) => {
            for x in o.values_mut() {
                resolve_bulk_ids(x, ids)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The path with a `bulkId:x` resource id (`/Users/bulkId:x`, `/Groups/bulkId:x`) replaced by
/// the id created for `x`; errors on one not (yet) created.
pub fn resolve_bulk_path(path: &str, ids: &HashMap<String, String>) -> Result<String, String> {
    for kind in ["/Users/", "/Groups/"] {
        if let Some(rest) = path.strip_prefix(&format!("{kind}bulkId:")) {
            let id = ids
                .get(rest)
                .ok_or_else(|| format!("bulkId `{rest}` is not (yet) created"))?;
            return Ok(format!("{kind}{id}"));
        }
    }
    Ok(path.to_string())
}

/// The `BulkResponse` carrying each operation's result.
pub fn bulk_response(results: Vec<Value>) -> Value {
    json!({
        "schemas": [BULK_RESPONSE],
        "Operations": results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_checked_and_read() {
        let r = BulkRequest::parse(&json!({
            "schemas": [BULK_REQUEST], "failOnErrors": 1,
            "Operations": [
                { "method": "post", "path": "/Users", "bulkId": "a", "data": { "userName": "a" } },
                { "method": "DELETE", "path": "/Users/bulkId:a", "version": "W/\"1\"" },
            ],
        }))
        .unwrap();
        assert_eq!(r.fail_on_errors, Some(1));
        assert_eq!(r.operations[0].method, "POST");
        assert_eq!(r.operations[0].bulk_id.as_deref(), Some("a"));
        assert_eq!(r.operations[1].version.as_deref(), Some("W/\"1\""));
        assert_eq!(r.operations[1].data, Value::Null);
        let refused = |v: Value| BulkRequest::parse(&v).unwrap_err();
        assert_eq!(
            refused(json!({ "Operations": [] })).scim_type,
            Some(ScimType::InvalidSyntax)
        );
        assert_eq!(
            refused(json!({ "schemas": [BULK_REQUEST] })).scim_type,
            Some(ScimType::InvalidSyntax)
        );
        assert_eq!(
            refused(json!({ "schemas": [BULK_REQUEST], "Operations": [], "failOnErrors": 0 }))
                .scim_type,
            Some(ScimType::InvalidValue)
        );
        let many = vec![json!({}); MAX_BULK_OPERATIONS + 1];
        let e = refused(json!({ "schemas": [BULK_REQUEST], "Operations": many }));
        assert_eq!(e.status, 413);
    }

    #[test]
    fn bulk_ids_resolve_only_once_created() {
        let ids = HashMap::from([("a".to_string(), "u1".to_string())]);
        let mut v = json!({ "members": [{ "value": "bulkId:a" }], "displayName": "bulkId" });
        resolve_bulk_ids(&mut v, &ids).unwrap();
        assert_eq!(
            v,
            json!({ "members": [{ "value": "u1" }], "displayName": "bulkId" })
        );
        let mut v = json!(["bulkId:b"]);
        assert_eq!(
            resolve_bulk_ids(&mut v, &ids).unwrap_err(),
            "bulkId `b` is not (yet) created"
        );
        assert_eq!(
            resolve_bulk_path("/Groups/bulkId:a", &ids).unwrap(),
            "/Groups/u1"
        );
        assert_eq!(resolve_bulk_path("/Users/x", &ids).unwrap(), "/Users/x");
        assert!(resolve_bulk_path("/Users/bulkId:b", &ids).is_err());
    }
}
