//! Blocks: immutable directories of Parquet files, one per seal (or compaction).
//!
//! ```text
//! blocks/0000000000000042/
//!   spans.parquet    one row per span, sorted by trace ID then start (columns.rs)
//!   traces.parquet   one row per trace: its summary and where its rows are
//!   meta.json        written last: time range, counts, services, span names
//! ```
//!
//! A block is written under `blocks/.tmp-<seq>`, every file fsync'd, then the
//! directory is renamed into place and `blocks/` fsync'd: a crash leaves either
//! no block or a whole one, never half of one visible. A directory without a
//! readable `meta.json` or whose files do not open is reported and skipped.
//!
//! In memory a block keeps its metadata, the Parquet footers (with page
//! indexes, so a trace's rows are read page by page) and its trace-ID index:
//! the sorted trace IDs with their row ranges (24 bytes per trace).

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    FixedSizeBinaryBuilder, Int64Builder, ListBuilder, StringBuilder, TimestampNanosecondBuilder, UInt32Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampNanosecondType, UInt32Type};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::columns::{self, SpanBatch, SPAN_SCHEMA};
use crate::span::{FullSpan, Origin};
use crate::summary::TraceSummary;
use crate::wire::{KvRef, Scratch, SpanRef};
use crate::StoreError;

/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Rows per data page: small pages let a trace lookup read little.
pub(crate) const PAGE_ROWS: usize = 2048;
/// Rows built into one Arrow batch before the Parquet writer takes them.
const BATCH_ROWS: usize = 8192;
/// (service, span name) pairs a block's metadata lists at most.
pub const MAX_OPERATIONS: usize = 10_000;

/// Most attribute keys a block lists per scope in `meta.json`; past it the
/// list is cut and `keys_complete` is false.
pub const MAX_TAG_KEYS: usize = 1_000;

/// What `meta.json` holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BlockMeta {
    /// Order of creation; a higher one holds newer summaries.
    pub seq: u64,
    /// Earliest span start, Unix ns.
    pub min_start: u64,
    /// Latest span end, Unix ns.
    pub max_end: u64,
    /// Span rows.
    pub spans: u64,
    /// Traces.
    pub traces: u64,
    /// Bytes of its files.
    pub bytes: u64,
    /// Services with spans in it.
    pub services: BTreeSet<String>,
    /// (service, span name) pairs in it.
    pub operations: BTreeSet<(String, String)>,
    /// (service, span name, span kind) triples in it, for APIs that list
    /// operations by kind (Jaeger's); empty in blocks written before them.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub operation_kinds: BTreeSet<(String, String, i32)>,
    /// Position among blocks for "which summary is newest": its `seq` when
    /// sealed; for a merged block, that of the newest block merged into it.
    #[serde(default)]
    pub order: u64,
    /// Blocks merged into it (empty for a sealed one).
    #[serde(default)]
    pub merged_from: Vec<u64>,
    /// When it was written, Unix ns (0 if unknown). No span received after
    /// this can be in it, so sealing a trace skips blocks written long before
    /// the trace's first span arrived.
    #[serde(default)]
    pub written_at: u64,
    /// Traces (hex IDs) with spans here and in other blocks (late spans):
    /// queries read those whole rather than block by block.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split: Vec<String>,
    /// Span attribute keys in it (at most [`MAX_TAG_KEYS`]).
    #[serde(default)]
    pub span_keys: BTreeSet<String>,
    /// Resource attribute keys in it (at most [`MAX_TAG_KEYS`]).
    #[serde(default)]
    pub resource_keys: BTreeSet<String>,
    /// Whether the two key lists hold every key in the block: false when cut
    /// at the cap, or for blocks written before keys were listed.
    #[serde(default)]
    pub keys_complete: bool,
}

/// Where a trace's rows lie in a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The trace.
    pub trace_id: [u8; 16],
    /// First row in `spans.parquet`.
    pub first_row: u32,
    /// Rows (its spans in this block).
    pub rows: u32,
}

