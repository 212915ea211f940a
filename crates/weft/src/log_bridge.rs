//! A `log` backend that records log lines as events on the current span.
//!
//! ```
//! weft::log_bridge::install(log::LevelFilter::Info).unwrap();
//! let tracer = weft::builder().exporter(weft::InMemoryExporter::new()).log_at_shutdown(false).install().unwrap();
//! {
//!     let _span = weft::Span::enter("request");
//!     log::info!("cache miss for {}", 42); // an event on "request"
//! }
//! # tracer.shutdown(std::time::Duration::from_secs(5)).unwrap();
//! ```
//!
//! Lines logged outside any recording span are not recorded (weft is a tracer,
//! not a log store); the message is formatted only when a span will take it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::value::KeyValue;

/// Log lines the bridge could not attach (too many held for open spans on one
/// thread; see [`crate::add_event_to_current`]).
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// The `log::Log` implementation.
#[derive(Debug)]
pub struct WeftLogger {
    level: log::LevelFilter,
}

impl WeftLogger {
    /// A logger recording lines up to `level`.
    pub fn new(level: log::LevelFilter) -> Self {
        WeftLogger { level }
    }
}

impl log::Log for WeftLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level && crate::current_is_recording()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut attrs = vec![
            KeyValue::new("log.severity", record.level().as_str()),
            KeyValue::new("code.namespace", record.target().to_owned()),
        ];
        if let Some(file) = record.file() {
            attrs.push(KeyValue::new("code.filepath", file.to_owned()));
        }
        if let Some(line) = record.line() {
            attrs.push(KeyValue::new("code.lineno", i64::from(line)));
        }
        if !crate::add_event_to_current(record.args().to_string(), attrs) {
            REFUSED.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush(&self) {}
}

/// Makes [`WeftLogger`] the process's `log` backend, recording up to `level`.
pub fn install(level: log::LevelFilter) -> Result<(), log::SetLoggerError> {
    log::set_boxed_logger(Box::new(WeftLogger::new(level)))?;
    log::set_max_level(level);
    Ok(())
}

/// Log lines refused so far because too many events were held for open spans.
pub fn refused() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}
