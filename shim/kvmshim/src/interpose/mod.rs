//! Interposition of legacy KVM ioctls: `ioctl()` programs on the new API.
//!
//! The library exports `ioctl` and the calls that keep its knowledge of
//! file descriptors true (`open*`, `close`, `close_range`, `dup*`,
//! `fcntl*`), and the exits of a process image (`exec*`, `_exit`) so that
//! its census is written (and, while the trap's filter is in, the next
//! image keeps the shim in `LD_PRELOAD`). A KVM ioctl is carried out as the kvmng call of
//! the mapping table in docs/api.md section 7 through the kvmng library
//! (native syscalls or the legacy emulation), or, where that cannot give
//! the native answer, passed to the kernel unchanged and counted as a
//! fallback with its reason. docs/shim.md is the user's guide.
//!
//! One job per module:
//! * [`entry`]: the exported `ioctl`, with the fast path for non-KVM
//!   requests;
//! * [`hot`]: the hot calls (KVM_RUN, register ioctls, KVM_IRQ_LINE,
//!   KVM_CHECK_EXTENSION) answered without classification or census;
//! * [`dispatch`]: a KVM ioctl from classification to census;
//! * [`translate`]: the new-API form of each command;
//! * [`binding`]: which VM and vCPUs this process and its threads have bound;
//! * [`fdtable`]: what each fd number is, cached per fd;
//! * [`cmdindex`]: request number to row of the mapping table, in O(1);
//! * [`reason`]: the documented fallback reasons;
//! * [`census`]: counters; [`thread_census`]: the same per thread for
//!   vCPU calls; [`statsfile`]: the JSON line at exit;
//!   [`trace`]: one line per call;
//! * [`fdhooks`], [`exechooks`]: the exported fd and exec/exit functions;
//! * [`lifecycle`]: fork child handler and the library destructor;
//! * [`config`]: the environment and the one-time set-up;
//! * [`real`]: the next definitions of the interposed libc functions;
//! * [`cabi`], [`clock`], [`fmtbuf`], [`pathtmpl`]: small helpers.

pub mod binding;
pub mod cabi;
pub mod census;
pub mod clock;
pub mod cmdindex;
pub mod config;
pub mod dispatch;
pub mod entry;
pub mod exechooks;
pub mod fdhooks;
pub mod fdtable;
pub mod fmtbuf;
pub mod hot;
pub mod lifecycle;
pub mod pathtmpl;
pub mod real;
pub mod reason;
pub mod statsfile;
pub mod thread_census;
pub mod trace;
pub mod translate;

/// Set-up at load time (from the library constructor). Idempotent: a
/// KVM ioctl issued before the constructor ran (by another library's
/// constructor) has already done it.
pub fn init() {
    exechooks::prepare();
    config::ensure_init();
}

/// False when `KVMNG_SHIM=off` (or `0`) opted this process out: the shim
/// then passes everything through untouched and reports nothing.
pub fn shim_enabled() -> bool {
    config::ensure_init();
    config::enabled()
}
