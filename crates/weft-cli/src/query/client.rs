//! The HTTP side of `weft query`: one request at a time with its failure
//! sorted into "try again" (connection errors, 408/429/5xx, a body cut short)
//! or "stop" (any other answer, with the server's message), answers read as
//! a stream of lines, and the bookkeeping of consecutive failures.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use indicatif::ProgressBar;

use super::retry::{parse_retry_after, retryable_status, Policy};

/// How long an answer may stay silent before the call counts as failed.
const IDLE: Duration = Duration::from_secs(120);
/// Bytes of an error answer kept for the message.
const ERROR_BODY: usize = 4096;

/// Why one attempt failed.
#[derive(Debug)]
pub enum Failure {
    /// Worth another try (after at least `after`, if the server said so).
    Retry { why: String, after: Option<Duration> },
    /// Not worth another try.
    Fatal(anyhow::Error),
}

impl Failure {
    fn retry(why: impl Into<String>) -> Failure {
        Failure::Retry { why: why.into(), after: None }
    }
}

/// Progress and notices on stderr: a spinner with counts on a terminal,
/// plain lines otherwise (or nothing with `--quiet`).
pub struct Ui {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Ui {
    /// A spinner when stderr is a terminal and not `quiet`.
    pub fn new(quiet: bool) -> Ui {
        let bar = (!quiet && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
            let b = ProgressBar::new_spinner();
            b.enable_steady_tick(Duration::from_millis(120));
            if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}") {
                b.set_style(style);
            }
            b
        });
        Ui { bar, quiet }
    }

    /// Updates the progress line.
    pub fn progress(&self, msg: impl FnOnce() -> String) {
        if let Some(b) = &self.bar {
            b.set_message(msg());
        }
    }

    /// A line the user should see (retries, warnings).
    pub fn note(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{msg}")),
            None if !self.quiet => eprintln!("{msg}"),
            None => {}
        }
    }

    /// Removes the progress line.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Consecutive failures of one step; progress resets the count.
pub struct Attempts {
    policy: Policy,
    failures: u32,
    /// Retries over the whole run (reported at the end).
    pub retries: u64,
}

impl Attempts {
    /// No failure yet.
    pub fn new(policy: Policy) -> Attempts {
        Attempts { policy, failures: 0, retries: 0 }
    }

    /// The step moved forward: the next failure is a first one again.
    pub fn progressed(&mut self) {
        self.failures = 0;
    }

