//! Where `weft query` writes answers and in which form: NDJSON (the server's
//! lines as they are — no re-encoding, so exports go at the speed of the
//! disk), one JSON array, or a table for people.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::Deserialize;

/// Output forms.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, one row per trace or span.
    Table,
    /// One JSON array of every line.
    Json,
    /// One JSON object per line, as the server sent it.
    Ndjson,
}

/// What the lines are, for the table's columns.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Rows {
    /// Trace lines (`traces:query`, `traces:batchGet`).
    Traces,
    /// Span lines (`spans:query`).
    Spans,
}

/// The answer's destination.
pub struct Output {
    w: BufWriter<Box<dyn Write + Send>>,
    format: Format,
    rows: Rows,
    started: bool,
    path: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Summary<'a> {
    start: u64,
    duration: u64,
    span_count: u64,
    error_count: u64,
    #[serde(borrow)]
    root_service: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    root_name: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct TraceRow<'a> {
    #[serde(borrow)]
    trace_id: std::borrow::Cow<'a, str>,
    found: Option<bool>,
    #[serde(borrow)]
    summary: Option<Summary<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Status {
    code: i64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct SpanRow<'a> {
    #[serde(borrow)]
    trace_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    span_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    service: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    start_time_unix_nano: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    end_time_unix_nano: std::borrow::Cow<'a, str>,
    status: Option<Status>,
}

/// Unix ns as an RFC 3339 time to the millisecond.
pub fn time(ns: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

/// A duration for people: `850µs`, `12.3ms`, `4.20s`.
fn dur(ns: u64) -> String {
    match ns {
        n if n < 1_000_000 => format!("{:.0}µs", n as f64 / 1e3),
        n if n < 1_000_000_000 => format!("{:.1}ms", n as f64 / 1e6),
        n => format!("{:.2}s", n as f64 / 1e9),
    }
}

impl Output {
    /// Writes to `path`, or stdout without one.
    pub fn open(path: Option<&Path>, format: Format, rows: Rows) -> Result<Output> {
        let w: Box<dyn Write + Send> = match path {
            Some(p) => Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?),
            None => Box::new(std::io::stdout()),
        };
        Ok(Output {
            w: BufWriter::with_capacity(1 << 20, w),
            format,
            rows,
            started: false,
            path: path.map(|p| p.display().to_string()),
        })
    }

    fn io(&self) -> String {
        self.path.clone().map_or_else(|| "writing to stdout".into(), |p| format!("writing {p}"))
    }

    /// One answer line (a JSON object).
    pub fn line(&mut self, line: &[u8]) -> Result<()> {
        let r = match self.format {
            Format::Ndjson => self.w.write_all(line).and_then(|_| self.w.write_all(b"\n")),
            Format::Json => {
                let sep: &[u8] = if self.started { b",\n" } else { b"[\n" };
                self.started = true;
                self.w.write_all(sep).and_then(|_| self.w.write_all(line))
            }
            Format::Table => {
                if !self.started {
                    self.started = true;
                    let head = match self.rows {
                        Rows::Traces => format!(
                            "{:<32}  {:<24}  {:>9}  {:>5}  {:>6}  {:<20}  {}",
                            "TRACE ID", "START", "DURATION", "SPANS", "ERRORS", "ROOT SERVICE", "ROOT NAME"
                        ),
                        Rows::Spans => format!(
                            "{:<32}  {:<16}  {:<24}  {:>9}  {:<6}  {:<20}  {}",
                            "TRACE ID", "SPAN ID", "START", "DURATION", "STATUS", "SERVICE", "NAME"
                        ),
                    };
                    writeln!(self.w, "{head}").with_context(|| self.io())?;
                }
                let row = self.table_row(line)?;
                writeln!(self.w, "{row}")
            }
        };
        r.with_context(|| self.io())
    }

    fn table_row(&self, line: &[u8]) -> Result<String> {
        Ok(match self.rows {
            Rows::Traces => {
                let t: TraceRow = serde_json::from_slice(line).context("a trace line the table cannot read")?;
                match (&t.summary, t.found) {
                    (_, Some(false)) => format!("{:<32}  not found", t.trace_id),
                    (Some(s), _) => format!(
                        "{:<32}  {:<24}  {:>9}  {:>5}  {:>6}  {:<20}  {}",
                        t.trace_id,
                        time(s.start),
                        dur(s.duration),
                        s.span_count,
                        s.error_count,
                        s.root_service,
                        s.root_name
                    ),
                    (None, _) => format!("{:<32}  (no summary)", t.trace_id),
                }
            }
            Rows::Spans => {
                let s: SpanRow = serde_json::from_slice(line).context("a span line the table cannot read")?;
                let start: u64 = s.start_time_unix_nano.parse().unwrap_or(0);
                let end: u64 = s.end_time_unix_nano.parse().unwrap_or(start);
                let status = match s.status.map_or(0, |st| st.code) {
                    1 => "ok",
                    2 => "error",
                    _ => "unset",
                };
                format!(
                    "{:<32}  {:<16}  {:<24}  {:>9}  {:<6}  {:<20}  {}",
                    s.trace_id,
                    s.span_id,
                    time(start),
                    dur(end.saturating_sub(start)),
                    status,
                    s.service,
                    s.name
                )
            }
        })
    }

    /// Ends the answer (closes a JSON array) and flushes.
    pub fn finish(mut self) -> Result<()> {
        let end: &[u8] = match (self.format, self.started) {
            (Format::Json, true) => b"\n]\n",
            (Format::Json, false) => b"[]\n",
            _ => b"",
        };
        self.w.write_all(end).and_then(|_| self.w.flush()).with_context(|| self.io())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(dur(850_000), "850µs");
        assert_eq!(dur(12_300_000), "12.3ms");
        assert_eq!(dur(4_200_000_000), "4.20s");
        assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn table_rows_come_from_trace_and_span_lines() {
        let o = Output::open(None, Format::Table, Rows::Traces).unwrap();
        let row = o
            .table_row(br#"{"traceId":"ab","summary":{"start":0,"duration":1500000,"spanCount":3,"errorCount":1,"rootService":"api","rootName":"GET /"}}"#)
            .unwrap();
        assert!(
            row.starts_with("ab ") && row.contains("1.5ms") && row.ends_with("api                   GET /"),
            "{row}"
        );
        assert!(o.table_row(br#"{"traceId":"cd","found":false}"#).unwrap().contains("not found"));
        assert!(o.table_row(b"not json").is_err());
        let o = Output::open(None, Format::Table, Rows::Spans).unwrap();
        let row = o
            .table_row(br#"{"traceId":"ab","spanId":"01","name":"q","service":"db","startTimeUnixNano":"1000","endTimeUnixNano":"2000","status":{"code":2}}"#)
            .unwrap();
        assert!(row.contains("error") && row.contains("1µs") && row.ends_with("db                    q"), "{row}");
    }
}
