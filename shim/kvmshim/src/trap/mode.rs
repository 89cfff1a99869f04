//! What the shim's settings ([`crate::config`], the one parser of
//! `KVMNG_SHIM` and `KVMNG_MODE`) ask of the trap half.
//!
//! * `KVMNG_SHIM=off` disables the whole shim. The trap half then installs
//!   nothing, except in a process that inherited the kvmng filter across
//!   exec: there a kvmng syscall would kill the process with SIGSYS, so a
//!   handler answers `ENOSYS` (what the stock kernel answers).
//! * `KVMNG_MODE=auto` (default) or `syscall`: trap and emulate the kvmng
//!   syscalls when the kernel lacks them. (With `syscall` on such a kernel
//!   the interposition half has already stopped the program.)
//! * `KVMNG_MODE=passthrough`: the shim passes everything to the kernel
//!   untouched; the kvmng syscalls are not emulated (a stock kernel answers
//!   `ENOSYS`), and an inherited filter is answered with `ENOSYS` as for
//!   `off`.

use crate::config::{Mode, Settings};

/// What the trap half does in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Trap and emulate the kvmng syscalls if the kernel lacks them.
    Emulate,
    /// Emulate nothing (an inherited filter is answered with ENOSYS).
    Nothing,
}

/// The trap half's decision for the shim's settings.
pub fn decide(settings: Settings) -> Want {
    match settings {
        Settings { off: true, .. } => Want::Nothing,
        Settings {
            mode: Mode::Passthrough,
            ..
        } => Want::Nothing,
        Settings {
            mode: Mode::Auto | Mode::Syscall,
            ..
        } => Want::Emulate,
    }
}

/// The decision for this image's environment.
pub fn from_env() -> Want {
    decide(crate::config::settings())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(shim: Option<&str>, mode: Option<&str>) -> Want {
        decide(Settings::parse(shim, mode).0)
    }

    #[test]
    fn modes_map_to_decisions() {
        assert_eq!(want(None, None), Want::Emulate);
        assert_eq!(want(None, Some("auto")), Want::Emulate);
        assert_eq!(want(None, Some("syscall")), Want::Emulate);
        assert_eq!(want(None, Some("passthrough")), Want::Nothing);
        assert_eq!(want(Some("off"), Some("syscall")), Want::Nothing);
        assert_eq!(want(Some("OFF"), None), Want::Nothing);
        assert_eq!(want(Some("0"), None), Want::Nothing);
        assert_eq!(want(Some("on"), None), Want::Emulate);
        // Not a mode: auto, with a warning (printed by crate::config).
        let (settings, warning) = Settings::parse(None, Some("fast"));
        assert_eq!(decide(settings), Want::Emulate);
        assert!(warning.unwrap().contains("fast"));
    }
}
