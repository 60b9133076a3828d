//! The query-string extractor of every handler: a query that does not parse is a `400` with
//! the API's JSON error naming the parameter, never axum's plain-text rejection, and a
//! parameter the handler does not take is refused the same way (a misspelt or unsupported
//! filter must not quietly answer with everything).

use crate::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

/// The query string, deserialized into `T`. When `T` is a struct, any parameter that is not one
/// of its fields is refused, whether or not it says `deny_unknown_fields`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parse(parts.uri.query().unwrap_or("")).map(Query)
    }
}

/// A handler's query for a list that takes no parameter.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub(crate) struct NoParameters {}

/// A closed value (`status=active`) parsed, or a 400 naming the parameter and what it may be.
pub(crate) fn parse_param<T: std::str::FromStr>(
    name: &str,
    value: Option<&str>,
) -> Result<Option<T>, ApiError>
where
    T::Err: std::fmt::Display,
{
    value
        .map(|v| v.parse::<T>())
        .transpose()
        .map_err(|e| ApiError::invalid(name, e.to_string()))
}

/// A parameter that takes one of a few words (`status=open`): what `choices` pairs with
/// `value`, or a 400 naming the parameter and the words it takes.
pub(crate) fn choice<T: Copy>(
    name: &str,
    value: &str,
    choices: &[(&str, T)],
) -> Result<T, ApiError> {
    choices
        .iter()
        .find(|(word, _)| *word == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let words: Vec<&str> = choices.iter().map(|(word, _)| *word).collect();
            ApiError::invalid(
                name,
                format!("`{value}` is not one of {}", words.join(", ")),
            )
        })
}

/// An RFC 3339 time parameter (`since`, `until`) as epoch milliseconds.
pub(crate) fn time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.timestamp_millis())
                .map_err(|e| {
                    ApiError::invalid(
                        name,
                        format!(
                            "`{v}` is not an RFC 3339 time such as 2026-01-31T09:00:00Z ({e}); in a URL, write `+` as %2B"
                        ),
                    )
                })
        })
        .transpose()
}

/// A page's size: 100 unless asked, at most 1000.
pub(crate) fn limit(l: Option<i64>) -> Result<i64, ApiError> {
    match l {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid("limit", "must be between 1 and 1000")),
    }
}

pub(crate) fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    if let Some(known) = parameters_of::<T>() {
        unknown_parameter(query, known)?;
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| ApiError::undeserializable(e, "query"))
}

/// Refuses the first parameter of `query` that is not one of `known`, naming it and what the
/// endpoint takes.
pub(crate) fn unknown_parameter<K: AsRef<str>>(query: &str, known: &[K]) -> Result<(), ApiError> {
    let unknown = form_urlencoded::parse(query.as_bytes())
        .map(|(k, _)| k)
        .find(|k| !known.iter().any(|n| n.as_ref() == k.as_ref()));
    let Some(name) = unknown else {
        return Ok(());
    };
    let takes = if known.is_empty() {
        "this endpoint takes no parameters".to_string()
    } else {
        let names: Vec<&str> = known.iter().map(AsRef::as_ref).collect();
        format!("this endpoint takes {}", names.join(", "))
    };
    Err(ApiError::invalid(
        name.to_string(),
        format!("unknown parameter `{name}`: {takes}"),
    ))
}

/// The field names of `T` when it deserializes as a struct (serde hands them to
/// `deserialize_struct`); `None` for anything else, which then takes what it takes.
fn parameters_of<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    let mut probe = Probe(None);
    let _ = T::deserialize(&mut probe);
    probe.0
}

/// A deserializer that answers nothing and remembers the fields it was asked for.
struct Probe(Option<&'static [&'static str]>);

impl<'de> Deserializer<'de> for &mut Probe {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = Some(fields);
        Err(de::Error::custom("probed"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// No `deny_unknown_fields`: the extractor refuses strangers on its own.
    #[derive(Debug, Deserialize)]
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
        let e = parse::<Q>("state=a&state=b").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("query"), "{}", e.message);
        assert!(e.message.contains("duplicate"), "{}", e.message);
    }

    #[test]
    fn an_unknown_parameter_is_named_with_those_the_endpoint_takes() {
        let e = parse::<Q>("limit=5&stat=open").unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(e.field.as_deref(), Some("stat"));
        assert_eq!(
            e.message,
            "unknown parameter `stat`: this endpoint takes limit, state"
        );
        // Percent-encoded names are decoded before they are compared.
        assert!(parse::<Q>("st%61te=open").is_ok());
        let e = parse::<NoParameters>("limit=5").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limit"));
        assert!(e.message.contains("takes no parameters"), "{}", e.message);
        assert!(parse::<NoParameters>("").is_ok());
    }
}
