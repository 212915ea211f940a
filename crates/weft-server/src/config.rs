//! `weft serve`'s settings: defaults, then a TOML file, then `WEFT_*` environment
//! variables, then command-line flags (each later source wins).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Everything the server needs to start.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeConfig {
    /// Where the write-ahead log (and later the store) lives. Default `./weft-data`.
    pub data_dir: PathBuf,
    /// OTLP/gRPC listen address. Default `127.0.0.1:4317`.
    pub otlp_grpc: SocketAddr,
    /// OTLP/HTTP listen address. Default `127.0.0.1:4318`.
    pub otlp_http: SocketAddr,
    /// Query, UI, metrics and health address. Default `127.0.0.1:16686`.
    pub http: SocketAddr,
    /// Bytes accepted but not yet processed, across all requests (default 256 MiB).
    /// Over it, requests are refused with a retry delay.
    pub ingest_budget_bytes: usize,
    /// Largest request body, compressed or not (default 16 MiB): larger → 413 /
    /// RESOURCE_EXHAUSTED without RetryInfo.
    pub max_request_bytes: usize,
    /// Shards (default: the number of cores).
    pub shards: usize,
    /// How often the watermark is published (default 250 ms).
    pub watermark_interval: Duration,
    /// Write-ahead log segment size before rotation (default 64 MiB).
    pub wal_segment_bytes: u64,
    /// Most attributes kept per span, event and link (default 128); the rest are
    /// dropped and counted in `dropped_attributes_count`.
    pub max_attributes: usize,
    /// Longest string attribute value in bytes (default 4096); longer values are
    /// cut at a character boundary and counted.
    pub max_attribute_value_bytes: usize,
    /// A trace is complete when none of its spans has arrived for this long as
    /// of the watermark (default 10 s); complete traces are sealed into blocks.
    pub trace_idle: Duration,
    /// Blocks whose newest span is older than this are deleted (default: kept).
    pub retention: Option<Duration>,
    /// The oldest blocks are deleted while all blocks take more (default: no limit).
    pub retention_bytes: Option<u64>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            data_dir: PathBuf::from("weft-data"),
            otlp_grpc: SocketAddr::from(([127, 0, 0, 1], 4317)),
            otlp_http: SocketAddr::from(([127, 0, 0, 1], 4318)),
            http: SocketAddr::from(([127, 0, 0, 1], 16686)),
            ingest_budget_bytes: 256 << 20,
            max_request_bytes: 16 << 20,
            shards: std::thread::available_parallelism().map_or(2, |n| n.get()),
            watermark_interval: Duration::from_millis(250),
            wal_segment_bytes: 64 << 20,
            max_attributes: 128,
            max_attribute_value_bytes: 4096,
            trace_idle: Duration::from_secs(10),
            retention: None,
            retention_bytes: None,
        }
    }
}

/// A setting that could not be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {why}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// The config file is not valid TOML or has unknown keys.
    #[error("invalid config file {path}: {why}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with its position.
        why: String,
    },
    /// A value is out of range or unparsable.
    #[error("invalid value for {name}: {value:?} ({why})")]
    Value {
        /// The setting (file key, `WEFT_*` variable or flag).
        name: String,
        /// The value given.
        value: String,
        /// What is expected.
        why: String,
    },
}

/// The settings as they appear in a TOML file, in `WEFT_*` variables and flags:
/// every field optional, names in snake case (`data_dir`, `otlp_grpc`, …).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    pub data_dir: Option<String>,
    pub otlp_grpc: Option<String>,
    pub otlp_http: Option<String>,
    pub http: Option<String>,
    pub ingest_budget: Option<String>,
    pub max_request: Option<String>,
    pub shards: Option<String>,
    pub watermark_interval_ms: Option<String>,
    pub wal_segment: Option<String>,
    pub max_attributes: Option<String>,
    pub max_attribute_value_bytes: Option<String>,
    pub trace_idle: Option<String>,
    pub retention: Option<String>,
    pub retention_bytes: Option<String>,
}

