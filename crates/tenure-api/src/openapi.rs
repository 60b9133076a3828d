//! The OpenAPI document, generated from the handlers.
//!
//! Each handler carries a `#[utoipa::path]` naming its method, path, parameters, body, scope
//! and every answer it gives; the types it reads and writes give the schemas. The router
//! (`routes::api`) registers every handler through `utoipa_axum::routes!`, which serves a
//! handler at exactly the path and methods its description names: router and document are
//! built from the same declarations, so neither can name a route the other lacks.
//!
//! The SCIM server (`/scim/v2`) is described by its own discovery documents, not here.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

/// The document's frame: what every operation shares.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tenure",
        description = include_str!("openapi.md"),
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "http://127.0.0.1:8080", description = "`tenure serve` with its default `--listen`")),
    tags(
        (name = "events", description = "Lifecycle events in."),
        (name = "people", description = "People, their accounts, grants and engagements."),
        (name = "runs", description = "The work each event causes, step by step."),
        (name = "catalog", description = "Entitlements and target systems."),
        (name = "audit", description = "The hash-chained audit trail, and the server's own check of its chain."),
        (name = "reports", description = "Service levels over a period, against `[sla]`."),
        (name = "tokens", description = "API tokens."),
        (name = "rules", description = "What-ifs and reloads of the configuration and policies."),
        (name = "access", description = "Access requests, approvals and delegations."),
        (name = "tasks", description = "Manual steps and webhook completion callbacks."),
        (name = "reconciliation", description = "What target systems really hold, against tenure's records."),
        (name = "reviews", description = "Access reviews: campaigns that certify who keeps which access, and revoke the rest."),
        (name = "hr", description = "Change notices from HR systems."),
        (name = "service", description = "Health, metrics and this document."),
    ),
    modifiers(&BearerAuth),
    components(responses(Unauthorized, Forbidden, Internal, Unavailable, InvalidQuery)),
)]
pub(crate) struct ApiDoc;

/// The name of the bearer-token security scheme operations refer to.
pub(crate) const BEARER: &str = "bearerAuth";

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(format!(
            "A token from `tenure token create`, `POST /api/v1/tokens`, or the bootstrap admin token printed on first start (`TENURE_BOOTSTRAP_TOKEN` to choose it): `tnr_` and 64 hex digits, stored as a SHA-256 hash. Each operation names the scope it needs; `admin` implies every scope. Scopes: {}.",
            crate::Scope::ALL
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(http));
    }
}

/// The schema of a query parameter that takes one of `values`, `default` when left out.
pub(crate) fn one_of(values: &[&str], default: &str) -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values.iter().copied()))
        .default(Some(default.into()))
        .build()
}

/// Every error answer: `{"error": {"code", "message", "field"?}}`. Nothing was stored when a
/// request is refused.
#[derive(Debug, serde::Serialize, ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorBody {
    /// What went wrong.
    pub(crate) error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, serde::Serialize, ToSchema)]
#[schema(example = json!({ "code": "invalid_request", "message": "`ada` is not an email address", "field": "person.email" }))]
pub(crate) struct ErrorDetail {
    /// A stable, machine-readable code: `invalid_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `unsupported_media_type`, `idempotency_key_reused`,
    /// `invalid_rules`, `not_available`, `unavailable`, `shutting_down`, `internal`.
    #[schema(value_type = String)]
    pub(crate) code: &'static str,
    /// What went wrong, for people.
    pub(crate) message: String,
    /// The request field at fault, when one is: a JSON path into the body (`person.email`),
    /// `body` for a body that is not what the operation takes, a query parameter (`limit`),
    /// or a header (`Idempotency-Key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub(crate) field: Option<String>,
}

/// A response carrying the API's error body, with a description.
fn error_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name(ErrorBody::name()))),
        )
        .build()
        .into()
}

/// Declares a reusable error answer, referred to from operations as
/// `(status = ..., response = Name)`.
macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident => $description:literal;)+) => {$(
        $(#[$doc])*
        pub(crate) enum $name {}

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), error_response($description))
            }
        }
    )+};
}

error_responses! {
    /// 401 on every authenticated operation.
    Unauthorized => "No `Authorization: Bearer` token, a malformed header, or a token that is unknown or revoked (`unauthorized`).";
    /// 403 for a token without the scope an operation needs.
    Forbidden => "The token lacks the scope this operation needs (`forbidden`); the message names it.";
    /// 500 for a failure of the server's own.
    Internal => "A failure of the server's own, such as the database refusing a query (`internal`); details are in the server log, not in the answer.";
    /// 503 when a change cannot be stored now.
    Unavailable => "The database could not take the change now (`unavailable`), or the server is shutting down (`shutting_down`). Nothing was stored; send it again.";
    /// 400 for a query string that does not parse.
    InvalidQuery => "A query parameter is unknown, repeated, of the wrong type or out of range, or a path segment does not decode (`invalid_request`); `field` names the parameter, or `path`.";
}

#[cfg(test)]
mod tests {
    use crate::openapi_json as document_json;
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use serde_json::Value;
    use std::collections::BTreeSet;
    use tower::ServiceExt;

    fn document() -> Value {
        serde_json::from_str(document_json()).expect("the document is JSON")
    }

