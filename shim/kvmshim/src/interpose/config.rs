//! The environment, read once, and the one-time set-up.
//!
//! | variable | values | effect |
//! |---|---|---|
//! | `KVMNG_SHIM` | `off` or `0` | the process and its children are left alone |
//! | `KVMNG_MODE` | `auto` (default), `syscall`, `passthrough` | see [`Mode`] |
//! | `KVMNG_BACKEND` | `auto`, `native`, `legacy` | the kvmng library's choice (auto mode) |
//! | `KVMNG_TRACE` | file | one line per KVM ioctl (`%p` → pid) |
//! | `KVMNG_STATS` | file | one JSON line per process at exit (`%p` → pid) |
//!
//! `KVMNG_SHIM` and `KVMNG_MODE` are parsed by [`crate::config`], for both
//! halves of the shim. Whether the kernel has the kvmng syscalls, for the
//! backend choice, is [`crate::trap::kernel_has_kvmng`]'s answer.
//!
//! Set-up runs from the library constructor, or earlier from the first KVM
//! ioctl if another library's constructor issues one first. Until it is
//! done (and on the thread doing it), KVM ioctls go to the kernel
//! unchanged and uncounted.

use super::pathtmpl::{self, PathTemplate};
use crate::config::{Mode, MODE_ENV};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering::SeqCst};
use kvmng::backend::{Backend, BackendKind};
use kvmng::select;
use std::sync::OnceLock;

/// The environment variable that names the trace file.
pub const TRACE_ENV: &str = "KVMNG_TRACE";
/// The environment variable that names the census file.
pub const STATS_ENV: &str = "KVMNG_STATS";

const UNINIT: u8 = 0;
const BUSY: u8 = 1;
const READY: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static INIT_TID: AtomicI32 = AtomicI32::new(0);
static ENABLED: AtomicBool = AtomicBool::new(false);
static MODE: AtomicU8 = AtomicU8::new(Mode::Auto as u8);
static OBSERVE: AtomicBool = AtomicBool::new(false);
/// Set once set-up is done: enabled, a translating mode, no census or
/// trace ([`hot`]). None of these changes after set-up.
static FAST: AtomicBool = AtomicBool::new(false);
/// What the hot-call path may use ([`hot`]): [`HOT_OFF`] until
/// FAST is set and the backend chosen, then [`HOT_NATIVE`] or
/// [`HOT_OTHER`]. Derived from FAST and BACKEND by [`update_hot`], so that
/// the hot path reads one byte.
static HOT: AtomicU8 = AtomicU8::new(HOT_OFF);
const HOT_OFF: u8 = 0;
const HOT_NATIVE: u8 = 1;
const HOT_OTHER: u8 = 2;
static BACKEND: OnceLock<&'static dyn Backend> = OnceLock::new();
/// Auto mode: the backend is chosen at the first KVM ioctl.
static LAZY_BACKEND: AtomicBool = AtomicBool::new(false);

/// `KVMNG_TRACE`.
pub static TRACE_PATH: PathTemplate = PathTemplate::new();
/// `KVMNG_STATS`.
pub static STATS_PATH: PathTemplate = PathTemplate::new();
/// The open trace file, or -1.
pub static TRACE_FD: AtomicI32 = AtomicI32::new(-1);

/// True once set-up is done (running it now if nobody has); false while it
/// runs on this thread, and when it is not done yet.
#[inline]
pub fn ready() -> bool {
    STATE.load(SeqCst) == READY || ensure_init()
}

fn errno() -> i32 {
    // SAFETY: the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Runs the set-up unless it ran; true when it is done. errno is kept.
pub fn ensure_init() -> bool {
    match STATE.compare_exchange(UNINIT, BUSY, SeqCst, SeqCst) {
        Ok(_) => {
            let saved = errno();
            INIT_TID.store(kvmng::sys::gettid(), SeqCst);
            let _ = std::panic::catch_unwind(set_up);
            STATE.store(READY, SeqCst);
            FAST.store(
                enabled() && !observe() && mode() != Mode::Passthrough,
                SeqCst,
            );
            update_hot();
            super::cabi::set_errno(saved);
            true
        }
        Err(READY) => true,
        Err(_) if INIT_TID.load(SeqCst) == kvmng::sys::gettid() => false,
        Err(_) => {
            while STATE.load(SeqCst) != READY {
                std::thread::yield_now();
            }
            true
        }
    }
}

/// False when the process opted out (or before set-up).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(SeqCst)
}

/// The mode.
#[inline]
pub fn mode() -> Mode {
    match MODE.load(SeqCst) {
        1 => Mode::Syscall,
        2 => Mode::Passthrough,
        _ => Mode::Auto,
    }
}

/// Whether calls are counted and traced (a census or trace file is set).
#[inline]
pub fn observe() -> bool {
    OBSERVE.load(SeqCst)
}

/// How the hot-call path ([`super::hot`]) may answer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Hot {
    /// It may not: set-up is not done, the shim is off, the mode passes
    /// through, a census or trace is kept, or no backend is chosen yet
    /// (the first KVM ioctl chooses it on the general path).
    Off,
    /// Through the native backend, whose methods are one syscall each:
    /// the hot path calls them directly (inlined, no vtable).
    Native,
    /// Through the chosen backend ([`chosen_backend`]), by its vtable.
    Other,
}

