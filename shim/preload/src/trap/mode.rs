//! What the environment asks of the trap half.
//!
//! * `KVMNG_SHIM=off` disables the whole shim. The trap half then installs
//!   nothing, except in a process that inherited the kvmng filter across
//!   exec: there a kvmng syscall would kill the process with SIGSYS, so a
//!   handler answers `ENOSYS` (what the stock kernel answers).
//! * `KVMNG_MODE=auto` (default) or `syscall`: trap and emulate the kvmng
//!   syscalls when the kernel lacks them.
//! * `KVMNG_MODE=passthrough`: the shim passes everything to the kernel
//!   untouched; the kvmng syscalls are not emulated (a stock kernel answers
//!   `ENOSYS`), and an inherited filter is answered with `ENOSYS` as for
//!   `off`.

/// The environment variable that disables the whole shim (`off`).
pub const SHIM_ENV: &str = "KVMNG_SHIM";
/// The environment variable that chooses the shim's mode.
pub const MODE_ENV: &str = "KVMNG_MODE";

/// What the trap half does in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Trap and emulate the kvmng syscalls if the kernel lacks them.
    Emulate,
    /// Emulate nothing (an inherited filter is answered with ENOSYS).
    Nothing,
}

/// The decision for the given values of `KVMNG_SHIM` and `KVMNG_MODE`, and
/// a warning to print when a value is not understood.
pub fn decide(shim: Option<&str>, mode: Option<&str>) -> (Want, Option<String>) {
    if shim.is_some_and(|v| v.eq_ignore_ascii_case("off") || v == "0") {
        return (Want::Nothing, None);
    }
    match mode.unwrap_or("auto") {
        "" | "auto" | "syscall" => (Want::Emulate, None),
        "passthrough" => (Want::Nothing, None),
        other => (
            Want::Emulate,
            Some(format!(
                "kvmshim: {MODE_ENV}={other:?} is not a mode (auto, syscall, passthrough); using auto"
            )),
        ),
    }
}

/// The decision for this process's environment.
pub fn from_env() -> (Want, Option<String>) {
    let shim = std::env::var(SHIM_ENV).ok();
    let mode = std::env::var(MODE_ENV).ok();
    decide(shim.as_deref(), mode.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_map_to_decisions() {
        assert_eq!(decide(None, None), (Want::Emulate, None));
        assert_eq!(decide(None, Some("auto")).0, Want::Emulate);
        assert_eq!(decide(None, Some("syscall")).0, Want::Emulate);
        assert_eq!(decide(None, Some("passthrough")).0, Want::Nothing);
        assert_eq!(decide(Some("off"), Some("syscall")).0, Want::Nothing);
        assert_eq!(decide(Some("OFF"), None).0, Want::Nothing);
        assert_eq!(decide(Some("on"), None).0, Want::Emulate);
        let (want, warning) = decide(None, Some("fast"));
        assert_eq!(want, Want::Emulate);
        assert!(warning.unwrap().contains("fast"));
    }
}
