//! The ends of a process image, and the environment of the next one.
//!
//! **Census.** exec replaces the image and `_exit` skips the library
//! destructor, so both write the census line first. (`exit()` runs the
//! destructor; glibc's exec variants call the kernel directly, so each
//! variant the program may call is interposed: `execve`, `execv`,
//! `execvp`, `execvpe`, `fexecve`, and the variadic `execl`, `execlp`,
//! `execle` through small assembly entry points, see below.) The new image
//! loads the shim afresh from the inherited `LD_PRELOAD`, with the
//! inherited `KVMNG_*` settings.
//!
//! **LD_PRELOAD across exec.** While the trap half's seccomp filter is
//! installed ([`crate::trap::filter_installed`]), the filter goes with the
//! process into the new image, which dies of SIGSYS at its first kvmng
//! syscall unless the shim is loaded there too (docs/trap.md, "Fork and
//! exec"). So every exec hook makes sure the new image's environment has
//! this library's absolute path in `LD_PRELOAD` (the last `LD_PRELOAD=`
//! entry, the one the loader uses): when it is missing, the hook execs
//! with a copy of the environment whose `LD_PRELOAD` is the shim followed
//! by the program's value. There is no exception for an environment that
//! says `KVMNG_SHIM=off` or `KVMNG_MODE=passthrough`: the shim loaded there
//! installs nothing and answers the inherited filter's traps with `ENOSYS`
//! (what a stock kernel answers), where without it the image would be
//! killed. Without the filter (a kvmng kernel, or no emulation) the
//! program's environment is passed on unchanged.
//!
//! **vfork.** A vfork child runs these hooks in its parent's memory, on
//! its parent's stack, with the parent's other threads running: it must
//! not touch the heap (an allocation would be the parent's, leaked or
//! corrupting its allocator state) nor take locks. The hooks therefore
//! build the new environment without allocating: the pointer array
//! (`ENV_SLOTS` = 1024 entries, 8 KiB) and the `LD_PRELOAD=` string
//! (`PRELOAD_MAX` = 4096 bytes) are fixed-size buffers in the hook's own
//! stack frame (about 12 KiB of stack), the library's path was found
//! (`dladdr`, made absolute) and the real exec functions were resolved
//! (`dlsym`) by the constructor, and the rest is reading the caller's
//! strings. An environment that does not fit (more than 1022 variables,
//! or an `LD_PRELOAD` value that would exceed 4 KiB) is passed on
//! unchanged, with one line on stderr (a raw `write(2)`) saying that the
//! new image will not have the shim.

use super::cabi::{guard, set_errno};
use super::real;
use super::statsfile;
use core::ffi::{c_char, c_int, CStr};
use std::sync::OnceLock;

/// An environment (or argument) array: NULL-terminated C strings.
type Envp = *const *const c_char;

/// Capacity of the completed environment's pointer array, terminator
/// included.
const ENV_SLOTS: usize = 1024;
/// Capacity of the completed `LD_PRELOAD=...` string, NUL included.
const PRELOAD_MAX: usize = 4096;
const PRELOAD: &[u8] = b"LD_PRELOAD=";

/// This library's absolute path, found by the constructor; `None` if it
/// could not be found or cannot be said in `LD_PRELOAD` (a ':' or ' ').
static OWN_PATH: OnceLock<Option<Box<[u8]>>> = OnceLock::new();

fn before_exec() {
    guard(statsfile::flush, || ());
}

/// Done once by the constructor, so that the hooks neither allocate nor
/// call `dladdr`/`dlsym` later (a vfork child): finds this library's path
/// and resolves the real exec functions.
pub fn prepare() {
    OWN_PATH.get_or_init(own_path);
    let _ = (
        real::execve(),
        real::execv(),
        real::execvp(),
        real::execvpe(),
    );
    let _ = (real::fexecve(), real::exit_now(), real::exit_now_c99());
}

