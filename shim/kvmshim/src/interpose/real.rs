//! The next definitions (normally glibc's) of the functions the shim
//! interposes, found with `dlsym(RTLD_NEXT)` on first use and cached in
//! atomics: safe from any thread, before or after the constructor ran.
//! When a symbol is missing, the hooks fall back to the raw syscall.

use core::ffi::{c_char, c_int, c_uint, c_ulong};
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Pointer-sized address of symbol `name` (NUL-terminated) in the objects
/// loaded after this one; 0 when there is none.
fn next_symbol(cache: &AtomicUsize, name: &'static [u8]) -> usize {
    let cached = cache.load(Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: `name` is a NUL-terminated literal; dlsym has no other
    // precondition. A race resolves the same address twice.
    let found = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) } as usize;
    cache.store(found, Relaxed);
    found
}

macro_rules! next_fn {
    ($(#[$doc:meta])* $fn_name:ident, $symbol:literal, $ty:ty) => {
        $(#[$doc])*
        pub fn $fn_name() -> Option<$ty> {
            static CACHE: AtomicUsize = AtomicUsize::new(0);
            match next_symbol(&CACHE, concat!($symbol, "\0").as_bytes()) {
                0 => None,
                // SAFETY: the symbol is the libc function of that name,
                // whose C prototype is `$ty`.
                addr => Some(unsafe { core::mem::transmute::<usize, $ty>(addr) }),
            }
        }
    };
}

/// `int close(int)`.
pub type CloseFn = unsafe extern "C" fn(c_int) -> c_int;
/// `int close_range(unsigned, unsigned, int)`.
pub type CloseRangeFn = unsafe extern "C" fn(c_uint, c_uint, c_int) -> c_int;
/// `void closefrom(int)`.
pub type ClosefromFn = unsafe extern "C" fn(c_int);
/// `int dup(int)`.
pub type DupFn = unsafe extern "C" fn(c_int) -> c_int;
/// `int dup2(int, int)`.
pub type Dup2Fn = unsafe extern "C" fn(c_int, c_int) -> c_int;
/// `int dup3(int, int, int)`.
pub type Dup3Fn = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
/// `int fcntl(int, int, ...)`.
pub type FcntlFn = unsafe extern "C" fn(c_int, c_int, ...) -> c_int;
/// `int open(const char *, int, ...)`.
pub type OpenFn = unsafe extern "C" fn(*const c_char, c_int, ...) -> c_int;
/// `int openat(int, const char *, int, ...)`.
pub type OpenatFn = unsafe extern "C" fn(c_int, *const c_char, c_int, ...) -> c_int;
/// `int execve(const char *, char *const[], char *const[])` and `execvpe`.
pub type ExecveFn =
    unsafe extern "C" fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int;
/// `int execv(const char *, char *const[])` and `execvp`.
pub type ExecvFn = unsafe extern "C" fn(*const c_char, *const *const c_char) -> c_int;
/// `int fexecve(int, char *const[], char *const[])`.
pub type FexecveFn =
    unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char) -> c_int;
/// `void _exit(int)`.
pub type ExitFn = unsafe extern "C" fn(c_int) -> !;
/// `int ioctl(int, unsigned long, ...)`.
pub type IoctlFn = unsafe extern "C" fn(c_int, c_ulong, ...) -> c_int;

next_fn!(close, "close", CloseFn);
next_fn!(close_range, "close_range", CloseRangeFn);
next_fn!(closefrom, "closefrom", ClosefromFn);
next_fn!(dup, "dup", DupFn);
next_fn!(dup2, "dup2", Dup2Fn);
next_fn!(dup3, "dup3", Dup3Fn);
next_fn!(fcntl, "fcntl", FcntlFn);
next_fn!(fcntl64, "fcntl64", FcntlFn);
next_fn!(open, "open", OpenFn);
next_fn!(open64, "open64", OpenFn);
next_fn!(openat, "openat", OpenatFn);
next_fn!(openat64, "openat64", OpenatFn);
next_fn!(execve, "execve", ExecveFn);
next_fn!(execvpe, "execvpe", ExecveFn);
next_fn!(execv, "execv", ExecvFn);
next_fn!(execvp, "execvp", ExecvFn);
next_fn!(fexecve, "fexecve", FexecveFn);
next_fn!(exit_now, "_exit", ExitFn);
next_fn!(exit_now_c99, "_Exit", ExitFn);
next_fn!(
    /// Only for the benchmark's comparison; the hook itself never calls it.
    ioctl,
    "ioctl",
    IoctlFn
);
