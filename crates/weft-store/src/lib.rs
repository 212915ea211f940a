//! # weft-store — the embedded trace store of `weft serve`
//!
//! Spans arrive from the server's shards into the **head** (in memory, per
//! shard, bounded in bytes). A trace is complete when none of its spans has
//! arrived for `trace_idle` as of the watermark; complete traces (and, under
//! memory pressure, the oldest ones) are **sealed** into an immutable **block**:
//! Parquet files of spans sorted by trace ID and of trace summaries, written
//! durably before the write-ahead log may let go of their data. Small blocks are
//! **compacted**; **retention** removes old ones by age and total size.
//!
//! ```text
//! shards ─▶ head (per shard) ──watermark, trace_idle──▶ seal ─▶ blocks/NNN/{spans,traces}.parquet
//!                                                         └─▶ WAL released up to what is durable
//! ```
//!
//! Queries (by trace ID, search, export) read the head and the blocks.

pub mod block;
mod block_rows;
pub mod columns;
pub mod head;
pub mod matching;
pub mod otlp_json;
pub mod search;
pub mod span;
pub mod store;
pub mod summary;
pub mod tags;
pub mod wire;

pub use span::{FullSpan, Origin, StoredSpan};
pub use store::{Store, StoreConfig, StoreStats};
pub use summary::TraceSummary;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Data on disk is not what the store wrote (damaged, or another format).
    #[error("bad block data: {0}")]
    Format(String),
}