/// An open block.
pub struct Block {
    /// Its metadata.
    pub meta: BlockMeta,
    /// Its directory.
    pub dir: PathBuf,
    /// Sorted by trace ID; position = row in `traces.parquet`.
    pub index: Vec<IndexEntry>,
    /// Each trace's start (its summary's), by index position: searches
    /// select by time without reading `traces.parquet`.
    pub starts: Vec<u64>,
    bloom: Bloom,
    spans: ArrowReaderMetadata,
    traces: ArrowReaderMetadata,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block").field("seq", &self.meta.seq).field("spans", &self.meta.spans).finish()
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.display().to_string(), source }
}

fn pq(path: &Path) -> impl Fn(parquet::errors::ParquetError) -> StoreError + '_ {
    move |e| StoreError::Format(format!("{}: {e}", path.display()))
}

/// The schema of `traces.parquet`.
pub fn trace_schema() -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("trace_id", DataType::FixedSizeBinary(16), false),
        Field::new("first_row", DataType::UInt32, false),
        Field::new("rows", DataType::UInt32, false),
        Field::new("root_service", DataType::Utf8, false),
        Field::new("root_name", DataType::Utf8, false),
        Field::new("start_time", ts(), false),
        Field::new("duration_ns", DataType::Int64, false),
        Field::new("min_start", ts(), false),
        Field::new("max_end", ts(), false),
        Field::new("span_count", DataType::UInt32, false),
        Field::new("error_count", DataType::UInt32, false),
        Field::new("orphan_count", DataType::UInt32, false),
        Field::new("services", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false),
    ]))
}

/// How blocks are written. Measured with `examples/seal_cost.rs` and on the
/// ingest benchmark (sealing is most of the server's CPU): min/max statistics
/// on every leaf column, and dictionary encoding, cost far more than they give
/// — without dictionaries encoding took 15 % less time and zstd made the files
/// no bigger (16.9 against 17.1 bytes a span). So statistics (and with them the
/// page index) are kept on the columns queries prune by, and dictionaries only
/// where a row has one short, much repeated value.
///
/// LZ4 (raw), not zstd: the Parquet reader builds a zstd compressor and
/// decompressor context for every column chunk it opens — about 40 per trace
/// lookup — and that, not decompression, was most of a lookup's time. Measured
/// with `scripts/bench-store` (1.6 M spans): trace by ID p50/p99 3.1/4.2 ms
/// with zstd against 1.1/1.7 ms with LZ4, search p99 113 against 10 ms, for
/// 19.4 instead of 16.0 bytes a span. Blocks written with zstd still read.
fn props() -> WriterProperties {
    let col = |name: &str| ColumnPath::new(vec![name.to_owned()]);
    let mut b = WriterProperties::builder()
        .set_compression(Compression::LZ4_RAW)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_write_batch_size(PAGE_ROWS)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_dictionary_enabled(false)
        .set_created_by("weft".into());
    for c in ["trace_id", "start_time", "duration_ns", "service", "name", "kind", "status_code"] {
        b = b.set_column_statistics_enabled(col(c), EnabledStatistics::Page);
    }
    // traces.parquet: its time columns prune searches.
    for c in ["min_start", "max_end"] {
        b = b.set_column_statistics_enabled(col(c), EnabledStatistics::Page);
    }
    for c in ["service", "name", "root_service", "root_name"] {
        b = b.set_column_dictionary_enabled(col(c), true);
    }
    b.build()
}

