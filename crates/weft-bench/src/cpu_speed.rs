//! The machine's effective core clock at the moment of a run.
//!
//! The cloud VMs these benchmarks run on change speed by 2–3× from one process
//! to the next (the same binary's nested workload has measured 56 and 178 ns
//! per span minutes apart). Each run measures the clock first and reports it
//! (`cpu_ghz`), so a reader can tell a slower clock from slower code. On the
//! benchmark VM it stayed at 2.6–3.1 GHz through fast and slow runs alike: the
//! swings there are stalls, not frequency. Peers in one `sdk` command take
//! turns, so their ratios hold whatever the machine's state.

use std::time::Instant;

/// Dependent adds timed: one add per cycle on every x86-64 core, so adds per
/// nanosecond is the clock the thread actually got. The best of five 2 ms
/// samples, so that a preemption during one does not read as a slow clock.
///
/// The adds take their operand from a register: newer Intel cores fold a
/// chain of adds of an immediate at register renaming, several per cycle (an
/// Intel Xeon KVM guest read 13–16 "GHz" that way), but not adds of a register.
#[cfg(target_arch = "x86_64")]
pub fn effective_ghz() -> Option<f64> {
    (0..5).filter_map(|_| sample_ghz()).reduce(f64::max)
}

#[cfg(target_arch = "x86_64")]
fn sample_ghz() -> Option<f64> {
    const ROUNDS: u64 = 1_200_000;
    let t = Instant::now();
    let mut x: u64 = 0;
    let mut n = ROUNDS;
    // SAFETY: register arithmetic and a local branch only; no memory access.
    unsafe {
        std::arch::asm!(
            "2:",
            "add {x}, {one}",
            "add {x}, {one}",
            "add {x}, {one}",
            "add {x}, {one}",
            "dec {n}",
            "jnz 2b",
            x = inout(reg) x,
            n = inout(reg) n,
            one = in(reg) std::hint::black_box(1u64),
            options(nomem, nostack),
        );
    }
    let ns = t.elapsed().as_nanos() as f64;
    std::hint::black_box((x, n));
    (ns > 0.0).then(|| (ROUNDS * 4) as f64 / ns)
}

/// Not measured on other architectures (their add latency differs).
#[cfg(not(target_arch = "x86_64"))]
pub fn effective_ghz() -> Option<f64> {
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn measures_a_plausible_clock() {
        if let Some(ghz) = super::effective_ghz() {
            // Anything from a throttled VM to a fast desktop.
            assert!((0.2..10.0).contains(&ghz), "{ghz} GHz");
        }
    }
}
