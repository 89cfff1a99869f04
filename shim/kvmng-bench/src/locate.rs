//! Where libkvmshim.so is, for the workers of `kvmng bench` and the runs
//! of `kvmng ab` (and `kvmng exec`).

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// The environment variable naming the shim library explicitly.
pub const SHIM_LIB_ENV: &str = "KVMNG_SHIM_LIB";

/// Where libkvmshim.so is: `$KVMNG_SHIM_LIB`, or next to this program
/// (cargo builds both into target/<profile>/).
pub fn shim_library() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(SHIM_LIB_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "{SHIM_LIB_ENV}={} is not a file; point it at libkvmshim.so, or unset it to use \
                 the one next to the kvmng program",
                path.display()
            );
        }
        return absolute(&path);
    }
    let exe = std::env::current_exe().context("cannot find the kvmng program's own path")?;
    let lib = exe.with_file_name("libkvmshim.so");
    if !lib.is_file() {
        bail!(
            "{} not found: build it with `cargo build -p kvmshim` (with --release if kvmng is a \
             release build), or name it with {SHIM_LIB_ENV}=/path/to/libkvmshim.so",
            lib.display()
        );
    }
    Ok(lib)
}

pub fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Ok(cwd.join(path))
}
