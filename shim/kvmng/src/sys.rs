//! Raw system calls, made with the `syscall` instruction itself.
//!
//! This is the one module of the crate that issues raw syscalls: every
//! other module calls a typed wrapper from here, whose `SAFETY` argument
//! is written once (`clippy.toml` rejects [`raw6`], [`syscall6`] and
//! `libc::syscall` elsewhere in the crate). The other crates of the
//! workspace use these wrappers too; libkvmshim.so keeps the calls only it
//! makes in its own `raw` module, built on [`raw6`] and [`syscall6`].
//!
//! No wrapper allocates or locks: several run in the SIGSYS handler.
//! Nothing here goes through libc: no errno is touched (the SIGSYS trap
//! handler relies on that) and no interposed symbol such as `ioctl` can be
//! re-entered (the preload shim relies on that).

// The one place the crate may issue raw syscalls (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use crate::errno::{Errno, SysResult};
use core::arch::asm;
use core::ffi::CStr;
use kvmng_abi::Syscall;

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

/// A new shared, read-write mapping of the first `len` bytes of `fd`, at
/// an address of the kernel's choosing; its address.
pub fn mmap_shared(fd: i32, len: usize) -> Result<u64, Errno> {
    // SAFETY: a new mapping at an address of the kernel's choosing (no
    // MAP_FIXED); no existing memory is affected.
    let addr = unsafe {
        syscall6(
            libc::SYS_mmap,
            0,
            len as u64,
            (libc::PROT_READ | libc::PROT_WRITE) as u64,
            libc::MAP_SHARED as u64,
            fd as u64,
            0,
        )
    }?;
    Ok(addr as u64)
}

/// `munmap(addr, len)`.
///
/// # Safety
/// Nothing may use the range any more: references into it dangle after.
pub unsafe fn munmap(addr: u64, len: usize) -> SysResult {
    // SAFETY: forwarded; the caller vouches that the range is unused.
    unsafe { syscall6(libc::SYS_munmap, addr, len as u64, 0, 0, 0, 0) }
}

/// An eventfd with a count of 0 and `flags` (`EFD_*`).
pub fn eventfd(flags: i32) -> Result<i32, Errno> {
    // SAFETY: eventfd2 takes integers only.
    unsafe { syscall6(libc::SYS_eventfd2, 0, flags as u64, 0, 0, 0, 0) }.map(|fd| fd as i32)
}

/// Adds `value` to the count of eventfd `fd` (an 8-byte `write`).
pub fn eventfd_write(fd: i32, value: u64) -> SysResult {
    // SAFETY: write reads 8 bytes from `value`, on this frame.
    unsafe {
        syscall6(
            libc::SYS_write,
            fd as u64,
            &value as *const u64 as u64,
            8,
            0,
            0,
            0,
        )
    }
}

/// Takes the count of eventfd `fd` (an 8-byte `read`).
pub fn eventfd_read(fd: i32) -> Result<u64, Errno> {
    let mut value: u64 = 0;
    // SAFETY: read writes at most 8 bytes into `value`, on this frame.
    unsafe {
        syscall6(
            libc::SYS_read,
            fd as u64,
            &mut value as *mut u64 as u64,
            8,
            0,
            0,
            0,
        )
    }?;
    Ok(value)
}

/// `poll(fds, timeout_ms)`: the number of fds with events (0 on timeout).
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> SysResult {
    // SAFETY: poll reads and writes `fds.len()` pollfds, all in `fds`.
    unsafe {
        syscall6(
            libc::SYS_poll,
            fds.as_mut_ptr() as u64,
            fds.len() as u64,
            timeout_ms as u64,
            0,
            0,
            0,
        )
    }
}

/// `ppoll(fds, timeout, mask)`: polls with the kernel's 8-byte signal
/// mask `mask` installed for the wait (atomically); no timeout with
/// `None`. The number of fds with events (0 on timeout).
pub fn ppoll(fds: &mut [libc::pollfd], timeout: Option<&libc::timespec>, mask: u64) -> SysResult {
    let ts_ptr = timeout.map_or(0, |t| t as *const libc::timespec as u64);
    // SAFETY: ppoll reads and writes `fds.len()` pollfds, all in `fds`,
    // and reads the timespec (if any) and the 8-byte mask, on this frame.
    unsafe {
        syscall6(
            libc::SYS_ppoll,
            fds.as_mut_ptr() as u64,
            fds.len() as u64,
            ts_ptr,
            &mask as *const u64 as u64,
            8,
            0,
        )
    }
}

