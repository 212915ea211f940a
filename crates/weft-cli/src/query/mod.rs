//! `weft query`: the native query API from the command line.
//!
//! `traces` and `spans` page through `traces:query` / `spans:query` by cursor
//! and stream every line to the output as it arrives; `get` fetches traces by
//! ID through `traces:batchGet`, several batches at once, from the disk cache
//! when it can; `services`, `operations`, `tags`, `values` and `stats` read
//! the small endpoints. Every call retries connection errors, 408/429/5xx and
//! answers cut short, with exponential backoff and jitter, never sooner than
//! the server's `Retry-After`. A page that breaks off is asked for again from
//! the same cursor, and lines already written are skipped, so an export
//! neither loses nor repeats a trace across failures.

mod cache;
mod client;
mod output;
mod retry;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

use cache::Cache;
use client::{for_each_line, Attempts, Client, Failure, Ui};
use output::{Format, Output, Rows};
use retry::Policy;

/// `weft query` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
    /// The server's query address (`weft serve --http`).
    #[arg(long, global = true, default_value = "http://127.0.0.1:16686")]
    endpoint: String,
    /// Failures in a row before giving up (each retried with backoff).
    #[arg(long, global = true, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    retries: u32,
    /// No progress line and no summary on stderr.
    #[arg(long, global = true)]
    quiet: bool,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Traces in a time window matching a filter, newest first.
    Traces(SearchArgs),
    /// Matching spans (with their trace's fields) in a time window.
    Spans(SearchArgs),
    /// Traces by ID (`-` reads IDs from stdin, one per line).
    Get(GetArgs),
    /// Service names.
    Services,
    /// (service, span name) pairs.
    Operations {
        /// Only this service's.
        #[arg(long)]
        service: Option<String>,
    },
    /// Attribute keys (tag names) by scope.
    Tags {
        /// span, resource, intrinsic or all.
        #[arg(long, default_value = "all")]
        scope: String,
    },
    /// Distinct values of one tag, e.g. `span.http.method`.
    Values {
        /// The tag, spelt as in filters.
        tag: String,
        /// Most values listed.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// The server's accounting counters.
    Stats,
}

/// Output order of searches.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Order {
    Newest,
    Oldest,
}

/// How much of each trace.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
enum View {
    Summary,
    Full,
}

#[derive(clap::Args, Debug)]
struct SearchArgs {
    /// The window ends now and starts this long ago, e.g. `15m`, `24h`.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "start")]
    since: Option<Duration>,
    /// Window start: RFC 3339 (`2026-11-22T10:00:00Z`) or Unix ns.
    #[arg(long)]
    start: Option<String>,
    /// Window end: RFC 3339 or Unix ns (default: now).
    #[arg(long)]
    end: Option<String>,
    /// TraceQL-subset filter, e.g. `{ resource.service.name = "api" && duration > 100ms }`.
    #[arg(long, default_value = "")]
    filter: String,
    /// `summary` or `full` (every span, OTLP JSON).
    #[arg(long, value_enum, default_value = "summary")]
    view: View,
    /// `table`, `json` or `ndjson` (default: table on a terminal, else ndjson).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Most traces (or spans) in all (default: every one in the window).
    #[arg(long)]
    limit: Option<u64>,
    /// `newest` or `oldest` first.
    #[arg(long, value_enum, default_value = "newest")]
    order: Order,
    /// Traces (or spans) per request. Large pages keep the server busy while
    /// the client writes (each page waits for the previous one's cursor);
    /// a failed page is asked for again from its cursor, so size costs little.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    page_size: u64,
}

#[derive(clap::Args, Debug)]
struct GetArgs {
    /// Trace IDs (16 or 32 hex digits); `-` reads them from stdin.
    #[arg(required = true)]
    ids: Vec<String>,
    /// `table`, `json` or `ndjson` (default: table on a terminal, else ndjson).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    concurrency: u32,
    /// IDs per request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,
    /// Cache directory (default: $WEFT_CACHE_DIR, $XDG_CACHE_HOME/weft or ~/.cache/weft).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Neither read nor write the cache.
    #[arg(long)]
    no_cache: bool,
}

