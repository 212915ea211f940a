//! `weft`: the command line. `weft serve` runs the server; `weft loadgen` sends
//! OTLP load the way a well-behaved client does; `weft query` reads traces
//! back through the native query API.

mod loadgen;
mod query;

/// The server allocates and frees many small objects per span (decoded OTLP
/// strings and vectors); mimalloc was measured to cut its CPU per span against
/// the system allocator (docs/benchmarks.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use weft_server::config::Overrides;
use weft_server::{ServeConfig, Server};

#[derive(Parser)]
#[command(name = "weft", version, about = "weft: distributed tracing that never loses a span silently")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the server: OTLP receivers, write-ahead log, shards, query and metrics.
    Serve(ServeArgs),
    /// Sends OTLP load to an endpoint and reports what was accepted.
    Loadgen(loadgen::Args),
    /// Queries a running server: traces, spans, traces by ID, services, tags.
    Query(query::Args),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// A TOML file with any of the settings below (snake_case keys).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (default ./weft-data).
    #[arg(long)]
    data_dir: Option<String>,
    /// OTLP/gRPC address (default 127.0.0.1:4317; port 0 picks a free one).
    #[arg(long)]
    otlp_grpc: Option<String>,
    /// OTLP/HTTP address (default 127.0.0.1:4318).
    #[arg(long)]
    otlp_http: Option<String>,
    /// Query, UI and metrics address (default 127.0.0.1:16686).
    #[arg(long)]
    http: Option<String>,
    /// Bytes accepted but not yet durable in the store (requests in flight and
    /// the in-memory head) before clients are asked to retry (default 256M).
    #[arg(long)]
    ingest_budget: Option<String>,
    /// Largest request body (default 16M).
    #[arg(long)]
    max_request: Option<String>,
    /// Shards (default: cores).
    #[arg(long)]
    shards: Option<String>,
    /// A trace is complete when no span of it arrived for this long (default 10s).
    #[arg(long)]
    trace_idle: Option<String>,
    /// Delete blocks older than this, e.g. 7d (default: keep).
    #[arg(long)]
    retention: Option<String>,
    /// Delete the oldest blocks while all take more than this, e.g. 50G (default: no limit).
    #[arg(long)]
    retention_bytes: Option<String>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve(args) => serve(args),
        Cmd::Loadgen(args) => loadgen::run(args),
        Cmd::Query(args) => query::run(args),
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut cfg = ServeConfig::default();
    if let Some(path) = &args.config {
        Overrides::from_file(path)?.apply(&mut cfg, "config file")?;
    }
    Overrides::from_env(|k| std::env::var(k).ok()).apply(&mut cfg, "environment")?;
    let flags = Overrides {
        data_dir: args.data_dir,
        otlp_grpc: args.otlp_grpc,
        otlp_http: args.otlp_http,
        http: args.http,
        ingest_budget: args.ingest_budget,
        max_request: args.max_request,
        shards: args.shards,
        trace_idle: args.trace_idle,
        retention: args.retention,
        retention_bytes: args.retention_bytes,
        ..Default::default()
    };
    flags.apply(&mut cfg, "flags")?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async move {
        let server = Server::start(cfg, Vec::new()).await?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        }
        server.shutdown(Duration::from_secs(10)).await;
        Ok::<_, anyhow::Error>(())
    })
}
