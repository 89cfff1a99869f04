//! Shared by the kvm_trap_* tests: the shim's path, the C helper programs
//! of compat-tests/conformance/trap (compiled with cc on first use), and
//! running them with the shim preloaded.

#![allow(dead_code)]

#[path = "../support/locate_shim.rs"]
mod locate_shim;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// libkvmshim.so built with this test (the cdylib of this package), found
/// as every test of the workspace finds it.
pub fn shim() -> PathBuf {
    locate_shim::shim_lib()
}

/// Why these tests cannot run here, if they cannot: no usable /dev/kvm, or
/// a kernel that has the kvmng syscalls itself (nothing to trap).
pub fn skip_reason() -> Option<String> {
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return Some(format!("/dev/kvm not usable: {e}"));
    }
    if kernel_has_kvmng() {
        return Some("the kernel has the kvmng syscalls: nothing is trapped".into());
    }
    None
}

/// Whether the kernel has the kvmng syscalls, asked from the test process
/// itself: no shim, no filter, so the raw probe is the right one here
/// (the shim's code must use `kvmshim::trap::kernel_has_kvmng`).
#[allow(clippy::disallowed_methods)]
pub fn kernel_has_kvmng() -> bool {
    kvmng::select::kernel_has_kvmng()
}

/// Prints SKIPPED and returns true when the test cannot run here.
pub fn skip(test: &str) -> bool {
    match skip_reason() {
        Some(why) => {
            eprintln!("SKIPPED: {test}: {why}");
            true
        }
        None => false,
    }
}

static BUILD: Mutex<()> = Mutex::new(());

fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("trap-helpers")
        .join(env!("CARGO_CRATE_NAME"));
    std::fs::create_dir_all(&dir).expect("helper dir");
    dir
}

/// Compiles compat-tests/conformance/trap/<name>.c (when the binary is
/// missing or older than the source) with `extra` flags into
/// `<out>/<output>`; None if cc refuses (used for the optional static
/// build).
pub fn try_build(name: &str, output: &str, extra: &[&str]) -> Option<PathBuf> {
    let _guard = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let root = root();
    let src = root
        .join("compat-tests/conformance/trap")
        .join(format!("{name}.c"));
    let out = out_dir().join(output);
    // Built already, from this source (an edited source is rebuilt: the
    // directory outlives the tree's changes).
    if let (Ok(s), Ok(o)) = (std::fs::metadata(&src), std::fs::metadata(&out)) {
        if o.modified().unwrap() >= s.modified().unwrap() {
            return Some(out);
        }
    }
    // A file of this process's own: nextest runs each test in a process of
    // its own, so another test may be building the same helper. Written to
    // one shared name, the inode the first rename made `out` could still
    // be open for writing by the second's cc, and exec'ing `out` then
    // fails with ETXTBSY; each rename of a complete file is atomic.
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let status = Command::new("cc")
        .args(["-O2", "-g", "-Wall", "-Wextra", "-std=gnu11"])
        .arg(format!(
            "-I{}",
            root.join("kernel-patch/include/uapi").display()
        ))
        .arg(format!(
            "-I{}",
            root.join("compat-tests/conformance").display()
        ))
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .args(extra)
        .args(["-lpthread", "-ldl"])
        .status()
        .expect("cc (install gcc)");
    if !status.success() {
        return None;
    }
    std::fs::rename(&tmp, &out).expect("rename");
    Some(out)
}

/// As [`try_build`], dynamic, panicking on failure.
pub fn build(name: &str) -> PathBuf {
    try_build(name, name, &[]).unwrap_or_else(|| panic!("cc failed for {name}.c"))
}

/// Runs `program args` with the shim preloaded (and the KVMNG_* variables
/// of the test's environment removed).
pub fn run_with_shim(program: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args).env("LD_PRELOAD", shim());
    for var in ["KVMNG_SHIM", "KVMNG_MODE", "KVMNG_BACKEND"] {
        cmd.env_remove(var);
    }
    cmd.output().expect("run helper")
}

/// Runs without the shim.
pub fn run_plain(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env_remove("LD_PRELOAD")
        .output()
        .expect("run helper")
}

/// stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that a helper printed no FAIL line and exited 0.
pub fn assert_passed(what: &str, out: &Output) {
    let text = stdout(out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !text.contains("FAIL"),
        "{what}: {}\nstdout:\n{text}\nstderr:\n{err}",
        out.status
    );
}

/// The signal that killed the process, if one did.
pub fn killed_by(out: &Output) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    out.status.signal()
}
