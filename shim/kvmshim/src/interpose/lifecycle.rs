//! The process events the shim follows besides fd calls: fork (a
//! `pthread_atfork` child handler, which glibc's fork() runs) and the end
//! of the process (the library destructor, which exit() runs after the
//! program's atexit handlers).

use super::{binding, census, config, statsfile};
use std::sync::Once;

static FORK_HANDLER: Once = Once::new();

/// Registers the fork child handler once.
pub fn register_fork_handler() {
    FORK_HANDLER.call_once(|| {
        // SAFETY: registers a child handler that never unwinds.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

/// fork() child: its own census, no bindings, its own trace file if the
/// name has `%p`.
extern "C" fn after_fork_in_child() {
    let _ = std::panic::catch_unwind(|| {
        let pid = kvmng::sys::getpid();
        binding::after_fork_child(pid);
        census::reset();
        super::thread_census::reset();
        if config::TRACE_PATH.has_pid() {
            config::open_trace(pid);
        }
    });
}

/// Library destructor: the census line of this process.
extern "C" fn at_unload() {
    let _ = std::panic::catch_unwind(statsfile::flush);
}

#[used]
#[link_section = ".fini_array"]
static FINI: extern "C" fn() = at_unload;
