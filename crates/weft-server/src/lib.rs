//! # weft-server — `weft serve`
//!
//! OTLP receivers (gRPC and HTTP, protobuf and JSON, gzip or zstd) → admission
//! control (a byte budget over everything not yet durable in the store; over it,
//! clients are asked to retry) → the write-ahead log (synced before the answer,
//! group commit) → shards (by trace ID) → the store's head, sealed into blocks
//! as the watermark passes; the log lets go of what the blocks hold.
//!
//! ```text
//! request ─▶ admission ─▶ decode + check ─▶ log (fsync) ─▶ answer
//!                                              └─▶ shard i ─▶ store head ─▶ blocks
//!                                                  watermark ─┘        └─▶ log released
//! ```
//!
//! [`Server::start`] binds every port (port 0 picks a free one), writes
//! `DATA_DIR/ports.json`, replays the log, and serves until [`Server::shutdown`].

pub mod admission;
pub mod api;
pub mod compat_query;
pub mod config;
pub mod decode;
pub mod http;
pub mod jaeger_api;
pub mod jaeger_model;
pub mod metrics;
pub mod search_api;
pub mod shards;
pub mod tags_api;
pub mod tempo_api;
pub mod ui;
pub mod wal;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prost::Message;

pub use config::ServeConfig;
use metrics::Metrics;
use shards::{InFlight, Shards, Subscriber};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listen address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr} for {what}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The data directory cannot be created or written.
    #[error("data directory {path} is not writable: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The write-ahead log could not be opened or replayed.
    #[error(transparent)]
    Wal(#[from] wal::WalError),
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(weft_store::StoreError),
    /// The runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// What every request handler shares.
pub struct State {
    /// The settings.
    pub config: ServeConfig,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The ingest budget.
    pub budget: Arc<admission::Budget>,
    /// Requests not yet fully processed, by receive time.
    pub in_flight: Arc<InFlight>,
    /// The log.
    pub wal: wal::Wal,
    /// The shards.
    pub shards: Shards,
    /// The store.
    pub store: Arc<weft_store::Store>,
    /// Set when shutdown begins: new requests are refused with a retry delay.
    pub shutting_down: AtomicBool,
    /// Room for searches running at once.
    pub searches: Arc<tokio::sync::Semaphore>,
}

/// The bound addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ports {
    /// OTLP/gRPC.
    pub otlp_grpc: SocketAddr,
    /// OTLP/HTTP.
    pub otlp_http: SocketAddr,
    /// Query, metrics, health.
    pub http: SocketAddr,
}

/// A running server.
pub struct Server {
    /// Where it listens.
    pub ports: Ports,
    /// Shared state (metrics, shards…).
    pub state: Arc<State>,
    /// The watermark, updated at the configured rate.
    pub watermark: tokio::sync::watch::Receiver<u64>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("ports", &self.ports).finish_non_exhaustive()
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|source| StartError::Bind { what, addr, source })
}

