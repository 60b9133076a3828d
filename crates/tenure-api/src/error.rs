//! One error type for every handler, rendered as `{"error": {"code", "message", "field"?}}`.

use crate::openapi::{ErrorBody, ErrorDetail};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tenure_engine::EngineError;

/// An error answer: a status, a stable code, a message for people, and the field at fault.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
}

impl ApiError {
    /// An error with no field.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// 400 for a request that does not parse or validate.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// 400 for input that does not deserialize: the field at fault, or `whole` (`body`,
    /// `query`) when the input as a whole is.
    pub(crate) fn undeserializable<E: std::fmt::Display>(
        e: serde_path_to_error::Error<E>,
        whole: &str,
    ) -> Self {
        let path = e.path().to_string();
        let field = if path == "." { whole.to_string() } else { path };
        ApiError::invalid(field, e.into_inner().to_string())
    }

    /// 404.
    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{} not found", what.into()),
        )
    }

    /// 500 for a failure that is ours; the details go to the log, not to the caller.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound(what) => ApiError::not_found(what),
            EngineError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            EngineError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            EngineError::Invalid { field, message } => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_request",
                message: format!("{field}: {message}"),
                field: Some(field),
            },
            EngineError::Unavailable(m) => {
                tracing::error!(error = %m, "request not stored");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "storage unavailable; nothing was stored, try again",
                )
            }
            EngineError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                e.to_string(),
            ),
            EngineError::Store(e) => ApiError::internal(e),
            EngineError::Config(m) => ApiError::internal(m),
        }
    }
}

impl From<tenure_store::StoreError> for ApiError {
    fn from(e: tenure_store::StoreError) -> Self {
        ApiError::internal(e)
    }
}