/// Runs `weft query`.
pub fn run(args: Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let client = Arc::new(Client::new(&args.endpoint)?);
        let policy = Policy { attempts: args.retries, ..Policy::default() };
        let ui = Arc::new(Ui::new(args.quiet));
        let r = match args.cmd {
            Cmd::Traces(a) => search(&client, a, Rows::Traces, policy, &ui).await,
            Cmd::Spans(a) => search(&client, a, Rows::Spans, policy, &ui).await,
            Cmd::Get(a) => get(client, a, policy, ui.clone()).await,
            Cmd::Services => small(&client, "/weft/v1/services".into(), policy, &ui).await,
            Cmd::Operations { service } => {
                let q = service.map(|s| format!("?service={}", encode(&s))).unwrap_or_default();
                small(&client, format!("/weft/v1/operations{q}"), policy, &ui).await
            }
            Cmd::Tags { scope } => small(&client, format!("/weft/v1/tags?scope={}", encode(&scope)), policy, &ui).await,
            Cmd::Values { tag, limit } => {
                small(&client, format!("/weft/v1/tags/{}/values?limit={limit}", encode(&tag)), policy, &ui).await
            }
            Cmd::Stats => small(&client, "/weft/v1/stats".into(), policy, &ui).await,
        };
        ui.finish();
        r
    })
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn default_format(format: Option<Format>, out: &Option<PathBuf>) -> Format {
    format.unwrap_or(if out.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        Format::Table
    } else {
        Format::Ndjson
    })
}

/// A time argument as the API takes it: Unix ns as a number, else the text
/// (the server checks RFC 3339 and says what is wrong).
fn time_arg(s: &str) -> serde_json::Value {
    s.parse::<u64>().map_or_else(|_| serde_json::Value::from(s), serde_json::Value::from)
}

/// The start and end of a search's window.
fn window(a: &SearchArgs) -> Result<(serde_json::Value, serde_json::Value)> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let end = a.end.as_deref().map_or(serde_json::Value::from(now), time_arg);
    let start = match (&a.start, a.since) {
        (Some(s), _) => time_arg(s),
        (None, Some(since)) => {
            let Some(end_ns) = end.as_u64() else {
                bail!("--since counts back from now or a Unix-ns --end; give --start with an RFC 3339 --end")
            };
            serde_json::Value::from(end_ns.saturating_sub(since.as_nanos() as u64))
        }
        // The server's default: the hour before the end.
        (None, None) => serde_json::Value::Null,
    };
    Ok((start, end))
}

/// The fields of an answer line that paging needs.
#[derive(Default)]
struct LineHead<'a> {
    trace_id: Option<std::borrow::Cow<'a, str>>,
    span_id: Option<std::borrow::Cow<'a, str>>,
    summary: Option<SpanCount>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpanCount {
    #[serde(default)]
    span_count: u64,
}

/// Marks the early stop of [`LineHead::read`] (not an error).
const STOP_AT_SPANS: &str = "weft: stop before resourceSpans";