/// Closes a Parquet file and makes it durable; returns its size.
fn finish_parquet(path: &Path, w: ArrowWriter<File>) -> Result<u64, StoreError> {
    let file = w.into_inner().map_err(pq(path))?;
    file.sync_all().map_err(io(path))?;
    Ok(file.metadata().map_err(io(path))?.len())
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Name of block `seq`'s directory.
pub fn dir_name(seq: u64) -> String {
    format!("{seq:016}")
}

/// One trace to write into a block: its summary and its spans in this block,
/// read in place (their lists are in the [`Scratch`] passed to [`write`]).
#[derive(Debug)]
pub struct TraceRows<'a> {
    /// The trace's summary (over all its spans, in this block or not).
    pub summary: TraceSummary,
    /// Its spans in this block, each with its origin.
    pub spans: Vec<(&'a Origin, SpanRef<'a>)>,
    /// Whether other blocks hold spans of it too.
    pub continued: bool,
}

/// The attribute keys of a block's spans, per scope, up to [`MAX_TAG_KEYS`].
#[derive(Default)]
struct KeySets<'a> {
    span: std::collections::HashSet<&'a str, ahash::RandomState>,
    resource: std::collections::HashSet<&'a str, ahash::RandomState>,
    /// Resources already listed: spans share their origin, so each resource
    /// is looked at once rather than once per span.
    origins: std::collections::HashSet<*const Origin, ahash::RandomState>,
    cut: bool,
}

impl<'a> KeySets<'a> {
    fn add(&mut self, origin: &'a Origin, kvs: &[KvRef<'a>]) {
        for kv in kvs {
            if !self.span.contains(kv.key) {
                if self.span.len() < MAX_TAG_KEYS {
                    self.span.insert(kv.key);
                } else {
                    self.cut = true;
                }
            }
        }
        if self.origins.insert(origin as *const Origin) {
            for kv in &origin.resource {
                if !self.resource.contains(kv.key.as_str()) {
                    if self.resource.len() < MAX_TAG_KEYS {
                        self.resource.insert(&kv.key);
                    } else {
                        self.cut = true;
                    }
                }
            }
        }
    }
}

