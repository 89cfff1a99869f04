//! Holding vCPUs out of guest mode while a memory map changes.
//!
//! A vCPU thread marks itself `in_run` before it enters KVM_RUN and checks
//! the gate after; the updater closes the gate and then waits until no
//! thread is `in_run`, kicking each one with the kick signal so that its
//! KVM_RUN returns EINTR. The sequentially consistent order of "mark, then
//! check" against "close, then scan" means a thread either sees the gate
//! closed, or is seen in run and kicked. The run loop absorbs an EINTR that
//! coincides with an update (a kick) and re-enters once the gate opens. A
//! program's own signal landing in that same window is absorbed with it; a
//! pending `immediate_exit` still ends the re-entered run at once.

use super::binding::{ThreadBinding, THREADS};
use super::ioregion::{self, Resume};
use crate::errno::Errno;
use crate::sys::{getpid, raw6, syscall6};
use core::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Once;

/// 1 while a memory-map update is in progress.
static CLOSED: AtomicU32 = AtomicU32::new(0);
/// Counts closings: a KVM_RUN that returns EINTR while the generation
/// moved was (possibly) kicked, and is re-entered.
static GENERATION: AtomicU32 = AtomicU32::new(0);
/// Updates that could not hold every vCPU (it never left KVM_RUN).
pub static UNHELD_UPDATES: AtomicU32 = AtomicU32::new(0);

static SIGNAL_ONCE: Once = Once::new();
static KICK_SIGNAL: AtomicU32 = AtomicU32::new(0);

/// How long the updater waits for a vCPU to leave KVM_RUN before it gives
/// up holding it (the thread blocks the kick signal).
const HOLD_TIMEOUT_NS: u64 = 2_000_000_000;
const KICK_INTERVAL_NS: u64 = 1_000_000;

/// The gate's generation (it moves at every closing): a wait that a signal
/// interrupted while it moved may have been kicked, and goes on.
pub fn generation() -> u32 {
    GENERATION.load(SeqCst)
}

/// The kick signal: `KVMNG_KICK_SIGNAL` or `SIGRTMAX - 1`.
pub fn kick_signal() -> i32 {
    KICK_SIGNAL.load(SeqCst) as i32
}

extern "C" fn on_kick(_sig: i32) {}

/// Installs the (empty) kick handler once, without SA_RESTART so that the
/// kick interrupts KVM_RUN. Called when the first vCPU is bound.
pub fn install_kick_handler() {
    SIGNAL_ONCE.call_once(|| {
        let sig = std::env::var("KVMNG_KICK_SIGNAL")
            .ok()
            .and_then(|v| v.parse::<i32>().ok())
            .filter(|s| (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(s))
            .unwrap_or_else(|| libc::SIGRTMAX() - 1);
        KICK_SIGNAL.store(sig as u32, SeqCst);
        // SAFETY: sigaction with a zeroed struct and an empty handler that
        // never unwinds; the old action is not needed.
        unsafe {
            let mut action: libc::sigaction = core::mem::zeroed();
            action.sa_sigaction = on_kick as extern "C" fn(i32) as usize;
            action.sa_flags = 0;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, core::ptr::null_mut());
        }
    });
}

fn futex(word: &AtomicU32, op: i32, val: u32, timeout_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (timeout_ns / 1_000_000_000) as i64,
        tv_nsec: (timeout_ns % 1_000_000_000) as i64,
    };
    let ts_ptr = if timeout_ns == 0 {
        0
    } else {
        &ts as *const libc::timespec as u64
    };
    // SAFETY: futex on a live atomic word; `ts` outlives the call.
    let _ = unsafe {
        syscall6(
            libc::SYS_futex,
            word.as_ptr() as u64,
            (op | libc::FUTEX_PRIVATE_FLAG) as u64,
            val as u64,
            ts_ptr,
            0,
            0,
        )
    };
}

