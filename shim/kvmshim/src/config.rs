//! What the environment asks of the whole shim: `KVMNG_SHIM` and
//! `KVMNG_MODE`, parsed here once for both halves (docs/shim.md,
//! "Environment"; docs/trap.md, "Using it").
//!
//! | variable | values | interposition ([`crate::interpose`]) | trap ([`crate::trap`]) |
//! |---|---|---|---|
//! | `KVMNG_SHIM` | `off` or `0` | everything passes through, nothing is written | nothing is installed; an inherited filter is answered `ENOSYS` |
//! | `KVMNG_MODE` | `auto` (default, also empty) | KVM ioctls through the new API | trap and emulate on a stock kernel |
//! | | `syscall` | as auto, but the kernel must have kvmng | as auto |
//! | | `passthrough` | observe only | as `KVMNG_SHIM=off` |
//! | | anything else | named on stderr (once per image); auto | as auto |
//!
//! The environment is read at the first call of [`settings`] in an image
//! (the constructor, or a KVM ioctl from an earlier library constructor)
//! and kept for the life of the image; the warning for a value that is not
//! a mode is printed then, once.

use std::sync::OnceLock;

/// The environment variable that opts a process (and its children) out.
pub const SHIM_ENV: &str = "KVMNG_SHIM";
/// The environment variable that chooses the mode.
pub const MODE_ENV: &str = "KVMNG_MODE";

/// What the shim does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Through the new API: the native syscalls where the kernel has them,
    /// else the legacy emulation (a full translation round trip); the
    /// kvmng syscalls are trapped and emulated on a stock kernel.
    Auto = 0,
    /// Like auto, but the kernel must have the kvmng syscalls: without them
    /// the program is stopped at start with a message.
    Syscall = 1,
    /// Observe only: every KVM ioctl goes to the kernel unchanged, traced
    /// and counted as passthrough; nothing is emulated.
    Passthrough = 2,
}

impl Mode {
    /// The name used in `KVMNG_MODE` and the census.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Syscall => "syscall",
            Mode::Passthrough => "passthrough",
        }
    }

    /// The mode a `KVMNG_MODE` value asks for; `None` if it names none.
    pub fn parse(value: Option<&str>) -> Option<Mode> {
        match value.unwrap_or("auto") {
            "" | "auto" => Some(Mode::Auto),
            "syscall" => Some(Mode::Syscall),
            "passthrough" => Some(Mode::Passthrough),
            _ => None,
        }
    }
}

/// Whether a `KVMNG_SHIM` value opts out (`off`, any case, or `0`).
pub fn is_off(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("off") || v == "0")
}

/// The shim's settings in this image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `KVMNG_SHIM=off`: the whole shim stands aside.
    pub off: bool,
    /// `KVMNG_MODE` (auto when off: not consulted).
    pub mode: Mode,
}

impl Settings {
    /// The settings for the given values of `KVMNG_SHIM` and `KVMNG_MODE`,
    /// and the warning to print when the mode is not understood (none when
    /// the shim is off: the mode is then not looked at).
    pub fn parse(shim: Option<&str>, mode: Option<&str>) -> (Settings, Option<String>) {
        if is_off(shim) {
            return (
                Settings {
                    off: true,
                    mode: Mode::Auto,
                },
                None,
            );
        }
        match Mode::parse(mode) {
            Some(mode) => (Settings { off: false, mode }, None),
            None => (
                Settings {
                    off: false,
                    mode: Mode::Auto,
                },
                Some(format!(
                    "{MODE_ENV}={:?} is not a mode (auto, syscall, passthrough); using auto",
                    mode.unwrap_or("")
                )),
            ),
        }
    }
}

/// This image's settings, read from the environment at the first call
/// (which prints the warning, if any, once).
pub fn settings() -> Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    *SETTINGS.get_or_init(|| {
        let shim = std::env::var(SHIM_ENV).ok();
        let mode = std::env::var(MODE_ENV).ok();
        let (settings, warning) = Settings::parse(shim.as_deref(), mode.as_deref());
        if let Some(w) = warning {
            eprintln!("kvmshim: {w}");
        }
        settings
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_opt_out() {
        assert_eq!(Mode::parse(None), Some(Mode::Auto));
        assert_eq!(Mode::parse(Some("")), Some(Mode::Auto));
        assert_eq!(Mode::parse(Some("syscall")), Some(Mode::Syscall));
        assert_eq!(Mode::parse(Some("passthrough")), Some(Mode::Passthrough));
        assert_eq!(Mode::parse(Some("fast")), None);
        for m in [Mode::Auto, Mode::Syscall, Mode::Passthrough] {
            assert_eq!(Mode::parse(Some(m.name())), Some(m));
        }
        assert!(is_off(Some("off")));
        assert!(is_off(Some("OFF")));
        assert!(is_off(Some("0")));
        assert!(!is_off(Some("on")));
        assert!(!is_off(None));
    }

    #[test]
    fn settings_and_warnings() {
        let on = |mode| Settings { off: false, mode };
        assert_eq!(Settings::parse(None, None), (on(Mode::Auto), None));
        assert_eq!(
            Settings::parse(Some("on"), Some("syscall")),
            (on(Mode::Syscall), None)
        );
        assert_eq!(
            Settings::parse(None, Some("passthrough")),
            (on(Mode::Passthrough), None)
        );
        // Off wins, and the mode is not looked at (no warning).
        let (s, w) = Settings::parse(Some("off"), Some("fast"));
        assert!(s.off && w.is_none());
        let (s, w) = Settings::parse(None, Some("fast"));
        assert_eq!(s, on(Mode::Auto));
        assert_eq!(
            w.as_deref(),
            Some("KVMNG_MODE=\"fast\" is not a mode (auto, syscall, passthrough); using auto")
        );
    }
}