/// Writes a block of `traces`, durably, and opens it.
pub fn write(
    blocks_dir: &Path,
    seq: u64,
    order: u64,
    mut traces: Vec<TraceRows<'_>>,
    scratch: &Scratch<'_>,
    merged_from: Vec<u64>,
) -> Result<Block, StoreError> {
    traces.sort_by_key(|t| t.summary.trace_id);
    let written_at =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut meta = BlockMeta { seq, order, min_start: u64::MAX, merged_from, written_at, ..Default::default() };
    let mut index = Vec::with_capacity(traces.len());
    meta.split = traces.iter().filter(|t| t.continued).map(|t| crate::summary::hex(&t.summary.trace_id)).collect();
    let starts: Vec<u64> = traces.iter().map(|t| t.summary.start).collect();
    let mut services: std::collections::HashSet<&str, ahash::RandomState> = Default::default();
    let mut operations: std::collections::HashSet<(&str, &str), ahash::RandomState> = Default::default();
    let mut operation_kinds: std::collections::HashSet<(&str, &str, i32), ahash::RandomState> = Default::default();
    let mut rows = 0usize;
    let mut keys = KeySets::default();
    for t in &mut traces {
        t.spans.sort_by_key(|(_, s)| s.start);
    }
    for t in &traces {
        index.push(IndexEntry { trace_id: t.summary.trace_id, first_row: rows as u32, rows: t.spans.len() as u32 });
        rows += t.spans.len();
        for (origin, s) in &t.spans {
            meta.min_start = meta.min_start.min(s.start);
            meta.max_end = meta.max_end.max(s.end);
            services.insert(&origin.service);
            if operations.len() < MAX_OPERATIONS {
                operations.insert((&origin.service, s.name));
            }
            if operation_kinds.len() < MAX_OPERATIONS {
                operation_kinds.insert((&origin.service, s.name, s.kind));
            }
            keys.add(origin, scratch.kvs.get(s.attributes.clone()).unwrap_or_default());
        }
    }
    if rows == 0 {
        meta.min_start = 0;
    }
    meta.services = services.into_iter().map(str::to_owned).collect();
    meta.operations = operations.into_iter().map(|(a, b)| (a.to_owned(), b.to_owned())).collect();
    meta.operation_kinds = operation_kinds.into_iter().map(|(a, b, k)| (a.to_owned(), b.to_owned(), k)).collect();
    meta.spans = rows as u64;
    meta.traces = traces.len() as u64;
    meta.keys_complete = !keys.cut;
    meta.span_keys = keys.span.into_iter().map(str::to_owned).collect();
    meta.resource_keys = keys.resource.into_iter().map(str::to_owned).collect();
    let tmp = blocks_dir.join(format!(".tmp-{}", dir_name(seq)));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let path = tmp.join("spans.parquet");
    let file = File::create(&path).map_err(io(&path))?;
    let mut w = ArrowWriter::try_new(file, SPAN_SCHEMA.clone(), Some(props())).map_err(pq(&path))?;
    // Built and handed to the writer a slice at a time, so the Arrow arrays
    // of a whole block never sit in memory at once.
    let mut batch = SpanBatch::with_capacity(BATCH_ROWS.min(rows));
    for (origin, s) in traces.iter().flat_map(|t| &t.spans) {
        batch.push(origin, s, scratch);
        if batch.len() == BATCH_ROWS {
            let full = std::mem::replace(&mut batch, SpanBatch::with_capacity(BATCH_ROWS));
            w.write(&full.finish()?).map_err(pq(&path))?;
        }
    }
    if !batch.is_empty() {
        w.write(&batch.finish()?).map_err(pq(&path))?;
    }
    meta.bytes = finish_parquet(&path, w)?;
    let summaries: Vec<(&TraceSummary, &IndexEntry)> = traces.iter().map(|t| &t.summary).zip(&index).collect();
    let path = tmp.join("traces.parquet");
    let file = File::create(&path).map_err(io(&path))?;
    let mut w = ArrowWriter::try_new(file, trace_schema(), Some(props())).map_err(pq(&path))?;
    w.write(&summary_batch(&summaries)?).map_err(pq(&path))?;
    meta.bytes += finish_parquet(&path, w)?;
    let meta_path = tmp.join("meta.json");
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| StoreError::Format(e.to_string()))?;
    std::fs::write(&meta_path, json).map_err(io(&meta_path))?;
    File::open(&meta_path).and_then(|f| f.sync_all()).map_err(io(&meta_path))?;
    fsync_dir(&tmp)?;
    let dest = blocks_dir.join(dir_name(seq));
    std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
    fsync_dir(blocks_dir)?;
    Block::open_with(dest, meta, index, starts)
}

/// [`write`] for traces at hand decoded (compaction, tools): each span is
/// encoded and read back in place, so every block is built by one path.
pub fn write_decoded(
    blocks_dir: &Path,
    seq: u64,
    order: u64,
    traces: Vec<(TraceSummary, Vec<FullSpan>)>,
    merged_from: Vec<u64>,
    split: &std::collections::HashSet<[u8; 16]>,
) -> Result<Block, StoreError> {
    let encoded: Vec<Vec<Vec<u8>>> = traces
        .iter()
        .map(|(_, spans)| spans.iter().map(|s| prost::Message::encode_to_vec(&s.span)).collect())
        .collect();
    let mut scratch = Scratch::default();
    let mut rows = Vec::with_capacity(traces.len());
    for ((summary, spans), bytes) in traces.iter().zip(&encoded) {
        let mut refs = Vec::with_capacity(spans.len());
        for (fs, b) in spans.iter().zip(bytes) {
            let s = crate::wire::parse_span(b, &mut scratch).map_err(|e| StoreError::Format(e.to_string()))?;
            refs.push((&*fs.origin, s));
        }
        let continued = split.contains(&summary.trace_id);
        rows.push(TraceRows { summary: summary.clone(), spans: refs, continued });
    }
    write(blocks_dir, seq, order, rows, &scratch, merged_from)
}

