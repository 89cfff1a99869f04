//! `kvmng demo`: unmodified QEMU running a guest through libkvmshim.so,
//! the census of what the shim translated, and the A/B of syscall
//! against ioctl from the committed results.

use anyhow::{bail, Context};
use kvmng_bench::icount::VmBench;
use kvmng_bench::locate::shim_library;
use kvmng_bench::machine::Machine;
use kvmng_bench::summary;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// isa-debug-exit's status for a guest that wrote 0x10: success.
const GUEST_EXIT_OK: i32 = 33;

/// The options of `kvmng demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// The QEMU to run, unmodified.
    #[arg(long, default_value = "qemu-system-x86_64")]
    pub qemu: PathBuf,
    /// The multiboot guest QEMU boots with -kernel (`make demo` builds
    /// compat-tests/qemu/smp.S into build/demo/smp.elf).
    #[arg(long, default_value = "build/demo/smp.elf")]
    pub guest: PathBuf,
    /// vCPUs.
    #[arg(long, default_value_t = 2)]
    pub smp: u32,
    /// Where the committed results are (bench.json, vm-bench.json).
    #[arg(long, default_value = "docs/bench")]
    pub results: PathBuf,
    /// Seconds before QEMU is stopped.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

/// What this kernel offers, and what the patched one would show.
fn kernel_story(m: &Machine) {
    println!("This machine: kernel {}, KVM: {}.", m.kernel, m.kvm);
    if m.kvmng_syscalls {
        println!(
            "kvmng on this kernel: native. It has the kvmng syscalls (kvmng_run(~0) answers \
             EINVAL): the shim carries QEMU's ioctls out as the kernel's syscalls, and the \
             census says backend native."
        );
    } else {
        println!(
            "kvmng on this kernel: emulated. It has no kvmng syscalls (kvmng_run(~0) answers \
             ENOSYS): the shim carries QEMU's ioctls out through the kvmng API's emulation \
             (the library's legacy backend, which issues KVM ioctls itself), and the census \
             says backend legacy. On the patched kernel (`make kernel`; `make vm-test` boots \
             it and runs QEMU in it) the same run goes through the kernel's kvmng syscalls, \
             the census says backend native, and each call costs what the syscall column \
             below says."
        );
    }
}

/// Runs QEMU with the shim; prints the guest's serial lines as they come.
fn run_qemu(args: &DemoArgs, shim: &Path, census: &Path) -> anyhow::Result<i32> {
    let version = Command::new(&args.qemu)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {}", args.qemu.display()))?;
    let version = String::from_utf8_lossy(&version.stdout);
    println!("\n== {}", version.lines().next().unwrap_or("QEMU"));
    if !args.guest.is_file() {
        bail!(
            "{} not found: `make demo` builds it from compat-tests/qemu/smp.S",
            args.guest.display()
        );
    }
    let mut qemu = Command::new(&args.qemu);
    qemu.args(
        "-nodefaults -accel kvm -cpu qemu64 -m 64 -display none -monitor none -nic none \
         -no-reboot -vga std -machine pc -serial stdio \
         -device isa-debug-exit,iobase=0xf4,iosize=0x04"
            .split_whitespace(),
    )
    .arg("-smp")
    .arg(args.smp.to_string())
    .arg("-kernel")
    .arg(&args.guest)
    .env("LD_PRELOAD", shim)
    .env("KVMNG_MODE", "auto")
    .env("KVMNG_STATS", census)
    .stdin(Stdio::null())
    .stdout(Stdio::piped());
    println!(
        "   LD_PRELOAD={} KVMNG_MODE=auto KVMNG_STATS={} \\\n   {} ... -accel kvm -smp {} -kernel {}",
        shim.display(),
        census.display(),
        args.qemu.display(),
        args.smp,
        args.guest.display()
    );
    let start = Instant::now();
    let mut child = qemu
        .spawn()
        .with_context(|| format!("cannot start {}", args.qemu.display()))?;
    let stdout = child.stdout.take().context("QEMU's stdout")?;
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("   guest | {}", line.trim_end());
        }
    });
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > Duration::from_secs(args.timeout) {
            child.kill()?;
            let _ = child.wait();
            bail!("QEMU did not finish within {} s", args.timeout);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = reader.join();
    let code = status.code().unwrap_or(-1);
    println!(
        "   QEMU exited with {code} after {:.1} s{}",
        start.elapsed().as_secs_f64(),
        if code == GUEST_EXIT_OK {
            " (the guest's success status)"
        } else {
            ""
        }
    );
    Ok(code)
}

/// The A/B table from the committed JSON, with where it came from.
fn ab(results: &Path) {
    let host = summary::read_bench(&results.join("bench.json")).ok();
    let vm = VmBench::read(&results.join("vm-bench.json")).ok();
    println!("\n== syscall against ioctl, from the committed results (nothing measured now)");
    if let Some(vm) = &vm {
        println!(
            "   patched kernel {} under QEMU TCG -icount (instructions, deterministic), {}",
            vm.kernel, vm.date
        );
    }
    if let Some(h) = &host {
        println!(
            "   host: {}, {} ({})",
            h.machine.kvm, h.machine.cpu_model, h.date
        );
    }
    print!("{}", summary::ab_table(host.as_ref(), vm.as_ref()));
    println!(
        "   ratio: syscall / ioctl in the patched kernel. The tables with intervals and \
         every operation: docs/bench.md.\n   To measure again: `make bench` (this host, \
         every path, timed) and `make vm-bench` (the patched kernel, in instructions)."
    );
}

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    println!("kvmng demo: unmodified QEMU driving KVM through libkvmshim.so\n");
    let machine = Machine::detect();
    kernel_story(&machine);
    let shim = shim_library()?;
    let census = std::env::temp_dir().join(format!("kvmng-demo.{}.census", std::process::id()));
    let _ = std::fs::remove_file(&census);
    let code = run_qemu(args, &shim, &census);
    let text = std::fs::read_to_string(&census).unwrap_or_default();
    let _ = std::fs::remove_file(&census);
    let code = code?;
    println!("\n== the census of this run (kvmng stats): what the shim did with QEMU's ioctls");
    print!("{}", crate::stats::render(&crate::stats::read(&text)?));
    ab(&args.results);
    if code != GUEST_EXIT_OK {
        bail!("the guest did not end with its success status ({GUEST_EXIT_OK}), QEMU exited with {code}");
    }
    Ok(())
}
