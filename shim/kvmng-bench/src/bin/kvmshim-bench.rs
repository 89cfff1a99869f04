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
//!   entry in auto mode);
//! * KVM_SET_USER_MEMORY_REGION of a one-page slot (created, then deleted)
//!   while 1, 2 and 4 vCPU threads sit in KVM_RUN running a guest loop,
//!   with every signal blocked but SIGUSR1, as QEMU's vCPU threads run (a
//!   one-region `kvmng_memory_map` in auto mode, which holds nobody).
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
const KVM_SET_USER_MEMORY_REGION: u64 = 0x4020_ae46;
const KVM_GET_SREGS: u64 = 0x8138_ae83;
const KVM_SET_SREGS: u64 = 0x4138_ae84;
const KVM_SET_REGS: u64 = 0x4090_ae82;
/// The vCPU counts of the memory-update measurement.
const RUNNING_VCPUS: [usize; 3] = [1, 2, 4];

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

/// The `kvm_run` area of vCPU fd `vcpu` (`size` bytes), mapped.
fn map_run(vcpu: i32, size: i32) -> Result<*mut libc::c_void, String> {
    // SAFETY: a new shared mapping of the vCPU fd; checked below.
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
        return Err("mmap of a vCPU failed".into());
    }
    Ok(run)
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
    let run = map_run(vcpu, size)?;
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

    for n in RUNNING_VCPUS {
        let ns = memory_update_with_running_vcpus(s, kvm, n)?;
        println!("SET_MEMORY_REGION/{n} {ns:.1}");
    }
    Ok(())
}

/// struct kvm_userspace_memory_region.
#[repr(C)]
#[derive(Default)]
struct Region {
    slot: u32,
    flags: u32,
    guest_phys_addr: u64,
    memory_size: u64,
    userspace_addr: u64,
}

/// Anonymous memory of `len` bytes (never unmapped: the worker exits).
fn anonymous(len: usize) -> Result<*mut u8, String> {
    // SAFETY: a new private anonymous mapping; checked below.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err("mmap failed".into());
    }
    Ok(p.cast())
}

/// A vCPU thread as QEMU runs one: every signal blocked but SIGUSR1 (its
/// IPI), KVM_RUN until the IPI's immediate_exit stops it.
fn run_vcpu(
    vcpu: i32,
    run: usize,
    stop: &std::sync::atomic::AtomicBool,
    me: &std::sync::atomic::AtomicUsize,
) {
    use std::sync::atomic::Ordering::SeqCst;
    // SAFETY: pthread_self has no preconditions.
    me.store(unsafe { libc::pthread_self() } as usize, SeqCst);
    // SAFETY: sigset operations on a local set; the thread's own mask.
    unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigdelset(&mut set, libc::SIGUSR1);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, core::ptr::null_mut());
    }
    while !stop.load(SeqCst) {
        ioctl(vcpu, KVM_RUN, 0);
        // SAFETY: `run` is the vCPU's mapped kvm_run page.
        unsafe { *(run as *mut u8).add(1) = 0 };
    }
}

extern "C" fn on_ipi(_sig: i32) {}

