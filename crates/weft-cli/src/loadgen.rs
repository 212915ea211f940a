//! `weft loadgen`: OTLP load from a well-behaved client. It keeps a bounded number
//! of requests in flight, honours every retry delay the server asks for, retries
//! what the OTLP rules say to retry, and reports what was accepted. With
//! `--ack-log` it appends the trace ID of every trace in every acknowledged
//! request (a trace's spans always travel in one request), so a test can check
//! that nothing acknowledged was lost.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::{AnyValue as Any, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use weft_otlp::raw::{Answer, RawClient};

/// OTLP transport.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Proto {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP, protobuf bodies.
    Http,
}

/// `weft loadgen` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to send: `http://HOST:PORT` (gRPC) or `http://HOST:PORT[/v1/traces]` (HTTP).
    #[arg(long)]
    endpoint: String,
    /// Transport.
    #[arg(long, value_enum, default_value = "grpc")]
    protocol: Proto,
    /// How long to send, e.g. `10s`, `500ms`, `2m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Spans per second, or `max`.
    #[arg(long, default_value = "max", value_parser = parse_rate)]
    rate: Rate,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// Services the spans come from.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    services: u32,
    /// Spans per trace.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    spans_per_trace: u32,
    /// Attributes per span.
    #[arg(long, default_value_t = 11, value_parser = clap::value_parser!(u32).range(0..=1000))]
    attributes: u32,
    /// Traces per request.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    traces_per_request: u32,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// Append the hex trace ID of every acknowledged trace to this file.
    #[arg(long)]
    ack_log: Option<std::path::PathBuf>,
}

/// A target rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    /// As fast as the server takes it.
    Max,
    /// Spans per second.
    PerSecond(f64),
}

fn parse_rate(s: &str) -> Result<Rate, String> {
    if s == "max" {
        return Ok(Rate::Max);
    }
    match s.parse::<f64>() {
        Ok(r) if r > 0.0 && r.is_finite() => Ok(Rate::PerSecond(r)),
        _ => Err(format!("expected spans per second (a positive number) or `max`, got {s:?}")),
    }
}

