//! The query-string extractor of every handler: a query that does not parse is a `400` with
//! the API's JSON error naming the parameter, never axum's plain-text rejection.

use crate::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// The query string, deserialized into `T`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parse(parts.uri.query().unwrap_or("")).map(Query)
    }
}

fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| ApiError::undeserializable(e, "query"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Q {
        limit: Option<i64>,
        state: Option<String>,
    }

    #[test]
    fn a_bad_parameter_is_named() {
        let q: Q = parse("limit=5&state=open").unwrap();
        assert_eq!((q.limit, q.state.as_deref()), (Some(5), Some("open")));
        let q: Q = parse("").unwrap();
        assert!(q.limit.is_none() && q.state.is_none());
        let e = parse::<Q>("limit=abc").unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(e.field.as_deref(), Some("limit"));
        // An unknown parameter is named too.
        let e = parse::<Q>("stat=open").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("stat"));
        assert!(e.message.contains("unknown field"), "{}", e.message);
    }
}