/// `getsockopt(fd, level, opt)` for an integer option: its value.
pub fn getsockopt_int(fd: i32, level: i32, opt: i32) -> Result<i32, Errno> {
    let mut value: i32 = 0;
    let mut len: u32 = 4;
    // SAFETY: getsockopt writes at most `len` (4) bytes into `value` and
    // the length into `len`, both on this frame.
    unsafe {
        syscall6(
            libc::SYS_getsockopt,
            fd as u64,
            level as u64,
            opt as u64,
            &mut value as *mut i32 as u64,
            &mut len as *mut u32 as u64,
            0,
        )
    }?;
    Ok(value)
}

/// `getpeername(fd)` into `addr`: the length of the peer's address (more
/// than `addr.len()` when it was truncated). `ENOTCONN` when `fd` is an
/// unconnected socket.
pub fn getpeername(fd: i32, addr: &mut [u8]) -> Result<usize, Errno> {
    let mut len: u32 = addr.len() as u32;
    // SAFETY: getpeername writes at most `len` bytes into `addr` and the
    // length into `len`, both owned by the caller or this frame.
    unsafe {
        syscall6(
            libc::SYS_getpeername,
            fd as u64,
            addr.as_mut_ptr() as u64,
            &mut len as *mut u32 as u64,
            0,
            0,
            0,
        )
    }?;
    Ok(len as usize)
}

/// `send(fd, buf, flags)` (`sendto` with no address): the bytes sent.
pub fn send(fd: i32, buf: &[u8], flags: i32) -> SysResult {
    // SAFETY: sendto reads `buf.len()` bytes from `buf`; no address.
    unsafe {
        syscall6(
            libc::SYS_sendto,
            fd as u64,
            buf.as_ptr() as u64,
            buf.len() as u64,
            flags as u64,
            0,
            0,
        )
    }
}

/// `recv(fd, buf, flags)` (`recvfrom` with no address): the bytes read,
/// or with `MSG_TRUNC` the message's real length.
pub fn recv(fd: i32, buf: &mut [u8], flags: i32) -> SysResult {
    // SAFETY: recvfrom writes at most `buf.len()` bytes into `buf`; no
    // address is requested.
    unsafe {
        syscall6(
            libc::SYS_recvfrom,
            fd as u64,
            buf.as_mut_ptr() as u64,
            buf.len() as u64,
            flags as u64,
            0,
            0,
        )
    }
}

/// Issues kvmng syscall `call` with up to four arguments (docs/api.md).
///
/// # Safety
/// The arguments must satisfy the syscall's contract (docs/api.md).
#[inline]
pub unsafe fn kvmng(call: Syscall, a0: u64, a1: u64, a2: u64, a3: u64) -> SysResult {
    // SAFETY: forwarded; the caller vouches for the arguments.
    unsafe { syscall6(call.nr(), a0, a1, a2, a3, 0, 0) }
}

/// The parent's process id.
#[inline]
pub fn getppid() -> SysResult {
    // SAFETY: getppid has no arguments and cannot fail.
    unsafe { syscall6(libc::SYS_getppid, 0, 0, 0, 0, 0, 0) }
}

/// `open(path, flags)` (`openat(AT_FDCWD, ...)`, no mode: not for
/// `O_CREAT`): the new fd.
pub fn open(path: &CStr, flags: i32) -> Result<i32, Errno> {
    // SAFETY: openat reads the NUL-terminated `path`, which the caller
    // lends for the call.
    unsafe {
        syscall6(
            libc::SYS_openat,
            libc::AT_FDCWD as u64,
            path.as_ptr() as u64,
            flags as u64,
            0,
            0,
            0,
        )
    }
    .map(|fd| fd as i32)
}

/// `fstat(fd)`: the file's status.
pub fn fstat(fd: i32) -> Result<libc::stat, Errno> {
    // SAFETY: libc::stat is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: fstat writes one struct stat into `st`, which lives on this
    // stack frame.
    unsafe {
        syscall6(
            libc::SYS_fstat,
            fd as u64,
            &mut st as *mut libc::stat as u64,
            0,
            0,
            0,
            0,
        )
    }?;
    Ok(st)
}

