//! The HTTP API of tenure: lifecycle events in; people, runs, systems, entitlements and the
//! audit trail out. Handlers are thin: they authenticate, parse, call the engine or the store,
//! and map errors to responses in one place ([`ApiError`]).

mod access;
mod auth;
mod bodies;
mod chain;
mod clients;
mod console;
mod error;
mod openapi;
mod path;
mod query;
mod reconciliations;
mod reviews;
mod routes;
mod scim;
mod tasks;
mod telemetry;
mod views;

pub use auth::{Principal, Scope, hash_token, new_token};
pub use chain::{CHAIN_CHECK_EVERY, watch_audit_chain};
pub use error::ApiError;
pub use routes::{Revocation, TokenRefused, check_token_name, issue_token, revoke_token_by_id};
pub use scim::drain_outbox as drain_scim_outbox;
pub use telemetry::{MAX_REQUEST_ID, REQUEST_ID_HEADER, RequestId};

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use tenure_engine::Engine;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
    /// The URL clients reach tenure at, without a trailing slash (SCIM `meta.location`).
    public_url: Arc<str>,
}

/// The public URL when none is configured: the default listen address.
const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

struct StateInner {
    engine: Engine,
    metrics: Option<PrometheusHandle>,
    rules: Option<RulesLoader>,
    tokens: auth::TokenCache,
    scim_writer: scim::Writer,
    /// Serialize the changes to one SCIM user or group (this state's own, never shared).
    scim_locks: scim::StripedLocks,
    /// The server's watch over the audit chain.
    chain: chain::ChainWatcher,
    /// The console's identity provider, as last discovered.
    oidc: console::Discovery,
    /// The console dashboard's last service-level figures.
    dashboard: console::Snapshot,
}

/// Files laid over the configuration folder's own, by name, in a what-if: the main
/// `tenure.toml` text, and templates or policies by file name. A file sent replaces the
/// folder's file of the same name (or is added); `null` in its place removes the folder's file
/// of that name. Every file not named stays as it is in the folder.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFiles {
    /// The text of `tenure.toml`.
    #[serde(default)]
    pub config: Option<String>,
    /// Templates by file name (`engineering.toml`): new text, or `None` to remove the file.
    #[serde(default)]
    pub templates: Option<std::collections::BTreeMap<String, Option<String>>>,
    /// Policies by file name (`base.cedar`): new text, or `None` to remove the file.
    #[serde(default)]
    pub policies: Option<std::collections::BTreeMap<String, Option<String>>>,
}

/// A file name in [`RuleFiles`] that cannot name a file of the folder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleFileNameError {
    /// Where: `templates.NAME` or `policies.NAME`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl RuleFiles {
    /// Whether nothing is replaced.
    pub fn is_empty(&self) -> bool {
        self.config.is_none() && self.templates.is_none() && self.policies.is_none()
    }

    /// Checks that every name is a plain file name of its folder: `NAME.toml` for templates,
    /// `NAME.cedar` for policies, no folder, no hidden file.
    pub fn check_names(&self) -> Result<(), RuleFileNameError> {
        for (set, ext, files) in [
            ("templates", ".toml", &self.templates),
            ("policies", ".cedar", &self.policies),
        ] {
            for name in files.iter().flat_map(|m| m.keys()) {
                let bad = |message: String| RuleFileNameError {
                    field: format!("{set}.{name}"),
                    message,
                };
                if name.len() > 255 {
                    return Err(bad("a file name has at most 255 bytes".into()));
                }
                let stem = name.strip_suffix(ext).unwrap_or_default();
                if stem.is_empty() || stem.starts_with('.') || name.contains(['/', '\\', '\0']) {
                    return Err(bad(format!(
                        "not a file name of the {set} folder: write NAME{ext}, without a folder"
                    )));
                }
            }
        }
        Ok(())
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
                scim_locks: Default::default(),
                chain: Default::default(),
                oidc: Default::default(),
                dashboard: Default::default(),
            }),
            public_url: DEFAULT_PUBLIC_URL.into(),
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
                scim_locks: Default::default(),
                chain: Default::default(),
                oidc: Default::default(),
                dashboard: Default::default(),
            }),
            public_url: DEFAULT_PUBLIC_URL.into(),
        }
    }

    /// The same state, telling clients that tenure is reached at `url` (`https://host[/path]`;
    /// a trailing slash is dropped): absolute links such as SCIM's `meta.location` start with it.
    pub fn with_public_url(mut self, url: &str) -> Self {
        self.public_url = url.trim_end_matches('/').into();
        self
    }

    fn public_url(&self) -> &str {
        &self.public_url
    }

    fn oidc(&self) -> &console::Discovery {
        &self.inner.oidc
    }

    fn dashboard(&self) -> &console::Snapshot {
        &self.inner.dashboard
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

    fn scim_locks(&self) -> &scim::StripedLocks {
        &self.inner.scim_locks
    }

    fn chain(&self) -> &chain::ChainWatcher {
        &self.inner.chain
    }
}

/// The whole HTTP surface. Every request is served under its request id (`X-Request-Id`),
/// logged at `info` and counted by route template and status.
pub fn router(state: AppState) -> Router {
    routes::router(state, console::router()).layer(axum::middleware::from_fn(telemetry::observe))
}

/// The OpenAPI document describing the API (as served at `GET /api/v1/openapi.json`),
/// generated from the handlers.
pub fn openapi_json() -> &'static str {
    routes::document_json()
}
