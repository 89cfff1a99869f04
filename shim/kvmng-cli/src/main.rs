//! `kvmng`: the command-line face of kvmng.

mod demo;
mod exec;
mod info;
mod stats;

use clap::{Parser, Subcommand};
use kvmng_bench::{ab, bench};
use std::ffi::OsString;
use std::path::PathBuf;

/// KVM driven by system calls: the kvmng command.
#[derive(Parser)]
#[command(name = "kvmng", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run unmodified QEMU with a guest through libkvmshim.so, print the
    /// census of what the shim translated and the committed A/B of
    /// syscall against ioctl (`make demo`).
    Demo(demo::DemoArgs),
    /// Describe this machine: kernel, /dev/kvm, kvmng syscalls, backend.
    Info,
    /// Run a program with libkvmshim.so preloaded: its KVM ioctls are
    /// carried out through the kvmng API (docs/shim.md).
    Exec {
        /// auto (the new API: native syscalls or the emulation), syscall
        /// (the kernel must have the kvmng syscalls) or passthrough
        /// (observe only).
        #[arg(long, default_value = "auto")]
        mode: String,
        /// Write one line per KVM ioctl to this file (%p: the pid).
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// Append one JSON census line per process to this file.
        #[arg(long, value_name = "FILE")]
        stats: Option<PathBuf>,
        /// The program and its arguments (after --).
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<OsString>,
    },
    /// Print the census a run with --stats (KVMNG_STATS) wrote, per command.
    Stats {
        /// The census file.
        file: PathBuf,
    },
    /// Measure each KVM operation through each path (raw ioctl, the
    /// library's legacy backend, the shim, the trap, the native syscall),
    /// interleaved, with medians, p99 and bootstrap intervals
    /// (docs/bench.md).
    Bench(Box<bench::BenchArgs>),
    /// Run a program alternately in two modes (e.g. the shim's passthrough
    /// and auto) and compare its wall time and the figures it prints.
    Ab(ab::AbArgs),
}

fn main() -> std::process::ExitCode {
    // `kvmng bench` re-executes this program as the worker of one path.
    if let Some(path) = std::env::var_os(bench::WORKER_ENV) {
        return kvmng_bench::worker::main(&path.to_string_lossy());
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Info => info::run(),
        Command::Exec {
            mode,
            trace,
            stats,
            command,
        } => exec::run(&mode, trace.as_deref(), stats.as_deref(), &command),
        Command::Stats { file } => stats::run(&file),
        Command::Bench(args) => bench::run(&args),
        Command::Ab(args) => ab::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvmng: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