fn summary_batch(rows: &[(&TraceSummary, &IndexEntry)]) -> Result<RecordBatch, StoreError> {
    let ts = || TimestampNanosecondBuilder::new().with_timezone("UTC");
    let mut id = FixedSizeBinaryBuilder::new(16);
    let (mut first, mut nrows) = (UInt32Builder::new(), UInt32Builder::new());
    let (mut rs, mut rn) = (StringBuilder::new(), StringBuilder::new());
    let (mut start, mut dur, mut min_s, mut max_e) = (ts(), Int64Builder::new(), ts(), ts());
    let (mut spans, mut errors, mut orphans) = (UInt32Builder::new(), UInt32Builder::new(), UInt32Builder::new());
    let mut services = ListBuilder::new(StringBuilder::new());
    for (s, e) in rows {
        let _ = id.append_value(s.trace_id);
        first.append_value(e.first_row);
        nrows.append_value(e.rows);
        rs.append_value(&s.root_service);
        rn.append_value(&s.root_name);
        start.append_value(s.start as i64);
        dur.append_value(s.duration as i64);
        min_s.append_value(s.min_start as i64);
        max_e.append_value(s.max_end as i64);
        spans.append_value(s.span_count);
        errors.append_value(s.error_count);
        orphans.append_value(s.orphan_count);
        for svc in &s.services {
            services.values().append_value(svc);
        }
        services.append(true);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(first.finish()),
        Arc::new(nrows.finish()),
        Arc::new(rs.finish()),
        Arc::new(rn.finish()),
        Arc::new(start.finish()),
        Arc::new(dur.finish()),
        Arc::new(min_s.finish()),
        Arc::new(max_e.finish()),
        Arc::new(spans.finish()),
        Arc::new(errors.finish()),
        Arc::new(orphans.finish()),
        Arc::new(services.finish()),
    ];
    RecordBatch::try_new(trace_schema(), cols).map_err(|e| StoreError::Format(e.to_string()))
}

/// Reads summaries (with their index entries) from a `traces.parquet` batch.
fn read_summaries(batch: &RecordBatch) -> Result<Vec<(TraceSummary, IndexEntry)>, StoreError> {
    let bad = |w: &str| StoreError::Format(format!("traces.parquet column {w} has an unexpected type"));
    let c = |i: usize| batch.column(i);
    let id = c(0).as_fixed_size_binary_opt().ok_or_else(|| bad("trace_id"))?;
    let u32c = |i: usize, w: &str| c(i).as_primitive_opt::<UInt32Type>().ok_or_else(|| bad(w));
    let tsc = |i: usize, w: &str| c(i).as_primitive_opt::<TimestampNanosecondType>().ok_or_else(|| bad(w));
    let (first, rows) = (u32c(1, "first_row")?, u32c(2, "rows")?);
    let rs = c(3).as_string_opt::<i32>().ok_or_else(|| bad("root_service"))?;
    let rn = c(4).as_string_opt::<i32>().ok_or_else(|| bad("root_name"))?;
    let start = tsc(5, "start_time")?;
    let dur = c(6).as_primitive_opt::<Int64Type>().ok_or_else(|| bad("duration_ns"))?;
    let (min_s, max_e) = (tsc(7, "min_start")?, tsc(8, "max_end")?);
    let (spans, errors, orphans) = (u32c(9, "span_count")?, u32c(10, "error_count")?, u32c(11, "orphan_count")?);
    let services = c(12).as_list_opt::<i32>().ok_or_else(|| bad("services"))?;
    let svc_values = services.values().as_string_opt::<i32>().ok_or_else(|| bad("services"))?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let mut trace_id = [0u8; 16];
        trace_id.copy_from_slice(id.value(i));
        let o = services.value_offsets();
        let sum = TraceSummary {
            trace_id,
            root_service: rs.value(i).to_owned(),
            root_name: rn.value(i).to_owned(),
            start: start.value(i) as u64,
            duration: dur.value(i) as u64,
            min_start: min_s.value(i) as u64,
            max_end: max_e.value(i) as u64,
            span_count: spans.value(i),
            error_count: errors.value(i),
            services: (o[i] as usize..o[i + 1] as usize).map(|k| svc_values.value(k).to_owned()).collect(),
            orphan_count: orphans.value(i),
        };
        out.push((sum, IndexEntry { trace_id, first_row: first.value(i), rows: rows.value(i) }));
    }
    Ok(out)
}

