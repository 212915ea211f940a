//! Configuration from the standard `OTEL_*` environment variables.
//!
//! [`EnvConfig::from_env`] reads them once; [`crate::TracerBuilder::with_env`]
//! applies what the SDK core uses (service name and resource, sampler, span
//! limits, batching, `OTEL_SDK_DISABLED`) and keeps the exporter settings
//! (`OTEL_EXPORTER_OTLP_*`) for the OTLP exporter. Invalid values never fail: each
//! produces a warning naming the variable and the default is used.
//!
//! How the batch-processor variables map onto weft's byte-bounded buffers:
//!
//! | variable | weft |
//! |---|---|
//! | `OTEL_BSP_SCHEDULE_DELAY` (ms) | longest a finished span waits for a partial batch |
//! | `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | most spans per export call |
//! | `OTEL_BSP_EXPORT_TIMEOUT` (ms) | per-export timeout, for exporters that take one |
//! | `OTEL_BSP_MAX_QUEUE_SIZE` | a floor on the memory bound: `size × 1 KiB` if that is above the default 32 MiB (weft bounds bytes, not spans, and sheds whole new traces before it is full) |
//! | `WEFT_SDK_MEMORY_LIMIT` (bytes; `k`, `M`, `G` suffixes) | the memory bound itself; wins over the above |

use std::time::Duration;

use crate::propagation::percent_decode;
use crate::sampler::{AlwaysOff, AlwaysOn, ParentBased, RateLimiting, Sampler, TraceIdRatio};
use crate::tracer::SpanLimits;
use crate::value::KeyValue;

/// The wire protocol `OTEL_EXPORTER_OTLP_PROTOCOL` names.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum OtlpProtocol {
    /// OTLP over gRPC.
    Grpc,
    /// OTLP over HTTP with protobuf bodies (the default).
    #[default]
    HttpProtobuf,
    /// OTLP over HTTP with JSON bodies.
    HttpJson,
}

/// The `OTEL_EXPORTER_OTLP_*` settings, for the OTLP exporter.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpEnv {
    /// Where to send traces: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (with `/v1/traces` appended for HTTP), else
    /// the protocol's default.
    pub traces_endpoint: String,
    /// The protocol.
    pub protocol: OtlpProtocol,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Per-request timeout (default 10 s).
    pub timeout: Duration,
    /// gzip request bodies.
    pub gzip: bool,
}

