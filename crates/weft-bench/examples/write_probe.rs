//! Write-bandwidth probe: 192-byte writes (a span record's lines in use) at a
//! 400-byte stride (a slot) cycling through rings of 128 KiB to 32 MiB.
//!
//! Shows where the machine's caches end for the access pattern of a thread
//! filling chunk slots: on the benchmark VM the cost per write jumps between 8
//! and 16 MiB, which is why the slot-array pool hands out the array freed last
//! and the collector keeps little in flight (docs/benchmarks.md).
//!
//! `cargo run --release -p weft-bench --example write_probe`

use std::time::Instant;

const WRITE: usize = 192;
const STRIDE: usize = 400;
const WRITES: usize = 3_000_000;

fn main() {
    for ring_kib in [128usize, 512, 1024, 2048, 4096, 8192, 16384, 32768] {
        let size = ring_kib << 10;
        let mut ring = vec![0u8; size];
        let mut best = f64::MAX;
        let mut pos = 0;
        // Best of three passes: the first also pays the page faults.
        for _ in 0..3 {
            let start = Instant::now();
            for _ in 0..WRITES {
                ring[pos..pos + WRITE].fill(7);
                pos += STRIDE;
                if pos + STRIDE > size {
                    pos = 0;
                }
                std::hint::black_box(&ring);
            }
            best = best.min(start.elapsed().as_nanos() as f64 / WRITES as f64);
        }
        println!("{ring_kib:6} KiB ring: {best:5.1} ns per {WRITE}-byte write");
    }
}