/// This library's file name as the loader found it, made absolute.
fn own_path() -> Option<Box<[u8]>> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    // SAFETY: all-zero is a valid Dl_info; dladdr fills it for an address
    // inside this library, and the name it points to lives as long as the
    // library.
    let name = unsafe {
        let mut info: libc::Dl_info = core::mem::zeroed();
        let here = own_path as fn() -> Option<Box<[u8]>> as *const libc::c_void;
        if libc::dladdr(here, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        CStr::from_ptr(info.dli_fname).to_bytes().to_vec()
    };
    let path = if name.starts_with(b"/") {
        name
    } else {
        // Relative to the directory the loader was in, i.e. now (the
        // constructor runs before the program can chdir).
        std::fs::canonicalize(std::ffi::OsStr::from_bytes(&name))
            .ok()?
            .into_os_string()
            .into_vec()
    };
    let sayable = !path.is_empty() && !path.iter().any(|&b| b == b':' || b == b' ' || b == 0);
    sayable.then(|| path.into_boxed_slice())
}

/// The items of an `LD_PRELOAD` value (separated by colons or spaces).
fn preload_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b':' || b == b' ')
        .filter(|item| !item.is_empty())
}

/// Says on stderr, without allocating, that an environment was too large.
fn say_too_large() {
    const MESSAGE: &[u8] = b"kvmshim: exec: the environment does not fit the shim's fixed \
buffers (1022 variables, a 4 KiB LD_PRELOAD); passed on unchanged, without the shim in \
LD_PRELOAD: a kvmng syscall in the new image will be killed by SIGSYS\n";
    let _ = crate::raw::write(2, MESSAGE);
}

/// The environment the new image must get instead of `envp`, built in
/// `slots` and `text`, or `None` when `envp` is to be passed on as it is
/// (no filter, the shim already in its `LD_PRELOAD`, our path unknown, or
/// too large: see the module's notes). Allocates nothing.
///
/// # Safety
/// `envp` is null or a NULL-terminated array of C strings.
unsafe fn complete(
    envp: Envp,
    slots: &mut [*const c_char; ENV_SLOTS],
    text: &mut [u8; PRELOAD_MAX],
) -> Option<Envp> {
    if !crate::trap::filter_installed() {
        return None;
    }
    let ours: &[u8] = OWN_PATH.get()?.as_deref()?;
    // The entries, and the last LD_PRELOAD (the one the loader uses).
    let mut count = 0;
    let mut preloads = 0;
    let mut value: &[u8] = &[];
    while !envp.is_null() {
        // SAFETY: within the NULL-terminated array.
        let entry = unsafe { *envp.add(count) };
        if entry.is_null() {
            break;
        }
        // SAFETY: a C string of the environment.
        if let Some(v) = unsafe { CStr::from_ptr(entry) }
            .to_bytes()
            .strip_prefix(PRELOAD)
        {
            value = v;
            preloads += 1;
        }
        count += 1;
    }
    if preload_items(value).any(|item| item == ours) {
        return None;
    }
    // LD_PRELOAD=<ours>[:<value>]
    let rest = if value.is_empty() { 0 } else { 1 + value.len() };
    let kept = count - preloads;
    if PRELOAD.len() + ours.len() + rest + 1 > PRELOAD_MAX || kept + 2 > ENV_SLOTS {
        say_too_large();
        return None;
    }
    let mut at = 0;
    for part in [PRELOAD, ours, if rest > 0 { b":" } else { b"" }, value] {
        text[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    text[at] = 0;
    let mut k = 0;
    for i in 0..count {
        // SAFETY: within the array, as counted above.
        let entry = unsafe { *envp.add(i) };
        // SAFETY: a C string of the environment.
        if !unsafe { CStr::from_ptr(entry) }
            .to_bytes()
            .starts_with(PRELOAD)
        {
            slots[k] = entry;
            k += 1;
        }
    }
    slots[k] = text.as_ptr().cast();
    slots[k + 1] = core::ptr::null();
    Some(slots.as_ptr())
}

/// Calls `exec` with the completed environment (`Some`, see [`complete`])
/// or `None` when `envp` is to be used as it is. The completed one lives
/// in this frame: no heap, safe in a vfork child.
///
/// # Safety
/// `envp` is null or a NULL-terminated array of C strings.
unsafe fn with_env<R>(envp: Envp, exec: impl FnOnce(Option<Envp>) -> R) -> R {
    let mut slots = [core::ptr::null::<c_char>(); ENV_SLOTS];
    let mut text = [0u8; PRELOAD_MAX];
    // SAFETY: `envp` as the caller vouches.
    let completed = guard(|| unsafe { complete(envp, &mut slots, &mut text) }, || None);
    exec(completed)
}

fn environ() -> Envp {
    extern "C" {
        static environ: Envp;
    }
    // SAFETY: reading glibc's environ pointer.
    unsafe { environ }
}

/// The real execve (or the raw syscall).
///
/// # Safety
/// As execve(2).
unsafe fn real_execve(path: *const c_char, argv: Envp, envp: Envp) -> c_int {
    match real::execve() {
        // SAFETY: the caller's arguments passed on.
        Some(f) => unsafe { f(path, argv, envp) },
        None => {
            // SAFETY: as execve(2); the kernel checks the pointers.
            let r = unsafe { crate::raw::execve(path, argv, envp) };
            super::cabi::c_ret(r)
        }
    }
}

fn missing() -> c_int {
    set_errno(libc::ENOSYS);
    -1
}

/// Interposed `execve`.
///
/// # Safety
/// As execve(2).
#[no_mangle]
pub unsafe extern "C" fn execve(path: *const c_char, argv: Envp, envp: Envp) -> c_int {
    before_exec();
    // SAFETY: the caller's arguments, with the environment completed.
    unsafe { with_env(envp, |env| real_execve(path, argv, env.unwrap_or(envp))) }
}

/// Interposed `execv`.
///
/// # Safety
/// As execv(3).
#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: Envp) -> c_int {
    before_exec();
    // SAFETY: glibc's environment array; the caller's arguments.
    unsafe {
        with_env(environ(), |env| match (env, real::execv()) {
            (Some(env), _) => real_execve(path, argv, env),
            (None, Some(f)) => f(path, argv),
            (None, None) => missing(),
        })
    }
}

/// Interposed `execvp`.
///
/// # Safety
/// As execvp(3).
#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: Envp) -> c_int {
    before_exec();
    // SAFETY: glibc's environment array; the caller's arguments.
    unsafe {
        with_env(environ(), |env| {
            match (env, real::execvp(), real::execvpe()) {
                (Some(env), _, Some(f)) => f(file, argv, env),
                (None, Some(f), _) => f(file, argv),
                _ => missing(),
            }
        })
    }
}