/// Mean ns per KVM_SET_USER_MEMORY_REGION (a one-page slot made and
/// deleted in turn) while `n` vCPUs of a fresh VM run `jmp $`.
fn memory_update_with_running_vcpus(s: &Settings, kvm: i32, n: usize) -> Result<f64, String> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    // SAFETY: an empty handler for SIGUSR1, which never unwinds.
    unsafe {
        libc::signal(
            libc::SIGUSR1,
            on_ipi as extern "C" fn(i32) as libc::sighandler_t,
        )
    };
    let vm = ioctl(kvm, KVM_CREATE_VM, 0);
    let size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if vm < 0 || size <= 0 {
        return Err("a second VM could not be made".into());
    }
    let code = anonymous(0x10000)?;
    // SAFETY: `code` is 64 KiB of writable memory: `jmp $` at 0.
    unsafe { core::ptr::copy_nonoverlapping([0xeb_u8, 0xfe].as_ptr(), code, 2) };
    let low = Region {
        slot: 0,
        memory_size: 0x10000,
        userspace_addr: code as u64,
        ..Default::default()
    };
    if ioctl(vm, KVM_SET_USER_MEMORY_REGION, &low as *const Region as u64) != 0 {
        return Err("the code slot could not be made".into());
    }
    let mut vcpus = Vec::new();
    for id in 0..n {
        let vcpu = ioctl(vm, KVM_CREATE_VCPU, id as u64);
        if vcpu < 0 {
            return Err(format!("KVM_CREATE_VCPU {id} failed"));
        }
        let mut sregs = [0u8; 312];
        ioctl(vcpu, KVM_GET_SREGS, sregs.as_mut_ptr() as u64);
        // struct kvm_sregs starts with cs: base (u64), limit, selector.
        sregs[..8].copy_from_slice(&0u64.to_ne_bytes());
        sregs[12..14].copy_from_slice(&0u16.to_ne_bytes());
        ioctl(vcpu, KVM_SET_SREGS, sregs.as_ptr() as u64);
        let mut regs = [0u64; 18];
        regs[17] = 2; // rflags; rip (regs[16]) = 0
        ioctl(vcpu, KVM_SET_REGS, regs.as_ptr() as u64);
        vcpus.push((vcpu, map_run(vcpu, size)? as usize));
    }
    let page = anonymous(4096)?;
    let mut slot = Region {
        slot: 1,
        guest_phys_addr: 0x1000_0000,
        memory_size: 4096,
        userspace_addr: page as u64,
        ..Default::default()
    };
    let stop = AtomicBool::new(false);
    let ids: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
    let ns = std::thread::scope(|scope| {
        let threads: Vec<_> = vcpus
            .iter()
            .zip(&ids)
            .map(|(&(vcpu, run), me)| {
                let stop = &stop;
                scope.spawn(move || run_vcpu(vcpu, run, stop, me))
            })
            .collect();
        // Let every vCPU get into KVM_RUN.
        while ids.iter().any(|id| id.load(SeqCst) == 0) {
            std::thread::yield_now();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        let calls = (s.calls / 50).max(2);
        let ns = median_ns(s.rounds, calls, || {
            slot.memory_size = if slot.memory_size == 0 { 4096 } else { 0 };
            ioctl(
                vm,
                KVM_SET_USER_MEMORY_REGION,
                &slot as *const Region as u64,
            );
        });
        stop.store(true, SeqCst);
        for (me, &(_, run)) in ids.iter().zip(&vcpus) {
            // SAFETY: the kvm_run page is mapped; immediate_exit, then the
            // IPI, as QEMU kicks a vCPU. The thread (it stored its id
            // before the 100 ms sleep ended) is alive until joined below.
            unsafe {
                *(run as *mut u8).add(1) = 1;
                libc::pthread_kill(me.load(SeqCst) as libc::pthread_t, libc::SIGUSR1);
            }
        }
        for t in threads {
            let _ = t.join();
        }
        ns
    });
    Ok(ns)
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
    let updates: Vec<String> = RUNNING_VCPUS
        .iter()
        .map(|n| format!("SET_MEMORY_REGION/{n}"))
        .collect();
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
    println!(
        "\nKVM_SET_USER_MEMORY_REGION (one page, made and deleted in turn) while N vCPU \
         threads sit in KVM_RUN, signals blocked but SIGUSR1 as in QEMU; ns per call"
    );
    println!(
        "{:<18} {:>20} {:>20} {:>20}",
        "", "1 vCPU running", "2 vCPUs running", "4 vCPUs running"
    );
    for (name, figures) in &rows {
        let cells: Vec<String> = updates
            .iter()
            .map(|op| match (get(figures, op), get(&native, op)) {
                (Some(v), Some(base)) if name != "native" => {
                    format!("{v:.0} ({:.2}x)", v / base)
                }
                (Some(v), _) => format!("{v:.0}"),
                _ => "-".into(),
            })
            .collect();
        println!(
            "{:<18} {:>20} {:>20} {:>20}",
            name, cells[0], cells[1], cells[2]
        );
    }
    Ok(())
}