impl<'a> LineHead<'a> {
    /// Reads the fields paging needs. A trace line ends with its spans,
    /// most of its bytes: reading stops at their key once the trace ID is
    /// known, instead of scanning them (which took most of a core during
    /// full exports). Everything before is read and checked as JSON.
    fn read(line: &'a [u8]) -> serde_json::Result<LineHead<'a>> {
        use serde::de::{Deserializer as _, Error as _, IgnoredAny, MapAccess, Visitor};

        #[derive(Deserialize)]
        struct Text<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

        struct Fields<'h, 'a>(&'h mut LineHead<'a>);

        impl<'de> Visitor<'de> for Fields<'_, 'de> {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    match key.0.as_ref() {
                        "traceId" => self.0.trace_id = Some(map.next_value::<Text<'de>>()?.0),
                        "spanId" => self.0.span_id = Some(map.next_value::<Text<'de>>()?.0),
                        "summary" => self.0.summary = Some(map.next_value()?),
                        "resourceSpans" if self.0.trace_id.is_some() && self.0.summary.is_some() => {
                            return Err(A::Error::custom(STOP_AT_SPANS))
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(())
            }
        }

        let mut head = LineHead::default();
        let mut de = serde_json::Deserializer::from_slice(line);
        match de.deserialize_map(Fields(&mut head)) {
            Ok(()) => de.end().map(|()| head),
            Err(e) if e.to_string().starts_with(STOP_AT_SPANS) => Ok(head),
            Err(e) => Err(e),
        }
    }
}

/// The last line of a search answer.
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct Control {
    next_cursor: Option<String>,
    complete_until: Option<String>,
    error: Option<String>,
}

async fn search(client: &Client, a: SearchArgs, rows: Rows, policy: Policy, ui: &Ui) -> Result<()> {
    let path = match rows {
        Rows::Traces => "/weft/v1/traces:query",
        Rows::Spans => "/weft/v1/spans:query",
    };
    let (start, end) = window(&a)?;
    let mut out = Output::open(a.out.as_deref(), default_format(a.format, &a.out), rows)?;
    let began = Instant::now();
    let mut attempts = Attempts::new(policy);
    let (mut lines, mut spans) = (0u64, 0u64);
    let mut cursor: Option<String> = None;
    let mut complete_until = None;
    // Keys of lines written from the current page: a page asked for again
    // after a failure skips them.
    let mut page_seen: HashSet<String> = HashSet::new();
    let mut page_limit = None;
    loop {
        let remaining = a.limit.map(|l| l.saturating_sub(lines));
        if remaining == Some(0) {
            break;
        }
        // Fixed when the page starts, so its retries ask for the same page.
        let limit = *page_limit.get_or_insert_with(|| remaining.map_or(a.page_size, |r| r.min(a.page_size)));
        let mut body = serde_json::json!({
            "end": end,
            "filter": a.filter,
            "view": match a.view { View::Summary => "summary", View::Full => "full" },
            "limit": limit,
            "order": match a.order { Order::Newest => "newest", Order::Oldest => "oldest" },
        });
        if !start.is_null() {
            body["start"] = start.clone();
        }
        if let Some(c) = &cursor {
            body["cursor"] = c.clone().into();
        }
        let mut control: Option<Control> = None;
        let before = lines;
        let r = match client.send("POST", path, Some(body.to_string().into_bytes())).await {
            Err(f) => Err(f),
            Ok(resp) => {
                for_each_line(resp, |line| {
                    if line.is_empty() {
                        return Ok(());
                    }
                    if control.is_some() {
                        bail!("the server sent a line after the last one");
                    }
                    let head =
                        LineHead::read(line).map_err(|e| anyhow!("the server sent a line that is not JSON: {e}"))?;
                    let Some(trace_id) = head.trace_id else {
                        control =
                            Some(serde_json::from_slice(line).map_err(|e| anyhow!("a malformed last line: {e}"))?);
                        return Ok(());
                    };
                    let key = match head.span_id {
                        Some(s) => format!("{trace_id}/{s}"),
                        None => trace_id.into_owned(),
                    };
                    if page_seen.insert(key) {
                        out.line(line)?;
                        lines += 1;
                        spans += head.summary.map_or(1, |s| s.span_count);
                        ui.progress(|| progress(rows, lines, spans, began));
                    }
                    Ok(())
                })
                .await
            }
        };
        if lines > before {
            attempts.progressed();
        }
        let what = format!("POST {path}");
        match (r, control) {
            (Err(f), _) => attempts.failed(&what, f, ui).await?,
            (Ok(()), None) => {
                attempts
                    .failed(
                        &what,
                        Failure::Retry { why: "the answer ended before its last line".into(), after: None },
                        ui,
                    )
                    .await?
            }
            (Ok(()), Some(c)) => {
                if let Some(e) = c.error {
                    // The search stopped part-way (e.g. a block could not be
                    // read); it resumes from where it got to.
                    if c.next_cursor.is_some() {
                        cursor = c.next_cursor;
                        page_seen.clear();
                        page_limit = None;
                    }
                    attempts.failed(&what, Failure::Retry { why: e, after: None }, ui).await?;
                    continue;
                }
                attempts.progressed();
                complete_until = c.complete_until.or(complete_until);
                page_seen.clear();
                page_limit = None;
                match c.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
    }
    out.finish()?;
    ui.finish();
    let what = match rows {
        Rows::Traces => format!("{lines} traces ({spans} spans)"),
        Rows::Spans => format!("{lines} spans"),
    };
    ui.note(&format!(
        "{what} in {:.1}s; complete up to {}; {} retries",
        began.elapsed().as_secs_f64(),
        complete_until.as_deref().unwrap_or("(unknown)"),
        attempts.retries
    ));
    Ok(())
}

fn progress(rows: Rows, lines: u64, spans: u64, began: Instant) -> String {
    let rate = spans as f64 / began.elapsed().as_secs_f64().max(1e-3);
    match rows {
        Rows::Traces => format!("{lines} traces, {spans} spans ({rate:.0} spans/s)"),
        Rows::Spans => format!("{lines} spans ({rate:.0}/s)"),
    }
}

/// `8 or 16` bytes of hex as the server writes trace IDs (32 lower-case digits).
fn normalise_id(s: &str) -> Result<String> {
    let s = s.trim();
    if !(s.len() == 16 || s.len() == 32) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{s:?} is not a trace ID: 16 or 32 hex digits");
    }
    Ok(format!("{:0>32}", s.to_ascii_lowercase()))
}

async fn get(client: Arc<Client>, a: GetArgs, policy: Policy, ui: Arc<Ui>) -> Result<()> {
    let mut ids = Vec::new();
    for id in &a.ids {
        if id == "-" {
            for line in std::io::stdin().lines() {
                let line = line.context("reading trace IDs from stdin")?;
                if !line.trim().is_empty() {
                    ids.push(normalise_id(&line)?);
                }
            }
        } else {
            ids.push(normalise_id(id)?);
        }
    }
    let mut cache = match (a.no_cache, a.cache_dir.clone().or_else(cache::default_root)) {
        (false, Some(root)) => match Cache::open(&root, client.base(), cache::DEFAULT_MAX_BYTES) {
            Ok(c) => Some(c),
            Err(e) => {
                ui.note(&format!("no cache ({}: {e})", root.display()));
                None
            }
        },
        _ => None,
    };
    let mut answers: Vec<Option<Vec<u8>>> = ids.iter().map(|id| cache.as_mut().and_then(|c| c.get(id))).collect();
    let todo: Vec<usize> = (0..ids.len()).filter(|&i| answers[i].is_none()).collect();
    let chunks: Vec<Vec<usize>> = todo.chunks(a.batch as usize).map(<[usize]>::to_vec).collect();
    let mut out = Output::open(a.out.as_deref(), default_format(a.format, &a.out), Rows::Traces)?;
    let began = Instant::now();
    let (mut written, mut found, mut retries) = (0usize, 0u64, 0u64);
    let mut running = tokio::task::JoinSet::new();
    let mut done: BTreeMap<usize, Vec<Vec<u8>>> = BTreeMap::new();
    let mut next_chunk = 0;
    let mut next_to_write = 0;
    loop {
        // Write what is ready, in order: cached answers, then finished batches.
        loop {
            let chunk_of_next = |w: usize| todo.binary_search(&w).ok().map(|p| p / a.batch as usize);
            if written < ids.len() && answers[written].is_some() {
                let line = answers[written].take().unwrap_or_default();
                found += u64::from(!line_not_found(&line));
                out.line(&line)?;
                written += 1;
                continue;
            }
            match chunk_of_next(written) {
                Some(c) if done.contains_key(&c) => {
                    let lines = done.remove(&c).unwrap_or_default();
                    for (&i, line) in chunks[c].iter().zip(lines) {
                        answers[i] = Some(line);
                    }
                    next_to_write = c + 1;
                }
                _ => break,
            }
        }
        ui.progress(|| format!("{written} of {} traces", ids.len()));
        if written == ids.len() {
            break;
        }
        // Keep `concurrency` batches in flight, and never run further ahead of
        // the output than that (answers are written in the order asked, so
        // memory stays bounded by the batches in flight).
        while next_chunk < chunks.len() && next_chunk < next_to_write + a.concurrency as usize {
            let wanted: Vec<String> = chunks[next_chunk].iter().map(|&i| ids[i].clone()).collect();
            let (client, ui, n) = (client.clone(), ui.clone(), next_chunk);
            running.spawn(async move { (n, batch_get(&client, wanted, policy, &ui).await) });
            next_chunk += 1;
        }
        let Some(joined) = running.join_next().await else {
            bail!("internal: batches ended before every trace was answered")
        };
        let (n, r) = joined.map_err(|e| anyhow!("a batch task failed: {e}"))?;
        let (lines, r_retries) = r?;
        retries += r_retries;
        if let Some(c) = cache.as_mut() {
            for l in &lines {
                c.put(l);
            }
        }
        done.insert(n, lines);
    }
    out.finish()?;
    ui.finish();
    let (hits, writes) = cache.as_ref().map_or((0, 0), |c| (c.hits, c.writes));
    if let Some(c) = &cache {
        c.trim();
    }
    ui.note(&format!(
        "{found} of {} traces found in {:.1}s ({hits} from the cache, {writes} cached); {retries} retries",
        ids.len(),
        began.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn line_not_found(line: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Found {
        #[serde(default)]
        found: bool,
    }
    serde_json::from_slice::<Found>(line).map_or(true, |f| !f.found)
}

/// One batch through `traces:batchGet`, retried; a batch cut short asks again
/// only for the IDs not answered yet. Returns the lines in the order asked and
/// the retries it took.
async fn batch_get(client: &Client, ids: Vec<String>, policy: Policy, ui: &Ui) -> Result<(Vec<Vec<u8>>, u64)> {
    let mut attempts = Attempts::new(policy);
    let mut lines: Vec<Vec<u8>> = Vec::with_capacity(ids.len());
    while lines.len() < ids.len() {
        let rest = &ids[lines.len()..];
        let body = serde_json::json!({ "traceIds": rest }).to_string().into_bytes();
        let before = lines.len();
        let r = match client.send("POST", "/weft/v1/traces:batchGet", Some(body)).await {
            Err(f) => Err(f),
            Ok(resp) => {
                for_each_line(resp, |line| {
                    if line.is_empty() {
                        return Ok(());
                    }
                    let head = LineHead::read(line).map_err(|e| anyhow!("a batchGet line is not JSON: {e}"))?;
                    let want =
                        ids.get(lines.len()).ok_or_else(|| anyhow!("the server answered more IDs than asked"))?;
                    if head.trace_id.as_deref() != Some(want.as_str()) {
                        bail!("the server answered {:?} where {want} was expected", head.trace_id);
                    }
                    lines.push(line.to_vec());
                    Ok(())
                })
                .await
            }
        };
        if lines.len() > before {
            attempts.progressed();
        }
        match r {
            Err(f) => attempts.failed("POST /weft/v1/traces:batchGet", f, ui).await?,
            Ok(()) if lines.len() < ids.len() => {
                let why = format!("the answer ended after {} of {} IDs", lines.len() - before, rest.len());
                attempts.failed("POST /weft/v1/traces:batchGet", Failure::Retry { why, after: None }, ui).await?
            }
            Ok(()) => {}
        }
    }
    Ok((lines, attempts.retries))
}

/// One of the small GET endpoints, printed as pretty JSON.
async fn small(client: &Client, path: String, policy: Policy, ui: &Ui) -> Result<()> {
    let mut attempts = Attempts::new(policy);
    let v = client.get_json(&path, &mut attempts, ui).await?;
    let text = serde_json::to_string_pretty(&v).context("printing the answer")?;
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_and_normalised() {
        assert_eq!(normalise_id("00000000000000FF").unwrap(), format!("{:0>32}", "00000000000000ff"));
        assert_eq!(normalise_id(" 0123456789abcdef0123456789abcdef\n").unwrap(), "0123456789abcdef0123456789abcdef");
        for bad in ["", "xyz", "0123", "0123456789abcdef0", "0123456789abcdeg", "../../etc/passwd"] {
            assert!(normalise_id(bad).unwrap_err().to_string().contains("not a trace ID"), "{bad:?}");
        }
    }

    #[test]
    fn line_heads_stop_before_the_spans_and_refuse_bad_json() {
        // The spans are not read (here they are not even JSON).
        let h =
            LineHead::read(br#"{"traceId":"ab","summary":{"spanCount":3,"rootName":"x"},"resourceSpans":[not json"#)
                .unwrap();
        assert_eq!((h.trace_id.as_deref(), h.summary.map(|s| s.span_count)), (Some("ab"), Some(3)));
        // Span lines and last lines are read whole.
        let h = LineHead::read(br#"{"traceId":"ab","spanId":"cd","name":"\"q\"","attributes":[]}"#).unwrap();
        assert_eq!((h.trace_id.as_deref(), h.span_id.as_deref()), (Some("ab"), Some("cd")));
        let h = LineHead::read(br#"{"nextCursor":null,"stats":{}}"#).unwrap();
        assert!(h.trace_id.is_none());
        // Spans before the summary: read on, so nothing is missed.
        let h = LineHead::read(br#"{"traceId":"ab","resourceSpans":[],"summary":{"spanCount":2}}"#).unwrap();
        assert_eq!(h.summary.map(|s| s.span_count), Some(2));
        for bad in [&b"{"[..], b"[1]", b"{\"traceId\":1}", b"{\"traceId\":\"ab\"} x", b"", b"\xff"] {
            assert!(LineHead::read(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn tags_and_services_are_encoded_for_urls() {
        assert_eq!(encode("span.http.method"), "span.http.method");
        assert_eq!(encode("a b/\"c\"&"), "a%20b%2F%22c%22%26");
    }

    #[test]
    fn windows_count_back_from_the_end() {
        let a = SearchArgs {
            since: Some(Duration::from_secs(60)),
            start: None,
            end: Some("120000000000".into()),
            filter: String::new(),
            view: View::Summary,
            format: None,
            out: None,
            limit: None,
            order: Order::Newest,
            page_size: 10,
        };
        let (s, e) = window(&a).unwrap();
        assert_eq!((s.as_u64(), e.as_u64()), (Some(60_000_000_000), Some(120_000_000_000)));
        let a = SearchArgs { end: Some("2026-01-01T00:00:00Z".into()), ..a };
        assert!(window(&a).is_err(), "--since with an RFC 3339 end");
        let a = SearchArgs { since: None, start: Some("2026-01-01T00:00:00Z".into()), ..a };
        assert_eq!(window(&a).unwrap().0, "2026-01-01T00:00:00Z");
    }
}
