//! The background collector: one thread per tracer that gathers finished spans
//! from every thread's chunk chain, cuts them into batches and calls the exporter.
//!
//! It naps 1 ms while little is buffered (20 ms while threads use every CPU:
//! see `quiet_nap`), takes the shortest nap the kernel gives (~90 µs) once
//! more is in use (512 KiB while it has a CPU to itself, else 1/16 of the
//! budget: see `nap_thresholds`) or, with a CPU to itself, while spans flow
//! fast (`takes_short_nap`), and backs off to 50 ms when idle; threads that
//! open a new chunk wake it from longer sleeps (`wakes_collector`), and when it
//! has missed its heartbeat hand their full chunks to the exporter themselves
//! (if it offers a `DirectSubmit`) or yield to it (see `buffer/thread_buffer.rs`).
//! Each batch is handed over with a `Settlement` that counts its outcome, here
//! for synchronous exporters or later on an exporter's own threads.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::buffer::budget::current_home;
use crate::buffer::chunk::{Chunk, ChunkRange, SLOT_BYTES};
use crate::buffer::thread_buffer::ThreadCursor;
use crate::export::{Settlement, SpanBatch, SpanExporter};
use crate::tracer::{TracerShared, NAP_IDLE, NAP_NONE, NAP_QUIET};

/// The collector's naps. While little is buffered it naps 1 ms (20 ms while
/// threads use every CPU: [`QUIET_POLL_NO_SPARE_CPU`]); a thread that opens a
/// chunk with more than a threshold in use wakes it early
/// (`TracerShared::nudge_collector`), and with more than a lower one in use
/// after a round it takes the shortest nap the kernel gives (~90 µs on these
/// VMs for a 10 µs request). Waking more often was measured to cost the
/// application: with every core busy, each wake-up preempts an application
/// thread (~13 % of their time at 11 000 wake-ups/s). Spinning was worse still.
const SHORT_NAP: Duration = Duration::from_micros(10);
const QUIET_POLL: Duration = Duration::from_millis(1);
/// The quiet nap while threads use every CPU. Longer than a kernel tick (1–10
/// ms for HZ 1000–100), because a timed sleep that ends before the next tick
/// makes the kernel program the timer interrupt for it, and cancel it again
/// when a thread wakes the collector first — which, with every CPU busy and
/// spans flowing, is how nearly every nap ends. On this KVM guest (HZ 250)
/// that cost the collector ~13 µs per round: 4 threads, 290 rounds for 3 M
/// spans, its sleep-and-wake overhead fell from 28–30 to 16–18 µs a round
/// (collector 3.5 → 2.4 ns per span, wall 18.3 → 17.4 ns per span) with a 20
/// ms nap. The nap only bounds how late a slow trickle of spans is collected.
const QUIET_POLL_NO_SPARE_CPU: Duration = Duration::from_millis(20);
const IDLE_POLL: Duration = Duration::from_millis(50);
/// A thread counts as busy (for [`has_spare_cpu`]) while the collector found
/// spans from it in the last 20 ms. Counting every thread with a buffer made
/// a program with one busy thread and seven idle ones (a thread pool) look
/// like one with no CPU to spare: the collector kept the high thresholds
/// meant for busy cores, and the busy thread's spans cost 35.8–36.5 ns
/// instead of 30.9–31.4 (`steady_state` with 7 idle threads, 4 runs each).
/// As long as the quiet nap of busy cores, so a busy thread that wrote
/// during a nap still counts in the round after it.
pub(crate) const BUSY_WINDOW: Duration = Duration::from_millis(20);
const RECALIBRATE_EVERY: Duration = Duration::from_secs(1);
/// The longest a flush or shutdown waits for threads' hand-overs to the
/// direct submitter in flight (see `Collector::wait_for_handoffs`); records
/// still in a thread's hands after it are exported later, or counted as
/// `dropped.shutdown`.
const HANDOFF_WAIT: Duration = Duration::from_secs(1);
/// Rounds without new spans before the collector frees stale arrays' records
/// itself (see `Budget::recycle`), and how many arrays per round then.
const QUIET_ROUNDS_BEFORE_CLEANING: u32 = 3;
const CLEAN_PER_ROUND: usize = 64;

