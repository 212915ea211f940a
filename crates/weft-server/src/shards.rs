//! Sharded processing and the watermark.
//!
//! Spans are routed by trace ID to N shard threads, each owning its traces, so
//! per-trace work needs no locks across shards. A shard hands its spans to the
//! subscribers — the store's head (its partition for that shard) first of all.
//!
//! The watermark says "every request received before T has been processed". Each
//! request's receive time is registered when it arrives (taken under the same lock
//! as the registry, so times are unique and increasing) and stays registered until
//! every shard has processed its spans and handed them to the subscribers. The
//! publisher computes the oldest registered time (or the clock if none), never lets
//! it move backwards, and notifies every subscriber at a fixed rate. Because a
//! request leaves the registry only after its subscribers saw its spans, a
//! subscriber notified with T never later sees spans received before T.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::admission::Permit;
use crate::metrics::Metrics;

pub use weft_store::StoredSpan;

/// Receives processed spans and watermarks, in an order that keeps the
/// watermark's promise.
pub trait Subscriber: Send + Sync + 'static {
    /// Spans of one request received at `time` (Unix ns), processed by `shard`.
    fn on_spans(&self, shard: usize, time: u64, spans: &[StoredSpan]);
    /// Every request received before `t` (Unix ns) has been processed.
    fn on_watermark(&self, t: u64);
}

/// The registry of requests in flight, by receive time.
#[derive(Debug, Default)]
pub struct InFlight {
    inner: Mutex<InFlightInner>,
}

#[derive(Debug, Default)]
struct InFlightInner {
    times: BTreeMap<u64, u32>,
    last: u64,
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// A request's registration; dropped when all its spans are processed.
#[derive(Debug)]
pub struct Arrival {
    registry: Arc<InFlight>,
    /// Its receive time, Unix ns (unique, increasing).
    pub time: u64,
}

impl InFlight {
    /// Registers a request arriving now.
    pub fn arrive(self: &Arc<Self>) -> Arc<Arrival> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let t = now_nanos().max(g.last + 1);
        g.last = t;
        *g.times.entry(t).or_default() += 1;
        Arc::new(Arrival { registry: self.clone(), time: t })
    }

    /// Registers a replayed request with its original receive time.
    pub fn replayed(self: &Arc<Self>, time: u64) -> Arc<Arrival> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *g.times.entry(time).or_default() += 1;
        g.last = g.last.max(time);
        Arc::new(Arrival { registry: self.clone(), time })
    }

    /// Whether no request is registered (everything received is processed).
    pub fn is_empty(&self) -> bool {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).times.is_empty()
    }

    /// The oldest registered time, or the clock (as a time no later request can
    /// have) if none is registered.
    pub fn low_mark(&self) -> u64 {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match g.times.keys().next() {
            Some(t) => *t,
            None => {
                let t = now_nanos().max(g.last + 1);
                // Later arrivals must be after this mark.
                g.last = t;
                t
            }
        }
    }
}

impl Drop for Arrival {
    fn drop(&mut self) {
        let mut g = self.registry.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = g.times.get_mut(&self.time) {
            *n -= 1;
            if *n == 0 {
                g.times.remove(&self.time);
            }
        }
    }
}

/// One shard's share of a request.
struct Batch {
    spans: Vec<StoredSpan>,
    arrival: Arc<Arrival>,
    _permit: Permit,
}

/// The shards and their subscribers.
pub struct Shards {
    senders: Vec<mpsc::Sender<Batch>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards").field("n", &self.senders.len()).finish()
    }
}

pub use weft_store::head::shard_of;

impl Shards {
    /// Starts `n` shard threads.
    pub fn start(n: usize, metrics: Arc<Metrics>, subscribers: Arc<Vec<Arc<dyn Subscriber>>>) -> Self {
        let mut senders = Vec::new();
        for i in 0..n {
            let (tx, rx) = mpsc::channel::<Batch>();
            let (m, subs) = (metrics.clone(), subscribers.clone());
            let spawned = std::thread::Builder::new().name(format!("weft-shard-{i}")).spawn(move || {
                while let Ok(batch) = rx.recv() {
                    let n = batch.spans.len() as u64;
                    for s in subs.iter() {
                        s.on_spans(i, batch.arrival.time, &batch.spans);
                    }
                    m.spans_processed.fetch_add(n, Ordering::Relaxed);
                    m.shard_queue_spans[i].fetch_sub(n, Ordering::Relaxed);
                    // Dropping the batch releases its budget and, with its last
                    // shard, the request's registration.
                }
            });
            if spawned.is_err() {
                tracing::error!(shard = i, "could not start a shard thread");
            }
            senders.push(tx);
        }
        Shards { senders, metrics }
    }