impl Overrides {
    /// Reads a TOML file. Values may be TOML strings or numbers.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read { path: path.display().to_string(), why: e.to_string() })?;
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Parse {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        // Numbers and strings alike become strings, parsed below with one set of rules.
        let mut as_strings = toml::Table::new();
        for (k, v) in table {
            let s = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(ConfigError::Parse {
                        path: path.display().to_string(),
                        why: format!("{k}: expected a string or a number, found {}", other.type_str()),
                    })
                }
            };
            as_strings.insert(k, toml::Value::String(s));
        }
        toml::Value::Table(as_strings)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse { path: path.display().to_string(), why: e.to_string() })
    }

    /// Reads `WEFT_DATA_DIR`, `WEFT_OTLP_GRPC`, … through `get`.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Self {
        Overrides {
            data_dir: get("WEFT_DATA_DIR"),
            otlp_grpc: get("WEFT_OTLP_GRPC"),
            otlp_http: get("WEFT_OTLP_HTTP"),
            http: get("WEFT_HTTP"),
            ingest_budget: get("WEFT_INGEST_BUDGET"),
            max_request: get("WEFT_MAX_REQUEST"),
            shards: get("WEFT_SHARDS"),
            watermark_interval_ms: get("WEFT_WATERMARK_INTERVAL_MS"),
            wal_segment: get("WEFT_WAL_SEGMENT"),
            max_attributes: get("WEFT_MAX_ATTRIBUTES"),
            max_attribute_value_bytes: get("WEFT_MAX_ATTRIBUTE_VALUE_BYTES"),
            trace_idle: get("WEFT_TRACE_IDLE"),
            retention: get("WEFT_RETENTION"),
            retention_bytes: get("WEFT_RETENTION_BYTES"),
        }
    }

    /// Applies every set value over `cfg`, checking each.
    pub fn apply(&self, cfg: &mut ServeConfig, source: &str) -> Result<(), ConfigError> {
        let name = |field: &str| format!("{field} ({source})");
        if let Some(v) = &self.data_dir {
            if v.is_empty() {
                return Err(ConfigError::Value { name: name("data_dir"), value: v.clone(), why: "empty".into() });
            }
            cfg.data_dir = PathBuf::from(v);
        }
        for (field, value, slot) in [
            ("otlp_grpc", &self.otlp_grpc, &mut cfg.otlp_grpc),
            ("otlp_http", &self.otlp_http, &mut cfg.otlp_http),
            ("http", &self.http, &mut cfg.http),
        ] {
            if let Some(v) = value {
                *slot = v.parse().map_err(|_| ConfigError::Value {
                    name: name(field),
                    value: v.clone(),
                    why: "expected HOST:PORT with an IP address, e.g. 127.0.0.1:4317 (port 0 picks a free one)".into(),
                })?;
            }
        }
        if let Some(v) = &self.ingest_budget {
            cfg.ingest_budget_bytes = parse_bytes(v, 1 << 20).map_err(|why| ConfigError::Value {
                name: name("ingest_budget"),
                value: v.clone(),
                why,
            })?;
        }
        if let Some(v) = &self.max_request {
            cfg.max_request_bytes = parse_bytes(v, 1024).map_err(|why| ConfigError::Value {
                name: name("max_request"),
                value: v.clone(),
                why,
            })?;
        }
        if let Some(v) = &self.trace_idle {
            cfg.trace_idle = parse_duration(v).map_err(|why| ConfigError::Value {
                name: name("trace_idle"),
                value: v.clone(),
                why,
            })?;
        }
        if let Some(v) = &self.retention {
            let d = parse_duration(v).map_err(|why| ConfigError::Value {
                name: name("retention"),
                value: v.clone(),
                why,
            })?;
            cfg.retention = (!d.is_zero()).then_some(d);
        }
        if let Some(v) = &self.retention_bytes {
            cfg.retention_bytes = Some(parse_bytes(v, 1 << 20).map_err(|why| ConfigError::Value {
                name: name("retention_bytes"),
                value: v.clone(),
                why,
            })? as u64);
        }
        if let Some(v) = &self.wal_segment {
            cfg.wal_segment_bytes = parse_bytes(v, 4096).map_err(|why| ConfigError::Value {
                name: name("wal_segment"),
                value: v.clone(),
                why,
            })? as u64;
        }
        if let Some(v) = &self.shards {
            cfg.shards = parse_count(v, 1, 1024).map_err(|why| ConfigError::Value {
                name: name("shards"),
                value: v.clone(),
                why,
            })?;
        }
        if let Some(v) = &self.max_attributes {
            cfg.max_attributes = parse_count(v, 0, 1 << 20).map_err(|why| ConfigError::Value {
                name: name("max_attributes"),
                value: v.clone(),
                why,
            })?;
        }
        if let Some(v) = &self.max_attribute_value_bytes {
            cfg.max_attribute_value_bytes = parse_count(v, 1, 1 << 30).map_err(|why| ConfigError::Value {
                name: name("max_attribute_value_bytes"),
                value: v.clone(),
                why,
            })?;
        }
        if let Some(v) = &self.watermark_interval_ms {
            let ms = parse_count(v, 1, 3_600_000).map_err(|why| ConfigError::Value {
                name: name("watermark_interval_ms"),
                value: v.clone(),
                why,
            })?;
            cfg.watermark_interval = Duration::from_millis(ms as u64);
        }
        Ok(())
    }
}

