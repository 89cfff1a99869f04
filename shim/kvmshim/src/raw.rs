//! The raw system calls of libkvmshim.so: the one module of this crate
//! that issues them.
//!
//! Every syscall the shim makes without libc is either a typed wrapper of
//! the kvmng library's `kvmng::sys` (ioctl, close, getpid, readlink, ...)
//! or one of the wrappers below, for the calls only the shim makes: the
//! raw fallbacks of the fd and exec hooks, the lines it writes, the trap's
//! seccomp filter and signal masks. Nowhere else in the crate is
//! `kvmng::sys::raw6` or `kvmng::sys::syscall6` called with a syscall
//! number (`clippy.toml` enforces it), so each call is written, argued
//! and tested once.
//!
//! All of them are made with the `syscall` instruction (no libc, no errno,
//! no interposed symbol, so no hook of the shim is re-entered) and none
//! allocates or locks: they are usable in the SIGSYS handler and in a
//! vfork child.

// The one place the crate may issue raw syscalls (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use core::ffi::{c_char, c_int, c_uint};
use kvmng::sys::{raw6, syscall6};
use kvmng::SysResult;

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
    // needs no restorer. tgkill passes no memory.
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
    }
    exit_group(128 + sig)
}

/// `exit_group(status)`: ends the process at once (no destructor, no
/// atexit handler, no stdio flush).
pub fn exit_group(status: c_int) -> ! {
    loop {
        // SAFETY: exit_group ends the process; it passes no memory and
        // does not return.
        unsafe { raw6(libc::SYS_exit_group, status as u64, 0, 0, 0, 0, 0) };
    }
}

/// `write(fd, buf)`: the bytes written (one call, which may be short).
pub fn write(fd: c_int, buf: &[u8]) -> SysResult {
    // SAFETY: write reads at most `buf.len()` bytes from `buf`, lent by
    // the caller for the call.
    unsafe {
        syscall6(
            libc::SYS_write,
            fd as u64,
            buf.as_ptr() as u64,
            buf.len() as u64,
            0,
            0,
            0,
        )
    }
}

