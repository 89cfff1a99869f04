//! The clock a worker times its samples with: the monotonic clock
//! (nanoseconds), or the TSC read directly (`--instructions`). Under QEMU
//! TCG with `-icount shift=0` the guest's TSC is QEMU's instruction
//! counter (one tick per guest instruction), so a TSC difference is the
//! number of instructions the machine executed in between, whatever the
//! host's load: that is how `make vm-bench` counts instructions.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set in a worker's environment to `tsc` to time with the TSC.
pub const CLOCK_ENV: &str = "KVMNG_BENCH_CLOCK";

static TSC: AtomicBool = AtomicBool::new(false);

/// Makes [`now`] read the TSC (`true`) or the monotonic clock.
pub fn use_tsc(on: bool) {
    TSC.store(on, Ordering::Relaxed);
}

/// Whether [`now`] reads the TSC.
pub fn is_tsc() -> bool {
    TSC.load(Ordering::Relaxed)
}

/// The TSC.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC reads a register and has no memory effects; every
    // x86_64 CPU has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The monotonic clock, ns.
#[inline(always)]
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec on the stack.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A reading of the worker's clock.
#[inline(always)]
pub fn now() -> u64 {
    if is_tsc() {
        rdtsc()
    } else {
        monotonic_ns()
    }
}

/// Ticks since `start` (a [`now`] reading).
#[inline(always)]
pub fn since(start: u64) -> u64 {
    now().wrapping_sub(start)
}

/// Iterations of [`calibrate`]'s loop.
pub const CALIBRATION_LOOPS: u64 = 50_000;
/// Instructions per iteration of that loop (`dec`, `jnz`).
pub const CALIBRATION_PER_LOOP: u64 = 2;

/// TSC ticks over a loop of exactly [`CALIBRATION_LOOPS`] ×
/// [`CALIBRATION_PER_LOOP`] instructions (plus the few around it). Under
/// `-icount shift=0` it reads close to that number; anywhere else it is
/// the TSC's frequency times the loop's time.
pub fn calibrate() -> u64 {
    let t = rdtsc();
    // SAFETY: a register-only loop: decrements rcx to zero.
    unsafe {
        core::arch::asm!(
            "2:",
            "dec {n}",
            "jnz 2b",
            n = inout(reg) CALIBRATION_LOOPS => _,
            options(nomem, nostack),
        );
    }
    rdtsc().wrapping_sub(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_clocks_advance() {
        use_tsc(false);
        let a = now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(since(a) >= 2_000_000);
        assert!(!is_tsc());
        let t = rdtsc();
        assert!(rdtsc() >= t);
        assert!(calibrate() > 0);
    }
}
