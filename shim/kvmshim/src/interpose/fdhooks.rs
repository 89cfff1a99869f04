//! The exported fd functions: each calls the next definition (glibc's) and
//! then keeps the fd table true. They add a table load to calls on fds the
//! shim never classified.

use super::binding;
use super::cabi::guard;
use super::fdtable;
use super::real;
use crate::raw;
use core::ffi::{c_char, c_int, c_uint, c_ulong};

fn raw_result(r: Result<i64, kvmng::Errno>) -> c_int {
    super::cabi::c_ret(r)
}

/// After a call that made `fd` (if >= 0) refer to a new open file.
fn fresh(fd: c_int) {
    if fd >= 0 {
        guard(|| binding::forget(fd), || ());
    }
}

/// After a call that made `new` (if >= 0) a duplicate of `old`.
fn duplicated(old: c_int, new: c_int) {
    if new >= 0
        && (fdtable::get(old) != fdtable::Entry::EMPTY
            || fdtable::get(new) != fdtable::Entry::EMPTY)
    {
        guard(|| binding::duplicate(old, new), || ());
    }
}

/// Interposed `close`.
///
/// # Safety
/// As close(2).
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    // The entry goes first: once the number is free another thread may
    // get it for a new file.
    if fdtable::get(fd) != fdtable::Entry::EMPTY {
        guard(|| binding::forget(fd), || ());
    }
    match real::close() {
        // SAFETY: the caller's own fd, passed on.
        Some(f) => unsafe { f(fd) },
        None => raw_result(kvmng::sys::close(fd)),
    }
}

/// Interposed `close_range`.
///
/// # Safety
/// As close_range(2).
#[no_mangle]
pub unsafe extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    let r = match real::close_range() {
        // SAFETY: integer arguments passed on.
        Some(f) => unsafe { f(first, last, flags) },
        None => raw_result(raw::close_range(first, last, flags)),
    };
    if r == 0 && flags as c_uint & libc::CLOSE_RANGE_CLOEXEC == 0 {
        forget_range(first, last);
    }
    r
}

/// Interposed `closefrom` (glibc 2.34).
///
/// # Safety
/// As closefrom(3).
#[no_mangle]
pub unsafe extern "C" fn closefrom(lowfd: c_int) {
    match real::closefrom() {
        // SAFETY: integer argument passed on.
        Some(f) => unsafe { f(lowfd) },
        None => {
            let _ = raw::close_range(lowfd.max(0) as c_uint, c_uint::MAX, 0);
        }
    }
    forget_range(lowfd.max(0) as c_uint, c_uint::MAX);
}

fn forget_range(first: c_uint, last: c_uint) {
    guard(
        || {
            let end = (last as usize).min(fdtable::TABLE_SIZE - 1);
            for fd in first as usize..=end {
                binding::forget(fd as i32);
            }
        },
        || (),
    );
}

/// Interposed `dup`.
///
/// # Safety
/// As dup(2).
#[no_mangle]
pub unsafe extern "C" fn dup(old: c_int) -> c_int {
    let new = match real::dup() {
        // SAFETY: integer argument passed on.
        Some(f) => unsafe { f(old) },
        None => raw_result(raw::dup(old)),
    };
    duplicated(old, new);
    new
}

/// Interposed `dup2`.
///
/// # Safety
/// As dup2(2).
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    let r = match real::dup2() {
        // SAFETY: integer arguments passed on.
        Some(f) => unsafe { f(old, new) },
        None => raw_result(raw::dup3(old, new, 0)),
    };
    if old != new {
        duplicated(old, r);
    }
    r
}

/// Interposed `dup3`.
///
/// # Safety
/// As dup3(2).
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    let r = match real::dup3() {
        // SAFETY: integer arguments passed on.
        Some(f) => unsafe { f(old, new, flags) },
        None => raw_result(raw::dup3(old, new, flags)),
    };
    duplicated(old, r);
    r
}

/// The fcntl hooks: `arg` is the variadic argument (an int or a pointer,
/// both passed in the same register on x86_64).
unsafe fn fcntl_common(next: Option<real::FcntlFn>, fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    let r = match next {
        // SAFETY: the caller's arguments passed on unchanged.
        Some(f) => unsafe { f(fd, cmd, arg) },
        None => {
            // SAFETY: as fcntl(2); a pointer argument is checked by the kernel.
            let r = unsafe { raw::fcntl(fd, cmd, arg) };
            raw_result(r)
        }
    };
    if cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC {
        duplicated(fd, r);
    }
    r
}

/// Interposed `fcntl` (variadic in C; see [`fcntl_common`]).
///
/// # Safety
/// As fcntl(2).
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: forwarded.
    unsafe { fcntl_common(real::fcntl(), fd, cmd, arg) }
}

/// Interposed `fcntl64`.
///
/// # Safety
/// As fcntl(2).
#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // SAFETY: forwarded.
    unsafe { fcntl_common(real::fcntl64().or_else(real::fcntl), fd, cmd, arg) }
}

unsafe fn open_common(
    next: Option<real::OpenFn>,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    let fd = match next {
        // SAFETY: the caller's arguments passed on; `mode` is read only
        // with O_CREAT or O_TMPFILE, as the caller intended.
        Some(f) => unsafe { f(path, flags, mode) },
        // SAFETY: as openat(2); the kernel checks `path`.
        None => raw_result(unsafe { raw::openat(libc::AT_FDCWD, path, flags, mode) }),
    };
    fresh(fd);
    fd
}

/// Interposed `open` (variadic in C: `mode` is the optional third argument).
///
/// # Safety
/// As open(2).
#[no_mangle]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: forwarded.
    unsafe { open_common(real::open(), path, flags, mode) }
}

/// Interposed `open64`.
///
/// # Safety
/// As open(2).
#[no_mangle]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: forwarded.
    unsafe { open_common(real::open64().or_else(real::open), path, flags, mode) }
}

unsafe fn openat_common(
    next: Option<real::OpenatFn>,
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    let fd = match next {
        // SAFETY: the caller's arguments passed on.
        Some(f) => unsafe { f(dirfd, path, flags, mode) },
        // SAFETY: as openat(2); the kernel checks `path`.
        None => raw_result(unsafe { raw::openat(dirfd, path, flags, mode) }),
    };
    fresh(fd);
    fd
}

/// Interposed `openat`.
///
/// # Safety
/// As openat(2).
#[no_mangle]
pub unsafe extern "C" fn openat(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { openat_common(real::openat(), dirfd, path, flags, mode) }
}

/// Interposed `openat64`.
///
/// # Safety
/// As openat(2).
#[no_mangle]
pub unsafe extern "C" fn openat64(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    // SAFETY: forwarded.
    unsafe {
        openat_common(
            real::openat64().or_else(real::openat),
            dirfd,
            path,
            flags,
            mode,
        )
    }
}