/// Parses `10s`, `500ms`, `2m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("expected a duration like 10s or 500ms, got {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}: use ms, s, m or h")),
    };
    if !(secs > 0.0 && secs.is_finite() && secs < 1e9) {
        return Err(format!("duration must be positive, got {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[derive(Default)]
struct Totals {
    sent_spans: AtomicU64,
    accepted_spans: AtomicU64,
    rejected_spans: AtomicU64,
    failed_spans: AtomicU64,
    requests: AtomicU64,
    refused_requests: AtomicU64,
    retried_requests: AtomicU64,
    failed_requests: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    last_error: Mutex<Option<String>>,
}

struct Gen {
    services: u32,
    spans_per_trace: u32,
    attributes: u32,
    traces_per_request: u32,
    seed: AtomicU64,
}

impl Gen {
    fn next(&self) -> u64 {
        // splitmix64: fast, well spread IDs.
        let mut z = self.seed.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// One request built field by field: its body, span count and trace IDs.
    /// The load itself uses [`Templates`], which patch fresh IDs and times into
    /// requests built this way, so that the client spends its CPU sending.
    fn build(&self) -> (Bytes, u64, Vec<[u8; 16]>) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let service = (self.next() % u64::from(self.services)) as u32;
        let mut spans = Vec::with_capacity((self.traces_per_request * self.spans_per_trace) as usize);
        let mut ids = Vec::with_capacity(self.traces_per_request as usize);
        for _ in 0..self.traces_per_request {
            let mut trace = [0u8; 16];
            trace[..8].copy_from_slice(&self.next().to_le_bytes());
            trace[8..].copy_from_slice(&(self.next() | 1).to_le_bytes());
            ids.push(trace);
            let mut root = [0u8; 8];
            for i in 0..self.spans_per_trace {
                let id = (self.next() | 1).to_le_bytes();
                if i == 0 {
                    root = id;
                }
                let attrs = (0..self.attributes)
                    .map(|a| KeyValue {
                        key: format!("attr.{a}"),
                        value: Some(Any {
                            value: Some(if a % 3 == 0 {
                                AnyValue::IntValue(i64::from(a) * 7)
                            } else {
                                AnyValue::StringValue(format!("value-{}", a * 31 + i))
                            }),
                        }),
                        ..Default::default()
                    })
                    .collect();
                spans.push(Span {
                    trace_id: trace.to_vec(),
                    span_id: id.to_vec(),
                    parent_span_id: if i == 0 { Vec::new() } else { root.to_vec() },
                    name: if i == 0 { "GET /api/orders".into() } else { format!("step-{i}") },
                    kind: if i == 0 { 2 } else { 1 },
                    start_time_unix_nano: now - 1_000_000,
                    end_time_unix_nano: now,
                    attributes: attrs,
                    ..Default::default()
                });
            }
        }
        let n = spans.len() as u64;
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(Any { value: Some(AnyValue::StringValue(format!("service-{service}"))) }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope { name: "weft-loadgen".into(), ..Default::default() }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        (Bytes::from(req.encode_to_vec()), n, ids)
    }
}

/// Where a value goes in an encoded template.
#[derive(Clone, Copy, Debug)]
enum Slot {
    /// Trace `t`'s ID (16 bytes).
    Trace(usize),
    /// Span `n`'s ID (8 bytes; also where it is a parent).
    Span(usize),
    /// A start time (8 bytes, fixed64).
    Start,
    /// An end time.
    End,
}

/// Pre-encoded requests (one per service) with the offsets of every ID and
/// time, so each request costs a copy and a few writes instead of an encoding.
struct Templates {
    bodies: Vec<Vec<u8>>,
    slots: Vec<Vec<(usize, Slot)>>,
    traces: usize,
    spans: usize,
}

fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i).collect()
}

impl Templates {
    fn new(gen: &Gen) -> Templates {
        let mut bodies = Vec::new();
        let mut all_slots = Vec::new();
        let (mut traces, mut spans) = (0, 0);
        for service in 0..gen.services {
            let (body, _, _) = gen.build();
            let mut req = ExportTraceServiceRequest::decode(body).unwrap_or_default();
            for rs in &mut req.resource_spans {
                if let Some(r) = rs.resource.as_mut() {
                    for kv in &mut r.attributes {
                        kv.value = Some(Any { value: Some(AnyValue::StringValue(format!("service-{service}"))) });
                    }
                }
            }
            // Placeholders: the IDs gen made are random, so each occurs once per use.
            let list: Vec<Span> =
                req.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| s.spans.clone()).collect();
            // Distinct start/end placeholders per span, to find them.
            for (i, sp) in
                req.resource_spans.iter_mut().flat_map(|r| &mut r.scope_spans).flat_map(|s| &mut s.spans).enumerate()
            {
                sp.start_time_unix_nano = 0x5a5a_0000_0000_0000 | (i as u64) << 16 | 0x1111;
                sp.end_time_unix_nano = 0x5a5a_0000_0000_0000 | (i as u64) << 16 | 0x2222;
            }
            let body = req.encode_to_vec();
            let mut slots = Vec::new();
            let mut trace_ids: Vec<Vec<u8>> = Vec::new();
            for sp in &list {
                if !trace_ids.contains(&sp.trace_id) {
                    trace_ids.push(sp.trace_id.clone());
                }
            }
            for (t, id) in trace_ids.iter().enumerate() {
                slots.extend(find_all(&body, id).into_iter().map(|o| (o, Slot::Trace(t))));
            }
            for (n, sp) in list.iter().enumerate() {
                slots.extend(find_all(&body, &sp.span_id).into_iter().map(|o| (o, Slot::Span(n))));
                let start = (0x5a5a_0000_0000_0000u64 | (n as u64) << 16 | 0x1111).to_le_bytes();
                let end = (0x5a5a_0000_0000_0000u64 | (n as u64) << 16 | 0x2222).to_le_bytes();
                slots.extend(find_all(&body, &start).into_iter().map(|o| (o, Slot::Start)));
                slots.extend(find_all(&body, &end).into_iter().map(|o| (o, Slot::End)));
            }
            traces = trace_ids.len();
            spans = list.len();
            bodies.push(body);
            all_slots.push(slots);
        }
        Templates { bodies, slots: all_slots, traces, spans }
    }

    /// A request with fresh IDs and the current time.
    fn request(&self, gen: &Gen) -> (Bytes, u64, Vec<[u8; 16]>) {
        let k = (gen.next() % self.bodies.len() as u64) as usize;
        let mut body = self.bodies[k].clone();
        let ids: Vec<[u8; 16]> = (0..self.traces)
            .map(|_| {
                let mut t = [0u8; 16];
                t[..8].copy_from_slice(&gen.next().to_le_bytes());
                t[8..].copy_from_slice(&(gen.next() | 1).to_le_bytes());
                t
            })
            .collect();
        let span_ids: Vec<[u8; 8]> = (0..self.spans).map(|_| (gen.next() | 1).to_le_bytes()).collect();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        for &(off, slot) in &self.slots[k] {
            match slot {
                Slot::Trace(t) => body[off..off + 16].copy_from_slice(&ids[t]),
                Slot::Span(n) => body[off..off + 8].copy_from_slice(&span_ids[n]),
                Slot::Start => body[off..off + 8].copy_from_slice(&(now - 1_000_000).to_le_bytes()),
                Slot::End => body[off..off + 8].copy_from_slice(&now.to_le_bytes()),
            }
        }
        (Bytes::from(body), self.spans as u64, ids)
    }
}

/// Runs the load and prints the summary.
pub fn run(args: Args) -> Result<()> {
    let endpoint = match args.protocol {
        Proto::Http if !args.endpoint.trim_end_matches('/').ends_with("/v1/traces") => {
            format!("{}/v1/traces", args.endpoint.trim_end_matches('/'))
        }
        _ => args.endpoint.clone(),
    };
    let protocol = match args.protocol {
        Proto::Grpc => weft_otlp::Protocol::Grpc,
        Proto::Http => weft_otlp::Protocol::HttpProtobuf,
    };
    let ack = match &args.ack_log {
        Some(p) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?,
        )),
        None => None,
    };
    let ack = Arc::new(ack);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let totals = Arc::new(Totals::default());
    let gen = Arc::new(Gen {
        services: args.services,
        spans_per_trace: args.spans_per_trace,
        attributes: args.attributes,
        traces_per_request: args.traces_per_request,
        seed: AtomicU64::new(SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)),
    });
    let templates = Arc::new(Templates::new(&gen));
    let start = Instant::now();
    let elapsed = rt.block_on(async {
        let client = RawClient::new(&endpoint, protocol, weft_otlp::Compression::None, Duration::from_secs(10))
            .context("invalid endpoint")?;
        let deadline = start + args.duration;
        let stop_sending = Arc::new(AtomicBool::new(false));
        let spans_per_request = f64::from(args.spans_per_trace * args.traces_per_request);
        let mut tasks = Vec::new();
        for w in 0..args.concurrency {
            let (client, totals, gen, ack, stop) =
                (client.clone(), totals.clone(), gen.clone(), ack.clone(), stop_sending.clone());
            let templates = templates.clone();
            let rate = args.rate;
            let workers = f64::from(args.concurrency);
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    if let Rate::PerSecond(r) = rate {
                        // Each worker sends its share on a fixed schedule.
                        let per_worker = r / workers / spans_per_request;
                        let due = start + Duration::from_secs_f64((n as f64 + f64::from(w) / workers) / per_worker);
                        if due > deadline {
                            break;
                        }
                        tokio::time::sleep_until(due.into()).await;
                    }
                    n += 1;
                    let (body, spans, ids) = templates.request(&gen);
                    deliver(&client, body, spans, &ids, &totals, &ack, deadline + Duration::from_secs(30)).await;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok::<_, anyhow::Error>(start.elapsed())
    })?;
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut lat = totals.latencies_us.lock().map(|v| v.clone()).unwrap_or_default();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1)).map_or(0.0, |v| *v as f64 / 1000.0)
    };
    let summary = serde_json::json!({
        "sent_spans": l(&totals.sent_spans),
        "accepted_spans": l(&totals.accepted_spans),
        "rejected_spans": l(&totals.rejected_spans),
        "failed_spans": l(&totals.failed_spans),
        "requests": l(&totals.requests),
        "refused_requests": l(&totals.refused_requests),
        "retried_requests": l(&totals.retried_requests),
        "failed_requests": l(&totals.failed_requests),
        "spans_per_s": l(&totals.accepted_spans) as f64 / elapsed.as_secs_f64(),
        "latency_ms_p50": pct(0.5),
        "latency_ms_p99": pct(0.99),
        "duration_s": elapsed.as_secs_f64(),
        "last_error": totals.last_error.lock().ok().and_then(|e| e.clone()),
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "sent {} spans, accepted {} ({:.0} spans/s), rejected {}, failed {}; {} requests, {} refused with a retry delay, {} retried; latency p50 {:.2} ms, p99 {:.2} ms",
            l(&totals.sent_spans),
            l(&totals.accepted_spans),
            l(&totals.accepted_spans) as f64 / elapsed.as_secs_f64(),
            l(&totals.rejected_spans),
            l(&totals.failed_spans),
            l(&totals.requests),
            l(&totals.refused_requests),
            l(&totals.retried_requests),
            pct(0.5),
            pct(0.99)
        );
    }
    if l(&totals.accepted_spans) == 0 && l(&totals.sent_spans) > 0 {
        bail!("nothing was accepted: {}", totals.last_error.lock().ok().and_then(|e| e.clone()).unwrap_or_default());
    }
    Ok(())
}