/// Interposed `execvpe`.
///
/// # Safety
/// As execvpe(3).
#[no_mangle]
pub unsafe extern "C" fn execvpe(file: *const c_char, argv: Envp, envp: Envp) -> c_int {
    before_exec();
    // SAFETY: the caller's arguments, with the environment completed.
    unsafe {
        with_env(envp, |env| match real::execvpe() {
            Some(f) => f(file, argv, env.unwrap_or(envp)),
            None => missing(),
        })
    }
}

/// Interposed `fexecve`.
///
/// # Safety
/// As fexecve(3).
#[no_mangle]
pub unsafe extern "C" fn fexecve(fd: c_int, argv: Envp, envp: Envp) -> c_int {
    before_exec();
    // SAFETY: the caller's arguments, with the environment completed.
    unsafe {
        with_env(envp, |env| match real::fexecve() {
            Some(f) => f(fd, argv, env.unwrap_or(envp)),
            None => missing(),
        })
    }
}

// The variadic `execl(path, arg0, ..., NULL)`, `execlp(file, arg0, ...,
// NULL)` and `execle(path, arg0, ..., NULL, envp)` cannot be defined in
// stable Rust, and glibc's own call its internal execve directly (not the
// interposable symbol). Each gets a naked entry point that turns the
// variadic arguments into an argv array in place, without allocating and
// without a limit on their number: on x86_64 the first five variadic
// pointers arrive in rsi, rdx, rcx, r8, r9 and the rest on the caller's
// stack just above the return address. The entry pops the return address
// into r11 and pushes r9, r8, rcx, rdx, rsi, which puts them directly
// below the stack arguments: one contiguous array arg0, arg1, ..., NULL
// (and, for execle, envp after the NULL). It pushes the return address
// back (which also keeps the stack 16-byte aligned for the call), calls
// the Rust function with (path in rdi, argv = that array in rsi), then
// drops the five slots and returns with its result. The CFI notes keep
// debuggers' backtraces right through it.
macro_rules! variadic_exec_entry {
    ($(#[$doc:meta])* $name:ident => $imp:path) => {
        $(#[$doc])*
        #[unsafe(naked)]
        #[no_mangle]
        pub unsafe extern "C" fn $name() -> c_int {
            core::arch::naked_asm!(
                ".cfi_startproc",
                "pop r11",
                ".cfi_adjust_cfa_offset -8",
                ".cfi_register 16, 11",
                "push r9",
                ".cfi_adjust_cfa_offset 8",
                "push r8",
                ".cfi_adjust_cfa_offset 8",
                "push rcx",
                ".cfi_adjust_cfa_offset 8",
                "push rdx",
                ".cfi_adjust_cfa_offset 8",
                "push rsi",
                ".cfi_adjust_cfa_offset 8",
                "push r11",
                ".cfi_adjust_cfa_offset 8",
                ".cfi_rel_offset 16, 0",
                "lea rsi, [rsp + 8]",
                "call {imp}",
                "pop r11",
                ".cfi_adjust_cfa_offset -8",
                ".cfi_register 16, 11",
                "add rsp, 40",
                ".cfi_adjust_cfa_offset -40",
                "push r11",
                ".cfi_adjust_cfa_offset 8",
                ".cfi_rel_offset 16, 0",
                "ret",
                ".cfi_endproc",
                imp = sym $imp,
            )
        }
    };
}

variadic_exec_entry!(
    /// Interposed `execl(path, arg0, ..., NULL)`: as [`execv`].
    ///
    /// # Safety
    /// As execl(3).
    execl => execl_argv
);
variadic_exec_entry!(
    /// Interposed `execlp(file, arg0, ..., NULL)`: as [`execvp`].
    ///
    /// # Safety
    /// As execlp(3).
    execlp => execlp_argv
);
variadic_exec_entry!(
    /// Interposed `execle(path, arg0, ..., NULL, envp)`: as [`execve`].
    ///
    /// # Safety
    /// As execle(3).
    execle => execle_argv
);

/// `execl` once its arguments are an array.
///
/// # Safety
/// `argv` is the NULL-terminated argument list of an execl call.
unsafe extern "C" fn execl_argv(path: *const c_char, argv: Envp) -> c_int {
    // SAFETY: as execv(3).
    unsafe { execv(path, argv) }
}

/// `execlp` once its arguments are an array.
///
/// # Safety
/// As [`execl_argv`].
unsafe extern "C" fn execlp_argv(file: *const c_char, argv: Envp) -> c_int {
    // SAFETY: as execvp(3).
    unsafe { execvp(file, argv) }
}

/// `execle` once its arguments are an array: the environment is the
/// argument after the NULL that ends them.
///
/// # Safety
/// `argv` is the argument list of an execle call: NULL-terminated and
/// followed by the environment pointer.
unsafe extern "C" fn execle_argv(path: *const c_char, argv: Envp) -> c_int {
    let mut n = 0;
    // SAFETY: the list is NULL-terminated.
    while !unsafe { *argv.add(n) }.is_null() {
        n += 1;
    }
    // SAFETY: execle's envp follows the NULL.
    let envp: Envp = unsafe { *argv.add(n + 1) }.cast();
    // SAFETY: as execve(2).
    unsafe { execve(path, argv, envp) }
}

/// Interposed `_exit`: forked children usually leave this way, skipping
/// the destructor.
///
/// # Safety
/// As _exit(2).
#[no_mangle]
pub unsafe extern "C" fn _exit(status: c_int) -> ! {
    before_exec();
    match real::exit_now() {
        // SAFETY: ends the process as the caller asked.
        Some(f) => unsafe { f(status) },
        None => crate::raw::exit_group(status),
    }
}

/// Interposed `_Exit`.
///
/// # Safety
/// As _Exit(2).
#[no_mangle]
pub unsafe extern "C" fn _Exit(status: c_int) -> ! {
    before_exec();
    match real::exit_now_c99().or_else(real::exit_now) {
        // SAFETY: ends the process as the caller asked.
        Some(f) => unsafe { f(status) },
        None => crate::raw::exit_group(status),
    }
}
