//! Asks the kernel to run the collector thread promptly when it wakes.
//!
//! The collector sleeps most of the time and runs for microseconds. On a machine
//! with more busy application threads than cores, the default scheduler slice
//! lets it wait several milliseconds for a CPU after waking — and every
//! millisecond a busy program buffers megabytes of spans, which the adaptive
//! stage then has to shed. Linux 6.12+ (EEVDF) lets a normal, unprivileged
//! thread ask for a short slice (`sched_setattr` with `sched_runtime`): it then
//! gets earlier deadlines and is picked soon after it wakes, while its share of
//! CPU stays that of any normal thread. Older kernels ignore or refuse it, which
//! is fine.

/// Requests a 100 µs scheduler slice for the calling thread. Best effort.
#[cfg(target_os = "linux")]
pub(crate) fn request_short_slice() {
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: 0, // SCHED_OTHER
        sched_flags: 0,
        sched_nice: 0,
        sched_priority: 0,
        sched_runtime: 100_000,
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: sched_setattr reads `size` bytes from a valid, initialised struct;
    // pid 0 is the calling thread. The result is deliberately ignored.
    unsafe {
        libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0);
    }
}

/// No-op elsewhere.
#[cfg(not(target_os = "linux"))]
pub(crate) fn request_short_slice() {}
