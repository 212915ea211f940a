//! The resource: attributes describing the process that produces the spans
//! (`service.name` and friends), set once when the tracer is installed.

use crate::value::{Key, KeyValue, Value};

/// Attributes of the producing entity, sent once per export batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    attributes: Vec<KeyValue>,
}

impl Resource {
    /// The default resource: `service.name` = `unknown_service:<executable>` and the
    /// `telemetry.sdk.*` attributes.
    pub fn default_for_process() -> Self {
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        let mut r = Resource { attributes: Vec::new() };
        r.set("service.name", format!("unknown_service:{exe}"));
        r.set("telemetry.sdk.name", "weft");
        r.set("telemetry.sdk.language", "rust");
        r.set("telemetry.sdk.version", env!("CARGO_PKG_VERSION"));
        r.set("process.pid", i64::from(std::process::id()));
        if !exe.is_empty() {
            r.set("process.executable.name", exe);
        }
        if let Some(host) = host_name() {
            r.set("host.name", host);
        }
        r
    }

    /// An empty resource.
    pub fn empty() -> Self {
        Resource { attributes: Vec::new() }
    }

    /// Sets an attribute, replacing one with the same key.
    pub fn set(&mut self, key: impl Into<Key>, value: impl Into<Value>) {
        let kv = KeyValue::new(key, value);
        match self.attributes.iter_mut().find(|a| a.key == kv.key) {
            Some(a) => a.value = kv.value,
            None => self.attributes.push(kv),
        }
    }

    /// The attributes.
    pub fn attributes(&self) -> &[KeyValue] {
        &self.attributes
    }

    /// One attribute's value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.attributes.iter().find(|a| a.key == key).map(|a| &a.value)
    }

    /// The `service.name`.
    pub fn service_name(&self) -> Option<&str> {
        match self.get("service.name") {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

/// This machine's host name, if the OS says.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}
