//! Holding vCPUs out of guest mode while a multi-slot memory map changes.
//!
//! Only `kvmng_memory_map()` with more than one region closes the gate: a
//! single region is one `KVM_SET_USER_MEMORY_REGION2`, which KVM already
//! applies atomically for running vCPUs (see [`super::memmap`]).
//!
//! A vCPU thread marks itself `in_run` before it enters KVM_RUN and checks
//! the gate after; the updater closes the gate and then waits until no
//! thread is `in_run`, kicking each one with the kick signal so that its
//! KVM_RUN returns EINTR. The sequentially consistent order of "mark, then
//! check" against "close, then scan" means a thread either sees the gate
//! closed, or is seen in run and kicked; the updater kicks again until the
//! thread has left, so a kick consumed just before KVM_RUN is not lost.
//!
//! The kick always reaches KVM_RUN, whatever mask the program runs with:
//! * a mask given with `KVM_SET_SIGNAL_MASK` through the library reaches
//!   KVM without the kick signal ([`kvm_mask_without_kick`]);
//! * without one, KVM_RUN runs with the thread's mask, and the run loop
//!   unblocks the kick around KVM_RUN when the thread blocks it (one
//!   `rt_sigprocmask` per run, restored after).
//!
//! A kick that stays pending (blocked in the thread outside KVM_RUN) is
//! taken with `rt_sigtimedwait` before the next entry, so it never ends a
//! later KVM_RUN. The run loop absorbs an EINTR that a kick caused and
//! re-enters once the gate opens. A program's own signal landing in that
//! same window is absorbed with it only if its handler already ran (a
//! pending `immediate_exit` still ends the re-entered run at once; a signal
//! that is still pending ends it too).

use super::binding::{ThreadBinding, THREADS};
use super::ioregion::{self, Resume};
use crate::errno::Errno;
use crate::sys::{self, sig_bit};
use core::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Once;

/// 1 while a multi-slot memory-map update is in progress.
static CLOSED: AtomicU32 = AtomicU32::new(0);
/// Counts closings: a KVM_RUN that returns EINTR while the generation
/// moved was (possibly) kicked, and is re-entered.
static GENERATION: AtomicU32 = AtomicU32::new(0);

static SIGNAL_ONCE: Once = Once::new();
static KICK_SIGNAL: AtomicU32 = AtomicU32::new(0);

/// How long the updater lets a kicked thread leave KVM_RUN before it kicks
/// it again.
const KICK_INTERVAL_NS: u64 = 100_000;

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

/// Installs the (empty) kick handler once. KVM_RUN answers a signal with
/// EINTR whatever SA_RESTART says; SA_RESTART keeps a late kick from
/// interrupting any other system call of the thread. Called when the
/// emulation starts.
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
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, core::ptr::null_mut());
        }
    });
}

/// The signal mask a `KVM_SET_SIGNAL_MASK` of the program's `mask` gives
/// KVM: the same mask with the kick signal let through.
pub fn kvm_mask_without_kick(mask: u64) -> u64 {
    mask & !sig_bit(kick_signal())
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
        let _ = sys::futex(&CLOSED, libc::FUTEX_WAIT, 1);
    }
}

/// Takes every kick still pending for the calling thread (blocked in its
/// mask), so that none ends a later KVM_RUN.
fn take_pending_kicks(me: &ThreadBinding) {
    if me.kicked.swap(0, SeqCst) == 0 {
        return;
    }
    let bit = sig_bit(kick_signal());
    while sys::take_pending_signal(bit).is_ok() {}
}

/// Closes the gate for the life of the guard and holds every vCPU thread
/// (other than the caller) out of KVM_RUN.
pub struct Closed(());

impl Closed {
    /// Closes the gate and waits until no other thread is in KVM_RUN. The
    /// wait ends: every kick reaches KVM_RUN (see the module's text), and a
    /// thread that no longer exists is not waited for.
    pub fn close() -> Closed {
        CLOSED.store(1, SeqCst);
        GENERATION.fetch_add(1, SeqCst);
        let me = sys::gettid();
        loop {
            let mut waiting = false;
            for slot in THREADS.iter().take(super::binding::high_water()) {
                let tid = slot.tid.load(SeqCst);
                if tid == 0 || tid == me || slot.in_run.load(SeqCst) == 0 {
                    continue;
                }
                slot.kicked.store(1, SeqCst);
                if sys::tgkill(tid, kick_signal()) == Err(Errno(libc::ESRCH)) {
                    continue;
                }
                waiting = true;
            }
            if !waiting {
                break;
            }
            sys::sleep_ns(KICK_INTERVAL_NS);
        }
        Closed(())
    }
}

impl Drop for Closed {
    fn drop(&mut self) {
        CLOSED.store(0, SeqCst);
        let _ = sys::futex(&CLOSED, libc::FUTEX_WAKE, i32::MAX as u32);
    }
}

/// KVM_RUN on `fd`, with the kick signal deliverable inside it: when the
/// vCPU has no KVM signal mask from the program, the thread's own mask
/// applies, and the kick is unblocked for the call if the thread blocks it.
fn kvm_run(me: &ThreadBinding, fd: i32) -> Result<i64, Errno> {
    let reblock = if me.io.kvm_mask_set() {
        false
    } else {
        let bit = sig_bit(kick_signal());
        sys::sigprocmask(libc::SIG_UNBLOCK, bit).is_ok_and(|old| old & bit != 0)
    };
    // SAFETY: KVM_RUN takes no argument; the kernel writes the vCPU's
    // kvm_run page, which the program mapped.
    let r = unsafe { sys::ioctl(fd, kvmng_abi::ioctls::KVM_RUN, 0) };
    if reblock {
        let _ = sys::sigprocmask(libc::SIG_BLOCK, sig_bit(kick_signal()));
    }
    r
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
        take_pending_kicks(me);
        let generation = GENERATION.load(SeqCst);
        if !enter(me) {
            wait_open();
            continue;
        }
        let r = kvm_run(me, fd);
        leave(me);
        if r == Err(Errno(libc::EINTR))
            && (GENERATION.load(SeqCst) != generation || me.kicked.load(SeqCst) != 0)
        {
            wait_open();
            continue;
        }
        if r.is_ok() && ioregion::claim_exit(me) {
            continue;
        }
        return r;
    }
}