fn load_meta(path: &Path) -> Result<ArrowReaderMetadata, StoreError> {
    let f = File::open(path).map_err(io(path))?;
    ArrowReaderMetadata::load(
        &f,
        ArrowReaderOptions::new().with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required),
    )
    .map_err(pq(path))
}

/// A selection of `ranges` (sorted, disjoint) out of `total` rows.
fn selection(ranges: &[(usize, usize)], total: usize) -> RowSelection {
    let mut sel = Vec::new();
    let mut at = 0;
    for &(from, len) in ranges {
        if from > at {
            sel.push(RowSelector::skip(from - at));
        }
        sel.push(RowSelector::select(len));
        at = from + len;
    }
    if at < total {
        sel.push(RowSelector::skip(total - at));
    }
    RowSelection::from(sel)
}

impl Block {
    fn open_with(dir: PathBuf, meta: BlockMeta, index: Vec<IndexEntry>, starts: Vec<u64>) -> Result<Block, StoreError> {
        let spans = load_meta(&dir.join("spans.parquet"))?;
        let traces = load_meta(&dir.join("traces.parquet"))?;
        let bloom = Bloom::of(&index);
        Ok(Block { meta, dir, index, starts, bloom, spans, traces })
    }

    /// Opens a block directory written by [`write`].
    pub fn open(dir: &Path) -> Result<Block, StoreError> {
        let meta_path = dir.join("meta.json");
        let text = std::fs::read(&meta_path).map_err(io(&meta_path))?;
        let meta: BlockMeta =
            serde_json::from_slice(&text).map_err(|e| StoreError::Format(format!("{}: {e}", meta_path.display())))?;
        let mut block = Block::open_with(dir.to_path_buf(), meta, Vec::new(), Vec::new())?;
        let summaries = block.all_summaries()?;
        block.starts = summaries.iter().map(|(s, _)| s.start).collect();
        block.index = summaries.into_iter().map(|(_, e)| e).collect();
        block.bloom = Bloom::of(&block.index);
        if block.index.windows(2).any(|w| w[0].trace_id >= w[1].trace_id) {
            return Err(StoreError::Format(format!("{}: trace index is not sorted", dir.display())));
        }
        let total: u64 = block.index.iter().map(|e| u64::from(e.rows)).sum();
        if total != block.meta.spans || block.spans.metadata().file_metadata().num_rows() as u64 != total {
            return Err(StoreError::Format(format!("{}: row counts disagree", dir.display())));
        }
        Ok(block)
    }

    /// Where `trace_id`'s rows are, if it has any here.
    pub fn find(&self, trace_id: &[u8; 16]) -> Option<(usize, IndexEntry)> {
        if !self.bloom.may_contain(trace_id) {
            return None;
        }
        self.index.binary_search_by(|e| e.trace_id.cmp(trace_id)).ok().map(|i| (i, self.index[i]))
    }