/// Whether and how the hot-call path may answer: one load.
#[inline]
pub fn hot() -> Hot {
    match HOT.load(SeqCst) {
        HOT_NATIVE => Hot::Native,
        HOT_OTHER => Hot::Other,
        _ => Hot::Off,
    }
}

/// The backend, once chosen.
#[inline]
pub fn chosen_backend() -> Option<&'static dyn Backend> {
    BACKEND.get().copied()
}

/// Sets HOT from FAST and the chosen backend (each is set once).
fn update_hot() {
    let hot = match BACKEND.get() {
        Some(_) if !FAST.load(SeqCst) => HOT_OFF,
        Some(backend) if backend.kind() == BackendKind::Native => HOT_NATIVE,
        Some(_) => HOT_OTHER,
        None => HOT_OFF,
    };
    HOT.store(hot, SeqCst);
}

/// The backend KVM ioctls are carried out through (none in passthrough).
#[inline]
pub fn backend() -> Option<&'static dyn Backend> {
    match BACKEND.get() {
        Some(backend) => Some(*backend),
        None if LAZY_BACKEND.load(SeqCst) => {
            // Choosing may touch errno (reading /proc); the caller's ioctl
            // must leave it as it was when it succeeds.
            let saved = errno();
            let chosen = *BACKEND.get_or_init(choose_backend);
            update_hot();
            super::cabi::set_errno(saved);
            Some(chosen)
        }
        None => None,
    }
}

/// Auto mode's backend: `KVMNG_BACKEND` and the kernel decide. Whether the
/// kernel has kvmng is the trap half's answer: by now its filter is
/// usually in, and the raw probe would be answered by the emulation
/// (EINVAL), choose the native backend and send every translated ioctl
/// through the trap. The trap half knows the kernel's own answer, and its
/// probe is safe in an image that inherited the filter.
fn choose_backend() -> &'static dyn Backend {
    let has = crate::trap::kernel_has_kvmng();
    let request = std::env::var(select::BACKEND_ENV).ok();
    let kind = select::choose(request.as_deref(), has).unwrap_or_else(|e| {
        let fallback = select::choose(None, has).unwrap_or(BackendKind::Legacy);
        warn(&format!("{e}; using the {} backend", fallback.name()));
        fallback
    });
    select::backend(kind)
}

/// The backend's name for the census: `native`, `legacy` or `none`.
pub fn backend_name() -> &'static str {
    BACKEND.get().map_or("none", |b| b.kind().name())
}

fn warn(message: &str) {
    eprintln!("kvmshim: {message}");
}

fn set_up() {
    super::binding::set_pid(kvmng::sys::getpid());
    super::clock::start();
    let settings = crate::config::settings();
    if settings.off {
        return;
    }
    let mode = settings.mode;
    match mode {
        Mode::Passthrough => {}
        Mode::Syscall => {
            if !crate::trap::kernel_has_kvmng() {
                eprintln!(
                    "kvmshim: error: {MODE_ENV}=syscall, but this kernel has no kvmng syscalls \
                     (the probe kvmng_run(~0) answered ENOSYS). Boot a kernel with the kvmng \
                     patches (kernel-patch/), or run with {MODE_ENV}=auto to use the emulation. \
                     Stopping before the program starts."
                );
                // SAFETY: ends the process; nothing of the program ran yet.
                unsafe { libc::_exit(1) };
            }
            let _ = BACKEND.set(select::backend(BackendKind::Native));
        }
        // Chosen at the first KVM ioctl: by then the trap half has set up,
        // and a probe under its inherited filter is answered.
        Mode::Auto => LAZY_BACKEND.store(true, SeqCst),
    }
    MODE.store(mode as u8, SeqCst);

    let pid = kvmng::sys::getpid();
    if let Some(value) = std::env::var_os(TRACE_ENV).filter(|v| !v.is_empty()) {
        use std::os::unix::ffi::OsStrExt;
        if TRACE_PATH.set(value.as_bytes()) {
            open_trace(pid);
        } else {
            warn(&format!("{TRACE_ENV}: file name too long; no trace"));
        }
    }
    if let Some(value) = std::env::var_os(STATS_ENV).filter(|v| !v.is_empty()) {
        use std::os::unix::ffi::OsStrExt;
        if !STATS_PATH.set(value.as_bytes()) {
            warn(&format!("{STATS_ENV}: file name too long; no census"));
        }
    }
    OBSERVE.store(TRACE_FD.load(SeqCst) >= 0 || STATS_PATH.is_set(), SeqCst);
    super::lifecycle::register_fork_handler();
    ENABLED.store(true, SeqCst);
}

/// Opens the trace file for process `pid`, replacing any open one.
pub fn open_trace(pid: i32) {
    let mut path = [0u8; pathtmpl::MAX];
    if !TRACE_PATH.expand(pid, &mut path) {
        return;
    }
    match pathtmpl::open_append(&path) {
        Ok(fd) => {
            let old = TRACE_FD.swap(fd, SeqCst);
            if old >= 0 {
                let _ = kvmng::sys::close(old);
            }
        }
        Err(e) => {
            let end = path.iter().position(|&b| b == 0).unwrap_or(0);
            warn(&format!(
                "cannot open the trace file {}: {e}; no trace",
                String::from_utf8_lossy(&path[..end])
            ));
        }
    }
}
