//! `kvmng exec`: run a program with libkvmshim.so preloaded.
//!
//! Sets `LD_PRELOAD` (the shim first, then any libraries already there),
//! `KVMNG_MODE`, `KVMNG_TRACE` and `KVMNG_STATS` (as absolute paths, so
//! that a program that changes directory still writes where asked), then
//! replaces this process with the program: its exit status, signals and pid
//! are the program's own.

use anyhow::bail;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use kvmng_bench::locate::{absolute, shim_library};

/// The modes of the shim (docs/shim.md).
pub const MODES: [&str; 3] = ["auto", "syscall", "passthrough"];

/// `LD_PRELOAD` with the shim first, followed by what was there.
pub fn preload_value(shim: &Path, existing: Option<OsString>) -> OsString {
    let mut value = shim.as_os_str().to_os_string();
    if let Some(old) = existing.filter(|v| !v.is_empty()) {
        value.push(":");
        value.push(old);
    }
    value
}

/// Runs `command` with the shim; returns only if it cannot be started.
pub fn run(
    mode: &str,
    trace: Option<&Path>,
    stats: Option<&Path>,
    command: &[OsString],
) -> anyhow::Result<()> {
    if !MODES.contains(&mode) {
        bail!(
            "--mode {mode:?} is not a mode; use one of: {}",
            MODES.join(", ")
        );
    }
    let Some((program, args)) = command.split_first() else {
        bail!("no command given: use `kvmng exec [OPTIONS] -- COMMAND [ARGS...]`");
    };
    let shim = shim_library()?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env(
            "LD_PRELOAD",
            preload_value(&shim, std::env::var_os("LD_PRELOAD")),
        )
        .env("KVMNG_MODE", mode)
        .env_remove("KVMNG_SHIM");
    if let Some(trace) = trace {
        cmd.env("KVMNG_TRACE", absolute(trace)?);
    }
    if let Some(stats) = stats {
        cmd.env("KVMNG_STATS", absolute(stats)?);
    }
    let err = cmd.exec();
    bail!(
        "cannot run {}: {err}{}",
        Path::new(program).display(),
        if err.kind() == std::io::ErrorKind::NotFound {
            " (not found: give a path, or a program on PATH)"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shim_goes_first_in_ld_preload() {
        let shim = Path::new("/x/libkvmshim.so");
        assert_eq!(preload_value(shim, None), "/x/libkvmshim.so");
        assert_eq!(preload_value(shim, Some("".into())), "/x/libkvmshim.so");
        assert_eq!(
            preload_value(shim, Some("/y/liba.so".into())),
            "/x/libkvmshim.so:/y/liba.so"
        );
    }

    #[test]
    fn bad_modes_and_empty_commands_are_refused() {
        let e = run("fast", None, None, &["true".into()]).unwrap_err();
        assert!(e.to_string().contains("not a mode"), "{e}");
        let e = run("auto", None, None, &[]).unwrap_err();
        assert!(e.to_string().contains("no command given"), "{e}");
    }
}
