//! Runs a request function on N threads: a fixed number of requests split evenly,
//! or for a fixed time. Every 64th request the leaf span's start+end is timed.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::{RunConfig, Workload};

/// Spans one request creates (root, child, leaf).
pub const SPANS_PER_REQUEST: u64 = 3;
/// Every how many requests the leaf latency is sampled.
pub const SAMPLE_EVERY: u64 = 64;

/// What the producing threads did.
pub struct Driven {
    pub wall: Duration,
    pub requests: u64,
    pub latencies: Vec<u32>,
}

/// `request(measure)` runs one request and returns the leaf's start+end latency in
/// ns when `measure` is set (0 otherwise).
pub fn drive<F>(cfg: &RunConfig, threads: usize, request: F) -> Driven
where
    F: Fn(bool) -> u32 + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let timed = cfg.workload == Workload::Burst;
    let per_thread = cfg.requests / threads as u64;
    let duration = Duration::from_secs_f64(cfg.duration);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let request = request.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut lat =
                    Vec::with_capacity(if timed { 1 << 16 } else { (per_thread / SAMPLE_EVERY + 1) as usize });
                barrier.wait();
                let start = Instant::now();
                let mut n = 0u64;
                loop {
                    if timed {
                        if n % SAMPLE_EVERY == 0 && start.elapsed() >= duration {
                            break;
                        }
                    } else if n == per_thread {
                        break;
                    }
                    let measure = n % SAMPLE_EVERY == 0;
                    let l = request(measure);
                    if measure {
                        lat.push(l);
                    }
                    n += 1;
                }
                (n, lat, start, Instant::now())
            })
        })
        .collect();
    barrier.wait();
    // Wall time is from the first thread's start to the last thread's end, as the
    // threads saw them: the main thread may be scheduled late after the barrier.
    let mut requests = 0;
    let mut latencies = Vec::new();
    let mut first: Option<Instant> = None;
    let mut last: Option<Instant> = None;
    for h in handles {
        let Ok((n, lat, s, e)) = h.join() else { continue };
        requests += n;
        latencies.extend(lat);
        first = Some(first.map_or(s, |f| f.min(s)));
        last = Some(last.map_or(e, |l| l.max(e)));
    }
    let wall = match (first, last) {
        (Some(f), Some(l)) => l.duration_since(f),
        _ => Duration::ZERO,
    };
    Driven { wall, requests, latencies }
}