/// Buffered bytes above which the collector takes its shortest naps while it
/// has a CPU to itself (unless the budget is small: then 1/16 of it).
///
/// Kept low so the slot arrays a busy thread fills come back to the pool, and
/// to it, while they are still in the caches. One thread fills slots at up to
/// ~8 GB/s; at 1/16 of the 32 MiB default (woken at 1/8) several megabytes were
/// in flight, past the ~8 MiB of last-level cache these VMs give one process (a
/// write-bandwidth probe falls from ~10 to ~65 ns per 192-byte write between 8
/// and 16 MiB). 1-thread nested spans measured 94–96 ns median against 72–77
/// with it and the last-freed-first pool (one build switched by environment,
/// interleaved runs); as separate builds, a pair ratio of 0.94
/// (docs/benchmarks.md, session 13).
const SHORT_NAPS_ABOVE: usize = 512 << 10;

/// Records collected in one round from which a collector with a CPU to itself
/// keeps taking its shortest naps whatever is buffered: 256 records in a
/// ~90 µs nap is ~3 M spans/s, at which a 1 ms nap would only end in a
/// producer waking it. (After a 1 ms nap the bar is ~0.26 M/s, but the next,
/// short, round then falls below it unless the rate is that high.)
///
/// Measured with the `steady_state` example (3 M spans, 1 thread): without
/// this, threads woke the collector ~480 times (once it had drained below
/// [`SHORT_NAPS_ABOVE`] and gone back to 1 ms naps), and each wake-up cost the
/// waking thread 6–28 µs in its chunk switch (the system call, and the woken
/// collector placed on its CPU); with it, 10–14 wake-ups, and the chunk
/// switch's average fell from 1 200–4 400 clock ticks to 700–740.
const STEADY_ROUND_RECORDS: usize = 256;

/// Whether the collector's next nap is its shortest, given the bytes buffered
/// and the records its last round collected.
pub(crate) fn takes_short_nap(used: usize, round: usize, limit: usize, busy_threads: usize, cpus: usize) -> bool {
    let (short_naps_above, _) = nap_thresholds(limit, busy_threads, cpus);
    used > short_naps_above || (has_spare_cpu(busy_threads, cpus) && round >= STEADY_ROUND_RECORDS)
}

/// The collector's quiet nap: see [`QUIET_POLL_NO_SPARE_CPU`].
fn quiet_nap(busy_threads: usize, cpus: usize) -> Duration {
    if has_spare_cpu(busy_threads, cpus) {
        QUIET_POLL
    } else {
        QUIET_POLL_NO_SPARE_CPU
    }
}

/// Whether a thread opening a chunk wakes the collector from its quiet nap,
/// with `used` bytes buffered, the thread on the CPU the collector sleeps on
/// or not (`same_cpu`, `None` if unknown).
///
/// Above the wake threshold of [`nap_thresholds`] — but, while threads use
/// every CPU, a thread on another CPU than the collector's wakes it only at
/// 1.5× that. A wake-up across CPUs sends the sleeper's CPU an interrupt,
/// which on this KVM guest cost the collector ~14 µs more per round than one
/// from its own CPU, where it simply preempts the waker (4 threads: 3–4
/// against 16–18 µs of sleep-and-wake overhead a round, collector 2.4 → 1.0
/// ns per span). With every CPU busy, a thread on the collector's CPU opens a
/// chunk every few microseconds, so the wake comes hardly later; the higher
/// bar still wakes it when none does (its CPU runs other programs).
pub(crate) fn wakes_collector(
    used: usize,
    limit: usize,
    busy_threads: usize,
    cpus: usize,
    same_cpu: Option<bool>,
) -> bool {
    let (_, wake_above) = nap_thresholds(limit, busy_threads, cpus);
    let far = same_cpu == Some(false) && !has_spare_cpu(busy_threads, cpus);
    used > if far { wake_above + wake_above / 2 } else { wake_above }
}

