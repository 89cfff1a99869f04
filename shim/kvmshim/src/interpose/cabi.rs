//! The C calling convention of the interposed functions: -1 and errno.

use core::ffi::c_int;
use kvmng::{Errno, SysResult};

/// Sets the caller's errno.
#[inline]
pub fn set_errno(errno: i32) {
    // SAFETY: __errno_location returns the calling thread's errno slot,
    // valid for the life of the thread.
    unsafe { *libc::__errno_location() = errno };
}

/// The C return value of a result: the value, or -1 with errno set.
/// ioctl() returns int: a value is truncated exactly as glibc does.
#[inline]
pub fn c_ret(result: SysResult) -> c_int {
    match result {
        Ok(value) => value as c_int,
        Err(Errno(e)) => {
            set_errno(e);
            -1
        }
    }
}

/// `ioctl(fd, request, arg)` as a raw syscall: never re-enters the hook.
///
/// # Safety
/// `arg` is passed to the kernel as the caller passed it; the kernel checks
/// any pointer it carries.
#[inline]
pub unsafe fn raw_ioctl(fd: c_int, request: u64, arg: u64) -> SysResult {
    // SAFETY: the caller's own arguments, handed to the kernel unchanged.
    unsafe { kvmng::sys::ioctl(fd, request, arg) }
}

/// Runs `f`, turning a panic into `fallback()`: no panic unwinds across the
/// C ABI.
#[inline]
pub fn guard<R>(f: impl FnOnce() -> R, fallback: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => fallback(),
    }
}

/// Runs `f` so that a Rust panic aborts the process instead of unwinding
/// into C, while a forced unwind (asynchronous `pthread_cancel`,
/// `pthread_exit`) passes through, as it passes through C frames. For
/// `extern "C-unwind"` entry points that can block, such as `ioctl` in
/// KVM_RUN: the 6.12 selftests cancel vCPU threads asynchronously there,
/// and `catch_unwind` would catch the forced unwind and abort the process.
///
/// The guard is forgotten when `f` returns, so its check runs only while
/// unwinding (its drop is reached from the landing pad alone): a call
/// that returns pays nothing for it.
#[inline]
pub fn abort_on_panic<R>(f: impl FnOnce() -> R) -> R {
    struct AbortIfPanicking;
    impl Drop for AbortIfPanicking {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let msg = b"kvmshim: internal panic in an interposed call; aborting\n";
                // SAFETY: write(2) of a static buffer to stderr.
                unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
                std::process::abort();
            }
        }
    }
    let guard = AbortIfPanicking;
    let result = f();
    core::mem::forget(guard);
    result
}
