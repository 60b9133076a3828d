//! The HTTP API of tenure: lifecycle events in; people, runs, systems, entitlements and the
//! audit trail out. Handlers are thin: they authenticate, parse, call the engine or the store,
//! and map errors to responses in one place ([`ApiError`]).

mod access;
mod auth;
mod bodies;
mod error;
mod openapi;
mod query;
mod routes;
mod scim;
mod tasks;

pub use auth::{Principal, Scope, hash_token, new_token};
pub use error::ApiError;
pub use routes::{issue_token, revoke_token_by_id};
pub use scim::drain_outbox as drain_scim_outbox;

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use tenure_engine::Engine;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    engine: Engine,
    metrics: Option<PrometheusHandle>,
    rules: Option<RulesLoader>,
    tokens: auth::TokenCache,
    scim_writer: scim::Writer,
}

/// Files that stand in for the configuration folder's own, in a what-if or a reload: the main
/// `tenure.toml` text, and whole sets of templates or policies (file name to text). What is
/// not given is read from the folder as it is.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFiles {
    /// The text of `tenure.toml`.
    #[serde(default)]
    pub config: Option<String>,
    /// Every template, by file name (`engineering.toml`).
    #[serde(default)]
    pub templates: Option<std::collections::BTreeMap<String, String>>,
    /// Every policy, by file name (`base.cedar`).
    #[serde(default)]
    pub policies: Option<std::collections::BTreeMap<String, String>>,
}

impl RuleFiles {
    /// Whether nothing is replaced.
    pub fn is_empty(&self) -> bool {
        self.config.is_none() && self.templates.is_none() && self.policies.is_none()
    }
}

/// Reads the configuration folder (with some files replaced) and validates configuration and
/// policy together; the error is the located, human-readable list of problems.
pub type RulesLoader = Arc<
    dyn Fn(
            &RuleFiles,
        ) -> Result<
            (
                tenure_core::config::Config,
                tenure_engine::tenure_policy::PolicyEngine,
            ),
            String,
        > + Send
        + Sync,
>;

impl AppState {
    /// State over a running engine; `metrics` renders `GET /metrics` when set.
    pub fn new(engine: Engine, metrics: Option<PrometheusHandle>) -> Self {
        AppState {
            inner: Arc::new(StateInner {
                engine,
                metrics,
                rules: None,
                tokens: Default::default(),
                scim_writer: Default::default(),
            }),
        }
    }

    /// State whose reload and what-if read rules through `loader`.
    pub fn with_rules(
        engine: Engine,
        metrics: Option<PrometheusHandle>,
        loader: RulesLoader,
    ) -> Self {
        AppState {
            inner: Arc::new(StateInner {
                engine,
                metrics,
                rules: Some(loader),
                tokens: Default::default(),
                scim_writer: Default::default(),
            }),
        }
    }

    fn rules_loader(&self) -> Option<&RulesLoader> {
        self.inner.rules.as_ref()
    }

    fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    fn store(&self) -> &tenure_store::Store {
        self.inner.engine.store()
    }

    fn tokens(&self) -> &auth::TokenCache {
        &self.inner.tokens
    }

    fn scim_writer(&self) -> &scim::Writer {
        &self.inner.scim_writer
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    routes::router(state)
}

/// The OpenAPI document describing the API (as served at `GET /api/v1/openapi.json`),
/// generated from the handlers.
pub fn openapi_json() -> &'static str {
    openapi::document_json()
}