/// Whether the collector has a CPU to itself: fewer threads are busy writing
/// spans (see [`BUSY_WINDOW`]) than there are CPUs.
fn has_spare_cpu(busy_threads: usize, cpus: usize) -> bool {
    busy_threads < cpus
}

/// The collector's nap thresholds in buffered bytes: above the first it naps at
/// its shortest, above the second a thread opening a chunk wakes it from its
/// quiet nap (see [`wakes_collector`]).
///
/// Low ([`SHORT_NAPS_ABOVE`]) only while fewer threads are busy writing spans
/// than there are CPUs. Once threads use every CPU, each extra wake-up preempts one of
/// them (see [`SHORT_NAP`]); with the low thresholds at every thread count, 4
/// and 8 nested threads measured 52.5 vs 48.2 and 47.8 vs 39.3 ns medians
/// (6–10 interleaved pairs, noisy), so there they stay 1/16 and 1/8 of the
/// budget.
pub(crate) fn nap_thresholds(limit: usize, busy_threads: usize, cpus: usize) -> (usize, usize) {
    if has_spare_cpu(busy_threads, cpus) {
        ((limit / 16).min(SHORT_NAPS_ABOVE), (limit / 8).min(4 * SHORT_NAPS_ABOVE))
    } else {
        (limit / 16, limit / 8)
    }
}

pub(crate) struct Config {
    pub max_batch_spans: usize,
    pub schedule_delay: Duration,
}

struct Collector {
    tracer: &'static TracerShared,
    exporter: Box<dyn SpanExporter>,
    cfg: Config,
    cursors: Vec<ThreadCursor>,
    pending: VecDeque<ChunkRange>,
    pending_len: usize,
    oldest: Option<Instant>,
    /// Records collected in the current loop round.
    round: usize,
}

pub(crate) fn run(tracer: &'static TracerShared, exporter: Box<dyn SpanExporter>, cfg: Config) {
    crate::thread_priority::request_short_slice();
    let mut c = Collector {
        tracer,
        exporter,
        cfg,
        cursors: Vec::new(),
        pending: VecDeque::new(),
        pending_len: 0,
        oldest: None,
        round: 0,
    };
    // Freed chunks' records are dropped by the threads that open chunks from
    // now on (see `Budget::recycle`), and by this thread when it has nothing
    // else to do.
    tracer.budget.start_deferring();
    let mut idle_rounds = 0u32;
    let mut quiet_rounds = 0u32;
    let mut last_calibration = Instant::now();
    loop {
        if last_calibration.elapsed() >= RECALIBRATE_EVERY {
            tracer.clock.recalibrate();
            last_calibration = Instant::now();
        }
        c.round = 0;
        tracer.collector_heartbeat.store(tracer.clock.ticks(), Ordering::Relaxed);
        let (flush_ticket, shutdown) = {
            let ctl = tracer.control.lock().unwrap_or_else(|e| e.into_inner());
            let ticket = (ctl.flush_requested > ctl.flush_completed).then_some(ctl.flush_requested);
            (ticket, ctl.shutdown_requested)
        };
        let mut got = c.poll();
        let drain = flush_ticket.is_some() || shutdown;
        if drain {
            // Records threads claimed for the direct submitter before the
            // flush or shutdown began are submitted or handed back; none are
            // claimed from now on until it completes.
            c.wait_for_handoffs();
            got += c.poll();
        }
        c.export_ready(drain);
        if let Some(ticket) = flush_ticket {
            c.guarded(|e| e.force_flush());
            let mut ctl = tracer.control.lock().unwrap_or_else(|e| e.into_inner());
            ctl.flush_completed = ctl.flush_completed.max(ticket);
            tracer.control_cv.notify_all();
        }
        // Stale arrays are the producing threads' to clean; the collector helps
        // only once no spans came for a few rounds (threads that stopped
        // opening chunks leave theirs behind), a bounded number per round.
        // Under load its CPU time is for collecting: one empty round right after
        // another says nothing about idleness, and cleaning every queued array
        // then could hold it for milliseconds.
        quiet_rounds = if got == 0 && c.pending_len == 0 { quiet_rounds.saturating_add(1) } else { 0 };
        if quiet_rounds >= QUIET_ROUNDS_BEFORE_CLEANING && tracer.budget.has_stale() {
            tracer.budget.clean_stale(CLEAN_PER_ROUND);
        }
        if shutdown {
            // Nothing is handed back any more: no hand-over can begin now.
            drop(tracer.handed_back.lock().unwrap_or_else(|e| e.into_inner()).take());
            c.guarded(|e| e.shutdown());
            tracer.budget.stop_deferring();
            let mut ctl = tracer.control.lock().unwrap_or_else(|e| e.into_inner());
            ctl.shutdown_completed = true;
            ctl.flush_completed = ctl.flush_requested;
            tracer.control_cv.notify_all();
            return;
        }
        let busy = tracer.busy_threads.load(Ordering::Relaxed);
        if takes_short_nap(tracer.budget.used(), c.round, tracer.budget.limit(), busy, tracer.cpus) {
            idle_rounds = 0;
            std::thread::park_timeout(SHORT_NAP);
        } else {
            let idle = c.round == 0 && c.pending_len == 0;
            idle_rounds = if idle { idle_rounds + 1 } else { 0 };
            let (nap, len) =
                if idle_rounds > 10 { (NAP_IDLE, IDLE_POLL) } else { (NAP_QUIET, quiet_nap(busy, tracer.cpus)) };
            tracer.collector_cpu.store(current_home(), Ordering::Relaxed);
            tracer.collector_nap.store(nap, Ordering::Release);
            std::thread::park_timeout(len);
            tracer.collector_nap.store(NAP_NONE, Ordering::Relaxed);
        }
    }
}

