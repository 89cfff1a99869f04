//! The ends of a process image: exec replaces it and `_exit` skips the
//! library destructor, so both write the census line first. (`exit()` runs
//! the destructor; glibc's exec variants call the kernel directly, so each
//! variant the program may call is interposed: `execve`, `execv`,
//! `execvp`, `execvpe`, `fexecve`. The variadic `execl*` cannot be defined
//! in Rust and are not covered.) The new image loads the shim afresh from
//! the inherited `LD_PRELOAD`, with the inherited `KVMNG_*` settings.

use super::cabi::{guard, set_errno};
use super::real;
use super::statsfile;
use core::ffi::{c_char, c_int, CStr};
use std::ffi::CString;

fn before_exec() {
    guard(statsfile::flush, || ());
}

/// An environment for the new image with the shim in `LD_PRELOAD`, when
/// the trap half's filter requires it and `envp` lacks it.
struct Env {
    _strings: Vec<CString>,
    pointers: Vec<*const c_char>,
}

/// This library's file name, as the loader found it.
fn own_path() -> Option<CString> {
    // SAFETY: dladdr fills `info` for an address inside this library; the
    // name it points to lives as long as the library.
    unsafe {
        let mut info: libc::Dl_info = core::mem::zeroed();
        let here = own_path as fn() -> Option<CString> as *const libc::c_void;
        if libc::dladdr(here, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        Some(CStr::from_ptr(info.dli_fname).to_owned())
    }
}

/// # Safety
/// `envp` is null or a NULL-terminated array of C strings.
unsafe fn env_with_shim(envp: *const *const c_char) -> Option<Env> {
    if !crate::trap::filter_installed() {
        return None;
    }
    let ours = own_path()?;
    let mut pointers = Vec::new();
    let mut old_preload: Option<&[u8]> = None;
    let mut i = 0;
    while !envp.is_null() {
        // SAFETY: within the NULL-terminated array.
        let entry = unsafe { *envp.add(i) };
        if entry.is_null() {
            break;
        }
        // SAFETY: a C string of the environment.
        let bytes = unsafe { CStr::from_ptr(entry) }.to_bytes();
        if let Some(value) = bytes.strip_prefix(b"LD_PRELOAD=") {
            old_preload = Some(value);
        } else {
            pointers.push(entry);
        }
        i += 1;
    }
    if let Some(value) = old_preload {
        let present = value
            .split(|&b| b == b':' || b == b' ')
            .any(|item| item == ours.as_bytes());
        if present {
            return None;
        }
    }
    let mut preload = b"LD_PRELOAD=".to_vec();
    preload.extend_from_slice(ours.as_bytes());
    if let Some(value) = old_preload.filter(|v| !v.is_empty()) {
        preload.push(b':');
        preload.extend_from_slice(value);
    }
    let preload = CString::new(preload).ok()?;
    pointers.push(preload.as_ptr());
    pointers.push(core::ptr::null());
    Some(Env {
        _strings: vec![preload],
        pointers,
    })
}

fn environ() -> *const *const c_char {
    extern "C" {
        static environ: *const *const c_char;
    }
    // SAFETY: reading glibc's environ pointer.
    unsafe { environ }
}

/// Interposed `execve`.
///
/// # Safety
/// As execve(2).
#[no_mangle]
pub unsafe extern "C" fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    before_exec();
    // SAFETY: `envp` is the caller's environment array.
    let env = guard(|| unsafe { env_with_shim(envp) }, || None);
    let envp = env.as_ref().map_or(envp, |e| e.pointers.as_ptr());
    match real::execve() {
        // SAFETY: the caller's arguments passed on.
        Some(f) => unsafe { f(path, argv, envp) },
        None => {
            // SAFETY: as execve(2); the kernel checks the pointers.
            let r = unsafe {
                kvmng::sys::syscall6(
                    libc::SYS_execve,
                    path as u64,
                    argv as u64,
                    envp as u64,
                    0,
                    0,
                    0,
                )
            };
            super::cabi::c_ret(r)
        }
    }
}

fn missing() -> c_int {
    set_errno(libc::ENOSYS);
    -1
}

/// Interposed `execv`.
///
/// # Safety
/// As execv(3).
#[no_mangle]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    before_exec();
    // SAFETY: glibc's environment array.
    if let Some(env) = guard(|| unsafe { env_with_shim(environ()) }, || None) {
        // SAFETY: as execve(2), with the environment completed.
        return unsafe { execve(path, argv, env.pointers.as_ptr()) };
    }
    match real::execv() {
        // SAFETY: the caller's arguments passed on.
        Some(f) => unsafe { f(path, argv) },
        None => missing(),
    }
}

/// Interposed `execvp`.
///
/// # Safety
/// As execvp(3).
#[no_mangle]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    before_exec();
    // SAFETY: glibc's environment array.
    if let Some(env) = guard(|| unsafe { env_with_shim(environ()) }, || None) {
        // SAFETY: as execvpe(3), with the environment completed.
        return unsafe { execvpe(file, argv, env.pointers.as_ptr()) };
    }
    match real::execvp() {
        // SAFETY: the caller's arguments passed on.
        Some(f) => unsafe { f(file, argv) },
        None => missing(),
    }
}

/// Interposed `execvpe`.
///
/// # Safety
/// As execvpe(3).
#[no_mangle]
pub unsafe extern "C" fn execvpe(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    before_exec();
    // SAFETY: `envp` is the caller's environment array.
    let env = guard(|| unsafe { env_with_shim(envp) }, || None);
    let envp = env.as_ref().map_or(envp, |e| e.pointers.as_ptr());
    match real::execvpe() {
        // SAFETY: the caller's arguments passed on.
        Some(f) => unsafe { f(file, argv, envp) },
        None => missing(),
    }
}

/// Interposed `fexecve`.
///
/// # Safety
/// As fexecve(3).
#[no_mangle]
pub unsafe extern "C" fn fexecve(
    fd: c_int,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    before_exec();
    // SAFETY: `envp` is the caller's environment array.
    let env = guard(|| unsafe { env_with_shim(envp) }, || None);
    let envp = env.as_ref().map_or(envp, |e| e.pointers.as_ptr());
    match real::fexecve() {
        // SAFETY: the caller's arguments passed on.
        Some(f) => unsafe { f(fd, argv, envp) },
        None => missing(),
    }
}

fn exit_group(status: c_int) -> ! {
    loop {
        // SAFETY: exit_group ends the process; it does not return.
        unsafe {
            kvmng::sys::raw6(libc::SYS_exit_group, status as u64, 0, 0, 0, 0, 0);
        }
    }
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
        None => exit_group(status),
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
        None => exit_group(status),
    }
}
