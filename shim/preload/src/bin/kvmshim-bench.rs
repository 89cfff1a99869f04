//! kvmshim-bench: what interposition costs, measured in one run.
//!
//! Runs itself as a worker under five settings: natively, and with
//! libkvmshim.so preloaded in passthrough and auto mode, each without and
//! with a census file (KVMNG_STATS, which makes every KVM call counted and
//! timed). Each worker times, through glibc's ioctl():
//!
//! * FIONREAD on a pipe: a non-KVM ioctl (the shim's fast path);
//! * KVM_CHECK_EXTENSION on a VM fd: a cheap KVM ioctl;
//! * KVM_GET_MP_STATE on a vCPU fd: a vCPU state ioctl (a kvmng_vcpu_state
//!   entry in auto mode).
//!
//! and reports the median over rounds of the mean time per call, the
//! lowest of three interleaved passes (load from elsewhere only adds
//! time). This is a measurement, not a test: it never fails on a figure.
//!
//! Usage: kvmshim-bench [--rounds R] [--calls N] [--lib PATH]
//! The library is PATH, $KVMNG_SHIM_LIB, or libkvmshim.so next to this
//! program (cargo puts both in target/<profile>/).

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

const KVM_CHECK_EXTENSION: u64 = 0xae03;
const KVM_CREATE_VM: u64 = 0xae01;
const KVM_CREATE_VCPU: u64 = 0xae41;
const KVM_RUN: u64 = 0xae80;
const KVM_GET_VCPU_MMAP_SIZE: u64 = 0xae04;
const KVM_GET_MP_STATE: u64 = 0x8004_ae98;
const KVM_CAP_USER_MEMORY: u64 = 3;

struct Settings {
    rounds: usize,
    calls: usize,
    lib: Option<PathBuf>,
}

fn parse_args() -> Result<(Settings, bool), String> {
    let mut s = Settings {
        rounds: 41,
        calls: 20_000,
        lib: None,
    };
    let mut worker = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--rounds" => {
                s.rounds = value("--rounds")?
                    .parse()
                    .map_err(|e| format!("--rounds: {e}"))?
            }
            "--calls" => {
                s.calls = value("--calls")?
                    .parse()
                    .map_err(|e| format!("--calls: {e}"))?
            }
            "--lib" => s.lib = Some(PathBuf::from(value("--lib")?)),
            "--worker" => worker = true,
            "-h" | "--help" => {
                return Err("usage: kvmshim-bench [--rounds R] [--calls N] [--lib PATH]".into())
            }
            other => return Err(format!("unknown argument {other:?}; see --help")),
        }
    }
    if s.rounds == 0 || s.calls == 0 {
        return Err("--rounds and --calls must be at least 1".into());
    }
    Ok((s, worker))
}

/// Median over `rounds` of the mean ns per call of `f` run `calls` times.
fn median_ns(rounds: usize, calls: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..calls / 10 + 1 {
        f();
    }
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                f();
            }
            start.elapsed().as_nanos() as f64 / calls as f64
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn ioctl(fd: i32, cmd: u64, arg: u64) -> i32 {
    // SAFETY: glibc's ioctl (or the shim's): the arguments below are what
    // each request expects (integers, or a pointer to a live buffer).
    unsafe { libc::ioctl(fd, cmd as libc::c_ulong, arg) }
}

fn worker(s: &Settings) -> Result<(), String> {
    let mut pipe = [0i32; 2];
    // SAFETY: pipe writes two fds into `pipe`.
    if unsafe { libc::pipe(pipe.as_mut_ptr()) } != 0 {
        return Err("pipe failed".into());
    }
    let mut ready: libc::c_int = 0;
    let ready_ptr = &mut ready as *mut libc::c_int as u64;
    let fionread = median_ns(s.rounds, s.calls, || {
        ioctl(pipe[0], libc::FIONREAD, ready_ptr);
    });
    println!("FIONREAD {fionread:.1}");

    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm: {e}"))?;
    use std::os::fd::AsRawFd;
    let kvm = kvm.as_raw_fd();
    let vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if vm < 0 {
        return Err("KVM_CREATE_VM failed".into());
    }
    let check = median_ns(s.rounds, s.calls, || {
        ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY);
    });
    println!("KVM_CHECK_EXTENSION {check:.1}");

    let vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    let size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if vcpu < 0 || size <= 0 {
        return Err("KVM_CREATE_VCPU failed".into());
    }
    // SAFETY: maps the vCPU's kvm_run page; checked below.
    let run = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            size as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            vcpu,
            0,
        )
    };
    if run == libc::MAP_FAILED {
        return Err("mmap of the vCPU failed".into());
    }
    // struct kvm_run: immediate_exit is the byte at offset 1. A run that
    // returns at once binds the thread through the shim in auto mode.
    // SAFETY: the page is mapped read-write.
    unsafe { *(run as *mut u8).add(1) = 1 };
    ioctl(vcpu, KVM_RUN, 0);
    // SAFETY: as above.
    unsafe { *(run as *mut u8).add(1) = 0 };
    let mut mp_state = 0u32;
    let mp_ptr = &mut mp_state as *mut u32 as u64;
    let vcpu_calls = (s.calls / 20).max(1);
    let mp = median_ns(s.rounds, vcpu_calls, || {
        ioctl(vcpu, KVM_GET_MP_STATE, mp_ptr);
    });
    println!("KVM_GET_MP_STATE {mp:.1}");
    Ok(())
}

