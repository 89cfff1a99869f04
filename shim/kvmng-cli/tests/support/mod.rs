//! Shared by the CLI's integration tests: the kvmng binary and the shim
//! library built with them.

#![allow(dead_code)]

// libkvmshim.so is found by the shim's own tests' locator: one
// implementation for both packages.
#[path = "../../../kvmshim/tests/support/locate_shim.rs"]
mod locate_shim;

pub use locate_shim::shim_lib;

use std::path::PathBuf;
use std::process::Command;

/// The `kvmng` command, with the shim library named explicitly.
pub fn kvmng() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kvmng"));
    cmd.env("KVMNG_SHIM_LIB", shim_lib());
    for var in [
        "LD_PRELOAD",
        "KVMNG_MODE",
        "KVMNG_STATS",
        "KVMNG_TRACE",
        "KVMNG_BACKEND",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kvmng-cli-{name}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
