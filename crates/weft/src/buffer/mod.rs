//! The path finished spans take from the threads that end them to the collector.
//!
//! Each thread appends records to a chain of fixed-capacity [`chunk::Chunk`]s that
//! it alone writes; publishing a record is one plain store of the chunk's length
//! (a `Release` store, no lock prefix on x86). The collector reads every thread's
//! chain on its own schedule and hands the exporter ranges of chunks *in place*:
//! records are written once and never copied again on their way to the exporter.
//! Memory is bounded by one byte [`budget::Budget`] that every chunk is charged to
//! before it is allocated and released when its last reader drops it.

pub(crate) mod budget;
pub(crate) mod chunk;
pub(crate) mod claims;
pub(crate) mod thread_buffer;
