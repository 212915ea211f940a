//! The OTLP exporter's settings: endpoint, protocol, headers, compression,
//! timeouts, concurrency, request size and retry policy, from a builder or from
//! the standard `OTEL_EXPORTER_OTLP_*` variables.

use std::time::Duration;

use weft::env::{OtlpEnv, OtlpProtocol};

use crate::exporter::OtlpExporter;
use crate::retry::RetryPolicy;
use crate::BuildError;

/// The wire protocol.
pub type Protocol = OtlpProtocol;

/// Request body compression.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    /// None.
    #[default]
    None,
    /// gzip (`Content-Encoding: gzip`, gRPC `grpc-encoding: gzip`).
    Gzip,
}

/// Configures and builds an [`OtlpExporter`].
#[derive(Clone, Debug)]
pub struct OtlpExporterBuilder {
    pub(crate) endpoint: Option<String>,
    pub(crate) protocol: Protocol,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Duration,
    pub(crate) compression: Compression,
    pub(crate) max_in_flight: usize,
    pub(crate) max_request_bytes: usize,
    pub(crate) retry: RetryPolicy,
    pub(crate) log_failures: bool,
}

impl Default for OtlpExporterBuilder {
    fn default() -> Self {
        OtlpExporterBuilder {
            endpoint: None,
            protocol: Protocol::HttpProtobuf,
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            compression: Compression::None,
            max_in_flight: 4,
            max_request_bytes: 4 << 20,
            retry: RetryPolicy::default(),
            log_failures: true,
        }
    }
}

impl OtlpExporterBuilder {
    /// Settings from `OTEL_EXPORTER_OTLP_*` (already parsed by [`weft::EnvConfig`]).
    pub fn from_env(env: &OtlpEnv) -> Self {
        OtlpExporterBuilder {
            endpoint: Some(env.traces_endpoint.clone()),
            protocol: env.protocol,
            headers: env.headers.clone(),
            timeout: env.timeout,
            compression: if env.gzip { Compression::Gzip } else { Compression::None },
            ..Self::default()
        }
    }

    /// Where to send: for gRPC `http://host:port`; for HTTP the full URL of the
    /// traces path (`/v1/traces` is appended when the URL has no path). Default:
    /// `http://localhost:4317` (gRPC) or `http://localhost:4318/v1/traces`.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }
    /// The protocol (default HTTP with protobuf bodies, as the spec says).
    pub fn protocol(mut self, p: Protocol) -> Self {
        self.protocol = p;
        self
    }
    /// Adds a header (gRPC metadata) to every request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Per-request timeout (default 10 s); a request that times out is retried.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    /// Body compression (default none).
    pub fn compression(mut self, c: Compression) -> Self {
        self.compression = c;
        self
    }
    /// Requests in flight at once (default 4, at least 1), so network latency
    /// does not cap throughput.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }
    /// Largest request body before compression (default 4 MiB); larger batches
    /// are split into several requests.
    pub fn max_request_bytes(mut self, n: usize) -> Self {
        self.max_request_bytes = n;
        self
    }
    /// The retry policy (see [`RetryPolicy`]).
    pub fn retry(mut self, r: RetryPolicy) -> Self {
        self.retry = r;
        self
    }
    /// Whether to log each batch given up on to stderr (default true).
    pub fn log_failures(mut self, yes: bool) -> Self {
        self.log_failures = yes;
        self
    }

    /// The endpoint requests go to, after defaults and the `/v1/traces` rule.
    pub(crate) fn resolved_endpoint(&self) -> String {
        let default = match self.protocol {
            Protocol::Grpc => "http://localhost:4317",
            _ => "http://localhost:4318/v1/traces",
        };
        let ep = self.endpoint.clone().unwrap_or_else(|| default.to_owned());
        if self.protocol == Protocol::Grpc {
            return ep;
        }
        match ep.parse::<http::Uri>() {
            Ok(u) if u.path() == "/" && !ep.ends_with('/') => format!("{ep}/v1/traces"),
            Ok(u) if u.path() == "/" => format!("{ep}v1/traces"),
            _ => ep,
        }
    }