/// What the `OTEL_*` variables say, parsed and checked.
#[derive(Debug)]
pub struct EnvConfig {
    /// `OTEL_SDK_DISABLED=true`: record nothing.
    pub disabled: bool,
    /// `OTEL_SERVICE_NAME`, else `service.name` from `OTEL_RESOURCE_ATTRIBUTES`.
    pub service_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES`, percent-decoded.
    pub resource: Vec<KeyValue>,
    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`, if set and valid.
    pub sampler: Option<Box<dyn Sampler>>,
    /// The `OTEL_*_LIMIT` variables over the defaults.
    pub span_limits: SpanLimits,
    /// `OTEL_BSP_SCHEDULE_DELAY`.
    pub schedule_delay: Option<Duration>,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`.
    pub max_export_batch_size: Option<usize>,
    /// `OTEL_BSP_EXPORT_TIMEOUT`.
    pub export_timeout: Option<Duration>,
    /// The memory bound from `WEFT_SDK_MEMORY_LIMIT` or `OTEL_BSP_MAX_QUEUE_SIZE`.
    pub memory_limit_bytes: Option<usize>,
    /// `OTEL_PROPAGATORS` (default `tracecontext,baggage`).
    pub propagators: Vec<String>,
    /// The OTLP exporter's settings.
    pub otlp: OtlpEnv,
    /// One line per invalid variable: its name, the value, what was used instead.
    pub warnings: Vec<String>,
}

impl EnvConfig {
    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `get` (for tests and embedding).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let mut w = Vec::new();
        let var = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());

        let disabled = match var("OTEL_SDK_DISABLED").map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(v) => {
                w.push(format!("OTEL_SDK_DISABLED={v:?} is not true or false; using false"));
                false
            }
        };

        let mut resource = Vec::new();
        if let Some(v) = var("OTEL_RESOURCE_ATTRIBUTES") {
            for member in v.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                match member.split_once('=') {
                    Some((k, val)) if !k.trim().is_empty() => {
                        match (percent_decode(k.trim()), percent_decode(val.trim())) {
                            (Some(k), Some(val)) => resource.push(KeyValue::new(k, val)),
                            _ => w.push(format!(
                                "OTEL_RESOURCE_ATTRIBUTES: {member:?} has a bad percent-escape; skipped"
                            )),
                        }
                    }
                    _ => w.push(format!("OTEL_RESOURCE_ATTRIBUTES: {member:?} is not key=value; skipped")),
                }
            }
        }
        let service_name = var("OTEL_SERVICE_NAME").or_else(|| {
            resource.iter().find(|kv| kv.key == "service.name").map(|kv| match &kv.value {
                crate::Value::String(s) => s.to_string(),
                other => other.to_string(),
            })
        });

        let arg = var("OTEL_TRACES_SAMPLER_ARG");
        let sampler = var("OTEL_TRACES_SAMPLER").and_then(|name| parse_sampler(&name, arg.as_deref(), &mut w));

        let mut limits = SpanLimits::default();
        let limit = |name: &str, slot: &mut u32, w: &mut Vec<String>| {
            if let Some(v) = var(name) {
                match v.parse::<u32>() {
                    Ok(n) => *slot = n,
                    Err(_) => w.push(format!("{name}={v:?} is not a non-negative integer; using {slot}")),
                }
            }
        };
        let mut general = limits.max_attributes;
        limit("OTEL_ATTRIBUTE_COUNT_LIMIT", &mut general, &mut w);
        limits.max_attributes = general;
        limits.max_attributes_per_event = general;
        limits.max_attributes_per_link = general;
        limit("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", &mut limits.max_attributes, &mut w);
        limit("OTEL_SPAN_EVENT_COUNT_LIMIT", &mut limits.max_events, &mut w);
        limit("OTEL_SPAN_LINK_COUNT_LIMIT", &mut limits.max_links, &mut w);
        limit("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", &mut limits.max_attributes_per_event, &mut w);
        limit("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", &mut limits.max_attributes_per_link, &mut w);
        for name in ["OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"] {
            if let Some(v) = var(name) {
                match v.parse::<usize>() {
                    Ok(n) => limits.max_attribute_value_len = Some(n),
                    Err(_) => w.push(format!("{name}={v:?} is not a non-negative integer; values stay unlimited")),
                }
            }
        }

        let millis = |name: &str, w: &mut Vec<String>| {
            var(name).and_then(|v| match v.parse::<u64>() {
                Ok(ms) => Some(Duration::from_millis(ms)),
                Err(_) => {
                    w.push(format!("{name}={v:?} is not a whole number of milliseconds; using the default"));
                    None
                }
            })
        };
        let schedule_delay = millis("OTEL_BSP_SCHEDULE_DELAY", &mut w);
        let export_timeout = millis("OTEL_BSP_EXPORT_TIMEOUT", &mut w);
        let max_export_batch_size = var("OTEL_BSP_MAX_EXPORT_BATCH_SIZE").and_then(|v| match v.parse::<usize>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                w.push(format!("OTEL_BSP_MAX_EXPORT_BATCH_SIZE={v:?} is not a positive integer; using the default"));
                None
            }
        });
        let from_queue = var("OTEL_BSP_MAX_QUEUE_SIZE").and_then(|v| match v.parse::<usize>() {
            Ok(n) if n > 0 => Some(n.saturating_mul(1024).max(crate::tracer::DEFAULT_MEMORY_LIMIT)),
            _ => {
                w.push(format!("OTEL_BSP_MAX_QUEUE_SIZE={v:?} is not a positive integer; using the default"));
                None
            }
        });
        let memory_limit_bytes = var("WEFT_SDK_MEMORY_LIMIT")
            .and_then(|v| match parse_bytes(&v) {
                Some(n) if n >= 64 * 1024 => Some(n),
                _ => {
                    w.push(format!("WEFT_SDK_MEMORY_LIMIT={v:?} is not a size of at least 64k; using the default"));
                    None
                }
            })
            .or(from_queue);

        let propagators = var("OTEL_PROPAGATORS")
            .map(|v| v.split(',').map(|p| p.trim().to_ascii_lowercase()).filter(|p| !p.is_empty()).collect())
            .unwrap_or_else(|| vec!["tracecontext".to_string(), "baggage".to_string()]);
        for p in &propagators {
            if !matches!(p.as_str(), "tracecontext" | "baggage" | "none") {
                w.push(format!("OTEL_PROPAGATORS: {p:?} is not supported (tracecontext, baggage, none); ignored"));
            }
        }

        let otlp = parse_otlp(&var, &mut w);
        EnvConfig {
            disabled,
            service_name,
            resource,
            sampler,
            span_limits: limits,
            schedule_delay,
            max_export_batch_size,
            export_timeout,
            memory_limit_bytes,
            propagators,
            otlp,
            warnings: w,
        }
    }
}

fn parse_sampler(name: &str, arg: Option<&str>, w: &mut Vec<String>) -> Option<Box<dyn Sampler>> {
    let ratio = |w: &mut Vec<String>| match arg.map(str::parse::<f64>) {
        None => 1.0,
        Some(Ok(p)) if (0.0..=1.0).contains(&p) => p,
        Some(_) => {
            w.push(format!(
                "OTEL_TRACES_SAMPLER_ARG={:?} is not a probability in [0, 1]; using 1.0",
                arg.unwrap_or("")
            ));
            1.0
        }
    };
    let rate = |w: &mut Vec<String>| match arg.map(str::parse::<f64>) {
        Some(Ok(r)) if r >= 0.0 && r.is_finite() => r,
        _ => {
            w.push(format!(
                "OTEL_TRACES_SAMPLER_ARG={:?} is not a rate in traces per second; using 100",
                arg.unwrap_or("")
            ));
            100.0
        }
    };
    Some(match name.to_ascii_lowercase().as_str() {
        "always_on" => Box::new(AlwaysOn),
        "always_off" => Box::new(AlwaysOff),
        "traceidratio" => Box::new(TraceIdRatio::new(ratio(w))),
        "parentbased_always_on" => Box::new(ParentBased::new(AlwaysOn)),
        "parentbased_always_off" => Box::new(ParentBased::new(AlwaysOff)),
        "parentbased_traceidratio" => Box::new(ParentBased::new(TraceIdRatio::new(ratio(w)))),
        "weft_ratelimit" => Box::new(RateLimiting::new(rate(w))),
        "parentbased_weft_ratelimit" => Box::new(ParentBased::new(RateLimiting::new(rate(w)))),
        other => {
            w.push(format!("OTEL_TRACES_SAMPLER={other:?} is not supported; using parentbased_always_on"));
            return None;
        }
    })
}

fn parse_otlp(var: &impl Fn(&str) -> Option<String>, w: &mut Vec<String>) -> OtlpEnv {
    let protocol = match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL")) {
        None => OtlpProtocol::HttpProtobuf,
        Some(p) => match p.as_str() {
            "grpc" => OtlpProtocol::Grpc,
            "http/protobuf" => OtlpProtocol::HttpProtobuf,
            "http/json" => OtlpProtocol::HttpJson,
            other => {
                w.push(format!("OTEL_EXPORTER_OTLP_PROTOCOL={other:?} is not grpc, http/protobuf or http/json; using http/protobuf"));
                OtlpProtocol::HttpProtobuf
            }
        },
    };
    let default_base = match protocol {
        OtlpProtocol::Grpc => "http://localhost:4317",
        _ => "http://localhost:4318",
    };
    let valid_url = |name: &str, u: String, w: &mut Vec<String>| {
        if u.starts_with("http://") || u.starts_with("https://") {
            Some(u)
        } else {
            w.push(format!("{name}={u:?} is not an http(s) URL; using the default"));
            None
        }
    };
    let traces_endpoint = match var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .and_then(|u| valid_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", u, w))
    {
        Some(u) => u,
        None => {
            let base = var("OTEL_EXPORTER_OTLP_ENDPOINT")
                .and_then(|u| valid_url("OTEL_EXPORTER_OTLP_ENDPOINT", u, w))
                .unwrap_or_else(|| default_base.to_string());
            match protocol {
                // The generic endpoint is a base URL: HTTP appends the signal path.
                OtlpProtocol::Grpc => base,
                _ => format!("{}/v1/traces", base.trim_end_matches('/')),
            }
        }
    };
    let mut headers = Vec::new();
    for name in ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"] {
        if let Some(v) = var(name) {
            for member in v.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                match member
                    .split_once('=')
                    .and_then(|(k, v)| Some((percent_decode(k.trim())?, percent_decode(v.trim())?)))
                {
                    Some((k, v)) if !k.is_empty() => {
                        headers.retain(|(hk, _): &(String, String)| !hk.eq_ignore_ascii_case(&k));
                        headers.push((k, v));
                    }
                    _ => w.push(format!("{name}: {member:?} is not key=value; skipped")),
                }
            }
        }
    }
    let timeout = match var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT").or_else(|| var("OTEL_EXPORTER_OTLP_TIMEOUT")) {
        None => Duration::from_secs(10),
        Some(v) => match v.parse::<u64>() {
            Ok(ms) => Duration::from_millis(ms),
            Err(_) => {
                w.push(format!("OTEL_EXPORTER_OTLP_TIMEOUT={v:?} is not a whole number of milliseconds; using 10000"));
                Duration::from_secs(10)
            }
        },
    };
    let gzip = match var("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION").or_else(|| var("OTEL_EXPORTER_OTLP_COMPRESSION")) {
        None => false,
        Some(v) if v == "gzip" => true,
        Some(v) if v == "none" => false,
        Some(v) => {
            w.push(format!("OTEL_EXPORTER_OTLP_COMPRESSION={v:?} is not gzip or none; using none"));
            false
        }
    };
    OtlpEnv { traces_endpoint, protocol, headers, timeout, gzip }
}

/// Parses a byte count with an optional `k`/`M`/`G` (binary) suffix.
fn parse_bytes(s: &str) -> Option<usize> {
    let (num, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1usize << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.trim().parse::<usize>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> EnvConfig {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        EnvConfig::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let c = cfg(&[]);
        assert!(!c.disabled && c.sampler.is_none() && c.warnings.is_empty());
        assert_eq!(c.span_limits, SpanLimits::default());
        assert_eq!(c.propagators, ["tracecontext", "baggage"]);
        assert_eq!(c.otlp.traces_endpoint, "http://localhost:4318/v1/traces");
        assert_eq!(c.otlp.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(c.otlp.timeout, Duration::from_secs(10));
    }

    #[test]
    fn every_variable_is_read() {
        let c = cfg(&[
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs, deployment.environment=prod,team=a%2Cb"),
            ("OTEL_SERVICE_NAME", "checkout"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "10"),
            ("OTEL_SPAN_EVENT_COUNT_LIMIT", "5"),
            ("OTEL_SPAN_LINK_COUNT_LIMIT", "3"),
            ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "64"),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "1000"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "65536"),
            ("OTEL_PROPAGATORS", "tracecontext"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%3Dcret,x-tenant=7"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(c.disabled);
        assert_eq!(c.service_name.as_deref(), Some("checkout"), "OTEL_SERVICE_NAME wins");
        assert!(c.resource.contains(&KeyValue::new("team", "a,b")));
        assert!(c.sampler.is_some());
        assert_eq!((c.span_limits.max_attributes, c.span_limits.max_events, c.span_limits.max_links), (10, 5, 3));
        assert_eq!(c.span_limits.max_attribute_value_len, Some(64));
        assert_eq!(c.schedule_delay, Some(Duration::from_millis(250)));
        assert_eq!(c.export_timeout, Some(Duration::from_secs(1)));
        assert_eq!(c.max_export_batch_size, Some(100));
        assert_eq!(c.memory_limit_bytes, Some(64 << 20), "queue size × 1 KiB when above the default");
        assert_eq!(c.propagators, ["tracecontext"]);
        assert_eq!(c.otlp.protocol, OtlpProtocol::Grpc);
        assert_eq!(c.otlp.traces_endpoint, "http://collector:4317", "gRPC takes the base endpoint as is");
        assert_eq!(
            c.otlp.headers,
            [("api-key".to_string(), "s=cret".to_string()), ("x-tenant".to_string(), "7".to_string())]
        );
        assert_eq!(c.otlp.timeout, Duration::from_millis(2500));
        assert!(c.otlp.gzip);
    }

    #[test]
    fn endpoints_follow_the_specification() {
        let c = cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otel.example:4318/")]);
        assert_eq!(c.otlp.traces_endpoint, "https://otel.example:4318/v1/traces");
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:9999/custom"),
        ]);
        assert_eq!(c.otlp.traces_endpoint, "http://traces:9999/custom", "the signal endpoint is used as given");
        let c = cfg(&[("OTEL_SERVICE_NAME", "")]);
        assert!(c.service_name.is_none(), "empty means unset");
    }

    #[test]
    fn invalid_values_warn_with_the_variable_name_and_fall_back() {
        let table: &[(&str, &str)] = &[
            ("OTEL_SDK_DISABLED", "yes"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "-1"),
            ("OTEL_SPAN_EVENT_COUNT_LIMIT", "many"),
            ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "1e3"),
            ("OTEL_BSP_SCHEDULE_DELAY", "5s"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "lots"),
            ("WEFT_SDK_MEMORY_LIMIT", "1k"),
            ("OTEL_PROPAGATORS", "b3"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "udp"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
            ("OTEL_RESOURCE_ATTRIBUTES", "bad%zz=1"),
        ];
        for (k, v) in table {
            let c = cfg(&[(k, v)]);
            assert_eq!(c.warnings.len(), 1, "{k}={v}: {:?}", c.warnings);
            let name = k.trim_start_matches("OTEL_");
            assert!(c.warnings[0].contains(name), "{k}: warning names the variable: {}", c.warnings[0]);
        }
        let c = cfg(&[("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "1.5")]);
        assert!(c.sampler.is_some() && c.warnings[0].contains("OTEL_TRACES_SAMPLER_ARG"));
        let c = cfg(&[("WEFT_SDK_MEMORY_LIMIT", "8M"), ("OTEL_BSP_MAX_QUEUE_SIZE", "999999")]);
        assert_eq!(c.memory_limit_bytes, Some(8 << 20), "the weft variable wins");
    }

    #[test]
    fn every_sampler_name_is_known() {
        for name in [
            "always_on",
            "always_off",
            "traceidratio",
            "parentbased_always_on",
            "parentbased_always_off",
            "parentbased_traceidratio",
            "weft_ratelimit",
            "parentbased_weft_ratelimit",
        ] {
            let c = cfg(&[("OTEL_TRACES_SAMPLER", name), ("OTEL_TRACES_SAMPLER_ARG", "0.5")]);
            assert!(c.sampler.is_some() && c.warnings.is_empty(), "{name}: {:?}", c.warnings);
        }
    }

    #[test]
    fn percent_decoding_and_sizes() {
        assert_eq!(percent_decode("a%20b%2c").as_deref(), Some("a b,"));
        assert_eq!(percent_decode("%e2%82%ac").as_deref(), Some("€"));
        for bad in ["%", "%2", "%zz", "%ff"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
        assert_eq!(parse_bytes("64k"), Some(64 << 10));
        assert_eq!(parse_bytes("2G"), Some(2 << 30));
        assert_eq!(parse_bytes("12"), Some(12));
        assert_eq!(parse_bytes("k"), None);
        assert_eq!(parse_bytes(""), None);
        assert_eq!(parse_bytes("99999999999999999999G"), None);
    }
}
