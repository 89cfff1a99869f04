//! Raw system calls, made with the `syscall` instruction itself.
//!
//! Nothing here goes through libc: no errno is touched (the SIGSYS trap
//! handler relies on that) and no interposed symbol such as `ioctl` can be
//! re-entered (the preload shim relies on that).

use crate::errno::{Errno, SysResult};
use core::arch::asm;

/// Issues syscall `nr` with six arguments and returns the raw kernel value.
///
/// # Safety
/// The caller must uphold whatever the syscall requires of its arguments
/// (pointers valid for what the kernel reads or writes through them, fds
/// that the caller owns for the kernel to close, ...).
#[inline]
pub unsafe fn raw6(nr: i64, a0: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let ret: i64;
    // SAFETY: the x86_64 syscall ABI: number in rax, arguments in rdi, rsi,
    // rdx, r10, r8, r9; rcx and r11 are clobbered; the result is in rax.
    // The caller vouches for the arguments.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr => ret,
            in("rdi") a0,
            in("rsi") a1,
            in("rdx") a2,
            in("r10") a3,
            in("r8") a4,
            in("r9") a5,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        );
    }
    ret
}

/// [`raw6`] with the result split into value and errno.
///
/// # Safety
/// As for [`raw6`].
#[inline]
pub unsafe fn syscall6(nr: i64, a0: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> SysResult {
    // SAFETY: forwarded; the caller vouches for the arguments.
    Errno::result(unsafe { raw6(nr, a0, a1, a2, a3, a4, a5) })
}

/// `ioctl(fd, cmd, arg)` as a raw syscall.
///
/// # Safety
/// `arg` must be what `cmd` expects (for pointer arguments: valid for the
/// reads and writes the kernel makes, or deliberately invalid to get EFAULT).
#[inline]
pub unsafe fn ioctl(fd: i32, cmd: u64, arg: u64) -> SysResult {
    // SAFETY: forwarded; the caller vouches for `arg`.
    unsafe { syscall6(libc::SYS_ioctl, fd as u64, cmd, arg, 0, 0, 0) }
}

/// `close(fd)` as a raw syscall.
pub fn close(fd: i32) -> SysResult {
    // SAFETY: closing an fd affects no memory; the caller owns `fd`.
    unsafe { syscall6(libc::SYS_close, fd as u64, 0, 0, 0, 0, 0) }
}

/// `fcntl(fd, cmd, arg)` as a raw syscall, for integer arguments.
pub fn fcntl(fd: i32, cmd: i32, arg: u64) -> SysResult {
    // SAFETY: only integer commands (F_GETFL, F_DUPFD_CLOEXEC, ...) are
    // used with this helper; no memory is passed.
    unsafe { syscall6(libc::SYS_fcntl, fd as u64, cmd as u64, arg, 0, 0, 0) }
}

/// `dup3(old, new, O_CLOEXEC)`: `new` becomes a close-on-exec duplicate of
/// `old`, replacing what `new` was; it needs no free fd.
pub fn dup3_cloexec(old: i32, new: i32) -> SysResult {
    // SAFETY: dup3 affects only the fd table; the caller owns `new`.
    unsafe {
        syscall6(
            libc::SYS_dup3,
            old as u64,
            new as u64,
            libc::O_CLOEXEC as u64,
            0,
            0,
            0,
        )
    }
}

/// A close-on-exec, non-blocking signalfd for the signals of `set`: it is
/// readable while one of them is pending, and reading it is not needed.
pub fn signalfd(set: u64) -> Result<i32, Errno> {
    // SAFETY: signalfd4 reads the 8-byte set from this frame.
    unsafe {
        syscall6(
            libc::SYS_signalfd4,
            -1i64 as u64,
            &set as *const u64 as u64,
            8,
            (libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) as u64,
            0,
            0,
        )
    }
    .map(|fd| fd as i32)
}

/// The calling thread's kernel thread id.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { raw6(libc::SYS_gettid, 0, 0, 0, 0, 0, 0) as i32 }
}

