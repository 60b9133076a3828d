//! What the engine reports to its callers when something fails.

/// Errors the engine reports to its callers.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] tenure_store::StoreError),
    /// No such run, event or person.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this (decide an approval they are not an approver of, ...).
    #[error("{0}")]
    Forbidden(String),
    /// A value the caller gave is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The configuration cannot be turned into working connectors.
    #[error("configuration: {0}")]
    Config(String),
    /// The database could not take the change now; nothing was stored. Try again.
    #[error("storage unavailable, nothing was stored: {0}")]
    Unavailable(String),
    /// The engine is shutting down.
    #[error("the engine is shutting down")]
    ShuttingDown,
}

/// Shorthand for engine results.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