    fn read(
        &self,
        file: &str,
        meta: &ArrowReaderMetadata,
        ranges: &[(usize, usize)],
        total: usize,
        projection: Option<&[usize]>,
    ) -> Result<Vec<RecordBatch>, StoreError> {
        let path = self.dir.join(file);
        let f = File::open(&path).map_err(io(&path))?;
        let mut b = ParquetRecordBatchReaderBuilder::new_with_metadata(f, meta.clone()).with_batch_size(8192);
        if ranges.len() != 1 || ranges[0] != (0, total) {
            b = b.with_row_selection(selection(ranges, total));
        }
        if let Some(p) = projection {
            let mask = ProjectionMask::roots(meta.parquet_schema(), p.iter().copied());
            b = b.with_projection(mask);
        }
        let reader = b.build().map_err(pq(&path))?;
        reader.collect::<Result<Vec<_>, _>>().map_err(|e| StoreError::Format(format!("{}: {e}", path.display())))
    }

    /// The IDs of [`BlockMeta::split`], parsed (bad entries skipped).
    pub fn split_ids(&self) -> Vec<[u8; 16]> {
        self.meta.split.iter().filter_map(|h| crate::summary::parse_hex16(h)).collect()
    }

    /// Columns `names` of `spans.parquet`, rows `ranges` (sorted, disjoint),
    /// in row order (for searches, which read only what they test).
    pub fn span_columns(&self, ranges: &[(usize, usize)], names: &[&str]) -> Result<Vec<RecordBatch>, StoreError> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let schema = &SPAN_SCHEMA;
        let cols: Vec<usize> = names.iter().filter_map(|n| schema.index_of(n).ok()).collect();
        self.read("spans.parquet", &self.spans, ranges, self.meta.spans as usize, Some(&cols))
    }

    /// The spans in rows `ranges` (sorted, disjoint).
    pub fn spans_at(&self, ranges: &[(usize, usize)]) -> Result<Vec<FullSpan>, StoreError> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for b in self.read("spans.parquet", &self.spans, ranges, self.meta.spans as usize, None)? {
            out.extend(columns::from_batch(&b)?);
        }
        Ok(out)
    }

    /// Every span row, as the Parquet reader decodes them (batches in row
    /// order): one sequential pass, for readers that want most of a block.
    pub fn all_span_batches(&self) -> Result<Vec<RecordBatch>, StoreError> {
        let total = self.meta.spans as usize;
        self.read("spans.parquet", &self.spans, &[(0, total)], total, None)
    }

    /// The summaries at positions `at` (sorted) of the index.
    pub fn summaries_at(&self, at: &[usize]) -> Result<Vec<TraceSummary>, StoreError> {
        let ranges: Vec<(usize, usize)> = at.iter().map(|&i| (i, 1)).collect();
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for b in self.read("traces.parquet", &self.traces, &merge_ranges(ranges), self.meta.traces as usize, None)? {
            out.extend(read_summaries(&b)?.into_iter().map(|(s, _)| s));
        }
        Ok(out)
    }

    /// Every summary, in trace-ID order, with its index entry.
    pub fn all_summaries(&self) -> Result<Vec<(TraceSummary, IndexEntry)>, StoreError> {
        let total = self.traces.metadata().file_metadata().num_rows() as usize;
        let mut out = Vec::with_capacity(total);
        for b in self.read("traces.parquet", &self.traces, &[(0, total)], total, None)? {
            out.extend(read_summaries(&b)?);
        }
        Ok(out)
    }

    /// Every span and summary, trace by trace (for compaction).
    pub fn all_traces(&self) -> Result<Vec<(TraceSummary, Vec<FullSpan>)>, StoreError> {
        let sums = self.all_summaries()?;
        let mut spans = self.spans_at(&[(0, self.meta.spans as usize)])?.into_iter();
        Ok(sums.into_iter().map(|(s, e)| (s, spans.by_ref().take(e.rows as usize).collect())).collect())
    }
}

/// A Bloom filter over a block's trace IDs (10 bits per trace, 4 probes, about
/// 1 % false positives), so "is this trace in any block?" — asked for every
/// trace sealed — costs a few memory reads per block instead of a binary search.
#[derive(Debug, Default)]
struct Bloom {
    bits: Vec<u64>,
}