/// Marks the caller in run. Returns false (and unmarks) if the gate is
/// closed; the caller then waits with [`wait_open`] and tries again.
pub fn enter(me: &ThreadBinding) -> bool {
    me.in_run.store(1, SeqCst);
    if CLOSED.load(SeqCst) != 0 {
        me.in_run.store(0, SeqCst);
        return false;
    }
    true
}

/// Marks the caller out of run.
pub fn leave(me: &ThreadBinding) {
    me.in_run.store(0, SeqCst);
}

/// Blocks while an update is in progress.
pub fn wait_open() {
    while CLOSED.load(SeqCst) != 0 {
        futex(&CLOSED, libc::FUTEX_WAIT, 1, 0);
    }
}

fn sleep_ns(ns: u64) {
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: ns as i64,
    };
    // SAFETY: nanosleep reads `ts`; no remaining time is requested.
    unsafe {
        raw6(
            libc::SYS_nanosleep,
            &ts as *const libc::timespec as u64,
            0,
            0,
            0,
            0,
            0,
        )
    };
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe {
        raw6(
            libc::SYS_clock_gettime,
            libc::CLOCK_MONOTONIC as u64,
            &mut ts as *mut libc::timespec as u64,
            0,
            0,
            0,
            0,
        )
    };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Closes the gate for the life of the guard and holds every vCPU thread
/// (other than the caller) out of KVM_RUN.
pub struct Closed(());

impl Closed {
    /// Closes the gate and waits until no other thread is in KVM_RUN.
    pub fn close() -> Closed {
        CLOSED.store(1, SeqCst);
        GENERATION.fetch_add(1, SeqCst);
        let me = crate::sys::gettid();
        let pid = getpid();
        let deadline = monotonic_ns() + HOLD_TIMEOUT_NS;
        loop {
            let mut waiting = false;
            for slot in THREADS.iter() {
                let tid = slot.tid.load(SeqCst);
                if tid == 0 || tid == me || slot.in_run.load(SeqCst) == 0 {
                    continue;
                }
                waiting = true;
                // SAFETY: tgkill sends a signal; no memory is passed.
                unsafe {
                    raw6(
                        libc::SYS_tgkill,
                        pid as u64,
                        tid as u64,
                        kick_signal() as u64,
                        0,
                        0,
                        0,
                    )
                };
            }
            if !waiting {
                break;
            }
            if monotonic_ns() > deadline {
                UNHELD_UPDATES.fetch_add(1, SeqCst);
                break;
            }
            sleep_ns(KICK_INTERVAL_NS / 10);
        }
        Closed(())
    }
}

impl Drop for Closed {
    fn drop(&mut self) {
        CLOSED.store(0, SeqCst);
        futex(&CLOSED, libc::FUTEX_WAKE, i32::MAX as u32, 0);
    }
}

/// The run loop of the emulation: KVM_RUN on `fd` of binding `me`, with
/// kicks absorbed, and exits that are accesses to I/O regions served over
/// their sockets (the guest re-entered without returning).
pub fn run(me: &ThreadBinding, fd: i32) -> Result<i64, Errno> {
    loop {
        if me.io.pending() {
            match ioregion::resume(me) {
                Resume::Done => {}
                Resume::Unclaimed => return Ok(0),
                Resume::Failed(e) => return Err(e),
            }
        }
        let generation = GENERATION.load(SeqCst);
        if !enter(me) {
            wait_open();
            continue;
        }
        // SAFETY: KVM_RUN takes no argument; the kernel writes the vCPU's
        // kvm_run page, which the program mapped.
        let r = unsafe { crate::sys::ioctl(fd, kvmng_abi::ioctls::KVM_RUN, 0) };
        leave(me);
        if r == Err(Errno(libc::EINTR)) && GENERATION.load(SeqCst) != generation {
            wait_open();
            continue;
        }
        if r.is_ok() && ioregion::claim_exit(me) {
            continue;
        }
        return r;
    }
}