/// Parses a byte size: a number with an optional `k`/`K`, `M`, `G` suffix (powers
/// of 1024, optionally followed by `i`/`iB`/`B`), at least `min`.
pub fn parse_bytes(v: &str, min: usize) -> Result<usize, String> {
    let t = v.trim();
    let t = t.trim_end_matches(['B', 'b']).trim_end_matches('i');
    let (num, mul) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1usize << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: usize = num.trim().parse().map_err(|_| "expected a size like 256M, 64k or 1048576".to_string())?;
    let bytes = n.checked_mul(mul).ok_or_else(|| "too large".to_string())?;
    if bytes < min {
        return Err(format!("at least {min} bytes"));
    }
    Ok(bytes)
}

/// Parses `500ms`, `10s`, `5m`, `24h`, `7d`.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let t = v.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| "expected a duration like 500ms, 10s, 5m, 24h or 7d".to_string())?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err("expected a duration like 500ms, 10s, 5m, 24h or 7d".into()),
    };
    n.checked_mul(ms).map(Duration::from_millis).ok_or_else(|| "too long".into())
}

fn parse_count(v: &str, min: usize, max: usize) -> Result<usize, String> {
    let n: usize = v.trim().parse().map_err(|_| format!("expected a whole number from {min} to {max}"))?;
    if n < min || n > max {
        return Err(format!("expected a whole number from {min} to {max}"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        for bad in ["", "10", "s", "-1s", "1.5s", "10x", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("256M", 1), Ok(256 << 20));
        assert_eq!(parse_bytes("64k", 1), Ok(64 << 10));
        assert_eq!(parse_bytes("1GiB", 1), Ok(1 << 30));
        assert_eq!(parse_bytes(" 42 ", 1), Ok(42));
        assert!(parse_bytes("", 1).is_err());
        assert!(parse_bytes("-1M", 1).is_err());
        assert!(parse_bytes("12Q", 1).is_err());
        assert!(parse_bytes("99999999999999999999G", 1).is_err());
        assert!(parse_bytes("10", 1024).is_err());
    }

    #[test]
    fn sources_layer_and_bad_values_name_their_setting() {
        let mut cfg = ServeConfig::default();
        let env = Overrides::from_env(|k| match k {
            "WEFT_OTLP_GRPC" => Some("127.0.0.1:0".into()),
            "WEFT_SHARDS" => Some("3".into()),
            _ => None,
        });
        env.apply(&mut cfg, "environment").unwrap();
        assert_eq!(cfg.otlp_grpc.port(), 0);
        assert_eq!(cfg.shards, 3);
        let flags = Overrides { shards: Some("5".into()), ..Default::default() };
        flags.apply(&mut cfg, "flags").unwrap();
        assert_eq!(cfg.shards, 5);
        let bad = Overrides { otlp_http: Some("localhost".into()), ..Default::default() };
        let err = bad.apply(&mut cfg, "flags").unwrap_err();
        assert!(err.to_string().contains("otlp_http (flags)"), "{err}");
        let bad = Overrides { shards: Some("0".into()), ..Default::default() };
        assert!(bad.apply(&mut cfg, "flags").is_err());
    }

    #[test]
    fn toml_files() {
        let dir = std::env::temp_dir().join(format!("weft-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("weft.toml");
        std::fs::write(&f, "data_dir = \"/tmp/x\"\nshards = 4\ningest_budget = \"64M\"\n").unwrap();
        let o = Overrides::from_file(&f).unwrap();
        let mut cfg = ServeConfig::default();
        o.apply(&mut cfg, "file").unwrap();
        assert_eq!((cfg.shards, cfg.ingest_budget_bytes), (4, 64 << 20));
        std::fs::write(&f, "shardz = 4\n").unwrap();
        assert!(matches!(Overrides::from_file(&f), Err(ConfigError::Parse { .. })));
        std::fs::write(&f, "shards = [1, 2]\n").unwrap();
        assert!(matches!(Overrides::from_file(&f), Err(ConfigError::Parse { .. })));
        std::fs::write(&f, "not toml at all =").unwrap();
        assert!(matches!(Overrides::from_file(&f), Err(ConfigError::Parse { .. })));
        assert!(matches!(Overrides::from_file(&dir.join("missing.toml")), Err(ConfigError::Read { .. })));
        let _ = std::fs::remove_dir_all(dir);
    }
}