    /// Routes a request's spans to their shards. The permit is shared out in
    /// proportion to the spans each shard gets.
    pub fn route(&self, spans: Vec<StoredSpan>, arrival: Arc<Arrival>, mut permit: Permit) {
        let n = self.senders.len();
        let total = spans.len().max(1);
        let mut per: Vec<Vec<StoredSpan>> = (0..n).map(|_| Vec::new()).collect();
        for s in spans {
            per[shard_of(&s.trace_id, n)].push(s);
        }
        let bytes = permit.bytes();
        let last_nonempty = per.iter().rposition(|v| !v.is_empty());
        for (i, v) in per.into_iter().enumerate() {
            if v.is_empty() {
                continue;
            }
            let share = if Some(i) == last_nonempty { permit.bytes() } else { bytes * v.len() / total };
            let part = permit.split(share);
            self.metrics.shard_queue_spans[i].fetch_add(v.len() as u64, Ordering::Relaxed);
            let _ = self.senders[i].send(Batch { spans: v, arrival: arrival.clone(), _permit: part });
        }
    }
}

/// Publishes the watermark every `interval` until `stop` resolves.
pub async fn publish_watermarks(
    registry: Arc<InFlight>,
    subscribers: Arc<Vec<Arc<dyn Subscriber>>>,
    metrics: Arc<Metrics>,
    interval: Duration,
    sender: tokio::sync::watch::Sender<u64>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = 0u64;
    loop {
        tick.tick().await;
        let mark = registry.low_mark().max(last);
        last = mark;
        let lag = now_nanos().saturating_sub(mark);
        metrics.watermark_lag_seconds.store(lag / 1000, Ordering::Relaxed);
        for s in subscribers.iter() {
            s.on_watermark(mark);
        }
        // No receiver left is fine: the subscribers above were notified.
        let _ = sender.send(mark);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Budget;

    #[test]
    fn low_mark_is_the_oldest_in_flight_and_later_arrivals_come_after_it() {
        let r = Arc::new(InFlight::default());
        let a = r.arrive();
        let b = r.arrive();
        assert!(b.time > a.time);
        assert_eq!(r.low_mark(), a.time);
        drop(a);
        assert_eq!(r.low_mark(), b.time);
        drop(b);
        let m = r.low_mark();
        let c = r.arrive();
        assert!(c.time > m, "an arrival after a mark is later than it");
    }

    #[test]
    fn shard_choice_is_stable_and_spread() {
        let mut counts = [0usize; 4];
        for i in 0..4000u64 {
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&(i.wrapping_mul(0x9e3779b97f4a7c15)).to_le_bytes());
            let s = shard_of(&id, 4);
            assert_eq!(s, shard_of(&id, 4));
            counts[s] += 1;
        }
        assert!(counts.iter().all(|c| *c > 800), "{counts:?}");
    }

    struct Checker {
        mark: Mutex<u64>,
        seen: std::sync::atomic::AtomicU64,
    }
    impl Subscriber for Checker {
        fn on_spans(&self, _: usize, time: u64, spans: &[StoredSpan]) {
            let mark = *self.mark.lock().unwrap();
            assert!(time >= mark, "spans received at {time} after watermark {mark}");
            self.seen.fetch_add(spans.len() as u64, Ordering::Relaxed);
        }
        fn on_watermark(&self, t: u64) {
            let mut m = self.mark.lock().unwrap();
            assert!(t >= *m, "the watermark moved backwards");
            *m = t;
        }
    }

    #[test]
    fn subscribers_never_see_data_older_than_a_watermark_they_were_given() {
        let metrics = Arc::new(Metrics::new(4));
        let checker = Arc::new(Checker { mark: Mutex::new(0), seen: Default::default() });
        let subs: Arc<Vec<Arc<dyn Subscriber>>> = Arc::new(vec![checker.clone()]);
        let shards = Arc::new(Shards::start(4, metrics.clone(), subs.clone()));
        let registry = Arc::new(InFlight::default());
        let budget = Budget::new(1 << 30, metrics.clone());
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (tx, mut rx) = tokio::sync::watch::channel(0);
        rt.spawn(publish_watermarks(registry.clone(), subs, metrics, Duration::from_millis(1), tx));
        let producers: Vec<_> = (0..4u64)
            .map(|p| {
                let (shards, registry, budget) = (shards.clone(), registry.clone(), budget.clone());
                std::thread::spawn(move || {
                    for i in 0..2000u64 {
                        let arrival = registry.arrive();
                        // Some requests take a while between arrival and routing.
                        if i % 97 == 0 {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        let spans = (0..3u64)
                            .map(|k| {
                                let mut id = [0u8; 16];
                                id[8..].copy_from_slice(&(p * 1_000_000 + i * 10 + k + 1).to_le_bytes());
                                StoredSpan { origin: Arc::default(), trace_id: id, span: bytes::Bytes::new() }
                            })
                            .collect();
                        shards.route(spans, arrival, budget.try_take(100).unwrap());
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while checker.seen.load(Ordering::Relaxed) < 24_000 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(checker.seen.load(Ordering::Relaxed), 24_000);
        // The watermark moves past everything once it is processed.
        let last = registry.arrive().time;
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|m| *m > last)).await.unwrap().unwrap();
        });
        assert_eq!(budget.used(), 0, "every batch's budget returned");
    }
}