    /// Starts the exporter's thread and checks the settings.
    pub fn build(self) -> Result<OtlpExporter, BuildError> {
        if self.max_in_flight == 0 {
            return Err(BuildError::Setting("max_in_flight must be at least 1".into()));
        }
        if self.max_request_bytes < 1024 {
            return Err(BuildError::Setting("max_request_bytes must be at least 1024".into()));
        }
        OtlpExporter::start(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_endpoints_get_the_traces_path_only_when_they_have_none() {
        let b = OtlpExporterBuilder::default();
        assert_eq!(b.resolved_endpoint(), "http://localhost:4318/v1/traces");
        assert_eq!(b.clone().endpoint("http://h:1").resolved_endpoint(), "http://h:1/v1/traces");
        assert_eq!(b.clone().endpoint("http://h:1/").resolved_endpoint(), "http://h:1/v1/traces");
        assert_eq!(b.clone().endpoint("http://h:1/custom").resolved_endpoint(), "http://h:1/custom");
        let g = OtlpExporterBuilder::default().protocol(Protocol::Grpc);
        assert_eq!(g.resolved_endpoint(), "http://localhost:4317");
        assert_eq!(g.endpoint("http://h:2").resolved_endpoint(), "http://h:2");
    }

    #[test]
    fn otel_exporter_variables_configure_the_exporter() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=secret,tenant=a%20b"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ];
        let env = weft::EnvConfig::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()));
        assert!(env.warnings.is_empty(), "{:?}", env.warnings);
        let b = OtlpExporterBuilder::from_env(&env.otlp);
        assert_eq!(b.protocol, Protocol::Grpc);
        assert_eq!(b.resolved_endpoint(), "http://collector:4317");
        assert_eq!(b.headers, vec![("api-key".into(), "secret".into()), ("tenant".into(), "a b".into())]);
        assert_eq!(b.timeout, Duration::from_millis(2500));
        assert_eq!(b.compression, Compression::Gzip);

        // HTTP: the generic endpoint gets /v1/traces, the traces endpoint is used as given.
        let vars = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")];
        let env = weft::EnvConfig::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()));
        assert_eq!(OtlpExporterBuilder::from_env(&env.otlp).resolved_endpoint(), "http://collector:4318/v1/traces");
        let vars = [("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:9/custom/path")];
        let env = weft::EnvConfig::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()));
        assert_eq!(OtlpExporterBuilder::from_env(&env.otlp).resolved_endpoint(), "http://c:9/custom/path");

        // Invalid values warn and fall back to the defaults.
        let vars = [("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"), ("OTEL_EXPORTER_OTLP_COMPRESSION", "lz4")];
        let env = weft::EnvConfig::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()));
        assert_eq!(env.warnings.len(), 2, "{:?}", env.warnings);
        let b = OtlpExporterBuilder::from_env(&env.otlp);
        assert_eq!((b.protocol, b.compression), (Protocol::HttpProtobuf, Compression::None));
        assert_eq!(b.resolved_endpoint(), "http://localhost:4318/v1/traces");
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(matches!(OtlpExporterBuilder::default().max_in_flight(0).build(), Err(BuildError::Setting(_))));
        assert!(matches!(OtlpExporterBuilder::default().max_request_bytes(10).build(), Err(BuildError::Setting(_))));
        assert!(matches!(OtlpExporterBuilder::default().endpoint("not a url").build(), Err(BuildError::Endpoint(_))));
        assert!(matches!(
            OtlpExporterBuilder::default().endpoint("https://h:1/v1/traces").build(),
            Err(BuildError::Endpoint(_))
        ));
        assert!(matches!(OtlpExporterBuilder::default().header("bad header", "v").build(), Err(BuildError::Header(_))));
        assert!(matches!(
            OtlpExporterBuilder::default().protocol(Protocol::Grpc).header("x", "bad\nvalue").build(),
            Err(BuildError::Header(_))
        ));
    }
}