/// `readlink(path)` into `buf`: the length written (the target is cut at
/// `buf.len()` bytes, without a NUL).
pub fn readlink(path: &CStr, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: readlink reads the NUL-terminated `path` and writes at most
    // `buf.len()` bytes into `buf`, both lent by the caller for the call.
    unsafe {
        syscall6(
            libc::SYS_readlink,
            path.as_ptr() as u64,
            buf.as_mut_ptr() as u64,
            buf.len() as u64,
            0,
            0,
            0,
        )
    }
    .map(|len| len as usize)
}

/// `kcmp(getpid(), getpid(), KCMP_FILE, a, b)`: 0 when fds `a` and `b` of
/// this process are the same open file (1 or 2 orders them otherwise).
pub fn kcmp_file(a: i32, b: i32) -> SysResult {
    const KCMP_FILE: u64 = 0;
    let pid = getpid() as u64;
    // SAFETY: kcmp compares two of our own fds; no memory is passed.
    unsafe { syscall6(libc::SYS_kcmp, pid, pid, KCMP_FILE, a as u64, b as u64, 0) }
}

/// `process_vm_readv`/`process_vm_writev` (`nr`) on this process with one
/// iovec on each side: the bytes copied.
///
/// # Safety
/// `local` must be valid for `len` bytes of what `nr` does to it (written
/// by readv, read by writev).
unsafe fn process_vm_self(nr: i64, local: *mut u8, remote: u64, len: usize) -> SysResult {
    let local_iov = libc::iovec {
        iov_base: local.cast(),
        iov_len: len,
    };
    let remote_iov = libc::iovec {
        iov_base: remote as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: both iovecs live on this stack frame for the call; the
    // caller vouches for `local`. The kernel checks the remote side: an
    // unmapped address is an error, never a fault.
    unsafe {
        syscall6(
            nr,
            getpid() as u64,
            &local_iov as *const libc::iovec as u64,
            1,
            &remote_iov as *const libc::iovec as u64,
            1,
            0,
        )
    }
}

/// The most pieces [`process_vm_write_self_strided`] writes in one call
/// (a batch of state entries has at most 64).
pub const STRIDED_PIECES_MAX: usize = 64;

/// Writes `src` in pieces of `piece` bytes to as many addresses of this
/// process, the first at `dst` and each `stride` bytes after the one
/// before (`process_vm_writev`, one remote iovec per piece, in order): the
/// bytes copied, fewer from the first unwritable piece on, or `EFAULT`
/// when none could be. `EINVAL` for more than [`STRIDED_PIECES_MAX`]
/// pieces or a `src` that is not whole pieces.
pub fn process_vm_write_self_strided(dst: u64, stride: u64, src: &[u8], piece: usize) -> SysResult {
    if piece == 0 || src.len() % piece != 0 || src.len() / piece > STRIDED_PIECES_MAX {
        return Err(Errno(libc::EINVAL));
    }
    let pieces = src.len() / piece;
    let mut remote = [libc::iovec {
        iov_base: core::ptr::null_mut(),
        iov_len: 0,
    }; STRIDED_PIECES_MAX];
    for (i, iov) in remote.iter_mut().take(pieces).enumerate() {
        iov.iov_base = dst.wrapping_add(i as u64 * stride) as *mut libc::c_void;
        iov.iov_len = piece;
    }
    let local = libc::iovec {
        iov_base: src.as_ptr() as *mut libc::c_void,
        iov_len: src.len(),
    };
    // SAFETY: the kernel only reads the `src.len()` bytes of `src` (the
    // pointer is mutable in the iovec's type alone); both iovec arrays live
    // on this stack frame for the call. The kernel checks the remote side:
    // an unmapped address is an error, never a fault.
    unsafe {
        syscall6(
            libc::SYS_process_vm_writev,
            getpid() as u64,
            &local as *const libc::iovec as u64,
            1,
            remote.as_ptr() as u64,
            pieces as u64,
            0,
        )
    }
}

/// Copies up to `dst.len()` bytes from address `src` of this process
/// (`process_vm_readv`): the bytes copied, fewer at the first unreadable
/// page, or `EFAULT` when none could be.
pub fn process_vm_read_self(src: u64, dst: &mut [u8]) -> SysResult {
    // SAFETY: the kernel writes at most `dst.len()` bytes into `dst`.
    unsafe { process_vm_self(libc::SYS_process_vm_readv, dst.as_mut_ptr(), src, dst.len()) }
}

/// Copies up to `src.len()` bytes of `src` to address `dst` of this
/// process (`process_vm_writev`): the bytes copied, fewer at the first
/// unwritable page, or `EFAULT` when none could be.
pub fn process_vm_write_self(dst: u64, src: &[u8]) -> SysResult {
    // SAFETY: the kernel only reads the `src.len()` bytes of `src` (the
    // pointer is mutable in the iovec's type alone).
    unsafe {
        process_vm_self(
            libc::SYS_process_vm_writev,
            src.as_ptr() as *mut u8,
            dst,
            src.len(),
        )
    }
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

    #[test]
    fn an_eventfd_counts_and_polls_readable() {
        let efd = eventfd(libc::EFD_CLOEXEC | libc::EFD_NONBLOCK).unwrap();
        assert_eq!(eventfd_read(efd), Err(Errno(libc::EAGAIN)));
        let mut pfd = [libc::pollfd {
            fd: efd,
            events: libc::POLLIN,
            revents: 0,
        }];
        assert_eq!(poll(&mut pfd, 0), Ok(0));
        eventfd_write(efd, 2).unwrap();
        eventfd_write(efd, 3).unwrap();
        assert_eq!(poll(&mut pfd, 0), Ok(1));
        assert_eq!(pfd[0].revents, libc::POLLIN);
        let mask = sigprocmask(libc::SIG_BLOCK, 0).unwrap();
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        assert_eq!(ppoll(&mut pfd, Some(&zero), mask), Ok(1));
        assert_eq!(eventfd_read(efd), Ok(5));
        assert_eq!(ppoll(&mut pfd, Some(&zero), mask), Ok(0));
        close(efd).unwrap();
    }

    #[test]
    fn a_seqpacket_pair_carries_whole_messages() {
        let mut sv = [-1i32; 2];
        // SAFETY: socketpair writes two fds into `sv`.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                sv.as_mut_ptr(),
            )
        };
        assert_eq!(r, 0);
        let domain = getsockopt_int(sv[0], libc::SOL_SOCKET, libc::SO_DOMAIN);
        assert_eq!(domain, Ok(libc::AF_UNIX));
        let kind = getsockopt_int(sv[0], libc::SOL_SOCKET, libc::SO_TYPE);
        assert_eq!(kind, Ok(libc::SOCK_SEQPACKET));
        let mut addr = [0u8; 128];
        assert!(getpeername(sv[0], &mut addr).is_ok());
        assert_eq!(getpeername(-1, &mut addr), Err(Errno(libc::EBADF)));
        assert_eq!(send(sv[0], b"hello", libc::MSG_DONTWAIT), Ok(5));
        let mut buf = [0u8; 3];
        let flags = libc::MSG_DONTWAIT | libc::MSG_TRUNC;
        assert_eq!(recv(sv[1], &mut buf, flags), Ok(5));
        assert_eq!(&buf, b"hel");
        assert_eq!(recv(sv[1], &mut buf, flags), Err(Errno(libc::EAGAIN)));
        close(sv[0]).unwrap();
        close(sv[1]).unwrap();
    }

    #[test]
    fn a_shared_mapping_writes_through_to_its_file() {
        // SAFETY: memfd_create reads the name, a C string literal.
        let fd = unsafe { libc::memfd_create(c"kvmng-sys-test".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: ftruncate on our own memfd; no memory is passed.
        assert_eq!(unsafe { libc::ftruncate(fd, 8192) }, 0);
        let addr = mmap_shared(fd, 8192).unwrap();
        // SAFETY: the mapping is 8192 bytes long, read-write, and ours.
        unsafe { (addr as *mut u8).add(4096).write_volatile(7) };
        let mut byte = [0u8; 1];
        // SAFETY: pread writes one byte into `byte`.
        let n = unsafe { libc::pread(fd, byte.as_mut_ptr().cast(), 1, 4096) };
        assert_eq!(n, 1);
        assert_eq!(byte, [7]);
        // SAFETY: nothing uses the mapping any more.
        assert_eq!(unsafe { munmap(addr, 8192) }, Ok(0));
        close(fd).unwrap();
    }
    #[test]
    fn file_wrappers_open_stat_and_compare() {
        let fd = open(c"/dev/null", libc::O_RDONLY | libc::O_CLOEXEC).unwrap();
        let st = fstat(fd).unwrap();
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFCHR);
        assert_eq!(fstat(-1).map(|_| ()), Err(Errno(libc::EBADF)));
        assert_eq!(
            open(c"/nonexistent/kvmng", libc::O_RDONLY),
            Err(Errno(libc::ENOENT))
        );
        let mut target = [0u8; 64];
        let empty = readlink(c"/proc/self/exe", &mut target[..0]);
        assert_eq!(empty, Err(Errno(libc::EINVAL)));
        let path = format!("/proc/self/fd/{fd}\0");
        let path = CStr::from_bytes_with_nul(path.as_bytes()).unwrap();
        assert_eq!(readlink(path, &mut target), Ok(9));
        assert_eq!(&target[..9], b"/dev/null");
        assert_eq!(readlink(path, &mut target[..4]), Ok(4));
        let copy = fcntl(fd, libc::F_DUPFD_CLOEXEC, 0).unwrap() as i32;
        let other = open(c"/dev/null", libc::O_RDONLY | libc::O_CLOEXEC).unwrap();
        assert_eq!(kcmp_file(fd, copy), Ok(0));
        assert!(matches!(kcmp_file(fd, other), Ok(1 | 2)));
        for fd in [fd, copy, other] {
            close(fd).unwrap();
        }
    }

    #[test]
    fn process_ids_and_the_probe() {
        // SAFETY: getppid has no preconditions.
        assert_eq!(getppid(), Ok(i64::from(unsafe { libc::getppid() })));
        // SAFETY: an integer argument only; the call fails either way.
        let probe = unsafe { kvmng(Syscall::Run, u64::from(u32::MAX), 0, 0, 0) };
        assert!(matches!(probe, Err(Errno(libc::EINVAL | libc::ENOSYS))));
    }

    #[test]
    fn process_vm_copies_stop_at_a_bad_page() {
        let source = [5u8; 16];
        let mut dest = [0u8; 16];
        assert_eq!(
            process_vm_read_self(source.as_ptr() as u64, &mut dest),
            Ok(16)
        );
        assert_eq!(dest, source);
        assert_eq!(process_vm_read_self(8, &mut dest), Err(Errno(libc::EFAULT)));
        let mut target = [0u8; 4];
        assert_eq!(
            process_vm_write_self(target.as_mut_ptr() as u64, &source[..4]),
            Ok(4)
        );
        assert_eq!(target, [5; 4]);
        assert_eq!(process_vm_write_self(8, &source), Err(Errno(libc::EFAULT)));
    }

    #[test]
    fn strided_writes_touch_only_their_pieces_and_stop_at_a_bad_one() {
        let mut target = [0xaau8; 24];
        let base = target.as_mut_ptr() as u64;
        assert_eq!(
            process_vm_write_self_strided(base + 2, 8, &[1, 2, 3, 4, 5, 6], 2),
            Ok(6)
        );
        let mut want = [0xaau8; 24];
        want[2..4].copy_from_slice(&[1, 2]);
        want[10..12].copy_from_slice(&[3, 4]);
        want[18..20].copy_from_slice(&[5, 6]);
        assert_eq!(target, want);
        // A bad first piece: nothing copied.
        assert_eq!(
            process_vm_write_self_strided(8, 8, &[1, 2], 2),
            Err(Errno(libc::EFAULT))
        );
        // A good piece, then one on a read-only page: the first is written
        // and counted, nothing of the second.
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        // SAFETY: a fresh private anonymous mapping of two pages, the
        // second made read-only at once; only this test uses it.
        let map = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                2 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        // SAFETY: the second page of the mapping made above.
        let second = unsafe { map.cast::<u8>().add(page) };
        // SAFETY: as above.
        let protected = unsafe { libc::mprotect(second.cast(), page, libc::PROT_READ) };
        assert_eq!(protected, 0);
        let last = map as u64 + page as u64 - 2;
        assert_eq!(
            process_vm_write_self_strided(last, 8, &[7, 8, 9, 10], 2),
            Ok(2)
        );
        // SAFETY: both pages are mapped and readable.
        unsafe {
            assert_eq!(*(last as *const [u8; 2]), [7, 8]);
            assert_eq!(*(second.add(6) as *const [u8; 2]), [0, 0]);
            assert_eq!(libc::munmap(map, 2 * page), 0);
        }
        // Not whole pieces, or too many.
        assert_eq!(
            process_vm_write_self_strided(base, 8, &[1, 2, 3], 2),
            Err(Errno(libc::EINVAL))
        );
        let many = [0u8; STRIDED_PIECES_MAX + 1];
        assert_eq!(
            process_vm_write_self_strided(base, 0, &many, 1),
            Err(Errno(libc::EINVAL))
        );
    }
}