impl Collector {
    /// Collects newly published records from every thread; returns how many.
    fn poll(&mut self) -> usize {
        // Pick up threads that registered since the last poll; retire threads that
        // have ended and whose chains are fully read.
        let buffers: Vec<_> = {
            let reg = self.tracer.registry.lock().unwrap_or_else(|e| e.into_inner());
            reg.buffers[self.cursors.len().min(reg.buffers.len())..].to_vec()
        };
        self.cursors.extend(buffers.into_iter().map(ThreadCursor::new));
        let now = Instant::now();
        let mut busy = 0;
        let mut n = 0;
        let mut i = 0;
        while i < self.cursors.len() {
            // Read liveness before polling: if the thread was gone already, this
            // poll sees all it ever wrote.
            let dead = !self.cursors[i].buffer.is_alive();
            let got = self.cursors[i].poll(&mut self.pending);
            n += got;
            if got > 0 {
                self.cursors[i].last_busy = Some(now);
            }
            if self.cursors[i].last_busy.is_some_and(|t| now.duration_since(t) < BUSY_WINDOW) {
                busy += 1;
            }
            if dead {
                // Order-preserving removal from both lists keeps the invariant the
                // sync above relies on: cursors mirror a prefix of the registry.
                let cur = self.cursors.remove(i);
                let mut reg = self.tracer.registry.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(pos) = reg.buffers.iter().position(|b| std::sync::Arc::ptr_eq(b, &cur.buffer)) {
                    let b = reg.buffers.remove(pos);
                    reg.retired.add(&b.counters);
                    self.tracer.writing_threads.store(reg.buffers.len(), Ordering::Relaxed);
                }
                continue;
            }
            i += 1;
        }
        self.tracer.busy_threads.store(busy, Ordering::Relaxed);
        let orphans = std::mem::take(&mut *self.tracer.orphans.lock().unwrap_or_else(|e| e.into_inner()));
        if !orphans.is_empty() {
            let len = orphans.len();
            let chunk = Chunk::from_records(orphans, len * SLOT_BYTES, &self.tracer.budget);
            // A chunk built from records is sealed and fully published.
            if let Some(r) = chunk.claim(len) {
                self.pending.push_back(r);
                n += len;
            }
        }
        // Records a thread claimed for the exporter's direct submitter, which
        // refused them (rare: the lock is uncontended).
        let handed_back =
            self.tracer.handed_back.lock().unwrap_or_else(|e| e.into_inner()).as_mut().map(std::mem::take);
        for r in handed_back.into_iter().flatten() {
            n += r.len();
            self.pending.push_back(r);
        }
        self.pending_len += n;
        self.round += n;
        if n > 0 && self.oldest.is_none() {
            self.oldest = Some(Instant::now());
        }
        n
    }

