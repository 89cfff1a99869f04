//! Shared by the CLI's integration tests: the kvmng binary and the shim
//! library built with them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>`, from this test binary's path.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

/// The shim library cargo built with the tests (`deps/`), else the one
/// `cargo build` left in `target/<profile>/`, building it if missing.
pub fn shim_lib() -> PathBuf {
    let fresh = profile_dir().join("deps/libkvmshim.so");
    if fresh.exists() {
        return fresh;
    }
    let lib = profile_dir().join("libkvmshim.so");
    if !lib.exists() {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-q", "-p", "kvmshim"]);
        if profile_dir().file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build");
        assert!(status.success(), "cargo build -p kvmshim failed");
    }
    assert!(lib.exists(), "{} missing", lib.display());
    lib
}

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
