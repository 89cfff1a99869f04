//! Cheap time stamps for the census: the TSC, converted to nanoseconds with
//! a ratio calibrated against CLOCK_MONOTONIC since the library was set up.
//! (x86_64 machines that run KVM have an invariant TSC.)

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

static BASE_TSC: AtomicU64 = AtomicU64::new(0);
static BASE_NS: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC tick as 32.32 fixed point, once calibrated over at
/// least [`SETTLED_NS`]; 0 before.
static RATIO: AtomicU64 = AtomicU64::new(0);

/// A calibration over this long is kept for good.
const SETTLED_NS: u64 = 200_000_000;
/// The shortest span a ratio is computed over.
const MIN_SPAN_NS: u64 = 1_000_000;

/// The time stamp counter.
#[inline]
pub fn ticks() -> u64 {
    // SAFETY: rdtsc reads a counter; it has no memory effects and every
    // x86_64 CPU has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// CLOCK_MONOTONIC in nanoseconds (vDSO).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Starts the calibration (at set-up, and in a fork child).
pub fn start() {
    BASE_TSC.store(ticks(), Relaxed);
    BASE_NS.store(monotonic_ns(), Relaxed);
    RATIO.store(0, Relaxed);
}

fn ratio() -> u64 {
    let kept = RATIO.load(Relaxed);
    if kept != 0 {
        return kept;
    }
    let (tsc0, ns0) = (BASE_TSC.load(Relaxed), BASE_NS.load(Relaxed));
    let (mut tsc1, mut ns1) = (ticks(), monotonic_ns());
    while ns1.saturating_sub(ns0) < MIN_SPAN_NS {
        core::hint::spin_loop();
        tsc1 = ticks();
        ns1 = monotonic_ns();
    }
    let span_ns = ns1 - ns0;
    let span_tsc = tsc1.saturating_sub(tsc0).max(1);
    let r = ((u128::from(span_ns) << 32) / u128::from(span_tsc)) as u64;
    if span_ns >= SETTLED_NS {
        RATIO.store(r, Relaxed);
    }
    r
}

/// Nanoseconds in `ticks` TSC ticks.
pub fn to_ns(ticks: u64) -> u64 {
    ((u128::from(ticks) * u128::from(ratio())) >> 32) as u64
}
