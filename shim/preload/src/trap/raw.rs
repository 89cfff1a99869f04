//! Signal-mask and signal-action system calls made directly (no libc, no
//! errno, no interposed symbol): usable in the SIGSYS handler.

use kvmng::sys::raw6;

/// The kernel's sigset: 64 bits on x86_64.
const KERNEL_SIGSET_SIZE: u64 = 8;

/// The first 64 bits of a glibc sigset (the kernel's part).
fn kernel_bits(set: &libc::sigset_t) -> u64 {
    // SAFETY: a sigset_t is at least 8 bytes of plain bits, 8-aligned.
    unsafe { core::ptr::read((set as *const libc::sigset_t).cast::<u64>()) }
}

fn rt_sigprocmask(how: i32, set: Option<u64>) -> u64 {
    let mut old: u64 = 0;
    let set_ptr = set.as_ref().map_or(0, |s| s as *const u64 as u64);
    // SAFETY: the kernel reads 8 bytes from `set_ptr` (or nothing) and
    // writes 8 bytes into `old`, both on this frame.
    unsafe {
        raw6(
            libc::SYS_rt_sigprocmask,
            how as u64,
            set_ptr,
            &mut old as *mut u64 as u64,
            KERNEL_SIGSET_SIZE,
            0,
            0,
        )
    };
    old
}

/// `sigprocmask(how, set)` for the calling thread; returns the old mask.
pub fn sigprocmask(how: i32, set: Option<&libc::sigset_t>) -> u64 {
    rt_sigprocmask(how, set.map(kernel_bits))
}

/// Sets the calling thread's mask to `old` (from [`sigprocmask`]).
pub fn sigprocmask_set(old: u64) {
    rt_sigprocmask(libc::SIG_SETMASK, Some(old));
}

/// Blocks every signal for its lifetime (SIGKILL and SIGSTOP excepted, as
/// the kernel ignores them), then restores the mask.
pub struct BlockAll(u64);

impl BlockAll {
    /// Blocks everything.
    pub fn new() -> BlockAll {
        BlockAll(rt_sigprocmask(libc::SIG_SETMASK, Some(!0)))
    }
}

impl Drop for BlockAll {
    fn drop(&mut self) {
        sigprocmask_set(self.0);
    }
}

/// The kernel's `struct sigaction` on x86_64.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Sets `sig` to its default action, unblocks it and sends it to the
/// calling thread: the process ends as the default action says (SIGSYS:
/// terminated with a core dump). Exits with 128 + `sig` if it somehow
/// survives.
pub fn die_of(sig: i32) -> ! {
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: the kernel reads one struct sigaction from this frame; SIG_DFL
    // needs no restorer. tgkill and exit_group pass no memory.
    unsafe {
        raw6(
            libc::SYS_rt_sigaction,
            sig as u64,
            &default as *const KernelSigaction as u64,
            0,
            KERNEL_SIGSET_SIZE,
            0,
            0,
        );
        rt_sigprocmask(libc::SIG_UNBLOCK, Some(1u64 << (sig - 1)));
        let pid = raw6(libc::SYS_getpid, 0, 0, 0, 0, 0, 0);
        let tid = raw6(libc::SYS_gettid, 0, 0, 0, 0, 0, 0);
        raw6(
            libc::SYS_tgkill,
            pid as u64,
            tid as u64,
            sig as u64,
            0,
            0,
            0,
        );
        raw6(libc::SYS_exit_group, 128 + sig as u64, 0, 0, 0, 0, 0);
    }
    // exit_group does not return.
    #[allow(clippy::empty_loop)]
    loop {}
}
