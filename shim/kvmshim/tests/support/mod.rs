//! Shared by the shim's integration tests: the built libkvmshim.so, the C
//! test program (compiled here with `cc`, since C programs call glibc's
//! ioctl() as QEMU and the selftests do), guest binaries, and running a
//! scenario natively and through the shim.
//!
//! The library is found by [`shim_lib`] (`support/locate_shim.rs`, shared
//! with the CLI's tests).

#![allow(dead_code)]

mod locate_shim;

// Not every test binary uses each of them (as with `dead_code` above).
#[allow(unused_imports)]
pub use locate_shim::{cargo_build, profile_dir, shim_lib};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// A scratch directory shared by the tests of this crate.
pub fn scratch() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kvmshim-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh file name in the scratch directory (not created).
pub fn temp_file(stem: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let path = scratch().join(format!("{stem}.{}.{n}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Writes `bytes` to `path` atomically (tests run in parallel processes).
fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Compiles C source `name` (tests/c/<name>.c) into the scratch directory;
/// `shared` builds a shared library. Recompiles when the source is newer.
pub fn compile_c(name: &str, shared: bool) -> PathBuf {
    compile_c_with(name, shared, &[])
}

/// As [`compile_c`], with extra compiler arguments (the same ones every
/// time for a given `name`: a fresh binary is not rebuilt).
pub fn compile_c_with(name: &str, shared: bool, extra: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(format!("{name}.c"));
    let out = scratch().join(if shared {
        format!("lib{name}.so")
    } else {
        name.to_string()
    });
    let fresh = match (std::fs::metadata(&src), std::fs::metadata(&out)) {
        (Ok(s), Ok(o)) => o.modified().unwrap() >= s.modified().unwrap(),
        _ => false,
    };
    if fresh {
        return out;
    }
    let tmp = out.with_extension(format!("build{}", std::process::id()));
    let mut cmd = Command::new("cc");
    cmd.args(["-O2", "-Wall", "-o"]).arg(&tmp).arg(&src);
    if shared {
        cmd.args(["-shared", "-fPIC"]);
    }
    cmd.args(extra);
    cmd.arg("-lpthread");
    let result = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cc ({e}): install gcc (apt-get install gcc)"));
    assert!(
        result.status.success(),
        "cc {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// The C test program.
pub fn probe() -> PathBuf {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| compile_c("kvmprobe", false)).clone()
}

/// C test program `name` (tests/c/<name>.c) that makes kvmng syscalls:
/// compiled with `-DKVMNG_NR_RUN=` the number of `kvmng_run` (the ABI
/// crate's, the one definition).
pub fn kvmng_c_program(name: &str) -> PathBuf {
    let define = format!("-DKVMNG_NR_RUN={}", kvmng_abi::Syscall::Run.nr());
    compile_c_with(name, false, &[&define])
}

/// The flat binary of guest `name` (kvmng-guests), as a file.
pub fn guest_file(name: &str) -> PathBuf {
    let guest = kvmng_guests::by_name(name).expect("known guest");
    let path = scratch().join(format!("{name}.bin"));
    if std::fs::read(&path).ok().as_deref() != Some(guest.code) {
        write_atomically(&path, guest.code);
    }
    path
}

/// Whether /dev/kvm can be used; if not, says SKIPPED.
pub fn kvm(test: &str) -> bool {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIPPED: {test}: /dev/kvm not available: {e}");
            false
        }
    }
}

/// Whether the kernel has the kvmng syscalls, asked from the test process
/// itself: no shim, no filter, so the raw probe is the right one here
/// (the shim's code must use `kvmshim::trap::kernel_has_kvmng`).
#[allow(clippy::disallowed_methods)]
pub fn kernel_has_kvmng() -> bool {
    kvmng::select::kernel_has_kvmng()
}

/// How to run a program.
#[derive(Default, Clone)]
pub struct Run {
    /// Preload the shim.
    pub shim: bool,
    /// Environment variables to set.
    pub env: Vec<(String, String)>,
    /// `LD_PRELOAD` value to use instead of the shim alone.
    pub preload: Option<String>,
}

impl Run {
    /// Natively.
    pub fn native() -> Run {
        Run::default()
    }

    /// With the shim in `mode`.
    pub fn shim(mode: &str) -> Run {
        Run {
            shim: true,
            ..Run::default()
        }
        .with("KVMNG_MODE", mode)
    }

    /// Plus one environment variable.
    pub fn with(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Run {
        self.env.push((
            key.to_string(),
            value.as_ref().to_string_lossy().into_owned(),
        ));
        self
    }

    /// Runs `program` with `args`.
    pub fn run(&self, program: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(program);
        cmd.args(args);
        for var in [
            "LD_PRELOAD",
            "KVMNG_MODE",
            "KVMNG_TRACE",
            "KVMNG_STATS",
            "KVMNG_SHIM",
        ] {
            cmd.env_remove(var);
        }
        if let Some(p) = &self.preload {
            cmd.env("LD_PRELOAD", p);
        } else if self.shim {
            cmd.env("LD_PRELOAD", shim_lib());
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().expect("running the test program")
    }

    /// Runs the C probe with `args`; asserts it exited 0; its stdout.
    pub fn probe(&self, args: &[&str]) -> String {
        let out = self.run(&probe(), args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kvmprobe {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

/// Runs probe scenario `args` natively and through the shim in `mode`
/// (with `extra` settings), asserts the outputs are identical, and returns
/// the shim run's output.
pub fn same_as_native(args: &[&str], shim: Run) -> String {
    let native = Run::native().probe(args);
    let through = shim.probe(args);
    assert_eq!(
        native, through,
        "kvmprobe {args:?}: output differs natively (left) and through the shim (right)"
    );
    through
}

/// The census lines of a stats file.
pub fn census(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The JSON object of command `name` in a census line, if listed.
pub fn command<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{{\"name\":\"{name}\"");
    let start = line.find(&key)?;
    // Command objects end with the close of fallback_reasons and their own.
    let end = line[start..].find("}}")? + start + 2;
    Some(&line[start..end])
}

/// A numeric field of a JSON object (flat search: the census format puts
/// each key once per command object).
pub fn field(object: &str, key: &str) -> u64 {
    let pat = format!("\"{key}\":");
    let at = object
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {object}"))
        + pat.len();
    object[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// A field of command `name` in census line `line` (0 if not listed).
pub fn count(line: &str, name: &str, key: &str) -> u64 {
    command(line, name).map_or(0, |c| field(c, key))
}

/// Sum of `key` over all commands of a census line.
pub fn total(line: &str, key: &str) -> u64 {
    let pat = format!("\"{key}\":");
    line.match_indices(&pat)
        .map(|(i, _)| {
            line[i + pat.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<u64>()
                .unwrap()
        })
        .sum()
}