    fn references(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.insert(r.clone());
                }
                m.values().for_each(|v| references(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| references(v, out)),
            _ => {}
        }
    }

    /// The answers are described as the API sends them (`views.rs`): times are RFC 3339
    /// strings, stored JSON is JSON, and the clients routes and main's filters are there.
    #[test]
    fn the_document_describes_the_answers_the_api_sends() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        for (schema, field) in [
            ("Run", "created_at"),
            ("AuditEntry", "at"),
            ("Event", "received_at"),
        ] {
            let ty = &schemas[schema]["properties"][field]["type"];
            assert_eq!(ty, "string", "{schema}.{field} is {ty}");
        }
        assert!(schemas["AuditEntry"]["properties"].get("at_ms").is_none());
        // A run reports where each system's part of it stands.
        assert!(
            doc["components"]
                .to_string()
                .contains("#/components/schemas/RunSystem"),
            "RunDetail does not refer to RunSystem"
        );
        for field in [
            "system",
            "state",
            "steps",
            "done",
            "failed",
            "waiting",
            "held",
            "last_error",
        ] {
            assert!(
                schemas["RunSystem"]["properties"][field].is_object(),
                "RunSystem.{field} is not described"
            );
        }
        let states: BTreeSet<&str> = schemas["SystemState"]["enum"]
            .as_array()
            .expect("SystemState is an enum")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            states,
            BTreeSet::from(["done", "running", "waiting", "failed", "blocked"])
        );
        for path in [
            "/api/v1/clients",
            "/api/v1/clients/{id}",
            "/api/v1/engagements",
        ] {
            assert!(
                doc["paths"][path]["get"].is_object(),
                "{path} is not described"
            );
        }
        let run_filters: BTreeSet<&str> = doc["paths"]["/api/v1/runs"]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for name in [
            "state", "person", "kind", "since", "until", "before", "limit",
        ] {
            assert!(run_filters.contains(name), "/api/v1/runs lacks `{name}`");
        }
    }

    /// Every `$ref` points at something the document defines.
    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let mut refs = BTreeSet::new();
        references(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r.strip_prefix('#').expect("a local reference");
            assert!(doc.pointer(pointer).is_some(), "{r} is not defined");
        }
    }

    /// Each answer's example has the JSON type of the schema it names: two types sharing a
    /// schema name (utoipa keeps one of them silently) would show here.
    #[test]
    fn every_example_has_its_schema_type() {
        let doc = document();
        let mut checked = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                for (status, answer) in op["responses"].as_object().expect("responses") {
                    let media = &answer["content"]["application/json"];
                    let (Some(r), Some(example)) =
                        (media["schema"]["$ref"].as_str(), media.get("example"))
                    else {
                        continue;
                    };
                    let schema = doc
                        .pointer(r.strip_prefix('#').expect("a local reference"))
                        .expect("the reference resolves");
                    let kind = match example {
                        Value::Object(_) => "object",
                        Value::Array(_) => "array",
                        Value::String(_) => "string",
                        _ => continue,
                    };
                    if let Some(ty) = schema["type"].as_str() {
                        assert_eq!(
                            ty, kind,
                            "{method} {path} {status}: example is not a {ty} ({r})"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 0, "no example was checked");
    }

    /// What every operation must say: its id, a success, and the refusals every
    /// authenticated one can give.
    #[test]
    fn every_operation_lists_its_answers() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                let at = format!("{method} {path}");
                assert!(op["operationId"].is_string(), "{at}: no operationId");
                let responses = op["responses"].as_object().expect("responses");
                assert!(
                    responses.keys().any(|s| s.starts_with('2')),
                    "{at}: no success"
                );
                if op.get("security").is_some() {
                    for status in ["401", "403", "500"] {
                        assert!(responses.contains_key(status), "{at}: no {status}");
                    }
                }
                let has_query = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
                if has_query {
                    assert!(responses.contains_key("400"), "{at}: no 400");
                }
            }
        }
    }

    /// The router serves each documented operation at its path and method (an unauthenticated
    /// call reaches its handler, which asks for a token), refuses the other methods there,
    /// and knows no path of its own: routes.rs registers routes only from their descriptions.
    #[tokio::test]
    async fn the_router_serves_what_the_document_describes() {
        use tenure_core::config::{Config, SourceFile};
        let dir = tempfile::tempdir().expect("a temporary folder");
        let store = tenure_store::Store::open_sqlite(&dir.path().join("t.db"))
            .await
            .expect("a scratch database");
        let config = Config::parse(
            &SourceFile {
                path: "tenure.toml".into(),
                text: String::new(),
            },
            &[],
        )
        .expect("an empty configuration");
        let engine = tenure_engine::Engine::start(
            store,
            std::sync::Arc::new(config),
            std::sync::Arc::new(tenure_engine::ManualClock::new(1_780_000_000_000)),
            Default::default(),
        )
        .await
        .expect("an engine");
        let app = crate::router(crate::AppState::new(engine.clone(), None));
        let call = |method: Method, uri: String| {
            let app = app.clone();
            async move {
                let res = app
                    .oneshot(
                        Request::builder()
                            .method(method)
                            .uri(uri)
                            .body(Body::empty())
                            .expect("a request"),
                    )
                    .await
                    .expect("an answer");
                res.status()
            }
        };
        let doc = document();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let uri = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "x" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            for method in [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ] {
                let name = method.as_str().to_ascii_lowercase();
                let status = call(method.clone(), uri.clone()).await;
                match item.get(&name) {
                    Some(op) if op.get("security").is_some() => {
                        operations += 1;
                        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name} {path}");
                    }
                    Some(_) => {
                        operations += 1;
                        assert_eq!(status, StatusCode::OK, "{name} {path}");
                    }
                    None => assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{name} {path}"),
                }
            }
        }
        assert!(operations >= 30, "only {operations} operations");
        assert_eq!(
            call(Method::GET, "/api/v1/nowhere".into()).await,
            StatusCode::NOT_FOUND
        );
        let routes = include_str!("routes.rs");
        assert!(
            !routes.contains(".route("),
            "routes.rs registers a route by hand: register it with `routes!` from its description"
        );
        engine.shutdown().await;
    }
}