    /// Waits (up to [`HANDOFF_WAIT`]) until no thread is between claiming
    /// records for the direct submitter and submitting or handing them back.
    /// A hand-over takes microseconds; a thread preempted in one, longer.
    fn wait_for_handoffs(&self) {
        let deadline = Instant::now() + HANDOFF_WAIT;
        while self.tracer.handoffs_in_flight.load(Ordering::SeqCst) != 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(20));
        }
    }

    /// Exports full batches, and with `drain` everything pending.
    fn export_ready(&mut self, drain: bool) {
        loop {
            let due = self.oldest.is_some_and(|t| t.elapsed() >= self.cfg.schedule_delay);
            if self.pending_len == 0 || !(drain || due || self.pending_len >= self.cfg.max_batch_spans) {
                return;
            }
            let batch = self.cut_batch();
            self.export(batch);
            if self.pending_len == 0 {
                self.oldest = None;
            }
            if !drain {
                // A flush or shutdown is handled at the top of the loop: with
                // spans arriving as fast as a slow exporter takes them, this
                // loop would otherwise never end and the flush never complete.
                if self.tracer.flush_or_shutdown_pending() {
                    return;
                }
                // Pick up what arrived while exporting before deciding again, so
                // a slow exporter still gets full batches.
                self.poll();
            }
        }
    }

    fn cut_batch(&mut self) -> SpanBatch {
        let mut ranges = Vec::new();
        let mut n = 0;
        while n < self.cfg.max_batch_spans {
            let Some(mut r) = self.pending.pop_front() else {
                break;
            };
            let want = self.cfg.max_batch_spans - n;
            if r.len() > want {
                let front = r.split_front(want);
                self.pending.push_front(r);
                r = front;
            }
            n += r.len();
            ranges.push(r);
        }
        self.pending_len -= n;
        SpanBatch::new(ranges, self.tracer.resource.clone(), self.tracer.clock.anchor())
    }

    fn export(&mut self, batch: SpanBatch) {
        if self.tracer.final_stats.get().is_some() {
            return; // shutdown timed out and froze the books
        }
        let settlement = Settlement::new(self.tracer, batch.len() as u64);
        self.tracer.out.batches.fetch_add(1, Ordering::Relaxed);
        let exporter = &mut self.exporter;
        // A panicking exporter drops the settlement while unwinding, which counts
        // the batch as failed.
        let _ = catch_unwind(AssertUnwindSafe(|| exporter.submit(batch, settlement)));
    }

    fn guarded(&mut self, f: impl FnOnce(&mut dyn SpanExporter) -> crate::export::ExportResult) {
        let exporter = &mut *self.exporter;
        let _ = catch_unwind(AssertUnwindSafe(|| f(exporter)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nap_thresholds_are_low_only_while_the_collector_has_a_cpu() {
        let mib = 1 << 20;
        // The default budget, one busy thread on two CPUs: 512 KiB / 2 MiB.
        assert_eq!(nap_thresholds(32 * mib, 1, 2), (mib / 2, 2 * mib));
        // As many busy threads as CPUs, or more: 1/16 and 1/8 of the budget.
        assert_eq!(nap_thresholds(32 * mib, 2, 2), (2 * mib, 4 * mib));
        assert_eq!(nap_thresholds(32 * mib, 64, 2), (2 * mib, 4 * mib));
        // A small budget keeps its fractions even with a CPU to spare.
        assert_eq!(nap_thresholds(4 * mib, 1, 2), (mib / 4, mib / 2));
        // No busy thread yet (the collector's first rounds): low.
        assert_eq!(nap_thresholds(32 * mib, 0, 1), (mib / 2, 2 * mib));
    }

    #[test]
    fn a_thread_on_another_cpu_wakes_the_collector_later_only_when_every_cpu_is_busy() {
        let mib = 1 << 20;
        let limit = 32 * mib;
        // Every CPU busy: 4 MiB from the collector's CPU, 6 MiB from another.
        assert!(wakes_collector(4 * mib + 1, limit, 4, 2, Some(true)));
        assert!(!wakes_collector(4 * mib + 1, limit, 4, 2, Some(false)));
        assert!(!wakes_collector(6 * mib, limit, 4, 2, Some(false)));
        assert!(wakes_collector(6 * mib + 1, limit, 4, 2, Some(false)));
        // Unknown CPU (a thread's exit): the plain threshold.
        assert!(wakes_collector(4 * mib + 1, limit, 4, 2, None));
        assert!(!wakes_collector(4 * mib, limit, 4, 2, None));
        // A CPU to spare: the collector's CPU may have no producer at all.
        assert!(wakes_collector(2 * mib + 1, limit, 1, 2, Some(false)));
        assert!(!wakes_collector(2 * mib, limit, 1, 2, Some(true)));
    }

    /// Threads that hold a buffer but stopped writing (a pool's idle workers)
    /// stop counting as busy once [`BUSY_WINDOW`] has passed; a writing thread
    /// counts.
    #[test]
    fn only_threads_that_write_lately_count_as_busy() {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let exporter = crate::InMemoryExporter::new();
        let tracer = crate::builder().exporter(exporter.clone()).log_at_shutdown(false).install().unwrap();
        let shared = crate::tracer::global().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let spawn = |writes: bool| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                drop(crate::Span::root("once"));
                while !stop.load(Ordering::Relaxed) {
                    if writes {
                        drop(crate::Span::root("again"));
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        };
        let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !cond() {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        let idle: Vec<_> = (0..3).map(|_| spawn(false)).collect();
        wait_for("three threads with buffers", &|| shared.writing_threads.load(Ordering::Relaxed) == 3);
        // The flush has the collector take their spans: busy for a moment,
        // then not.
        tracer.force_flush(Duration::from_secs(5)).unwrap();
        assert_eq!(exporter.spans().len(), 3);
        wait_for("the idle threads to stop counting as busy", &|| shared.busy_threads.load(Ordering::Relaxed) == 0);
        let writer = spawn(true);
        wait_for("the writing thread to count as busy", &|| shared.busy_threads.load(Ordering::Relaxed) == 1);
        // It stays the only busy one while the idle threads keep their buffers
        // (it may drop out for a moment itself, if descheduled that long).
        std::thread::sleep(BUSY_WINDOW * 2);
        assert!(shared.busy_threads.load(Ordering::Relaxed) <= 1);
        assert_eq!(shared.writing_threads.load(Ordering::Relaxed), 4);
        stop.store(true, Ordering::Relaxed);
        for t in idle.into_iter().chain([writer]) {
            t.join().unwrap();
        }
        tracer.shutdown(Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn the_quiet_nap_outlasts_a_tick_only_when_every_cpu_is_busy() {
        assert_eq!(quiet_nap(1, 2), QUIET_POLL);
        assert_eq!(quiet_nap(2, 2), QUIET_POLL_NO_SPARE_CPU);
        assert!(QUIET_POLL_NO_SPARE_CPU > Duration::from_millis(10), "longer than a 100 Hz tick");
    }

    #[test]
    fn a_busy_round_keeps_the_naps_short_only_with_a_cpu_to_spare() {
        let mib = 1 << 20;
        // Little buffered, but a full chunk's worth came in the last round.
        assert!(takes_short_nap(0, STEADY_ROUND_RECORDS, 32 * mib, 1, 2));
        assert!(!takes_short_nap(0, STEADY_ROUND_RECORDS - 1, 32 * mib, 1, 2));
        // Threads use every CPU: only the buffered bytes count.
        assert!(!takes_short_nap(0, 100_000, 32 * mib, 2, 2));
        assert!(takes_short_nap(2 * mib + 1, 0, 32 * mib, 2, 2));
        // Over the threshold, short naps whatever the round.
        assert!(takes_short_nap(mib, 0, 32 * mib, 1, 2));
    }
}