/// Sends one request until it is accepted, refused for good, or `give_up` passes.
async fn deliver(
    client: &RawClient,
    body: Bytes,
    spans: u64,
    ids: &[[u8; 16]],
    totals: &Totals,
    ack: &Option<Mutex<std::fs::File>>,
    give_up: Instant,
) {
    totals.sent_spans.fetch_add(spans, Ordering::Relaxed);
    let first = Instant::now();
    let mut backoff = Duration::from_millis(50);
    loop {
        totals.requests.fetch_add(1, Ordering::Relaxed);
        match client.send(body.clone()).await {
            Answer::Accepted { rejected } => {
                let rejected = rejected.min(spans);
                totals.accepted_spans.fetch_add(spans - rejected, Ordering::Relaxed);
                totals.rejected_spans.fetch_add(rejected, Ordering::Relaxed);
                if let Ok(mut v) = totals.latencies_us.lock() {
                    v.push(first.elapsed().as_micros() as u64);
                }
                if let Some(f) = ack {
                    let mut text = String::with_capacity(ids.len() * 33);
                    for id in ids {
                        for b in id {
                            text.push_str(&format!("{b:02x}"));
                        }
                        text.push('\n');
                    }
                    if let Ok(mut f) = f.lock() {
                        let _ = f.write_all(text.as_bytes());
                    }
                }
                return;
            }
            Answer::Retry { after, why } => {
                if after.is_some() {
                    totals.refused_requests.fetch_add(1, Ordering::Relaxed);
                }
                if let Ok(mut e) = totals.last_error.lock() {
                    *e = Some(why);
                }
                let wait = after.unwrap_or(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
                if Instant::now() + wait > give_up {
                    break;
                }
                totals.retried_requests.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
            }
            Answer::Failed(why) => {
                if let Ok(mut e) = totals.last_error.lock() {
                    *e = Some(why);
                }
                break;
            }
        }
    }
    totals.failed_requests.fetch_add(1, Ordering::Relaxed);
    totals.failed_spans.fetch_add(spans, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_rates() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(parse_rate("max"), Ok(Rate::Max));
        assert_eq!(parse_rate("1000"), Ok(Rate::PerSecond(1000.0)));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("NaN").is_err());
    }

    #[test]
    fn requests_are_valid_otlp_with_whole_traces() {
        let g =
            Gen { services: 5, spans_per_trace: 10, attributes: 11, traces_per_request: 3, seed: AtomicU64::new(1) };
        let (body, n, ids) = Templates::new(&g).request(&g);
        assert_eq!(n, 30);
        let req = ExportTraceServiceRequest::decode(body).unwrap();
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 30);
        assert!(spans.iter().all(|s| s.attributes.len() == 11 && s.trace_id.len() == 16 && s.span_id.len() == 8));
        for id in &ids {
            assert_eq!(spans.iter().filter(|s| s.trace_id == id).count(), 10);
        }
        // Fresh IDs every time, parents pointing at their trace's root, real times.
        let (body2, _, ids2) = Templates::new(&g).request(&g);
        assert!(ids.iter().all(|i| !ids2.contains(i)));
        let req2 = ExportTraceServiceRequest::decode(body2).unwrap();
        let spans2 = &req2.resource_spans[0].scope_spans[0].spans;
        for s in spans2.iter().filter(|s| !s.parent_span_id.is_empty()) {
            let root = spans2.iter().find(|r| r.span_id == s.parent_span_id).expect("parent in the request");
            assert_eq!(root.trace_id, s.trace_id);
            assert!(root.parent_span_id.is_empty());
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
        assert!(spans2.iter().all(|s| s.end_time_unix_nano <= now && now - s.end_time_unix_nano < 60_000_000_000));
        assert!(spans2.iter().all(|s| s.end_time_unix_nano - s.start_time_unix_nano == 1_000_000));
    }
}