/// The process id.
pub fn getpid() -> i32 {
    // SAFETY: getpid has no arguments and cannot fail.
    unsafe { raw6(libc::SYS_getpid, 0, 0, 0, 0, 0, 0) as i32 }
}

/// `tgkill(getpid(), tid, sig)`.
pub fn tgkill(tid: i32, sig: i32) -> SysResult {
    // SAFETY: tgkill sends a signal; no memory is passed.
    unsafe {
        syscall6(
            libc::SYS_tgkill,
            getpid() as u64,
            tid as u64,
            sig as u64,
            0,
            0,
            0,
        )
    }
}

/// The bit of signal `sig` in a kernel `sigset_t` (64 bits on x86_64).
pub const fn sig_bit(sig: i32) -> u64 {
    1u64 << ((sig - 1) as u32)
}

/// `rt_sigprocmask(how, set, &old)` for the calling thread, with the
/// kernel's 8-byte mask; returns the mask as it was before.
pub fn sigprocmask(how: i32, set: u64) -> Result<u64, Errno> {
    let mut old: u64 = 0;
    // SAFETY: the kernel reads 8 bytes from `set` and writes 8 into `old`,
    // both on this frame.
    unsafe {
        syscall6(
            libc::SYS_rt_sigprocmask,
            how as u64,
            &set as *const u64 as u64,
            &mut old as *mut u64 as u64,
            8,
            0,
            0,
        )
    }?;
    Ok(old)
}

/// Dequeues one pending signal of `set` without waiting (`rt_sigtimedwait`
/// with a zero timeout): its number, or `EAGAIN` when none is pending.
pub fn take_pending_signal(set: u64) -> SysResult {
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the kernel reads the 8-byte set and the timespec from this
    // frame; no siginfo is requested.
    unsafe {
        syscall6(
            libc::SYS_rt_sigtimedwait,
            &set as *const u64 as u64,
            0,
            &zero as *const libc::timespec as u64,
            8,
            0,
            0,
        )
    }
}

/// `futex(word, op | FUTEX_PRIVATE_FLAG, val)` with no timeout.
pub fn futex(word: &core::sync::atomic::AtomicU32, op: i32, val: u32) -> SysResult {
    // SAFETY: futex on a live atomic word; no timeout is passed.
    unsafe {
        syscall6(
            libc::SYS_futex,
            word.as_ptr() as u64,
            (op | libc::FUTEX_PRIVATE_FLAG) as u64,
            val as u64,
            0,
            0,
            0,
        )
    }
}

/// Sleeps `ns` nanoseconds (less than a second); an interruption ends it.
pub fn sleep_ns(ns: u64) {
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: ns as i64,
    };
    // SAFETY: nanosleep reads `ts`; no remaining time is requested.
    let _ = unsafe {
        syscall6(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_syscalls_report_errno_without_libc() {
        assert_eq!(getpid(), std::process::id() as i32);
        assert_eq!(close(-1), Err(Errno(libc::EBADF)));
        assert_eq!(fcntl(-1, libc::F_GETFL, 0), Err(Errno(libc::EBADF)));
        // SAFETY: an invalid fd; no memory is touched.
        assert_eq!(unsafe { ioctl(-1, 0, 0) }, Err(Errno(libc::EBADF)));
    }

    #[test]
    fn a_blocked_signal_is_taken_without_being_delivered() {
        let sig = libc::SIGRTMIN() + 3;
        let bit = sig_bit(sig);
        let before = sigprocmask(libc::SIG_BLOCK, bit).unwrap();
        assert_eq!(take_pending_signal(bit), Err(Errno(libc::EAGAIN)));
        tgkill(gettid(), sig).unwrap();
        assert_eq!(take_pending_signal(bit), Ok(i64::from(sig)));
        assert_eq!(take_pending_signal(bit), Err(Errno(libc::EAGAIN)));
        assert_eq!(sigprocmask(libc::SIG_SETMASK, before).unwrap() & bit, bit);
    }
}
