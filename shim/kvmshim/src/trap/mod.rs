//! Trap and emulate of the kvmng syscalls on stock kernels.
//!
//! A program written for the kvmng syscalls (docs/api.md) runs unchanged on
//! a kernel without them: at load, if the kernel answers the probe with
//! ENOSYS and the mode wants emulation, the shim
//!
//! 1. builds the legacy backend (so that nothing is allocated later),
//! 2. installs its SIGSYS handler ([`handler`], kept in place by the
//!    interposers of [`signals`]),
//! 3. installs a seccomp filter on every thread (TSYNC) that traps only
//!    the kvmng numbers on x86_64 ([`filter`]).
//!
//! Each kvmng syscall then raises SIGSYS in the calling thread, and the
//! handler carries it out through the legacy backend and puts the result
//! in RAX: the caller sees the syscall's result, errno untouched, as if the
//! kernel had answered. On a kernel with kvmng nothing is installed.
//!
//! The filter survives fork() and exec(); the handler survives fork() only.
//! A new image that inherits the filter must have the shim (the
//! interposition half keeps LD_PRELOAD across exec while
//! [`filter_installed`] is true); its constructor finds the inherited
//! filter through the probe and does not stack a second one. docs/trap.md
//! has the whole story, including what happens without the shim.

mod chain;
pub mod filter;
pub mod handler;
pub mod mode;
pub mod signals;

use core::sync::atomic::{AtomicBool, AtomicU8, Ordering::SeqCst};
use handler::State;
use kvmng::BackendKind;

static FILTER_INSTALLED: AtomicBool = AtomicBool::new(false);

/// True when this process has the kvmng seccomp filter installed (by this
/// image or inherited across exec).
pub fn filter_installed() -> bool {
    FILTER_INSTALLED.load(SeqCst)
}

/// The `Seccomp:` mode of /proc/self/status (0 none, 1 strict, 2 filter),
/// if it can be read.
fn seccomp_mode() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .and_then(|v| v.trim().parse().ok())
}

fn warn(message: &str) {
    eprintln!("kvmshim: {message}");
}

const UNKNOWN: u8 = 0;
const ABSENT: u8 = 1;
const PRESENT: u8 = 2;
/// What the kernel itself answers to the kvmng probe, once known.
static NATIVE: AtomicU8 = AtomicU8::new(UNKNOWN);
/// Set once [`prepare`] ran.
static PREPARED: AtomicBool = AtomicBool::new(false);

/// Makes the kvmng probe safe in this image: if a seccomp filter is in
/// place (ours, inherited across exec), installs our handler in the probe
/// state, so that a trapped probe is answered with ENOSYS instead of
/// killing the process. Idempotent; runs from an early constructor.
fn prepare() {
    if PREPARED.swap(true, SeqCst) {
        return;
    }
    if seccomp_mode() == Some(0) {
        return;
    }
    handler::set_state(State::Probe);
    if let Err(e) = signals::install_handler() {
        handler::set_state(State::None);
        warn(&format!("cannot install the SIGSYS handler (errno {e})"));
    }
}

/// Whether the running kernel itself implements the kvmng syscalls: the
/// one answer every backend choice in the shim is made from (the
/// interposition half's auto mode and `KVMNG_MODE=syscall` check, and this
/// half's decision to trap). Probed once per image and cached.
///
/// Unlike `kvmng::select::kernel_has_kvmng()`, this never mistakes the
/// emulation for the kernel (once our filter is in, the raw probe answers
/// EINVAL through the trap, which would select the native backend and send
/// every translated ioctl through the trap), and never dies of SIGSYS in
/// an image that inherited the filter without a handler yet. The raw probe
/// is disallowed elsewhere in this crate (`clippy.toml`).
pub fn kernel_has_kvmng() -> bool {
    match NATIVE.load(SeqCst) {
        PRESENT => return true,
        ABSENT => return false,
        _ => {}
    }
    if filter_installed() {
        // We only trap on kernels that answered ENOSYS.
        return false;
    }
    prepare();
    // Emulating: the kernel answered ENOSYS before the filter went in.
    // Otherwise a trapped probe is answered ENOSYS by the probe state.
    let answer = match handler::state() {
        State::Emulate | State::Enosys => false,
        State::None | State::Probe => raw_probe(),
    };
    NATIVE.store(if answer { PRESENT } else { ABSENT }, SeqCst);
    answer
}

/// The raw probe `kvmng_run(~0)`: the only call of it in the shim. Only
/// meaningful while our filter is not in, or with the handler in the probe
/// state.
#[allow(clippy::disallowed_methods)]
fn raw_probe() -> bool {
    kvmng::select::kernel_has_kvmng()
}

/// The number of kvmng syscalls this image's SIGSYS handler has answered
/// (emulated, or answered `ENOSYS`), for tests and diagnostics: a program
/// can look it up with `dlsym(RTLD_DEFAULT, "kvmshim_trapped_calls")`.
/// The interposition half never goes through the trap, so its translated
/// ioctls do not count here. Async-signal-safe (one atomic load).
#[no_mangle]
pub extern "C" fn kvmshim_trapped_calls() -> u64 {
    handler::trapped_calls()
}

extern "C" fn early_init() {
    let _ = std::panic::catch_unwind(prepare);
}

/// Runs before the library's main constructor (a prioritized
/// `.init_array` entry sorts ahead of the plain ones), so that the other
/// half's own probe at load cannot kill an image that inherited the filter.
#[used]
#[link_section = ".init_array.00200"]
static EARLY_INIT: extern "C" fn() = early_init;

/// Set-up at load time (from the library constructor).
pub fn init() {
    let want = mode::from_env();
    signals::resolve_all();
    prepare();
    let handler_in = handler::state() == State::Probe;
    let has_kvmng = kernel_has_kvmng();
    if handler_in && handler::probe_trapped() {
        // Inherited: the filter is ours, from the image before exec.
        FILTER_INSTALLED.store(true, SeqCst);
        match want {
            mode::Want::Emulate => {
                handler::set_backend(kvmng::select::backend(BackendKind::Legacy));
                handler::set_state(State::Emulate);
            }
            mode::Want::Nothing => handler::set_state(State::Enosys),
        }
        return;
    }
    if has_kvmng || want == mode::Want::Nothing {
        if handler_in {
            handler::set_state(State::None);
            signals::uninstall_handler();
        }
        return;
    }

    // A stock kernel, and emulation wanted: backend, handler, filter, in
    // that order.
    let program = match filter::program() {
        Ok(p) => p,
        Err(e) => {
            warn(&format!("{e}; kvmng syscalls are not emulated"));
            if handler_in {
                handler::set_state(State::None);
                signals::uninstall_handler();
            }
            return;
        }
    };
    handler::set_backend(kvmng::select::backend(BackendKind::Legacy));
    handler::set_state(State::Emulate);
    if !handler_in {
        if let Err(e) = signals::install_handler() {
            handler::set_state(State::None);
            warn(&format!(
                "cannot install the SIGSYS handler (errno {e}); kvmng syscalls are not emulated"
            ));
            return;
        }
    }
    match filter::apply(&program) {
        Ok(_) => FILTER_INSTALLED.store(true, SeqCst),
        Err(e) => {
            handler::set_state(State::None);
            signals::uninstall_handler();
            warn(&format!(
                "cannot install the seccomp filter: {e}; kvmng syscalls answer ENOSYS"
            ));
        }
    }
}
