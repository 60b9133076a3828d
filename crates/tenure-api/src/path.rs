//! The path extractor of every API handler: a path segment that does not decode (invalid
//! percent-encoding or UTF-8) is a `400` in the API's JSON error shape, never axum's plain
//! text.

use crate::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// The route's path parameters, deserialized into `T`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(ApiError::invalid("path", rejection.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Path;
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn an_undecodable_segment_is_a_json_400() {
        let app = Router::new().route(
            "/things/{id}",
            get(|Path(id): Path<String>| async move { id }),
        );
        let res = app
            .clone()
            .oneshot(Request::get("/things/%FF").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert_eq!(res.headers()["content-type"], "application/json");
        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["field"], "path", "{v}");
        let res = app
            .oneshot(Request::get("/things/a%20b").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
}