impl Bloom {
    fn probes(id: &[u8; 16]) -> [u64; 4] {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&id[..8]);
        b.copy_from_slice(&id[8..]);
        // Mixed, so IDs that are not random (tests, broken clients) spread too.
        let mix = |mut z: u64| {
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let (h1, h2) = (mix(u64::from_le_bytes(a) ^ 0x9e37_79b9_7f4a_7c15), mix(u64::from_le_bytes(b)) | 1);
        [h1, h1.wrapping_add(h2), h1.wrapping_add(h2.wrapping_mul(2)), h1.wrapping_add(h2.wrapping_mul(3))]
    }

    fn of(index: &[IndexEntry]) -> Bloom {
        let words = (index.len() * 10).div_ceil(64).max(1);
        let mut bits = vec![0u64; words];
        let n = (words * 64) as u64;
        for e in index {
            for p in Self::probes(&e.trace_id) {
                let bit = p % n;
                bits[(bit / 64) as usize] |= 1 << (bit % 64);
            }
        }
        Bloom { bits }
    }

    fn may_contain(&self, id: &[u8; 16]) -> bool {
        let n = (self.bits.len() * 64) as u64;
        n == 0 || Self::probes(id).iter().all(|p| self.bits[((p % n) / 64) as usize] & (1 << ((p % n) % 64)) != 0)
    }
}

/// Joins adjacent ranges.
pub fn merge_ranges(mut r: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    r.sort_unstable();
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(r.len());
    for (from, len) in r {
        match out.last_mut() {
            Some(last) if last.0 + last.1 >= from => last.1 = last.1.max(from + len - last.0),
            _ => out.push((from, len)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::tests::rich_span;

    fn trace(t: u8, n: u8) -> (TraceSummary, Vec<FullSpan>) {
        let spans: Vec<FullSpan> = (1..=n).map(|i| rich_span(t, i)).collect();
        (TraceSummary::of([t; 16], &spans), spans)
    }

    #[test]
    fn written_blocks_open_and_answer_by_trace_id() {
        let dir = tempfile::tempdir().unwrap();
        let b =
            write_decoded(dir.path(), 7, 7, vec![trace(3, 2), trace(1, 3), trace(2, 1)], vec![], &Default::default())
                .unwrap();
        assert_eq!((b.meta.spans, b.meta.traces), (6, 3));
        let again = Block::open(&dir.path().join(dir_name(7))).unwrap();
        assert_eq!(again.index, b.index);
        assert_eq!(again.meta, b.meta);
        let (pos, e) = again.find(&[3; 16]).unwrap();
        let spans = again.spans_at(&[(e.first_row as usize, e.rows as usize)]).unwrap();
        assert_eq!(spans, trace(3, 2).1);
        assert_eq!(again.summaries_at(&[pos]).unwrap(), vec![trace(3, 2).0]);
        assert!(again.find(&[9; 16]).is_none());
        assert_eq!(again.all_traces().unwrap().len(), 3);
        assert!(!dir.path().join(".tmp-0000000000000007").exists());
    }

    #[test]
    fn damaged_blocks_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        write_decoded(dir.path(), 1, 1, vec![trace(1, 2)], vec![], &Default::default()).unwrap();
        let d = dir.path().join(dir_name(1));
        let f = d.join("spans.parquet");
        let mut bytes = std::fs::read(&f).unwrap();
        let n = bytes.len();
        bytes.truncate(n / 2);
        std::fs::write(&f, &bytes).unwrap();
        assert!(Block::open(&d).is_err());
        std::fs::write(d.join("meta.json"), b"{not json").unwrap();
        assert!(Block::open(&d).is_err());
    }

    #[test]
    fn ranges_merge() {
        assert_eq!(merge_ranges(vec![(5, 1), (0, 2), (2, 1), (6, 3)]), vec![(0, 3), (5, 4)]);
    }
}