    /// Handles a failure: waits the backoff and returns `Ok` to try again, or
    /// the error to stop with.
    pub async fn failed(&mut self, what: &str, f: Failure, ui: &Ui) -> Result<()> {
        let (why, after) = match f {
            Failure::Fatal(e) => return Err(e.context(what.to_owned())),
            Failure::Retry { why, after } => (why, after),
        };
        self.failures += 1;
        if self.failures >= self.policy.attempts {
            bail!("{what}: gave up after {} attempts in a row; last: {why}", self.failures);
        }
        let wait = self.policy.delay(self.failures, after);
        ui.note(&format!("{what}: {why}; retrying in {:.1}s (attempt {})", wait.as_secs_f64(), self.failures + 1));
        self.retries += 1;
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// A weft server's query API.
pub struct Client {
    base: String,
    http: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Client {
    /// A client for `endpoint` (`http://HOST:PORT`, or `HOST:PORT`).
    pub fn new(endpoint: &str) -> Result<Client> {
        let base = if endpoint.contains("://") { endpoint.to_owned() } else { format!("http://{endpoint}") };
        let base = base.trim_end_matches('/').to_owned();
        let uri: http::Uri = base.parse().map_err(|e| anyhow!("--endpoint {endpoint:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("--endpoint {endpoint:?}: only http:// is supported");
        }
        if uri.host().is_none() {
            bail!("--endpoint {endpoint:?} has no host");
        }
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(Duration::from_secs(5)));
        conn.set_nodelay(true);
        let http = HyperClient::builder(TokioExecutor::new()).build(conn);
        Ok(Client { base, http })
    }

    /// The endpoint, as `http://HOST:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// One attempt: the answer when it is a 2xx, else the failure.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<http::Response<Incoming>, Failure> {
        let mut req = http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Failure::Fatal(anyhow!("building the request: {e}")))?;
        let resp = match tokio::time::timeout(IDLE, self.http.request(req)).await {
            Err(_) => return Err(Failure::retry(format!("no answer in {}s", IDLE.as_secs()))),
            Ok(Err(e)) => return Err(Failure::retry(format!("{}: {}", self.base, error_chain(&e)))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let after =
            resp.headers().get(http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        let text = error_text(resp).await;
        let why = format!("{} {}", status.as_u16(), text);
        if retryable_status(status.as_u16()) {
            Err(Failure::Retry { why, after })
        } else {
            Err(Failure::Fatal(anyhow!("the server refused: {why}")))
        }
    }

    /// GET `path` as JSON, retrying as the policy allows.
    pub async fn get_json(&self, path: &str, attempts: &mut Attempts, ui: &Ui) -> Result<serde_json::Value> {
        loop {
            let r = match self.send("GET", path, None).await {
                Ok(resp) => read_all(resp).await.and_then(|b| {
                    serde_json::from_slice(&b)
                        .map_err(|e| Failure::Fatal(anyhow!("the answer to {path} is not JSON: {e}")))
                }),
                Err(f) => Err(f),
            };
            match r {
                Ok(v) => {
                    attempts.progressed();
                    return Ok(v);
                }
                Err(f) => attempts.failed(&format!("GET {path}"), f, ui).await?,
            }
        }
    }
}

/// The message of an error answer: its JSON `error`, or its text.
async fn error_text(resp: http::Response<Incoming>) -> String {
    let body = match read_all(resp).await {
        Ok(b) => b,
        Err(_) => return "(the error answer could not be read)".into(),
    };
    let body = &body[..body.len().min(ERROR_BODY)];
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if v["error"].is_string() => v["error"].as_str().unwrap_or_default().to_owned(),
        _ => String::from_utf8_lossy(body).trim().to_owned(),
    }
}

/// A whole (small) answer.
async fn read_all(resp: http::Response<Incoming>) -> Result<Bytes, Failure> {
    match tokio::time::timeout(IDLE, resp.into_body().collect()).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) => Err(Failure::retry(format!("the answer was cut: {}", error_chain(&e)))),
        Err(_) => Err(Failure::retry(format!("the answer stalled for {}s", IDLE.as_secs()))),
    }
}

/// Calls `on_line` with every line of a streamed answer (without its
/// newline). A body that breaks off, stalls or ends mid-line is a retryable
/// failure; an error from `on_line` stops the stream and is fatal.
pub async fn for_each_line(
    resp: http::Response<Incoming>,
    mut on_line: impl FnMut(&[u8]) -> Result<()>,
) -> Result<(), Failure> {
    let mut body = resp.into_body();
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let frame = match tokio::time::timeout(IDLE, body.frame()).await {
            Err(_) => return Err(Failure::retry(format!("the answer stalled for {}s", IDLE.as_secs()))),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(Failure::retry(format!("the answer was cut: {}", error_chain(&e)))),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else { continue };
        let mut rest: &[u8] = &data;
        while let Some(nl) = memchr(rest) {
            if carry.is_empty() {
                on_line(&rest[..nl]).map_err(Failure::Fatal)?;
            } else {
                carry.extend_from_slice(&rest[..nl]);
                let line = std::mem::take(&mut carry);
                on_line(&line).map_err(Failure::Fatal)?;
            }
            rest = &rest[nl + 1..];
        }
        carry.extend_from_slice(rest);
    }
    if !carry.is_empty() {
        return Err(Failure::retry("the answer ended in the middle of a line"));
    }
    Ok(())
}

/// The first newline: the SIMD search of the `memchr` crate, since a full
/// export passes gigabytes through here (a byte loop took seconds).
fn memchr(b: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', b)
}

/// An error and its causes, on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
