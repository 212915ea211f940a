//! `weft-bench`: runs the same tracing workloads through weft and its peers
//! (`opentelemetry_sdk`, `fastrace`, `tracing` + `tracing-opentelemetry`) and
//! reports one JSON object per line.
//!
//! `weft-bench sdk …` runs every requested peer, each in a fresh child process of
//! this binary (`weft-bench sdk-run …`), so global state, allocator state and peak
//! RSS never leak from one peer into the next — and still one command runs them
//! all side by side on the same machine, load and moment.

mod cpu_speed;
mod driver;
mod measure;
mod otlp;
mod peers;

use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

/// Workloads, as `../shared/targets.md` defines them.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Each iteration is a request: root → child → leaf with 2 attributes.
    Nested,
    /// The nested request in a loop on N threads for a fixed time, with a slow exporter.
    Burst,
    /// The nested workload with sampling off.
    Unsampled,
}

/// The tracers compared.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
pub enum Peer {
    /// weft.
    #[value(name = "weft")]
    #[serde(rename = "weft")]
    Weft,
    /// opentelemetry_sdk 0.33 with its BatchSpanProcessor defaults.
    #[value(name = "opentelemetry_sdk")]
    #[serde(rename = "opentelemetry_sdk")]
    Otel,
    /// fastrace 0.7 with its default collector config.
    #[value(name = "fastrace")]
    #[serde(rename = "fastrace")]
    Fastrace,
    /// tracing + tracing-opentelemetry 0.34 over opentelemetry_sdk's batch processor.
    #[value(name = "tracing-opentelemetry")]
    #[serde(rename = "tracing-opentelemetry")]
    TracingOtel,
    /// tracing + weft's bridge (`weft_tracing::WeftLayer`).
    #[value(name = "tracing-weft")]
    #[serde(rename = "tracing-weft")]
    TracingWeft,
    /// tracing + weft's standalone subscriber (`weft_tracing::WeftSubscriber`, no registry).
    #[value(name = "tracing-weft-subscriber")]
    #[serde(rename = "tracing-weft-subscriber")]
    TracingWeftSubscriber,
}

/// Parameters of one run of one peer.
#[derive(Clone, Debug, clap::Args)]
pub struct RunConfig {
    /// The workload.
    #[arg(long, value_enum, default_value = "nested")]
    pub workload: Workload,
    /// Requests in total (nested, unsampled), split evenly over the threads.
    #[arg(long, default_value_t = 1_000_000)]
    pub requests: u64,
    /// Seconds to run (burst).
    #[arg(long, default_value_t = 3.0)]
    pub duration: f64,
    /// Milliseconds the exporter takes per batch.
    #[arg(long, default_value_t = 0.0)]
    pub export_delay_ms: f64,
    /// weft's memory bound in MiB.
    #[arg(long, default_value_t = 32)]
    pub memory_limit_mb: usize,
    /// Check in the exporter that every delivered trace has all 3 spans (costs
    /// exporter time, same for every peer).
    #[arg(long)]
    pub check_traces: bool,
}

