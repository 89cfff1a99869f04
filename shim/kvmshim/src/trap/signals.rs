//! Keeping SIGSYS ours while the trap is active.
//!
//! The kernel delivers our traps to whatever SIGSYS handler the process
//! has, so the program must not be able to replace ours, and the kernel
//! kills a thread whose trap finds SIGSYS blocked (a forced signal that is
//! blocked is unblocked and reset to the default action). While the trap
//! is active ([`active`]) these interposers therefore:
//!
//! * `sigaction`, `signal`, `bsd_signal`, `sysv_signal` for SIGSYS: record
//!   the program's action ([`super::chain`]) instead of installing it; the
//!   old action they report is the program's previous one. Our handler
//!   passes every SIGSYS that is not one of our traps to it. Our handler's
//!   SA_RESTART follows the program's.
//! * `sigaction` for other signals: SIGSYS is taken out of `sa_mask`, so a
//!   kvmng syscall made inside any handler still traps safely.
//! * `sigprocmask`, `pthread_sigmask`: SIGSYS is taken out of every set
//!   being blocked (SIGSYS cannot be blocked while the trap is active).
//!
//! When the trap is not active they pass everything through unchanged.
//! The real functions are found with `dlsym(RTLD_NEXT, ...)`.

use super::{chain, handler};
use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};

type SigactionFn =
    unsafe extern "C" fn(i32, *const libc::sigaction, *mut libc::sigaction) -> libc::c_int;
type SigmaskFn =
    unsafe extern "C" fn(i32, *const libc::sigset_t, *mut libc::sigset_t) -> libc::c_int;
type SignalFn = unsafe extern "C" fn(i32, libc::sighandler_t) -> libc::sighandler_t;

const SIGACTION: usize = 0;
const SIGPROCMASK: usize = 1;
const PTHREAD_SIGMASK: usize = 2;
const SIGNAL: usize = 3;
const BSD_SIGNAL: usize = 4;
const SYSV_SIGNAL: usize = 5;
const NAMES: [&core::ffi::CStr; 6] = [
    c"sigaction",
    c"sigprocmask",
    c"pthread_sigmask",
    c"signal",
    c"bsd_signal",
    c"sysv_signal",
];
static REAL: [AtomicUsize; 6] = [const { AtomicUsize::new(0) }; 6];

fn real(which: usize) -> usize {
    let known = REAL[which].load(SeqCst);
    if known != 0 {
        return known;
    }
    // SAFETY: dlsym with a NUL-terminated name; RTLD_NEXT finds the next
    // definition after this library (libc's).
    let found = unsafe { libc::dlsym(libc::RTLD_NEXT, NAMES[which].as_ptr()) } as usize;
    REAL[which].store(found, SeqCst);
    found
}

/// Looks every real function up now (from the constructor), so that the
/// interposers never need dlsym later.
pub fn resolve_all() {
    for which in 0..NAMES.len() {
        real(which);
    }
}

/// True while our handler owns SIGSYS.
pub fn active() -> bool {
    matches!(
        handler::state(),
        handler::State::Emulate | handler::State::Enosys
    )
}

