//! Logging and, when asked for, OpenTelemetry traces exported over OTLP/HTTP.
//!
//! Traces are off unless the environment asks for them in the standard way: an
//! `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or
//! `OTEL_TRACES_EXPORTER=otlp`. `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` keeps
//! them off. The exporter reads the other standard variables itself (headers, timeout,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`).

use anyhow::{Context, Result, bail};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// What the environment asks of traces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceExport {
    /// No export (the default).
    Off,
    /// OTLP over HTTP, in this encoding.
    Otlp(Protocol),
}

/// Reads the `OTEL_*` variables that turn export on and choose its protocol. A value tenure
/// cannot honour is an error at start, never a silent default.
pub fn trace_export(var: impl Fn(&str) -> Option<String>) -> Result<TraceExport> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(TraceExport::Off);
    }
    let wanted = match set("OTEL_TRACES_EXPORTER").as_deref().map(str::trim) {
        Some("none") => return Ok(TraceExport::Off),
        Some("otlp") => true,
        Some(other) => bail!(
            "OTEL_TRACES_EXPORTER `{other}` is not supported: use `otlp` or `none` (traces go out over OTLP/HTTP only)"
        ),
        None => {
            set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
                || set("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        }
    };
    if !wanted {
        return Ok(TraceExport::Off);
    }
    let (name, protocol) = match set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") {
        Some(p) => ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", Some(p)),
        None => (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            set("OTEL_EXPORTER_OTLP_PROTOCOL"),
        ),
    };
    Ok(TraceExport::Otlp(
        match protocol.as_deref().map(str::trim) {
            None | Some("http/protobuf") => Protocol::HttpBinary,
            Some("http/json") => Protocol::HttpJson,
            Some(other) => bail!(
                "{name} `{other}` is not supported: use `http/protobuf` (the default) or `http/json`"
            ),
        },
    ))
}

/// The installed logging and tracing; [`Telemetry::shutdown`] sends the spans still queued.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs the log output (text or JSON lines, filtered by `RUST_LOG`, else by
/// `default_filter`) and, when [`trace_export`] says so, the OpenTelemetry layer for tenure's
/// own spans.
pub fn init(log_json: bool, default_filter: &str) -> Result<Telemetry> {
    let export = trace_export(|name| std::env::var(name).ok())?;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let fmt = if log_json {
        tracing_subscriber::fmt::layer().json().boxed()
    } else {
        tracing_subscriber::fmt::layer().boxed()
    };
    let provider = match &export {
        TraceExport::Off => None,
        TraceExport::Otlp(protocol) => Some(provider(*protocol)?),
    };
    // Only tenure's spans (requests, runs, plans, steps) become trace spans: not the HTTP
    // server's or the database driver's.
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("tenure"))
            .with_filter(Targets::new().with_target("tenure", LevelFilter::INFO))
    });
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init()
        .context("installing the log output")?;
    if let TraceExport::Otlp(protocol) = export {
        tenure_store::trace::enable();
        tracing::info!(protocol = ?protocol, "traces exported over OTLP");
    }
    Ok(Telemetry { provider })
}

fn provider(protocol: Protocol) -> Result<SdkTracerProvider> {
    // The blocking HTTP client makes a runtime of its own: it must be made (and dropped)
    // outside tokio's.
    let exporter = std::thread::spawn(move || {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .build()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("building the OTLP exporter panicked"))?
    .context("the OTLP trace exporter (OTEL_EXPORTER_OTLP_*)")?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("tenure");
    }
    Ok(SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).build())
        .with_resource(resource.build())
        .build())
}

impl Telemetry {
    /// Sends the spans still queued and stops the exporter.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "flushing the last spans failed"),
            Err(e) => tracing::warn!(error = %e, "flushing the last spans panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(vars: &[(&str, &str)]) -> Result<TraceExport> {
        trace_export(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn traces_are_off_unless_asked_for() {
        assert_eq!(export(&[]).unwrap(), TraceExport::Off);
        assert_eq!(
            export(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")]).unwrap(),
            TraceExport::Off
        );
        let on = TraceExport::Otlp(Protocol::HttpBinary);
        assert_eq!(
            export(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")]).unwrap(),
            on
        );
        assert_eq!(
            export(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c/v1/traces")]).unwrap(),
            on
        );
        assert_eq!(export(&[("OTEL_TRACES_EXPORTER", "otlp")]).unwrap(), on);
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        for off in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            assert_eq!(export(&[endpoint, off]).unwrap(), TraceExport::Off);
        }
    }

    #[test]
    fn the_protocol_is_chosen_by_the_standard_variables_and_checked() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        assert_eq!(
            export(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]).unwrap(),
            TraceExport::Otlp(Protocol::HttpJson)
        );
        assert_eq!(
            export(&[
                endpoint,
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
            ])
            .unwrap(),
            TraceExport::Otlp(Protocol::HttpBinary)
        );
        let e = export(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert!(
            e.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL `grpc`"),
            "{e}"
        );
        let e = export(&[("OTEL_TRACES_EXPORTER", "zipkin")]).unwrap_err();
        assert!(e.to_string().contains("`zipkin` is not supported"), "{e}");
    }
}