#[derive(Parser)]
#[command(about = "Side-by-side tracing benchmarks: weft vs its peers")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// SDK workloads: every peer, one child process each, one JSON line per run.
    Sdk {
        #[command(flatten)]
        run: RunConfig,
        /// Thread counts to run, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1")]
        threads: Vec<usize>,
        /// Peers to run, comma-separated.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "weft,opentelemetry_sdk,fastrace,tracing-opentelemetry,tracing-weft,tracing-weft-subscriber"
        )]
        peers: Vec<Peer>,
        /// Print JSON lines (otherwise a table).
        #[arg(long)]
        json: bool,
        /// Runs per peer and thread count; the median run (by ns per span) is
        /// reported, with every run's figure in `detail.runs_ns_per_span`. Peers
        /// take turns so drift on the machine affects them alike.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// OTLP export: weft-otlp vs opentelemetry-otlp to one local receiver,
    /// end-to-end spans/s and CPU per span.
    Otlp {
        #[command(flatten)]
        cfg: otlp::OtlpConfig,
        /// Transports, comma-separated.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "grpc,http")]
        transports: Vec<otlp::Transport>,
        /// Exporters, comma-separated.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "weft,opentelemetry-otlp")]
        peers: Vec<otlp::OtlpPeer>,
        /// Producing threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Runs per peer and transport; the median (by spans/s) is reported.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Print JSON lines (otherwise a table).
        #[arg(long)]
        json: bool,
    },
    /// Runs one OTLP peer once in this process (used by `otlp`).
    #[command(hide = true)]
    OtlpRun {
        #[command(flatten)]
        cfg: otlp::OtlpConfig,
        #[arg(long, value_enum)]
        peer: otlp::OtlpPeer,
        #[arg(long, value_enum)]
        transport: otlp::Transport,
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        threads: usize,
    },
    /// The counting OTLP receiver (used by `otlp`).
    #[command(hide = true)]
    OtlpSink,
    /// Runs one peer once in this process (used by `sdk`).
    #[command(hide = true)]
    SdkRun {
        #[command(flatten)]
        run: RunConfig,
        #[arg(long)]
        threads: usize,
        #[arg(long, value_enum)]
        peer: Peer,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Otlp { cfg, transports, peers, threads, repeat, json } => {
            otlp::bench(&cfg, &transports, &peers, threads, repeat, json)
        }
        Cmd::OtlpRun { cfg, peer, transport, endpoint, threads } => {
            if threads == 0 {
                bail!("--threads must be at least 1");
            }
            otlp::run_child(peer, transport, &endpoint, threads, &cfg)
        }
        Cmd::OtlpSink => otlp::sink(),
        Cmd::SdkRun { run, threads, peer } => {
            if threads == 0 {
                bail!("--threads must be at least 1");
            }
            let result = peers::run(peer, &run, threads);
            println!("{}", serde_json::to_string(&result)?);
            Ok(())
        }
        Cmd::Sdk { run, threads, peers, json, repeat } => {
            if threads.contains(&0) {
                bail!("--threads must be at least 1");
            }
            if repeat == 0 {
                bail!("--repeat must be at least 1");
            }
            let exe = std::env::current_exe().context("cannot find this executable")?;
            if !json {
                println!("{}", measure::Row::header());
            }
            // Each repeat runs every peer in turn, each of them at every
            // thread count back to back. The VM's speed drifts over minutes
            // and flips within seconds (another tenant on the host), and a
            // target such as "4 threads at most 0.6x the wall time of 1"
            // compares thread counts: one peer's runs of one repeat follow
            // each other within a second or two (weft's), so a ratio paired
            // by repeat compares runs made under the same conditions, while
            // the repeats spread every count over the same minutes. (Ordered
            // by thread count first, a peer's 1- and 4-thread runs of one
            // repeat were ten or more seconds apart, the slow peers' runs
            // between them.)
            let mut runs: Vec<Vec<Vec<measure::Row>>> =
                threads.iter().map(|_| peers.iter().map(|_| Vec::new()).collect()).collect();
            for _ in 0..repeat {
                for (i, &peer) in peers.iter().enumerate() {
                    for (ti, &t) in threads.iter().enumerate() {
                        runs[ti][i].push(run_child(&exe, peer, t, &run)?);
                    }
                }
            }
            for per_peer in runs {
                for mut r in per_peer {
                    let round = |v: f64| (v * 10.0).round() / 10.0;
                    // Repeat by repeat, for ratios paired within a repeat.
                    let in_order: Vec<f64> = r.iter().map(|x| round(x.ns_per_span)).collect();
                    r.sort_by(|a, b| a.ns_per_span.total_cmp(&b.ns_per_span));
                    let all: Vec<f64> = r.iter().map(|x| round(x.ns_per_span)).collect();
                    // In the same order as `runs_ns_per_span`.
                    let ghz: Vec<Option<f64>> =
                        r.iter().map(|x| x.cpu_ghz.map(|g| (g * 100.0).round() / 100.0)).collect();
                    let mut row = r.swap_remove(r.len() / 2);
                    if let Some(d) = row.detail.as_object_mut() {
                        d.insert("runs_ns_per_span".into(), serde_json::json!(all));
                        d.insert("runs_cpu_ghz".into(), serde_json::json!(ghz));
                        d.insert("runs_in_order_ns_per_span".into(), serde_json::json!(in_order));
                    }
                    if json {
                        println!("{}", serde_json::to_string(&row)?);
                    } else {
                        println!("{}", row.table_line());
                    }
                }
            }
            Ok(())
        }
    }
}

fn value_name<T: ValueEnum>(v: T) -> String {
    v.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default()
}

/// Runs one peer in a fresh child process and parses its result line.
fn run_child(exe: &std::path::Path, peer: Peer, threads: usize, run: &RunConfig) -> Result<measure::Row> {
    let out = Command::new(exe)
        .arg("sdk-run")
        .args(["--peer", &value_name(peer)])
        .args(["--threads", &threads.to_string()])
        .args(["--workload", &value_name(run.workload)])
        .args(["--requests", &run.requests.to_string()])
        .args(["--duration", &run.duration.to_string()])
        .args(["--export-delay-ms", &run.export_delay_ms.to_string()])
        .args(["--memory-limit-mb", &run.memory_limit_mb.to_string()])
        .args(run.check_traces.then_some("--check-traces"))
        .output()
        .with_context(|| format!("running {peer:?}"))?;
    if !out.status.success() {
        bail!("{peer:?} with {threads} threads failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("parsing {peer:?}'s result: {line}"))
}