fn lib_path(s: &Settings) -> Result<PathBuf, String> {
    let lib = match (&s.lib, std::env::var_os("KVMNG_SHIM_LIB")) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => PathBuf::from(p),
        (None, None) => std::env::current_exe()
            .map_err(|e| format!("cannot find this program's path: {e}"))?
            .with_file_name("libkvmshim.so"),
    };
    if !lib.exists() {
        return Err(format!(
            "{} does not exist; build it with `cargo build -p kvmshim` (same profile), \
             or name it with --lib PATH or KVMNG_SHIM_LIB",
            lib.display()
        ));
    }
    Ok(lib)
}

type Row = (String, Vec<(String, f64)>);

fn run_worker(s: &Settings, lib: &PathBuf, mode: Option<&str>, stats: bool) -> Result<Row, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "--worker",
        "--rounds",
        &s.rounds.to_string(),
        "--calls",
        &s.calls.to_string(),
    ]);
    for var in [
        "LD_PRELOAD",
        "KVMNG_MODE",
        "KVMNG_STATS",
        "KVMNG_TRACE",
        "KVMNG_SHIM",
    ] {
        cmd.env_remove(var);
    }
    let mut name = "native".to_string();
    let stats_file =
        std::env::temp_dir().join(format!("kvmshim-bench.{}.stats", std::process::id()));
    if let Some(mode) = mode {
        cmd.env("LD_PRELOAD", lib).env("KVMNG_MODE", mode);
        name = mode.to_string();
        if stats {
            cmd.env("KVMNG_STATS", &stats_file);
            name.push_str("+stats");
        }
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run the worker: {e}"))?;
    let _ = std::fs::remove_file(&stats_file);
    if !out.status.success() {
        return Err(format!(
            "worker ({name}) failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let figures = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (op, ns) = l.split_once(' ')?;
            Some((op.to_string(), ns.parse().ok()?))
        })
        .collect();
    Ok((name, figures))
}

fn main() -> ExitCode {
    let (settings, is_worker) = match parse_args() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("kvmshim-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let result = if is_worker {
        worker(&settings)
    } else {
        report(&settings)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvmshim-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn report(s: &Settings) -> Result<(), String> {
    let lib = lib_path(s)?;
    let configs: [(Option<&str>, bool); 5] = [
        (None, false),
        (Some("passthrough"), false),
        (Some("passthrough"), true),
        (Some("auto"), false),
        (Some("auto"), true),
    ];
    // Each setting runs PASSES times, interleaved, and keeps its lowest
    // median: other load on the machine only ever adds time.
    const PASSES: usize = 3;
    let mut rows: Vec<Row> = Vec::new();
    for _ in 0..PASSES {
        for (i, (mode, stats)) in configs.iter().enumerate() {
            let (name, figures) = run_worker(s, &lib, *mode, *stats)?;
            match rows.get_mut(i) {
                None => rows.push((name, figures)),
                Some((_, best)) => {
                    for (op, ns) in figures {
                        match best.iter_mut().find(|(o, _)| *o == op) {
                            Some((_, b)) => *b = b.min(ns),
                            None => best.push((op, ns)),
                        }
                    }
                }
            }
        }
    }
    println!(
        "kvmshim-bench: ns per call through glibc ioctl(), median of {} rounds \
         ({} calls a round; {} for KVM_GET_MP_STATE), lowest of 3 interleaved passes; \
         +N = added to native",
        s.rounds,
        s.calls,
        (s.calls / 20).max(1)
    );
    println!("shim: {}", lib.display());
    let ops = ["FIONREAD", "KVM_CHECK_EXTENSION", "KVM_GET_MP_STATE"];
    println!(
        "{:<18} {:>20} {:>26} {:>24}",
        "", "FIONREAD (pipe)", "KVM_CHECK_EXTENSION (VM)", "KVM_GET_MP_STATE (vCPU)"
    );
    let native = rows[0].1.clone();
    let get = |figures: &[(String, f64)], op: &str| {
        figures.iter().find(|(o, _)| o == op).map(|(_, v)| *v)
    };
    for (name, figures) in &rows {
        let cells: Vec<String> = ops
            .iter()
            .map(|op| match (get(figures, op), get(&native, op)) {
                (Some(v), Some(base)) if name != "native" => format!("{v:.1} ({:+.1})", v - base),
                (Some(v), _) => format!("{v:.1}"),
                _ => "-".into(),
            })
            .collect();
        println!(
            "{:<18} {:>20} {:>26} {:>24}",
            name, cells[0], cells[1], cells[2]
        );
    }
    Ok(())
}
