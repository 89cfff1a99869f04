//! kvmng-fuzz: differential fuzzing of libkvmshim.so's ioctl translation.
//!
//! Two VMs are built identically in one process; every operation (an fd
//! class, a request, an argument) is issued through `ioctl()` on VM A,
//! which the preloaded shim translates to the kvmng API, and as a raw
//! syscall on VM B, and the return value, errno and argument memory must
//! be the same. See docs/reliability.md.
//!
//!     LD_PRELOAD=target/release/libkvmshim.so kvmng-fuzz [--execs N]
//!         [--seconds S] [--seed S] [--ops-per-round K] [--jobs J]
//!     kvmng-fuzz --seed S --round R [-v]     one round, in this process
//!     kvmng-fuzz --regressions               the divergences found so far
//!
//! `--differential`: the kvmng syscalls of the running kernel (the native
//! backend) against the library's emulation (the legacy backend), each in
//! its own process, no preload (src/diff/). `--sides legacy,legacy`
//! checks the fuzzer itself where the kernel has no kvmng.
//!
//!     kvmng-fuzz --differential [--execs N] [--seconds S] [--seed S]
//!         [--ops-per-round K] [--report FILE] [--round R [-v]]
//!         [--regressions] [--sides A,B]

mod arena;
mod diff;
mod exec;
mod gen;
mod mask;
mod pair;
mod regress;
mod rng;
mod round;
mod side;
mod supervise;

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

struct Args {
    execs: u64,
    seconds: u64,
    seed: u64,
    ops: u64,
    jobs: usize,
    round: Option<u64>,
    verbose: bool,
    regressions: bool,
    differential: bool,
    sides: [kvmng::BackendKind; 2],
    report: Option<String>,
    ops_given: bool,
    known_kernel_bugs: bool,
    max_divergences: usize,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        execs: 1_000_000,
        seconds: 3600,
        seed: 1,
        ops: 5000,
        jobs: 1,
        round: None,
        verbose: false,
        regressions: false,
        differential: false,
        sides: [kvmng::BackendKind::Native, kvmng::BackendKind::Legacy],
        report: None,
        ops_given: false,
        known_kernel_bugs: false,
        max_divergences: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} wants a number"))
        };
        match flag.as_str() {
            "--execs" => a.execs = num("--execs")?,
            "--seconds" => a.seconds = num("--seconds")?,
            "--seed" => a.seed = num("--seed")?,
            "--ops-per-round" => {
                a.ops = num("--ops-per-round")?.max(1);
                a.ops_given = true;
            }
            "--differential" => a.differential = true,
            "--known-kernel-bugs" => a.known_kernel_bugs = true,
            "--max-divergences" => a.max_divergences = num("--max-divergences")?.max(1) as usize,
            "--report" => a.report = Some(it.next().ok_or("--report wants a path")?),
            "--sides" => {
                let v = it.next().ok_or("--sides wants A,B")?;
                let kind = |s: &str| match s {
                    "native" => Ok(kvmng::BackendKind::Native),
                    "legacy" => Ok(kvmng::BackendKind::Legacy),
                    _ => Err(format!("--sides: {s} is not native or legacy")),
                };
                let (x, y) = v.split_once(',').ok_or("--sides wants A,B")?;
                a.sides = [kind(x)?, kind(y)?];
            }
            "--jobs" => a.jobs = num("--jobs")?.max(1) as usize,
            "--round" => a.round = Some(num("--round")?),
            "-v" => a.verbose = true,
            "--regressions" => a.regressions = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => {
                return Err(format!(
                    "unknown argument {flag} (kvmng-fuzz --help lists them)"
                ))
            }
        }
    }
    Ok(a)
}

const USAGE: &str = "\
usage: kvmng-fuzz [OPTIONS]
  the shim against the raw ioctl (make fuzz), or with --differential the
  kernel's kvmng syscalls against the library's emulation (make vm-fuzz;
  docs/reliability.md, sections 1 and 5)
  --execs N             stop after N executions
  --seconds N           stop after N seconds
  --seed N              the seed of the rounds
  --ops-per-round N     operations per round
  --jobs N              rounds in parallel (shim mode)
  --differential        native backend against legacy backend
  --sides A,B           the two backends (native or legacy; default native,legacy)
  --regressions         the fixed cases of the divergences found (--differential)
  --round R             only round R of --seed (to replay a divergence)
  -v                    every operation, both outcomes
  --max-divergences N   stop after N divergences
  --report PATH         write the report there too
  --known-kernel-bugs   no I/O region over the string port 0x704 (older series)";

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kvmng-fuzz: {e}");
            std::process::exit(2);
        }
    };
    if args.differential {
        std::process::exit(diff::main(diff::Args {
            execs: args.execs,
            seconds: args.seconds,
            seed: args.seed,
            ops: if args.ops_given { args.ops } else { 1000 },
            round: args.round,
            verbose: args.verbose,
            regressions: args.regressions,
            sides: args.sides,
            report: args.report,
            known_kernel_bugs: args.known_kernel_bugs,
            max_divergences: args.max_divergences,
        }));
    }
    if !side::shim_loaded() {
        eprintln!("kvmng-fuzz: libkvmshim.so is not preloaded: both sides would be the raw ioctl");
        std::process::exit(2);
    }
    // SAFETY: access() on a NUL-terminated path.
    if unsafe { libc::access(c"/dev/kvm".as_ptr(), libc::R_OK | libc::W_OK) } != 0 {
        eprintln!("!!! kvmng-fuzz: /dev/kvm is not usable: SKIPPED (0 executions)");
        std::process::exit(0);
    }
    if args.regressions {
        let (n, failed) = regress::run();
        println!("kvmng-fuzz regressions: {n} cases, {failed} failed");
        std::process::exit(i32::from(failed > 0));
    }
    if let Some(r) = args.round {
        let progress = AtomicU64::new(0);
        match round::run(
            supervise::round_seed(args.seed, r),
            args.ops,
            &progress,
            args.verbose,
        ) {
            Ok(n) => println!("round {r}: {n} operations, no divergence"),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let t0 = Instant::now();
    let totals = supervise::run(
        args.seed,
        args.ops,
        args.execs,
        args.seconds,
        args.jobs,
        Duration::from_secs(120),
    );
    let secs = t0.elapsed().as_secs_f64();
    for f in &totals.failures {
        eprintln!("{f}");
    }
    println!(
        "kvmng-fuzz: {} executions (each: the shim and the raw ioctl) in {} rounds, {:.1} s ({:.0}/s), seed {}, {} divergences/crashes/hangs",
        totals.ops,
        totals.rounds,
        secs,
        totals.ops as f64 / secs.max(1e-9),
        args.seed,
        totals.failures.len()
    );
    std::process::exit(i32::from(!totals.failures.is_empty()));
}