/// `openat(dirfd, path, flags, mode)`: the new fd. The mode is read only
/// with `O_CREAT` or `O_TMPFILE`.
///
/// # Safety
/// `path` must be a NUL-terminated string, or deliberately invalid (the
/// kernel checks it and answers `EFAULT`), as for openat(2).
pub unsafe fn openat(dirfd: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> SysResult {
    // SAFETY: the kernel reads the string at `path`, which the caller
    // vouches for; the other arguments are integers.
    unsafe {
        syscall6(
            libc::SYS_openat,
            dirfd as u64,
            path as u64,
            flags as u64,
            u64::from(mode),
            0,
            0,
        )
    }
}

/// `dup(old)`: the new fd.
pub fn dup(old: c_int) -> SysResult {
    // SAFETY: dup affects only the fd table; no memory is passed.
    unsafe { syscall6(libc::SYS_dup, old as u64, 0, 0, 0, 0, 0) }
}

/// `dup3(old, new, flags)`: `new`. (dup2 is `dup3` with no flags when
/// `old != new`; the caller handles `old == new`.)
pub fn dup3(old: c_int, new: c_int, flags: c_int) -> SysResult {
    // SAFETY: dup3 affects only the fd table; the caller owns `new`.
    unsafe {
        syscall6(
            libc::SYS_dup3,
            old as u64,
            new as u64,
            flags as u64,
            0,
            0,
            0,
        )
    }
}

/// `close_range(first, last, flags)`.
pub fn close_range(first: c_uint, last: c_uint, flags: c_int) -> SysResult {
    // SAFETY: closing fds affects no memory; the caller owns the range.
    unsafe {
        syscall6(
            libc::SYS_close_range,
            u64::from(first),
            u64::from(last),
            flags as u64,
            0,
            0,
            0,
        )
    }
}

/// `fcntl(fd, cmd, arg)` for any command, pointer arguments included
/// (`kvmng::sys::fcntl` takes integer commands only).
///
/// # Safety
/// `arg` must be what `cmd` expects: for a pointer, valid for what the
/// kernel reads or writes, or deliberately invalid (the kernel checks it).
pub unsafe fn fcntl(fd: c_int, cmd: c_int, arg: u64) -> SysResult {
    // SAFETY: the caller vouches for `arg`.
    unsafe { syscall6(libc::SYS_fcntl, fd as u64, cmd as u64, arg, 0, 0, 0) }
}

/// `execve(path, argv, envp)`: returns only on failure.
///
/// # Safety
/// As execve(2): `path` a C string, `argv` and `envp` NULL-terminated
/// arrays of C strings (the kernel checks every pointer).
pub unsafe fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> SysResult {
    // SAFETY: the caller vouches for the pointers; the kernel checks them.
    unsafe {
        syscall6(
            libc::SYS_execve,
            path as u64,
            argv as u64,
            envp as u64,
            0,
            0,
            0,
        )
    }
}

/// The kernel's `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const seccompiler::sock_filter,
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, program)`: 0, or with
/// `SECCOMP_FILTER_FLAG_TSYNC` the id of a thread that could not be
/// synchronized.
pub fn seccomp_set_mode_filter(flags: u64, program: &[seccompiler::sock_filter]) -> SysResult {
    const SECCOMP_SET_MODE_FILTER: u64 = 1;
    let fprog = SockFprog {
        len: program.len() as u16,
        filter: program.as_ptr(),
    };
    // SAFETY: the kernel copies the program from `fprog`, which lives on
    // this frame and points into `program`, for the duration of the call.
    unsafe {
        syscall6(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const SockFprog as u64,
            0,
            0,
            0,
        )
    }
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
pub fn set_no_new_privs() -> SysResult {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        syscall6(
            libc::SYS_prctl,
            libc::PR_SET_NO_NEW_PRIVS as u64,
            1,
            0,
            0,
            0,
            0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvmng::Errno;

    fn pipe() -> [c_int; 2] {
        let mut fds = [-1; 2];
        // SAFETY: pipe2 writes two fds into `fds`.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        fds
    }

    #[test]
    fn fd_wrappers_duplicate_and_close() {
        let [r, w] = pipe();
        assert_eq!(write(w, b"kv"), Ok(2));
        let copy = dup(w).unwrap() as c_int;
        assert_eq!(write(copy, b"m"), Ok(1));
        let high = 900;
        assert_eq!(dup3(r, high, libc::O_CLOEXEC), Ok(i64::from(high)));
        // SAFETY: F_GETFD takes no argument.
        let fd_flags = unsafe { fcntl(high, libc::F_GETFD, 0) };
        assert_eq!(fd_flags, Ok(i64::from(libc::FD_CLOEXEC)));
        let mut buf = [0u8; 4];
        // SAFETY: read writes at most 4 bytes into `buf`.
        assert_eq!(unsafe { libc::read(high, buf.as_mut_ptr().cast(), 4) }, 3);
        assert_eq!(&buf[..3], b"kvm");
        assert_eq!(dup(-1), Err(Errno(libc::EBADF)));
        assert_eq!(dup3(r, r, 0), Err(Errno(libc::EINVAL)));
        assert_eq!(close_range(high as c_uint, high as c_uint, 0), Ok(0));
        assert_eq!(kvmng::sys::close(high), Err(Errno(libc::EBADF)));
        for fd in [r, w, copy] {
            kvmng::sys::close(fd).unwrap();
        }
        assert_eq!(write(w, b"x"), Err(Errno(libc::EBADF)));
    }

    #[test]
    fn openat_and_execve_report_errno() {
        let flags = libc::O_RDONLY | libc::O_CLOEXEC;
        // SAFETY: a NUL-terminated literal.
        let fd = unsafe { openat(libc::AT_FDCWD, c"/dev/null".as_ptr(), flags, 0) }.unwrap();
        kvmng::sys::close(fd as c_int).unwrap();
        // SAFETY: a NUL-terminated literal.
        let missing = unsafe { openat(libc::AT_FDCWD, c"/nonexistent/kvmshim".as_ptr(), flags, 0) };
        assert_eq!(missing, Err(Errno(libc::ENOENT)));
        let argv = [c"x".as_ptr(), core::ptr::null()];
        // SAFETY: a missing program: execve fails before replacing anything.
        let r = unsafe {
            execve(
                c"/nonexistent/kvmshim".as_ptr(),
                argv.as_ptr(),
                argv[1..].as_ptr(),
            )
        };
        assert_eq!(r, Err(Errno(libc::ENOENT)));
    }
}
