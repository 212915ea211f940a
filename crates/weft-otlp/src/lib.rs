//! weft's OTLP exporter: sends spans to any OpenTelemetry backend (weft's server,
//! the OpenTelemetry Collector, Jaeger, Tempo, Rotel) over OTLP/gRPC or OTLP/HTTP
//! with protobuf or JSON bodies, optionally gzip'd.
//!
//! Request bodies are encoded straight from weft's span records
//! (`weft::otlp_encode`, [`json`]), several requests are in flight at once, and
//! every failure is retried or counted exactly as the OTLP specification says
//! (see [`RetryPolicy`] and `retry.rs`). Nothing is lost silently: every span ends
//! up in the tracer's `exported`, `dropped.export_rejected` or
//! `dropped.export_failed`, and [`OtlpHandle::stats`] tells request by request.
//!
//! ```no_run
//! use weft_otlp::{OtlpExporter, Protocol};
//! let exporter = OtlpExporter::builder()
//!     .protocol(Protocol::Grpc)
//!     .endpoint("http://127.0.0.1:4317")
//!     .build()?;
//! let tracer = weft::builder().service_name("shop").exporter(exporter).install()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod exporter;
pub mod json;
pub mod raw;
mod retry;
mod transport;

/// Entry points for the fuzz targets (`fuzz/`): every parser of what a backend
/// sends back. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    /// Runs every response parser on `data`: protobuf and JSON export responses,
    /// `Retry-After`, and the gRPC status details that carry `RetryInfo`.
    pub fn responses(data: &[u8]) {
        crate::transport::judge_response_bytes(data);
        if let Ok(s) = std::str::from_utf8(data) {
            let _ = crate::retry::parse_retry_after(s, std::time::SystemTime::now());
            let _ = crate::retry::http_verdict(http::StatusCode::TOO_MANY_REQUESTS, Some(s), s);
        }
        let status =
            tonic::Status::with_details(tonic::Code::ResourceExhausted, "fuzz", bytes::Bytes::copy_from_slice(data));
        let _ = crate::retry::grpc_verdict(&status);
    }
}

pub use config::{Compression, OtlpExporterBuilder, Protocol};
pub use exporter::{ExporterStats, OtlpExporter, OtlpHandle};
pub use retry::RetryPolicy;

/// Why an exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The endpoint is not a usable URL.
    #[error("invalid OTLP endpoint {0}")]
    Endpoint(String),
    /// A header name or value is not valid in HTTP/gRPC.
    #[error("invalid OTLP header {0:?}")]
    Header(String),
    /// A setting is out of range.
    #[error("invalid OTLP exporter setting: {0}")]
    Setting(String),
    /// The exporter's thread or runtime could not start.
    #[error("could not start the OTLP exporter: {0}")]
    Runtime(String),
}

/// Installs a tracer configured entirely by the standard `OTEL_*` variables,
/// exporting over OTLP as `OTEL_EXPORTER_OTLP_*` say; returns it with a handle on
/// the exporter's counters.
pub fn install_from_env() -> Result<(weft::Tracer, OtlpHandle), InstallError> {
    let env = weft::EnvConfig::from_env();
    let exporter = OtlpExporterBuilder::from_env(&env.otlp).build()?;
    let handle = exporter.handle();
    let tracer = weft::builder().with_env_config(env).exporter(exporter).install()?;
    Ok((tracer, handle))
}

/// Why [`install_from_env`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The exporter could not be built.
    #[error(transparent)]
    Exporter(#[from] BuildError),
    /// The tracer could not be installed.
    #[error(transparent)]
    Tracer(#[from] weft::InitError),
}
