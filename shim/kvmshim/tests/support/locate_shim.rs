//! Where a test binary finds libkvmshim.so: the one locator, shared by the
//! shim's test helpers (`tests/support`, `tests/trap_support`) and the
//! CLI's (`shim/kvmng-cli/tests/support`), which include this file with `#[path]`.
//!
//! The library is the cdylib cargo builds with the test binaries
//! (`target/<profile>/deps/libkvmshim.so`), else
//! `target/<profile>/libkvmshim.so`; if neither exists, `cargo build -p
//! kvmshim` is run once (in the including package's directory, with this
//! test binary's profile).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `target/<profile>`, from this test binary's path
/// (`target/<profile>/deps/<test>`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Builds `package` with cargo (same profile as this test binary).
pub fn cargo_build(package: &str) {
    let mut cmd = Command::new(cargo());
    cmd.args(["build", "-q", "-p", package]);
    if profile_dir().file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running cargo build");
    assert!(status.success(), "cargo build -p {package} failed");
}

/// The shim library: the one cargo built with this test binary
/// (`target/<profile>/deps/libkvmshim.so`, rebuilt with the tests), else
/// `target/<profile>/libkvmshim.so`, which only `cargo build` refreshes
/// (a test run after an edit must not use a stale copy).
pub fn shim_lib() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let fresh = profile_dir().join("deps/libkvmshim.so");
        if fresh.exists() {
            return fresh;
        }
        let lib = profile_dir().join("libkvmshim.so");
        if !lib.exists() {
            cargo_build("kvmshim");
        }
        assert!(lib.exists(), "{} missing after cargo build", lib.display());
        lib
    })
    .clone()
}