fn set_errno(e: i32) {
    // SAFETY: this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// The real sigaction.
///
/// # Safety
/// As for sigaction(2).
pub unsafe fn real_sigaction(
    sig: i32,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> libc::c_int {
    match real(SIGACTION) {
        0 => {
            set_errno(libc::ENOSYS);
            -1
        }
        f => {
            // SAFETY: dlsym found libc's sigaction, of this type.
            let f: SigactionFn = unsafe { core::mem::transmute(f) };
            // SAFETY: forwarded; the caller vouches for the pointers.
            unsafe { f(sig, act, old) }
        }
    }
}

/// Our handler's action; SA_RESTART as the program asked for its own.
fn our_action(restart: bool) -> libc::sigaction {
    // SAFETY: all-zero is a valid sigaction.
    let mut action: libc::sigaction = unsafe { core::mem::zeroed() };
    action.sa_sigaction = handler::on_sigsys as extern "C" fn(_, _, _) as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
    if restart {
        action.sa_flags |= libc::SA_RESTART;
    }
    action
}

/// Installs our SIGSYS handler and remembers the action it replaces as the
/// program's. Fails with the errno of sigaction.
pub fn install_handler() -> Result<(), i32> {
    // SAFETY: all-zero is a valid sigaction.
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: querying into `old` on this frame.
    if unsafe { real_sigaction(libc::SIGSYS, core::ptr::null(), &mut old) } != 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    chain::store(&old);
    let ours = our_action(old.sa_flags & libc::SA_RESTART != 0);
    // SAFETY: installing our handler from a sigaction on this frame.
    if unsafe { real_sigaction(libc::SIGSYS, &ours, core::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    Ok(())
}

/// Puts the program's SIGSYS action back in place of ours.
pub fn uninstall_handler() {
    let program = chain::load();
    // SAFETY: reinstalling the program's own action.
    unsafe { real_sigaction(libc::SIGSYS, &program, core::ptr::null_mut()) };
}

/// The program sets (or asks for) its SIGSYS action while ours is active.
///
/// # Safety
/// `act` and `old` are null or valid, as for sigaction.
unsafe fn program_sigsys(act: *const libc::sigaction, old: *mut libc::sigaction) -> libc::c_int {
    let previous = chain::load();
    if !act.is_null() {
        // SAFETY: the caller passed a valid sigaction.
        let new = unsafe { *act };
        chain::store(&new);
        let ours = our_action(new.sa_flags & libc::SA_RESTART != 0);
        // SAFETY: reinstalling our handler with the program's SA_RESTART.
        unsafe { real_sigaction(libc::SIGSYS, &ours, core::ptr::null_mut()) };
    }
    if !old.is_null() {
        // SAFETY: the caller passed room for a sigaction.
        unsafe { *old = previous };
    }
    0
}

fn without_sigsys(set: &libc::sigset_t) -> libc::sigset_t {
    let mut copy = *set;
    // SAFETY: `copy` is a valid sigset on this frame.
    unsafe { libc::sigdelset(&mut copy, libc::SIGSYS) };
    copy
}

/// Interposed `sigaction(3)`.
///
/// # Safety
/// As for sigaction(3).
#[no_mangle]
pub unsafe extern "C" fn sigaction(
    sig: i32,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> libc::c_int {
    if !active() {
        // SAFETY: forwarded unchanged.
        return unsafe { real_sigaction(sig, act, old) };
    }
    if sig == libc::SIGSYS {
        // SAFETY: forwarded; the caller vouches for the pointers.
        return unsafe { program_sigsys(act, old) };
    }
    if act.is_null() {
        // SAFETY: forwarded unchanged.
        return unsafe { real_sigaction(sig, act, old) };
    }
    // SAFETY: the caller passed a valid sigaction.
    let mut copy = unsafe { *act };
    copy.sa_mask = without_sigsys(&copy.sa_mask);
    // SAFETY: forwarded with SIGSYS out of the handler's mask.
    unsafe { real_sigaction(sig, &copy, old) }
}

/// `signal`-family semantics for SIGSYS while ours is active.
fn program_signal(handler: libc::sighandler_t, flags: i32, mask_self: bool) -> libc::sighandler_t {
    if handler == libc::SIG_ERR {
        set_errno(libc::EINVAL);
        return libc::SIG_ERR;
    }
    // SAFETY: all-zero is a valid sigaction.
    let mut action: libc::sigaction = unsafe { core::mem::zeroed() };
    action.sa_sigaction = handler;
    action.sa_flags = flags;
    if mask_self {
        // SAFETY: valid sigset in `action`.
        unsafe { libc::sigaddset(&mut action.sa_mask, libc::SIGSYS) };
    }
    // SAFETY: all-zero is a valid sigaction.
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: both on this frame.
    unsafe { program_sigsys(&action, &mut old) };
    old.sa_sigaction
}

unsafe fn forward_signal(
    which: usize,
    sig: i32,
    handler: libc::sighandler_t,
) -> libc::sighandler_t {
    match real(which) {
        0 => {
            set_errno(libc::ENOSYS);
            libc::SIG_ERR
        }
        f => {
            // SAFETY: dlsym found libc's function of this type.
            let f: SignalFn = unsafe { core::mem::transmute(f) };
            // SAFETY: forwarded unchanged.
            unsafe { f(sig, handler) }
        }
    }
}

/// Interposed `signal(3)` (BSD semantics, as glibc's).
///
/// # Safety
/// As for signal(3).
#[no_mangle]
pub unsafe extern "C" fn signal(sig: i32, handler: libc::sighandler_t) -> libc::sighandler_t {
    if sig == libc::SIGSYS && active() {
        return program_signal(handler, libc::SA_RESTART, true);
    }
    // SAFETY: forwarded unchanged.
    unsafe { forward_signal(SIGNAL, sig, handler) }
}

/// Interposed `bsd_signal(3)`.
///
/// # Safety
/// As for bsd_signal(3).
#[no_mangle]
pub unsafe extern "C" fn bsd_signal(sig: i32, handler: libc::sighandler_t) -> libc::sighandler_t {
    if sig == libc::SIGSYS && active() {
        return program_signal(handler, libc::SA_RESTART, true);
    }
    // SAFETY: forwarded unchanged.
    unsafe { forward_signal(BSD_SIGNAL, sig, handler) }
}

/// Interposed `sysv_signal(3)` (one-shot, not masked, not restarted).
///
/// # Safety
/// As for sysv_signal(3).
#[no_mangle]
pub unsafe extern "C" fn sysv_signal(sig: i32, handler: libc::sighandler_t) -> libc::sighandler_t {
    if sig == libc::SIGSYS && active() {
        return program_signal(handler, libc::SA_RESETHAND | libc::SA_NODEFER, false);
    }
    // SAFETY: forwarded unchanged.
    unsafe { forward_signal(SYSV_SIGNAL, sig, handler) }
}

unsafe fn forward_mask(
    which: usize,
    how: i32,
    set: *const libc::sigset_t,
    old: *mut libc::sigset_t,
) -> libc::c_int {
    let mut copy;
    let mut set = set;
    if active() && !set.is_null() && how != libc::SIG_UNBLOCK {
        // SAFETY: the caller passed a valid sigset.
        copy = without_sigsys(unsafe { &*set });
        set = &mut copy;
    }
    match real(which) {
        0 => {
            set_errno(libc::ENOSYS);
            if which == PTHREAD_SIGMASK {
                libc::ENOSYS
            } else {
                -1
            }
        }
        f => {
            // SAFETY: dlsym found libc's function of this type.
            let f: SigmaskFn = unsafe { core::mem::transmute(f) };
            // SAFETY: forwarded; the caller vouches for the pointers.
            unsafe { f(how, set, old) }
        }
    }
}

/// Interposed `sigprocmask(2)`.
///
/// # Safety
/// As for sigprocmask(2).
#[no_mangle]
pub unsafe extern "C" fn sigprocmask(
    how: i32,
    set: *const libc::sigset_t,
    old: *mut libc::sigset_t,
) -> libc::c_int {
    // SAFETY: forwarded.
    unsafe { forward_mask(SIGPROCMASK, how, set, old) }
}

/// Interposed `pthread_sigmask(3)`.
///
/// # Safety
/// As for pthread_sigmask(3).
#[no_mangle]
pub unsafe extern "C" fn pthread_sigmask(
    how: i32,
    set: *const libc::sigset_t,
    old: *mut libc::sigset_t,
) -> libc::c_int {
    // SAFETY: forwarded.
    unsafe { forward_mask(PTHREAD_SIGMASK, how, set, old) }
}