impl Server {
    /// Starts serving on the current Tokio runtime, with `subscribers` notified of
    /// processed spans and watermarks.
    pub async fn start(config: ServeConfig, subscribers: Vec<Arc<dyn Subscriber>>) -> Result<Server, StartError> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| StartError::DataDir { path: dir.clone(), source })?;
        let probe = dir.join(".write-test");
        std::fs::write(&probe, b"ok").map_err(|source| StartError::DataDir { path: dir.clone(), source })?;
        let _ = std::fs::remove_file(&probe);

        let grpc = bind("OTLP/gRPC", config.otlp_grpc).await?;
        let otlp_http = bind("OTLP/HTTP", config.otlp_http).await?;
        let http = bind("HTTP (query, metrics)", config.http).await?;
        let local = |l: &tokio::net::TcpListener, a| l.local_addr().unwrap_or(a);
        let ports = Ports {
            otlp_grpc: local(&grpc, config.otlp_grpc),
            otlp_http: local(&otlp_http, config.otlp_http),
            http: local(&http, config.http),
        };

        let metrics = Arc::new(Metrics::new(config.shards));
        let head_bytes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut store_cfg = weft_store::StoreConfig::new(dir.clone());
        store_cfg.partitions = config.shards;
        store_cfg.trace_idle = config.trace_idle;
        // The head shares the ingest budget; it seals early well before filling it.
        store_cfg.head_bytes = config.ingest_budget_bytes / 2;
        store_cfg.retention_age = config.retention;
        store_cfg.retention_bytes = config.retention_bytes;
        // The store opens before the log (replay feeds it), so the log it
        // releases is handed over once open.
        let wal_slot: Arc<std::sync::OnceLock<wal::Wal>> = Arc::default();
        let release_to = wal_slot.clone();
        let store = weft_store::Store::open(store_cfg, head_bytes.clone(), move |t| {
            if let Some(w) = release_to.get() {
                match w.release_before(t) {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(segments = n, "write-ahead log segments released"),
                    Err(e) => tracing::warn!(error = %e, "could not release write-ahead log segments"),
                }
            }
        })
        .map_err(StartError::Store)?;
        let mut all: Vec<Arc<dyn Subscriber>> = vec![Arc::new(StoreSubscriber(store.clone()))];
        all.extend(subscribers);
        let subscribers = Arc::new(all);
        let shards = Shards::start(config.shards, metrics.clone(), subscribers.clone());
        let in_flight = Arc::new(InFlight::default());
        let budget = admission::Budget::with_held(config.ingest_budget_bytes, metrics.clone(), head_bytes);
        let mut replayed_spans = 0u64;
        let (wal, report) =
            wal::Wal::open(&dir.join("wal"), config.wal_segment_bytes, metrics.clone(), |time, payload| {
                match opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(payload) {
                    Ok(req) => {
                        let spans = http::stored_spans(req);
                        replayed_spans += spans.len() as u64;
                        // Replayed data was accepted before: it is not refused now,
                        // so it holds no budget.
                        if let Some(p) = budget.try_take(0) {
                            shards.route(spans, in_flight.replayed(time), p);
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "a write-ahead log record does not decode; it is kept on disk")
                    }
                }
            })?;
        let _ = wal_slot.set(wal.clone());
        // Replayed requests are processed by the shards before the server says it
        // is up, so that a query right after a restart sees everything acknowledged.
        while !in_flight.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tracing::info!(blocks = store.blocks().len(), "store opened");
        tracing::info!(
            segments = report.segments,
            records = report.records,
            spans = replayed_spans,
            tail_bytes_cut = report.tail_bytes_cut,
            corrupt_records = report.corrupt_records,
            "write-ahead log replayed"
        );
        let state = Arc::new(State {
            config: config.clone(),
            metrics: metrics.clone(),
            budget,
            in_flight: in_flight.clone(),
            wal,
            shards,
            store,
            shutting_down: AtomicBool::new(false),
            searches: Arc::new(tokio::sync::Semaphore::new(search_api::MAX_CONCURRENT)),
        });

        let ports_json = serde_json::json!({
            "otlp_grpc": ports.otlp_grpc.to_string(),
            "otlp_http": ports.otlp_http.to_string(),
            "http": ports.http.to_string(),
        });
        let ports_file = dir.join("ports.json");
        let tmp = dir.join("ports.json.tmp");
        std::fs::write(&tmp, ports_json.to_string())
            .and_then(|_| std::fs::rename(&tmp, &ports_file))
            .map_err(|source| StartError::DataDir { path: dir.clone(), source })?;
        tracing::info!(otlp_grpc = %ports.otlp_grpc, otlp_http = %ports.otlp_http, http = %ports.http, data_dir = %dir.display(), "weft serve listening");

        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let (wm_tx, watermark) = tokio::sync::watch::channel(0u64);
        let mut tasks = Vec::new();
        for listener in [grpc, otlp_http, http] {
            tasks.push(tokio::spawn(serve(listener, state.clone(), stop_rx.clone())));
        }
        let wm =
            tokio::spawn(shards::publish_watermarks(in_flight, subscribers, metrics, config.watermark_interval, wm_tx));
        let mut wm_stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let _ = wm_stop.wait_for(|s| *s).await;
            wm.abort();
        }));
        Ok(Server { ports, state, watermark, stop, tasks })
    }

    /// Stops accepting, finishes the requests in flight (their log appends are
    /// synced before they are answered), and returns.
    pub async fn shutdown(self, grace: Duration) {
        self.state.shutting_down.store(true, Ordering::Relaxed);
        let _ = self.stop.send(true);
        let all = futures_join(self.tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("shutdown grace period over; closing remaining connections");
        }
        // Seal what the head holds, so the next start replays little.
        let store = self.state.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
        tracing::info!("weft serve stopped; the log is synced");
    }
}

/// The store as a shard subscriber: spans go to the head partition of the
/// shard that processed them; watermarks drive sealing.
struct StoreSubscriber(Arc<weft_store::Store>);

impl Subscriber for StoreSubscriber {
    fn on_spans(&self, shard: usize, time: u64, spans: &[shards::StoredSpan]) {
        self.0.insert(shard, time, spans);
    }
    fn on_watermark(&self, t: u64) {
        self.0.watermark(t);
    }
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

/// Accepts connections until `stop`, then waits for open ones to finish.
async fn serve(listener: tokio::net::TcpListener, state: Arc<State>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((sock, _)) = accepted else { continue };
                let _ = sock.set_nodelay(true);
                let st = state.clone();
                let svc = hyper::service::service_fn(move |req| http::handle(st.clone(), req));
                let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                // HTTP/2's default 64 KiB windows let one gRPC connection carry
                // one request body at a time; clients multiplex many requests on
                // one connection. Bodies are bounded by admission, not by windows.
                builder
                    .http2()
                    .initial_stream_window_size(2 << 20)
                    .initial_connection_window_size(8 << 20)
                    .max_concurrent_streams(1024);
                let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(sock), svc).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
}
