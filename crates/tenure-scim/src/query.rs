//! What a list or search request asks for (RFC 7644 §3.4.2, §3.4.3): filter, sorting, paging
//! and the attributes to return, read from a query string's pairs or a `.search` body, and the
//! `ListResponse` that answers it.

use crate::filter::AttrPath;
use crate::resource::parse_attr_list;
use crate::schema::{LIST, MAX_RESULTS, TENURE};
use crate::{ScimError, ScimType};
use serde_json::{Value, json};

/// The parameters of a list (`GET` with a query string) or a search (`POST .search`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListParams {
    /// The filter, as sent (parsed by the caller, which knows the resource type).
    pub filter: Option<String>,
    /// The attribute to sort by, as sent.
    pub sort_by: Option<String>,
    /// `sortOrder=descending`.
    pub descending: bool,
    /// The 1-based index of the first result (below 1 counts as 1).
    pub start_index: i64,
    /// How many results at most (0 to [`MAX_RESULTS`]; 100 when not given).
    pub count: i64,
    /// `attributes`: return only these (with `id`, `schemas` and `meta`).
    pub attributes: Vec<AttrPath>,
    /// `excludedAttributes`: leave these out.
    pub excluded: Vec<AttrPath>,
}

fn parse_int(name: &str, v: &str) -> Result<i64, ScimError> {
    v.trim().parse::<i64>().map_err(|_| {
        ScimError::new(
            ScimType::InvalidValue,
            format!("{name} must be an integer, not `{v}`"),
        )
    })
}

impl ListParams {
    /// Reads the parameters through `get`, which answers a parameter's value by its name
    /// (the caller matches names case-insensitively).
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Result<ListParams, ScimError> {
        let descending = match get("sortOrder").as_deref() {
            None => false,
            Some(o) if o.eq_ignore_ascii_case("ascending") => false,
            Some(o) if o.eq_ignore_ascii_case("descending") => true,
            Some(o) => {
                return Err(ScimError::new(
                    ScimType::InvalidValue,
                    format!("sortOrder must be ascending or descending, not `{o}`"),
                ));
            }
        };
        let attributes = get("attributes")
            .map(|a| parse_attr_list(&a))
            .transpose()?
            .unwrap_or_default();
        let excluded = get("excludedAttributes")
            .map(|a| parse_attr_list(&a))
            .transpose()?
            .unwrap_or_default();
        Ok(ListParams {
            filter: get("filter"),
            sort_by: get("sortBy"),
            descending,
            // RFC 7644 §3.4.2.4: below 1 is 1; a negative count is 0; above the maximum, the
            // maximum.
            start_index: get("startIndex")
                .map(|v| parse_int("startIndex", &v))
                .transpose()?
                .unwrap_or(1)
                .max(1),
            count: get("count")
                .map(|v| parse_int("count", &v))
                .transpose()?
                .unwrap_or(100)
                .clamp(0, MAX_RESULTS),
            attributes,
            excluded,
        })
    }

    /// Reads the parameters from a query string's decoded pairs; names are
    /// case-insensitive, and of a name given twice the last value counts.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<ListParams, ScimError> {
        let map: std::collections::HashMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        ListParams::parse(|k| map.get(&k.to_ascii_lowercase()).cloned())
    }

    /// Reads the parameters from a `.search` body: a JSON object whose names are
    /// case-insensitive; numbers count as their text, arrays of strings as a comma-separated
    /// list.
    pub fn from_search(body: &Value) -> Result<ListParams, ScimError> {
        let obj = body.as_object().ok_or_else(|| {
            ScimError::new(ScimType::InvalidSyntax, "a search request is a JSON object")
        })?;
        let get = |k: &str| -> Option<String> {
            let v = obj
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|x| x.1)?;
            match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Array(a) => Some(
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                _ => None,
            }
        };
        ListParams::parse(get)
    }

    /// Whether `attributes` asks for tenure's view of the person (its status or engagements,
    /// returned on request only), which costs the server extra reads.
    pub fn wants_tenure_view(&self) -> bool {
        let tenure = TENURE.to_ascii_lowercase();
        self.attributes.iter().any(|p| {
            let full = p.to_string().to_ascii_lowercase();
            full == tenure
                || full.starts_with(&format!("{tenure}:status"))
                || full.starts_with(&format!("{tenure}:engagements"))
        })
    }
}

/// A `ListResponse` of one page: `total` matches in all, this page starting at `start_index`.
pub fn list_response(total: i64, start_index: i64, items: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn paging_is_clamped_as_rfc_7644_says() {
        let p = ListParams::from_pairs(pairs(&[])).unwrap();
        assert_eq!((p.start_index, p.count, p.descending), (1, 100, false));
        let p = ListParams::from_pairs(pairs(&[
            ("STARTINDEX", "-3"),
            ("count", "5000"),
            ("sortorder", "Descending"),
        ]))
        .unwrap();
        assert_eq!(
            (p.start_index, p.count, p.descending),
            (1, MAX_RESULTS, true)
        );
        let p = ListParams::from_pairs(pairs(&[("count", "-1")])).unwrap();
        assert_eq!(p.count, 0);
        let e = ListParams::from_pairs(pairs(&[("count", "ten")])).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        assert_eq!(
            e.detail.as_deref(),
            Some("count must be an integer, not `ten`")
        );
        let e = ListParams::from_pairs(pairs(&[("sortOrder", "up")])).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
    }

    #[test]
    fn a_search_body_reads_numbers_and_attribute_arrays() {
        let p = ListParams::from_search(&json!({
            "Filter": "userName sw \"a\"", "startIndex": 3, "count": 2,
            "attributes": ["userName", "name.familyName"],
        }))
        .unwrap();
        assert_eq!(p.filter.as_deref(), Some("userName sw \"a\""));
        assert_eq!((p.start_index, p.count), (3, 2));
        assert_eq!(p.attributes.len(), 2);
        assert_eq!(p.attributes[1].to_string(), "name.familyName");
        let e = ListParams::from_search(&json!([])).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
        let e = ListParams::from_search(&json!({ "attributes": "a b" })).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
    }

    #[test]
    fn only_the_status_or_engagements_ask_for_tenures_view() {
        let asks = |a: &str| {
            ListParams::from_pairs(pairs(&[("attributes", a)]))
                .unwrap()
                .wants_tenure_view()
        };
        assert!(asks(&format!("userName,{TENURE}:status")));
        assert!(asks(&format!("{TENURE}:engagements.client")));
        assert!(asks(TENURE));
        assert!(!asks(&format!("{TENURE}:location")));
        assert!(!asks("userName"));
    }
}
